"""Shared by the Cloudify operations and workflows: blueprint properties to core
objects, and core errors to Cloudify errors. The only place besides
operations.py and workflows.py that knows Cloudify's names."""

from cloudify.exceptions import NonRecoverableError

from .core.errors import (AuthenticationError, ConfigError, CroupierError, HostKeyError,
                          TransportError)
from .core.infrastructure import InfrastructureSettings
from .core.model import JobSpec
from .core.transport import SshSettings
from .core.vault import VaultSettings, fetch_credentials, merge_credentials

INTERFACE_TYPE = 'croupier.nodes.InfrastructureInterface'
JOB_TYPE = 'croupier.nodes.Job'
SINGULARITY_TYPE = 'croupier.nodes.SingularityJob'
VAULT_TYPE = 'croupier.nodes.Vault'
MANAGED_BY = 'task_managed_by_interface'
DEPENDS_ON = 'job_depends_on'
FROM_VAULT = 'retrieve_credentials_from_vault'


def is_type(node, type_name):
    return type_name in (getattr(node, 'type_hierarchy', None) or [node.type])


def vault_settings(node_id, properties):
    try:
        return VaultSettings.from_properties(properties)
    except ConfigError as exc:
        raise NonRecoverableError(str(exc.for_node(node_id))) from None


def interface_settings(node_id, properties, vault=None, fetch=True):
    """The interface's settings; with ``vault`` (node id, Vault properties) its
    credentials are completed from Vault (``fetch=False`` checks the blueprint
    only, standing in for the secrets Vault would give)."""
    properties = dict(properties)
    if vault is not None:
        vault_id, vault_props = vault
        settings = vault_settings(vault_id, vault_props)
        creds = dict(properties.get('credentials') or {})
        host = creds.get('host')
        if not host:
            raise NonRecoverableError(f"node '{node_id}', property 'credentials.host' = "
                                      f"{host!r}: is required to find the credentials in Vault")
        if fetch:
            try:
                found = fetch_credentials(settings, host)
                # only credentials fields: anything else in the secret stays there
                found = {k: v for k, v in found.items() if k in SshSettings.CREDENTIAL_KEYS}
            except CroupierError as exc:
                raise NonRecoverableError(f"node '{node_id}': credentials from Vault node "
                                          f"'{vault_id}': {exc}") from None
        else:
            found = {'user': 'from-vault', 'password': 'from-vault'}
        properties['credentials'] = merge_credentials(creds, found,
                                                      SshSettings.PLUGIN_DEFAULTS)
    try:
        return InfrastructureSettings.from_properties(node_id, properties)
    except ConfigError as exc:
        raise NonRecoverableError(str(exc)) from None


def job_spec(node_id, instance_id, properties, settings, container=False):
    """The JobSpec of a job node instance on the interface ``settings``."""
    try:
        spec = JobSpec.from_options(f'{settings.job_prefix}{instance_id}',
                                    dict(properties.get('job_options') or {}),
                                    container=container)
    except ConfigError as exc:
        raise NonRecoverableError(str(exc.for_node(node_id))) from None
    spec.modules = list(settings.modules) + list(spec.modules)
    return spec


def job_options_check(node_id, properties, container=False):
    """Validate a job's options without knowing its interface yet."""
    try:
        JobSpec.from_options(node_id, dict(properties.get('job_options') or {}),
                             container=container)
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
