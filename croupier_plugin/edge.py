"""Shared by the Cloudify operations and workflows: blueprint properties to core
objects, and core errors to Cloudify errors. The only place besides
operations.py and workflows.py that knows Cloudify's names."""

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from cloudify.exceptions import NonRecoverableError

from .core import site
from .core.ckan import CkanCatalogue, CkanResource
from .core.data import (DataInfrastructure, DataSource, Publication, Transfer,
                         endpoint_host, protocol, publish_path_problem)
from .core.engine import RETRY_STATES, JobPolicy
from .core.errors import (AuthenticationError, ConfigError, CroupierError, HostKeyError,
                          TransportError)
from .core.exporter import ExporterClient, client_from_properties, registration_payload
from .core.infrastructure import InfrastructureSettings
from .core.model import JobSpec, parse_duration
from .core.schedulers import get_scheduler
from .core.schedulers.pycompss import PycompssJob
from .core.transport import SshSettings, Transport
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
CONTAINED_IN = 'interface_contained_in'
# runtime property of an interface instance: the front-end's address taken at
# configure from its interface_contained_in target (the Compute node's ip)
CONTAINED_HOST = 'contained_host'
DAI_TYPE = 'croupier.nodes.DataAccessInfrastructure'
FILE_SOURCE_TYPE = 'croupier.nodes.FileDataSource'
WEB_SOURCE_TYPE = 'croupier.nodes.WebDataSource'
CKAN_DATASET_TYPE = 'croupier.nodes.CKAN_dataset'
CKAN_RESOURCE_TYPE = 'croupier.nodes.CKAN_resource'
TRANSFER_TYPE = 'croupier.nodes.DataTransfer'
LOCATED_AT = 'ds_located_at'
FROM_SOURCE = 'from_source'
TO_TARGET = 'to_target'
INPUT = 'input'
OUTPUT = 'output'


# what the manager's cloudify.nodes.Root adds to every node; no Croupier node uses them
ROOT_PROPERTIES = ('use_external_resource', 'resource_id')


def own_properties(properties: dict) -> dict:
    """A node's properties without those its Cloudify base type adds, for the
    checks that refuse unknown property names."""
    return {k: v for k, v in (properties or {}).items() if k not in ROOT_PROPERTIES}


def is_type(node: Any, type_name: str) -> bool:
    """Whether the Cloudify node (or node instance's node) is of ``type_name`` or derives
    from it."""
    return type_name in (getattr(node, 'type_hierarchy', None) or [node.type])


def vault_settings(node_id: str, properties: dict[str, Any]) -> VaultSettings:
    """A Vault node's settings; NonRecoverableError naming node, property and value when
    they are not valid."""
    try:
        return VaultSettings.from_properties(own_properties(properties), node=node_id)
    except ConfigError as exc:
        raise NonRecoverableError(str(exc.for_node(node_id))) from None


def exporter_client(node_id: str, properties: dict[str, Any]) -> ExporterClient:
    """The client of an HPCExporter node; its bad address names node, property and value.
    A node that gives no address takes the site's (CROUPIER_EXPORTER_ADDRESS or the site
    configuration file)."""
    properties = dict(properties)
    try:
        if not properties.get('address') and not properties.get('hpc_exporter_address'):
            properties['address'] = site.load().get('exporter_address')
            if not properties['address']:
                raise ConfigError('address', '', f'is required (e.g. http://127.0.0.1:9110): '
                                                 f'give it (or hpc_exporter_address) on the '
                                                 f'node, or '
                                                 f'{site.where_to_set("exporter_address")}'
                                  ).for_node(node_id)
        return client_from_properties(properties, node_id)
    except ConfigError as exc:
        raise NonRecoverableError(str(exc)) from None


def exporter_registration(settings: InfrastructureSettings) -> dict[str, Any]:
    """What the exporter is told about an interface (no secret)."""
    try:
        return registration_payload(settings)
    except ConfigError as exc:
        raise NonRecoverableError(str(exc)) from None


