"""Shared by the Cloudify operations and workflows: blueprint properties to core
objects, and core errors to Cloudify errors. The only place besides
operations.py and workflows.py that knows Cloudify's names."""

from cloudify.exceptions import NonRecoverableError

from .core.errors import (AuthenticationError, ConfigError, CroupierError, HostKeyError,
                          TransportError)
from .core.infrastructure import InfrastructureSettings
from .core.model import JobSpec

INTERFACE_TYPE = 'croupier.nodes.InfrastructureInterface'
JOB_TYPE = 'croupier.nodes.Job'
MANAGED_BY = 'task_managed_by_interface'
DEPENDS_ON = 'job_depends_on'


def is_type(node, type_name):
    return type_name in (getattr(node, 'type_hierarchy', None) or [node.type])


def interface_settings(node_id, properties):
    try:
        return InfrastructureSettings.from_properties(node_id, dict(properties))
    except ConfigError as exc:
        raise NonRecoverableError(str(exc)) from None


def job_spec(node_id, instance_id, properties, settings):
    """The JobSpec of a job node instance on the interface ``settings``."""
    try:
        spec = JobSpec.from_options(f'{settings.job_prefix}{instance_id}',
                                    dict(properties.get('job_options') or {}))
    except ConfigError as exc:
        raise NonRecoverableError(str(exc.for_node(node_id))) from None
    spec.modules = list(settings.modules) + list(spec.modules)
    return spec


def job_options_check(node_id, properties):
    """Validate a job's options without knowing its interface yet."""
    try:
        JobSpec.from_options(node_id, dict(properties.get('job_options') or {}))
    except ConfigError as exc:
        raise NonRecoverableError(str(exc.for_node(node_id))) from None


def as_cloudify_error(exc, what):
    """A core error as the error Cloudify should see."""
    if isinstance(exc, (ConfigError, HostKeyError, AuthenticationError)):
        return NonRecoverableError(f'{what}: {exc}')
    if isinstance(exc, TransportError):
        # the transport already retried with backoff for reconnect_timeout seconds
        return NonRecoverableError(f'{what}: {exc}')
    if isinstance(exc, CroupierError):
        return NonRecoverableError(f'{what}: {exc}')
    return exc
