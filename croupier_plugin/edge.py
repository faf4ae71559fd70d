"""Shared by the Cloudify operations and workflows: blueprint properties to core
objects, and core errors to Cloudify errors. The only place besides
operations.py and workflows.py that knows Cloudify's names."""

from cloudify.exceptions import NonRecoverableError

from .core.errors import (AuthenticationError, ConfigError, CroupierError, HostKeyError,
                          TransportError)
from .core.exporter import ExporterClient, exporter_address, registration_payload
from .core.infrastructure import InfrastructureSettings
from .core.model import JobSpec
from .core.schedulers import get_scheduler
from .core.schedulers.pycompss import PycompssJob
from .core.transport import SshSettings
from .core.vault import VaultSettings, fetch_credentials, merge_credentials

INTERFACE_TYPE = 'croupier.nodes.InfrastructureInterface'
JOB_TYPE = 'croupier.nodes.Job'
SINGULARITY_TYPE = 'croupier.nodes.SingularityJob'
PYCOMPSS_TYPE = 'croupier.nodes.PyCOMPSsJob'
VAULT_TYPE = 'croupier.nodes.Vault'
EXPORTER_TYPE = 'croupier.nodes.HPCExporter'
MANAGED_BY = 'task_managed_by_interface'
DEPENDS_ON = 'job_depends_on'
FROM_VAULT = 'retrieve_credentials_from_vault'
MONITORED_BY = 'interface_monitored_by'


def is_type(node, type_name):
    return type_name in (getattr(node, 'type_hierarchy', None) or [node.type])


def vault_settings(node_id, properties):
    try:
        return VaultSettings.from_properties(properties)
    except ConfigError as exc:
        raise NonRecoverableError(str(exc.for_node(node_id))) from None


def exporter_client(node_id, properties):
    """The client of an HPCExporter node; its bad address names node, property and value."""
    try:
        address = exporter_address(properties, node_id)
    except ConfigError as exc:
        raise NonRecoverableError(str(exc)) from None
    timeout = properties.get('timeout', 10)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise NonRecoverableError(f"node '{node_id}', property 'timeout' = {timeout!r}: must be "
                                  f"a positive number of seconds")
    return ExporterClient(address, float(timeout))


def exporter_registration(settings):
    """What the exporter is told about an interface (no secret)."""
    try:
        return registration_payload(settings)
    except ConfigError as exc:
        raise NonRecoverableError(str(exc)) from None


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


def _options(value):
    # a copy of a mapping; anything else goes on to be refused by name
    return dict(value) if isinstance(value, dict) else (value or {})


def _parse_job(name, options, kind):
    if kind == 'pycompss':
        return PycompssJob.from_options(name, options)
    return JobSpec.from_options(name, options, container=(kind == 'container'))


def job_kind(types):
    """'pycompss', 'container' or 'batch', from a node's type hierarchy."""
    if PYCOMPSS_TYPE in types:
        return 'pycompss'
    if SINGULARITY_TYPE in types:
        return 'container'
    return 'batch'


def job_spec(node_id, instance_id, properties, settings, kind='batch'):
    """The job spec of a job node instance on the interface ``settings``."""
    if (kind == 'pycompss') != (settings.scheduler == 'PYCOMPSS'):
        raise NonRecoverableError(
            f"node '{node_id}': a {'PyCOMPSsJob' if kind == 'pycompss' else 'job'} cannot run "
            f"on interface '{settings.name}' ({settings.scheduler}); PyCOMPSsJobs go to "
            f"PYCOMPSS interfaces and other jobs to the other schedulers")
    try:
        spec = _parse_job(f'{settings.job_prefix}{instance_id}',
                          _options(properties.get('job_options')), kind)
        check_for_scheduler(settings, spec)
    except ConfigError as exc:
        raise NonRecoverableError(str(exc.for_node(node_id))) from None
    spec.modules = list(settings.modules) + list(spec.modules)
    return spec


def check_for_scheduler(settings, spec):
    """ConfigError for options the interface's scheduler has no equivalent of."""
    scheduler = get_scheduler(settings.scheduler, monitor=settings.monitor_interface)
    check = getattr(scheduler, 'check', None)
    if check is not None:
        check(spec)


def job_options_check(node_id, properties, kind='batch'):
    """Validate a job's options without knowing its interface yet."""
    try:
        _parse_job(node_id, _options(properties.get('job_options')), kind)
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