def _credentials_from_vault(node_id: str, creds: dict[str, Any] | None,
                            vault: tuple[str, dict[str, Any]], fetch: bool,
                            host: str | None = None) -> dict[str, Any]:
    """``creds`` completed from the Vault node ``vault`` (node id, properties);
    ``fetch=False`` checks the blueprint only, standing in for the secrets."""
    vault_id, vault_props = vault
    settings = vault_settings(vault_id, vault_props)
    creds = dict(creds or {})
    host = creds.get('host') or host
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
    merged = merge_credentials(creds, found, SshSettings.PLUGIN_DEFAULTS)
    if not merged.get('host'):
        merged['host'] = host
    return merged


def contained_host(node_id: str, target_id: str, target_properties: dict,
                   target_runtime: dict | None = None) -> str:
    """The front-end's address an interface takes from its interface_contained_in
    target ``target_id`` (a Compute node): its ``ip`` runtime property (set by the
    plugin that created the machine), else its ``ip`` property. NonRecoverableError
    naming the interface's credentials.host when the target has neither."""
    host = (target_runtime or {}).get('ip') or (target_properties or {}).get('ip')
    if not host:
        raise NonRecoverableError(
            f"node '{node_id}', property 'credentials.host' = None: is required: give it, "
            f"or an ip to node '{target_id}' (its {CONTAINED_IN} target: neither its ip "
            f"property nor its ip runtime property is set)")
    return host


def interface_settings(node_id: str, properties: dict,
                       vault: tuple[str, dict[str, Any]] | None = None, fetch: bool = True,
                       host: str | None = None) -> InfrastructureSettings:
    """The interface's settings; with ``vault`` (node id, Vault properties) its
    credentials are completed from Vault (``fetch=False`` checks the blueprint
    only, standing in for the secrets Vault would give). ``host`` (from
    interface_contained_in, see contained_host) is the front-end when the
    credentials name none; a host the credentials give wins."""
    properties = dict(properties)
    credentials = properties.get('credentials')
    if host and (credentials is None or isinstance(credentials, dict)) and \
            not (credentials or {}).get('host'):
        properties['credentials'] = dict(credentials or {}, host=host)
    if vault is not None:
        properties['credentials'] = _credentials_from_vault(
            node_id, properties.get('credentials'), vault, fetch)
    try:
        settings = InfrastructureSettings.from_properties(node_id, properties)
        settings.ssh = with_site_known_hosts(settings.ssh)
    except ConfigError as exc:
        raise NonRecoverableError(str(exc)) from None
    return settings


def with_site_known_hosts(ssh: SshSettings | None) -> SshSettings | None:
    """``ssh`` (SshSettings or None) also trusting the host keys of the site's
    known_hosts file, when the site configuration names one."""
    if ssh is None:
        return None
    return replace(ssh, site_known_hosts=site.load().get('known_hosts'))


def _options(value: Any) -> Any:
    # a copy of a mapping; anything else goes on to be refused by name
    return dict(value) if isinstance(value, dict) else (value or {})


def _parse_job(name: str, options: Any, kind: str,
               now: datetime | None = None) -> JobSpec | PycompssJob:
    """The job's spec from its options. ``recurrent_reservation: true`` (the original
    Croupier's option) makes ``reservation`` a strftime pattern, formatted with
    ``now`` (the interface's local time; UTC when checking without an interface)."""
    if isinstance(options, dict) and 'recurrent_reservation' in options:
        options = dict(options)
        recurrent = options.pop('recurrent_reservation')
        if recurrent not in (None, True, False):
            raise ConfigError('job_options.recurrent_reservation', recurrent,
                              'must be true or false')
        if recurrent and isinstance(options.get('reservation'), str):
            moment = now or datetime.now(timezone.utc)
            options['reservation'] = moment.strftime(options['reservation'])
    if kind == 'pycompss':
        return PycompssJob.from_options(name, options)
    return JobSpec.from_options(name, options, container=(kind == 'container'))


def job_kind(types: Sequence[str]) -> str:
    """'pycompss', 'container' or 'batch', from a node's type hierarchy."""
    if PYCOMPSS_TYPE in types:
        return 'pycompss'
    if SINGULARITY_TYPE in types:
        return 'container'
    return 'batch'


def job_spec(node_id: str, instance_id: str, properties: dict[str, Any],
             settings: InfrastructureSettings, kind: str = 'batch') -> JobSpec | PycompssJob:
    """The job spec of a job node instance on the interface ``settings``."""
    if (kind == 'pycompss') != (settings.scheduler == 'PYCOMPSS'):
        raise NonRecoverableError(
            f"node '{node_id}': a {'PyCOMPSsJob' if kind == 'pycompss' else 'job'} cannot run "
            f"on interface '{settings.name}' ({settings.scheduler}); PyCOMPSsJobs go to "
            f"PYCOMPSS interfaces and other jobs to the other schedulers")
    try:
        spec = _parse_job(f'{settings.job_prefix}{instance_id}',
                          _options(properties.get('job_options')), kind,
                          now=settings.local_time())
        check_for_scheduler(settings, spec)
    except ConfigError as exc:
        raise NonRecoverableError(str(exc.for_node(node_id))) from None
    spec.modules = list(settings.modules) + list(spec.modules)
    if getattr(spec, 'partition', 'none') is None and settings.partition:
        # (a PycompssJob has no partition: the getattr above keeps it out)
        spec.partition = settings.partition  # type: ignore[union-attr]
    return spec


def check_for_scheduler(settings: InfrastructureSettings,
                        spec: JobSpec | PycompssJob) -> None:
    """ConfigError for options the interface's scheduler has no equivalent of."""
    scheduler = get_scheduler(settings.scheduler, monitor=settings.monitor_interface)
    check = getattr(scheduler, 'check', None)
    if check is not None:
        check(spec)


def job_options_check(node_id: str, properties: dict[str, Any], kind: str = 'batch') -> None:
    """Validate a job's options without knowing its interface yet."""
    try:
        _parse_job(node_id, _options(properties.get('job_options')), kind)
    except ConfigError as exc:
        raise NonRecoverableError(str(exc.for_node(node_id))) from None


def as_cloudify_error(exc: Exception, what: str) -> Exception:
    """A core error as the error Cloudify should see."""
    if isinstance(exc, (ConfigError, HostKeyError, AuthenticationError)):
        return NonRecoverableError(f'{what}: {exc}')
    if isinstance(exc, TransportError):
        # the transport already retried with backoff for reconnect_timeout seconds
        return NonRecoverableError(f'{what}: {exc}')
    if isinstance(exc, CroupierError):
        return NonRecoverableError(f'{what}: {exc}')
    return exc


# -- data: infrastructures, sources, transfers -------------------------------

@dataclass
class NodeView:
    """What the data planning needs of a node, from the local storage's dicts or
    the workflow's node objects alike."""
    id: str
    types: list[str]
    properties: dict[str, Any]
    # [(relationship type hierarchy, target node id)]
    relationships: list[tuple[list[str], str]]

    def targets(self, rel_type: str) -> list[str]:
        """The ids of the nodes this node has a ``rel_type`` relationship to."""
        return [target for types, target in self.relationships if rel_type in types]

    def is_a(self, type_name: str) -> bool:
        """Whether the node is of ``type_name`` or derives from it."""
        return type_name in self.types


@dataclass
class Dataflow:
    """A deployment's data infrastructures, sources and transfers by node id, the
    jobs' inputs and outputs, and the problems found building them."""
    infrastructures: dict[str, DataInfrastructure] = field(default_factory=dict)
    sources: dict[str, DataSource] = field(default_factory=dict)
    transfers: dict[str, Transfer] = field(default_factory=dict)
    # job node id -> [source node ids]
    inputs: dict[str, list[str]] = field(default_factory=dict)
    outputs: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def raise_problems(self) -> None:
        """NonRecoverableError listing every problem, when there is one."""
        if self.problems:
            raise NonRecoverableError('the dataflow is not valid:\n' + '\n'.join(self.problems))


def _vault_of_view(view: NodeView,
                   views: Mapping[str, NodeView]) -> tuple[str, dict[str, Any]] | None:
    vaults = view.targets(FROM_VAULT)
    if not vaults:
        return None
    target = views.get(vaults[0])
    if target is None or not target.is_a(VAULT_TYPE):
        raise NonRecoverableError(f"node '{view.id}': {FROM_VAULT} target '{vaults[0]}' is "
                                  f"not a {VAULT_TYPE}")
    return target.id, target.properties


def ckan_catalogue(view: NodeView) -> CkanCatalogue:
    """The CKAN catalogue of a CKAN_dataset node; NonRecoverableError naming node,
    property and value (the API token hidden) when it is not valid."""
    if view.targets(FROM_VAULT):
        raise NonRecoverableError(f"node '{view.id}': {FROM_VAULT}: a CKAN_dataset takes its "
                                  f"API token from credentials.auth-header, not from Vault")
    props = {k: v for k, v in view.properties.items() if k in
             ('endpoint', 'internet_access', 'supported_protocols', 'credentials',
              'dataset_info')}
    try:
        return CkanCatalogue.from_catalogue_properties(view.id, props)
    except ConfigError as exc:
        raise NonRecoverableError(str(exc)) from None


def data_infrastructure(view: NodeView, views: Mapping[str, NodeView],
                        fetch: bool = True) -> DataInfrastructure:
    """The data infrastructure (or CKAN catalogue) of a DataAccessInfrastructure node,
    its credentials completed from Vault; NonRecoverableError when it is not valid."""
    if view.is_a(CKAN_DATASET_TYPE):
        return ckan_catalogue(view)
    props = {k: v for k, v in view.properties.items() if k in
             ('endpoint', 'internet_access', 'supported_protocols', 'credentials',
              'ssh_endpoint', 'workspace_basepath')}
    vault = _vault_of_view(view, views)
    if vault is not None:
        props['credentials'] = _credentials_from_vault(
            view.id, props.get('credentials'), vault, fetch,
            host=endpoint_host(str(props.get('endpoint') or '')))
    try:
        infra = DataInfrastructure.from_properties(view.id, props)
        infra.ssh = with_site_known_hosts(infra.ssh)
    except ConfigError as exc:
        raise NonRecoverableError(str(exc)) from None
    infra.secrets_pending = vault is not None and not fetch
    return infra


def build_dataflow(views: Mapping[str, NodeView], fetch: bool = True) -> Dataflow:
    """The deployment's data objects and transfers, and every problem found
    (each naming node, property and value)."""
    flow = Dataflow()
    for view in views.values():
        if view.is_a(DAI_TYPE):
            try:
                flow.infrastructures[view.id] = data_infrastructure(view, views, fetch)
            except NonRecoverableError as exc:
                flow.problems.append(str(exc))
    for view in views.values():
        kind = 'file' if view.is_a(FILE_SOURCE_TYPE) else 'web' if view.is_a(WEB_SOURCE_TYPE) \
            else 'ckan' if view.is_a(CKAN_RESOURCE_TYPE) else None
        if kind is None:
            continue
        located = view.targets(LOCATED_AT)
        if len(located) != 1 or located[0] not in views or \
                not views[located[0]].is_a(DAI_TYPE):
            flow.problems.append(f"node '{view.id}': a data source needs exactly one "
                                 f"{LOCATED_AT} relationship to a {DAI_TYPE} "
                                 f"(found {located})")
            continue
        infra = flow.infrastructures.get(located[0])
        if infra is None:
            continue                    # its infrastructure's problem is reported
        if (kind == 'ckan') != isinstance(infra, CkanCatalogue):
            flow.problems.append(f"node '{view.id}': {LOCATED_AT} '{located[0]}': "
                                 + ('a CKAN_resource is located at a CKAN_dataset'
                                    if kind == 'ckan' else
                                    'a CKAN_dataset holds CKAN_resource nodes only'))
            continue
        try:
            if kind == 'ckan':
                # (infra is a CkanCatalogue here: checked just above)
                flow.sources[view.id] = CkanResource.from_resource_properties(
                    view.id, view.properties, infra)  # type: ignore[arg-type]
                continue
            flow.sources[view.id] = DataSource.from_properties(view.id, kind, view.properties,
                                                               infra)
        except ConfigError as exc:
            flow.problems.append(str(exc))
    for view in views.values():
        if view.is_a(TRANSFER_TYPE):
            try:
                flow.transfers[view.id] = _transfer(view, views, flow)
            except ConfigError as exc:
                flow.problems.append(str(exc if exc.node else exc.for_node(view.id)))
            except NonRecoverableError as exc:
                flow.problems.append(str(exc))
        elif view.is_a(JOB_TYPE):
            for rel, bucket in ((INPUT, flow.inputs), (OUTPUT, flow.outputs)):
                for target in view.targets(rel):
                    if target not in flow.sources:
                        if not any(f"node '{target}'" in p for p in flow.problems):
                            flow.problems.append(
                                f"node '{view.id}': {rel} target '{target}' is not a data "
                                f"source ({FILE_SOURCE_TYPE} or {WEB_SOURCE_TYPE})")
                        continue
                    bucket.setdefault(view.id, []).append(target)
    return flow


def _transfer(view: NodeView, views: Mapping[str, NodeView], flow: Dataflow) -> Transfer:
    name = protocol('transfer_protocol', view.properties.get('transfer_protocol'))
    ends = {}
    for rel in (FROM_SOURCE, TO_TARGET):
        targets = view.targets(rel)
        if len(targets) != 1:
            raise ConfigError(rel, targets, f'a DataTransfer needs exactly one {rel} '
                                            f'relationship').for_node(view.id)
        if targets[0] not in flow.sources:
            if any(f"node '{targets[0]}'" in p for p in flow.problems):
                raise NonRecoverableError(f"node '{view.id}': its {rel} '{targets[0]}' is not "
                                          f"valid (see above)")
            raise ConfigError(rel, targets[0], 'is not a FileDataSource, WebDataSource or '
                                               'CKAN_resource'
                              ).for_node(view.id)
        ends[rel] = flow.sources[targets[0]]
    transfer = Transfer(view.id, name, ends[FROM_SOURCE], ends[TO_TARGET])
    try:
        transfer.check()
    except ConfigError as exc:
        raise exc.for_node(view.id) from None
    return transfer


def assign_workdirs(flow: Dataflow,
                    interfaces: Sequence[tuple[InfrastructureSettings, str | None]]) -> None:
    """Give each data infrastructure the working directory of the interface on
    the same host (and port; the same user first) for ``${workdir}``.
    ``interfaces``: [(InfrastructureSettings, workdir)]."""
    for infra in flow.infrastructures.values():
        if infra.ssh is None:
            continue
        same_host = [(s, w) for s, w in interfaces if s.ssh is not None and w and
                     (s.ssh.host, s.ssh.port) == (infra.ssh.host, infra.ssh.port)]
        # (same_host holds only interfaces with ssh settings; (None, None) is the fallback)
        same_user = [(s, w) for s, w in same_host
                     if s.ssh.user == infra.ssh.user]  # type: ignore[union-attr]
        chosen = (same_user or same_host or [(None, None)])[0][1]  # type: ignore[list-item]
        infra.workdir = chosen


_LABEL_KEY = re.compile(r'[A-Za-z0-9_.\-/]+')


def job_labels(node_id: str, properties: dict[str, Any]) -> dict[str, str]:
    """The job's ``labels``: a mapping, or a list of 'key=value' strings."""
    raw = properties.get('labels') or {}
    items = raw
    if isinstance(raw, list):
        items = {}
        for entry in raw:
            if not isinstance(entry, str) or '=' not in entry:
                raise NonRecoverableError(f"node '{node_id}', property 'labels' = {raw!r}: "
                                          f"each label is 'key=value'")
            key, value = entry.split('=', 1)
            items[key.strip()] = value.strip()
    if not isinstance(items, dict):
        raise NonRecoverableError(f"node '{node_id}', property 'labels' = {raw!r}: must be a "
                                  f"mapping (key: value) or a list of 'key=value'")
    labels = {}
    for key, value in items.items():
        if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key):
            raise NonRecoverableError(f"node '{node_id}', property 'labels.{key}' = {value!r}: "
                                      f"a label key holds letters, digits and . _ - / only")
        if isinstance(value, (dict, list)) or value is None or '\n' in str(value):
            raise NonRecoverableError(f"node '{node_id}', property 'labels.{key}' = {value!r}: "
                                      f"must be a single-line value")
        labels[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return labels


# each retry is a new submission: more than this is a loop, not a policy
MAX_RETRIES = 100


def job_policy(node_id: str, properties: dict[str, Any]) -> JobPolicy:
    """The job's retry and queue-time policy from ``max_retries``, ``retry_on``
    and ``max_time_in_queue``."""
    retries = properties.get('max_retries', 0)
    if retries is None or retries == '':
        retries = 0
    if isinstance(retries, bool) or not isinstance(retries, int) or \
            not 0 <= retries <= MAX_RETRIES:
        raise NonRecoverableError(f"node '{node_id}', property 'max_retries' = {retries!r}: "
                                  f"must be an integer from 0 to {MAX_RETRIES}")
    retry_on = properties.get('retry_on') or []
    if isinstance(retry_on, str):
        retry_on = [retry_on]
    if not isinstance(retry_on, list) or any(
            not isinstance(s, str) or s.upper() not in RETRY_STATES for s in retry_on):
        raise NonRecoverableError(f"node '{node_id}', property 'retry_on' = {retry_on!r}: "
                                  f"must be a list of states among {', '.join(RETRY_STATES)}")
    limit = properties.get('max_time_in_queue')
    seconds = None
    # (False == 0 in Python: a boolean goes on to be refused by parse_duration)
    if not (limit is None or limit == '' or (limit == 0 and not isinstance(limit, bool))):
        try:
            seconds = float(parse_duration('max_time_in_queue', limit))
        except ConfigError as exc:
            raise NonRecoverableError(str(exc.for_node(node_id))) from None
    return JobPolicy(max_retries=retries, retry_on=frozenset(s.upper() for s in retry_on),
                     max_time_in_queue=seconds)


def publish_paths(node_id: str, properties: dict[str, Any]) -> list[str]:
    """The job's ``publish`` list: paths of files or folders to copy back."""
    paths = properties.get('publish') or []
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or any(
            not isinstance(p, str) or not p.strip() or '\n' in p or '\0' in p
            or p.strip().rstrip('/') in ('', '.', '..') for p in paths):
        raise NonRecoverableError(f"node '{node_id}', property 'publish' = {paths!r}: must be "
                                  f"a list of file or folder paths (relative to the working "
                                  f"directory, or absolute)")
    for i, path in enumerate(paths):
        problem = publish_path_problem(path)
        if problem:
            raise NonRecoverableError(f"node '{node_id}', property 'publish[{i}]' = "
                                      f"{path.strip()!r}: {problem}")
    return [p.strip() for p in paths]


def publication(job_name: str, paths: list[str], results_dir: str,
                locate: Callable[[], tuple[Transport, str]]) -> Publication:
    """Copies ``paths`` of the job into results_dir/<job>; ``locate()`` gives the
    (transport, working directory) the job ran with."""
    return Publication(job_name, locate, paths, os.path.join(results_dir, job_name))


DEPLOYMENT_KEYS = ('bootstrap', 'revert', 'inputs', 'hpc_execution')


def deployment_options(node_id: str, properties: dict) -> dict:
    """A job's ``deployment`` property (bootstrap and revert scripts, their
    inputs, where they run), checked; bad values name node, property and value."""
    def refuse(prop: str, value: object, why: str) -> NonRecoverableError:
        return NonRecoverableError(f"node '{node_id}', property '{prop}' = {value!r}: {why}")

    raw = properties.get('deployment') or {}
    if not isinstance(raw, dict):
        raise refuse('deployment', raw, f'must be a mapping with {", ".join(DEPLOYMENT_KEYS)}')
    options = dict(raw)
    for key, value in options.items():
        if key not in DEPLOYMENT_KEYS:
            raise refuse(f'deployment.{key}', value, f'is not one of {DEPLOYMENT_KEYS}')
    for key in ('bootstrap', 'revert'):
        value = options.get(key)
        if value in (None, ''):
            continue
        if not isinstance(value, str) or any(c in value for c in '\n\r\0'):
            raise refuse(f'deployment.{key}', value, 'must be the path of a script in the '
                                                     'blueprint')
    inputs = options.get('inputs') or []
    if not isinstance(inputs, list) or any(isinstance(i, (dict, list)) or i is None
                                           for i in inputs):
        raise refuse('deployment.inputs', inputs, 'must be a list of strings')
    options['inputs'] = [str(i).lower() if isinstance(i, bool) else str(i) for i in inputs]
    hpc = options.get('hpc_execution', True)
    if not isinstance(hpc, bool):
        raise refuse('deployment.hpc_execution', hpc, 'must be true or false')
    options['hpc_execution'] = hpc
    return options
