"""A deployment's plan, made once from plain views of its nodes.

``plan_deployment`` takes every node of a deployment as a ``NodeView`` (properties,
relationships, runtime properties of its instances) and returns a ``DeploymentPlan``:
the interfaces' settings, the jobs (a spec per candidate interface, parents, policy,
labels, publish paths, deployment scripts), the dataflow and the transfers wired to
the jobs, and every problem found, each a ``ConfigError`` naming node, property and
value. ``croupier validate``, the install operations and ``run_jobs`` all plan
through it. Nothing here knows Cloudify, and planning touches no network unless
asked to read the secrets of a Vault (``fetch=True``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from . import site
from .ckan import CkanCatalogue, CkanResource
from .data import (DataInfrastructure, DataSource, Transfer, endpoint_host, protocol,
                   publish_path_problem)
from .engine import RETRY_STATES, JobPolicy
from .errors import ConfigError, CroupierError
from .exporter import ExporterClient, client_from_properties, registration_payload
from .infrastructure import InfrastructureSettings
from .legacy import legacy_problems
from .names import (  # noqa: F401  (re-exported: the edge reads them from here)
    INTERFACE_TYPE, JOB_TYPE, SINGULARITY_TYPE, PYCOMPSS_TYPE, VAULT_TYPE, EXPORTER_TYPE,
    MANAGED_BY, DEPENDS_ON, FROM_VAULT, MONITORED_BY, CONTAINED_IN, CONTAINED_HOST,
    DAI_TYPE, FILE_SOURCE_TYPE, WEB_SOURCE_TYPE, CKAN_DATASET_TYPE, CKAN_RESOURCE_TYPE,
    TRANSFER_TYPE, LOCATED_AT, FROM_SOURCE, TO_TARGET, INPUT, OUTPUT)
from .model import JobSpec, parse_duration
from .schedulers import get_scheduler
from .schedulers.pycompss import PycompssJob
from .transport import SshSettings
from .vault import VaultSettings, fetch_credentials, merge_credentials

# what the manager's cloudify.nodes.Root adds to every node; no Croupier node uses them
ROOT_PROPERTIES = ('use_external_resource', 'resource_id')

# the front-end an interface contained in a machine gets once that machine has its
# ip (at install): the checks before then go on with this stand-in
HOST_GIVEN_AT_INSTALL = 'ip-given-at-install'


class NodeProblem(ConfigError):
    """A problem of a node that is not about one property's value (a missing or
    wrong relationship, a job on the wrong kind of interface): its message is
    given whole, and names the node."""

    def __init__(self, node: str, message: str) -> None:
        CroupierError.__init__(self, message)
        self.prop = ''
        self.value = None
        self.problem = message
        self.node = node

    def for_node(self, node: str) -> ConfigError:
        """The same problem (it names its node already)."""
        return self


class SecretsUnavailable(CroupierError):
    """A Vault did not give a node's credentials (a refused login, a missing secret,
    an unreachable server): not a blueprint problem, so never collected as one."""


@dataclass
class NodeView:
    """What planning needs of one node of a deployment, whoever stores it."""
    id: str
    types: list[str]
    properties: dict[str, Any]
    # [(relationship type hierarchy, target node id)]
    relationships: list[tuple[list[str], str]]
    # node instance id -> its runtime properties (none before install)
    instances: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    def targets(self, rel_type: str) -> list[str]:
        """The ids of the nodes this node has a ``rel_type`` relationship to."""
        return [target for types, target in self.relationships if rel_type in types]

    def is_a(self, type_name: str) -> bool:
        """Whether the node is of ``type_name`` or derives from it."""
        return type_name in self.types

    @property
    def runtime(self) -> Mapping[str, Any]:
        """The runtime properties of the node's (first) instance; empty before install."""
        return next(iter(self.instances.values()), {})

    def instance_ids(self) -> list[str]:
        """The node's instance ids; its own id when it has no instance (yet)."""
        return list(self.instances) or [self.id]


def own_properties(properties: Mapping[str, Any] | None) -> dict[str, Any]:
    """A node's properties without those its Cloudify base type adds, for the
    checks that refuse unknown property names."""
    return {k: v for k, v in (properties or {}).items() if k not in ROOT_PROPERTIES}


def vault_of(view: NodeView, views: Mapping[str, NodeView]) -> NodeView | None:
    """The Vault node ``view`` takes its credentials from (retrieve_credentials_from_vault),
    or None; NodeProblem when that target is no Vault."""
    vaults = view.targets(FROM_VAULT)
    if not vaults:
        return None
    target = views.get(vaults[0])
    if target is None or not target.is_a(VAULT_TYPE):
        raise NodeProblem(view.id, f"node '{view.id}': {FROM_VAULT} target '{vaults[0]}' is "
                                   f"not a {VAULT_TYPE}")
    return target


def vault_settings(node_id: str, properties: Mapping[str, Any]) -> VaultSettings:
    """A Vault node's settings; ConfigError naming node, property and value."""
    try:
        return VaultSettings.from_properties(own_properties(properties), node=node_id)
    except ConfigError as exc:
        raise exc.for_node(node_id) from None


def exporter_client(node_id: str, properties: Mapping[str, Any]) -> ExporterClient:
    """The client of an HPCExporter node; its bad address names node, property and value.
    A node that gives no address takes the site's (CROUPIER_EXPORTER_ADDRESS or the site
    configuration file)."""
    given = dict(properties)
    if not given.get('address') and not given.get('hpc_exporter_address'):
        given['address'] = site.load().get('exporter_address')
        if not given['address']:
            raise ConfigError('address', '', f'is required (e.g. http://127.0.0.1:9110): '
                                             f'give it (or hpc_exporter_address) on the '
                                             f'node, or '
                                             f'{site.where_to_set("exporter_address")}'
                              ).for_node(node_id)
    return client_from_properties(given, node_id)


def credentials_from_vault(node_id: str, creds: Mapping[str, Any] | None, vault: NodeView,
                           fetch: bool, host: str | None = None) -> dict[str, Any]:
    """``creds`` completed from the Vault node ``vault``; ``fetch=False`` checks the
    blueprint only, standing in for the secrets (no network). SecretsUnavailable when
    the Vault does not give them."""
    settings = vault_settings(vault.id, vault.properties)
    given = dict(creds or {})
    host = given.get('host') or host
    if not host:
        raise NodeProblem(node_id, f"node '{node_id}', property 'credentials.host' = "
                                   f"{host!r}: is required to find the credentials in Vault")
    if fetch:
        try:
            found = fetch_credentials(settings, host)
        except CroupierError as exc:
            raise SecretsUnavailable(f"node '{node_id}': credentials from Vault node "
                                     f"'{vault.id}': {exc}") from None
        # only credentials fields: anything else in the secret stays there
        found = {k: v for k, v in found.items() if k in SshSettings.CREDENTIAL_KEYS}
    else:
        found = {'user': 'from-vault', 'password': 'from-vault'}
    merged = merge_credentials(given, found, SshSettings.PLUGIN_DEFAULTS)
    if not merged.get('host'):
        merged['host'] = host
    return merged


def contained_host(node_id: str, target_id: str, target_properties: Mapping[str, Any] | None,
                   target_runtime: Mapping[str, Any] | None = None) -> str:
    """The front-end's address an interface takes from its interface_contained_in
    target ``target_id`` (a Compute node): its ``ip`` runtime property (set by the
    plugin that created the machine), else its ``ip`` property. NodeProblem naming
    the interface's credentials.host when the target has neither."""
    host = (target_runtime or {}).get('ip') or (target_properties or {}).get('ip')
    if not host:
        raise NodeProblem(
            node_id,
            f"node '{node_id}', property 'credentials.host' = None: is required: give it, "
            f"or an ip to node '{target_id}' (its {CONTAINED_IN} target: neither its ip "
            f"property nor its ip runtime property is set)")
    return str(host)


def with_site_known_hosts(ssh: SshSettings | None) -> SshSettings | None:
    """``ssh`` also trusting the host keys of the site's known_hosts file, when the
    site configuration names one."""
    if ssh is None:
        return None
    return replace(ssh, site_known_hosts=site.load().get('known_hosts'))


def interface_settings(node_id: str, properties: Mapping[str, Any],
                       vault: NodeView | None = None, fetch: bool = True,
                       host: str | None = None) -> InfrastructureSettings:
    """The interface's settings; with ``vault`` its credentials are completed from
    that Vault node (``fetch=False`` checks the blueprint only, standing in for the
    secrets Vault would give). ``host`` (from interface_contained_in) is the
    front-end when the credentials name none; a host the credentials give wins."""
    given = dict(properties)
    credentials = given.get('credentials')
    if host and (credentials is None or isinstance(credentials, dict)) and \
            not (credentials or {}).get('host'):
        given['credentials'] = dict(credentials or {}, host=host)
    if vault is not None:
        given['credentials'] = credentials_from_vault(node_id, given.get('credentials'),
                                                      vault, fetch)
    settings = InfrastructureSettings.from_properties(node_id, given)
    settings.ssh = with_site_known_hosts(settings.ssh)
    return settings


def planned_host(view: NodeView, views: Mapping[str, NodeView]) -> str | None:
    """The front-end an interface without credentials.host reaches: the address its
    configure recorded, else its interface_contained_in target's ip (a stand-in when
    that machine gets its ip only at install). None when it has neither."""
    recorded = view.runtime.get(CONTAINED_HOST)
    if recorded:
        return str(recorded)
    for target_id in view.targets(CONTAINED_IN):
        target = views.get(target_id)
        given = (target.properties or {}).get('ip') if target is not None else None
        return str(given) if given else HOST_GIVEN_AT_INSTALL
    return None


def job_kind(types: Sequence[str]) -> str:
    """'pycompss', 'container' or 'batch', from a node's type hierarchy."""
    if PYCOMPSS_TYPE in types:
        return 'pycompss'
    if SINGULARITY_TYPE in types:
        return 'container'
    return 'batch'


def _options(value: Any) -> Any:
    # a copy of a mapping; anything else goes on to be refused by name
    return dict(value) if isinstance(value, dict) else (value or {})


def parse_job(name: str, options: Any, kind: str,
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


def job_options_check(node_id: str, properties: Mapping[str, Any],
                      kind: str = 'batch') -> None:
    """Validate a job's options without knowing its interface yet."""
    try:
        parse_job(node_id, _options(properties.get('job_options')), kind)
    except ConfigError as exc:
        raise exc.for_node(node_id) from None


def check_for_scheduler(settings: InfrastructureSettings,
                        spec: JobSpec | PycompssJob) -> None:
    """ConfigError for options the interface's scheduler has no equivalent of."""
    if isinstance(spec, JobSpec):       # (a PycompssJob's options are PyCOMPSs' own)
        get_scheduler(settings.scheduler, monitor=settings.monitor_interface).check(spec)


def job_spec(node_id: str, instance_id: str, properties: Mapping[str, Any],
             settings: InfrastructureSettings, kind: str = 'batch') -> JobSpec | PycompssJob:
    """The job spec of a job node instance on the interface ``settings``."""
    if (kind == 'pycompss') != (settings.scheduler == 'PYCOMPSS'):
        raise NodeProblem(
            node_id,
            f"node '{node_id}': a {'PyCOMPSsJob' if kind == 'pycompss' else 'job'} cannot run "
            f"on interface '{settings.name}' ({settings.scheduler}); PyCOMPSsJobs go to "
            f"PYCOMPSS interfaces and other jobs to the other schedulers")
    try:
        spec = parse_job(f'{settings.job_prefix}{instance_id}',
                         _options(properties.get('job_options')), kind,
                         now=settings.local_time())
        check_for_scheduler(settings, spec)
    except ConfigError as exc:
        raise exc.for_node(node_id) from None
    spec.modules = list(settings.modules) + list(spec.modules)
    if isinstance(spec, JobSpec) and spec.partition is None and settings.partition:
        spec.partition = settings.partition
    return spec


_LABEL_KEY = re.compile(r'[A-Za-z0-9_.\-/]+')


def job_labels(node_id: str, properties: Mapping[str, Any]) -> dict[str, str]:
    """The job's ``labels``: a mapping, or a list of 'key=value' strings."""
    raw = properties.get('labels') or {}
    items = raw
    if isinstance(raw, list):
        items = {}
        for entry in raw:
            if not isinstance(entry, str) or '=' not in entry:
                raise ConfigError('labels', raw, "each label is 'key=value'", node=node_id)
            key, value = entry.split('=', 1)
            items[key.strip()] = value.strip()
    if not isinstance(items, dict):
        raise ConfigError('labels', raw, "must be a mapping (key: value) or a list of "
                                         "'key=value'", node=node_id)
    labels = {}
    for key, value in items.items():
        if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key):
            raise ConfigError(f'labels.{key}', value, 'a label key holds letters, digits '
                                                      'and . _ - / only', node=node_id)
        if isinstance(value, (dict, list)) or value is None or '\n' in str(value):
            raise ConfigError(f'labels.{key}', value, 'must be a single-line value',
                              node=node_id)
        labels[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return labels


# each retry is a new submission: more than this is a loop, not a policy
MAX_RETRIES = 100


def job_policy(node_id: str, properties: Mapping[str, Any]) -> JobPolicy:
    """The job's retry and queue-time policy from ``max_retries``, ``retry_on``
    and ``max_time_in_queue``."""
    retries = properties.get('max_retries', 0)
    if retries is None or retries == '':
        retries = 0
    if isinstance(retries, bool) or not isinstance(retries, int) or \
            not 0 <= retries <= MAX_RETRIES:
        raise ConfigError('max_retries', retries, f'must be an integer from 0 to '
                                                  f'{MAX_RETRIES}', node=node_id)
    retry_on = properties.get('retry_on') or []
    if isinstance(retry_on, str):
        retry_on = [retry_on]
    if not isinstance(retry_on, list) or any(
            not isinstance(s, str) or s.upper() not in RETRY_STATES for s in retry_on):
        raise ConfigError('retry_on', retry_on, f'must be a list of states among '
                                                f'{", ".join(RETRY_STATES)}', node=node_id)
    limit = properties.get('max_time_in_queue')
    seconds = None
    # (False == 0 in Python: a boolean goes on to be refused by parse_duration)
    if not (limit is None or limit == '' or (limit == 0 and not isinstance(limit, bool))):
        try:
            seconds = float(parse_duration('max_time_in_queue', limit))
        except ConfigError as exc:
            raise exc.for_node(node_id) from None
    return JobPolicy(max_retries=retries, retry_on=frozenset(s.upper() for s in retry_on),
                     max_time_in_queue=seconds)


def publish_paths(node_id: str, properties: Mapping[str, Any]) -> list[str]:
    """The job's ``publish`` list: paths of files or folders to copy back."""
    paths = properties.get('publish') or []
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or any(
            not isinstance(p, str) or not p.strip() or '\n' in p or '\0' in p
            or p.strip().rstrip('/') in ('', '.', '..') for p in paths):
        raise ConfigError('publish', paths, 'must be a list of file or folder paths '
                                            '(relative to the working directory, or '
                                            'absolute)', node=node_id)
    for i, path in enumerate(paths):
        problem = publish_path_problem(path)
        if problem:
            raise ConfigError(f'publish[{i}]', path.strip(), problem, node=node_id)
    return [p.strip() for p in paths]


DEPLOYMENT_KEYS = ('bootstrap', 'revert', 'inputs', 'hpc_execution')


def deployment_options(node_id: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    """A job's ``deployment`` property (bootstrap and revert scripts, their
    inputs, where they run), checked; bad values name node, property and value."""
    raw = properties.get('deployment') or {}
    if not isinstance(raw, dict):
        raise ConfigError('deployment', raw, f'must be a mapping with '
                                             f'{", ".join(DEPLOYMENT_KEYS)}', node=node_id)
    options = dict(raw)
    for key, value in options.items():
        if key not in DEPLOYMENT_KEYS:
            raise ConfigError(f'deployment.{key}', value, f'is not one of {DEPLOYMENT_KEYS}',
                              node=node_id)
    for key in ('bootstrap', 'revert'):
        value = options.get(key)
        if value in (None, ''):
            continue
        if not isinstance(value, str) or any(c in value for c in '\n\r\0'):
            raise ConfigError(f'deployment.{key}', value, 'must be the path of a script in '
                                                          'the blueprint', node=node_id)
    inputs = options.get('inputs') or []
    if not isinstance(inputs, list) or any(isinstance(i, (dict, list)) or i is None
                                           for i in inputs):
        raise ConfigError('deployment.inputs', inputs, 'must be a list of strings',
                          node=node_id)
    options['inputs'] = [str(i).lower() if isinstance(i, bool) else str(i) for i in inputs]
    hpc = options.get('hpc_execution', True)
    if not isinstance(hpc, bool):
        raise ConfigError('deployment.hpc_execution', hpc, 'must be true or false',
                          node=node_id)
    options['hpc_execution'] = hpc
    return options


# -- data: infrastructures, sources, transfers -------------------------------

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
    errors: list[ConfigError] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """The problems' messages, each naming node, property and value."""
        return [str(error) for error in self.errors]

    def broken(self, node_id: str) -> bool:
        """Whether a problem of node ``node_id`` itself was found."""
        return any(error.node == node_id for error in self.errors)


def ckan_catalogue(view: NodeView) -> CkanCatalogue:
    """The CKAN catalogue of a CKAN_dataset node; ConfigError naming node, property
    and value (the API token hidden) when it is not valid."""
    if view.targets(FROM_VAULT):
        raise NodeProblem(view.id, f"node '{view.id}': {FROM_VAULT}: a CKAN_dataset takes "
                                   f"its API token from credentials.auth-header, not from "
                                   f"Vault")
    props = {k: v for k, v in view.properties.items() if k in
             ('endpoint', 'internet_access', 'supported_protocols', 'credentials',
              'dataset_info')}
    return CkanCatalogue.from_catalogue_properties(view.id, props)


def data_infrastructure(view: NodeView, views: Mapping[str, NodeView],
                        fetch: bool = True) -> DataInfrastructure:
    """The data infrastructure (or CKAN catalogue) of a DataAccessInfrastructure node,
    its credentials completed from Vault; ConfigError when it is not valid."""
    if view.is_a(CKAN_DATASET_TYPE):
        return ckan_catalogue(view)
    props = {k: v for k, v in view.properties.items() if k in
             ('endpoint', 'internet_access', 'supported_protocols', 'credentials',
              'ssh_endpoint', 'workspace_basepath')}
    vault = vault_of(view, views)
    if vault is not None:
        props['credentials'] = credentials_from_vault(
            view.id, props.get('credentials'), vault, fetch,
            host=endpoint_host(str(props.get('endpoint') or '')))
    made = DataInfrastructure.from_properties(view.id, props)
    made.ssh = with_site_known_hosts(made.ssh)
    made.secrets_pending = vault is not None and not fetch
    return made


def _of_node(error: ConfigError, node_id: str) -> ConfigError:
    """``error`` as a problem of node ``node_id``, its message unchanged."""
    return error if error.node else NodeProblem(node_id, str(error))


def _source_kind(view: NodeView) -> str | None:
    if view.is_a(FILE_SOURCE_TYPE):
        return 'file'
    if view.is_a(WEB_SOURCE_TYPE):
        return 'web'
    return 'ckan' if view.is_a(CKAN_RESOURCE_TYPE) else None


def build_dataflow(views: Mapping[str, NodeView], fetch: bool = True) -> Dataflow:
    """The deployment's data objects and transfers, and every problem found
    (each naming node, property and value)."""
    flow = Dataflow()
    for view in views.values():
        if view.is_a(DAI_TYPE):
            try:
                flow.infrastructures[view.id] = data_infrastructure(view, views, fetch)
            except ConfigError as exc:
                flow.errors.append(_of_node(exc, view.id))
    for view in views.values():
        kind = _source_kind(view)
        if kind is not None:
            _add_source(flow, view, kind, views)
    for view in views.values():
        if view.is_a(TRANSFER_TYPE):
            try:
                flow.transfers[view.id] = _transfer(view, flow)
            except ConfigError as exc:
                flow.errors.append(exc if exc.node else exc.for_node(view.id))
        elif view.is_a(JOB_TYPE):
            for rel, bucket in ((INPUT, flow.inputs), (OUTPUT, flow.outputs)):
                for target in view.targets(rel):
                    if target not in flow.sources:
                        if not flow.broken(target):
                            flow.errors.append(NodeProblem(
                                view.id, f"node '{view.id}': {rel} target '{target}' is not "
                                         f"a data source ({FILE_SOURCE_TYPE} or "
                                         f"{WEB_SOURCE_TYPE})"))
                        continue
                    bucket.setdefault(view.id, []).append(target)
    return flow


def _add_source(flow: Dataflow, view: NodeView, kind: str,
                views: Mapping[str, NodeView]) -> None:
    """The data source ``view`` added to ``flow``, or its problem."""
    located = view.targets(LOCATED_AT)
    if len(located) != 1 or located[0] not in views or not views[located[0]].is_a(DAI_TYPE):
        flow.errors.append(NodeProblem(view.id, f"node '{view.id}': a data source needs "
                                                f"exactly one {LOCATED_AT} relationship to "
                                                f"a {DAI_TYPE} (found {located})"))
        return
    data_infrastructure = flow.infrastructures.get(located[0])
    if data_infrastructure is None:
        return                          # its infrastructure's problem is reported
    if (kind == 'ckan') != isinstance(data_infrastructure, CkanCatalogue):
        flow.errors.append(NodeProblem(
            view.id, f"node '{view.id}': {LOCATED_AT} '{located[0]}': "
                     + ('a CKAN_resource is located at a CKAN_dataset' if kind == 'ckan' else
                        'a CKAN_dataset holds CKAN_resource nodes only')))
        return
    try:
        if isinstance(data_infrastructure, CkanCatalogue):
            flow.sources[view.id] = CkanResource.from_resource_properties(
                view.id, view.properties, data_infrastructure)
        else:
            flow.sources[view.id] = DataSource.from_properties(view.id, kind,
                                                               view.properties, data_infrastructure)
    except ConfigError as exc:
        flow.errors.append(_of_node(exc, view.id))


def _transfer(view: NodeView, flow: Dataflow) -> Transfer:
    name = protocol('transfer_protocol', view.properties.get('transfer_protocol'))
    ends = {}
    for rel in (FROM_SOURCE, TO_TARGET):
        targets = view.targets(rel)
        if len(targets) != 1:
            raise ConfigError(rel, targets, f'a DataTransfer needs exactly one {rel} '
                                            f'relationship').for_node(view.id)
        if targets[0] not in flow.sources:
            if flow.broken(targets[0]):
                raise NodeProblem(view.id, f"node '{view.id}': its {rel} '{targets[0]}' is "
                                           f"not valid (see above)")
            raise ConfigError(rel, targets[0], 'is not a FileDataSource, WebDataSource or '
                                               'CKAN_resource').for_node(view.id)
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
    for data_infrastructure in flow.infrastructures.values():
        login = data_infrastructure.ssh
        if login is None:
            continue
        same_host = [(s.ssh, w) for s, w in interfaces if s.ssh is not None and w and
                     (s.ssh.host, s.ssh.port) == (login.host, login.port)]
        same_user = [(ssh, w) for ssh, w in same_host if ssh.user == login.user]
        chosen = (same_user or same_host)
        data_infrastructure.workdir = chosen[0][1] if chosen else None


# job node id -> (input transfers, output transfers, producer job node ids)
Wiring = dict[str, tuple[list[Transfer], list[Transfer], list[str]]]


def wire_transfers(flow: Dataflow) -> Wiring:
    """job node id -> (input transfers, output transfers, producer job node ids).

    A job's input transfers are those writing one of its input sources; its
    output transfers those reading one of its output sources. A transfer
    that moves one job's output to another job's input runs once, after the
    producer, and the consumer waits for the producer; so does a job that
    reads a source another job writes."""
    producer_of: dict[str, str] = {}
    for job_id, sources in flow.outputs.items():
        for source in sources:
            producer_of.setdefault(source, job_id)
    wiring: Wiring = {}
    for job_id in set(flow.inputs) | set(flow.outputs):
        outputs = set(flow.outputs.get(job_id, []))
        inputs = set(flow.inputs.get(job_id, []))
        stage_out = [t for t in flow.transfers.values() if t.source.name in outputs]
        stage_in: list[Transfer] = []
        producers: list[str] = []
        for source in inputs:
            if source in producer_of and producer_of[source] != job_id:
                producers.append(producer_of[source])
        for t in flow.transfers.values():
            if t.target.name not in inputs:
                continue
            if t.source.name in producer_of and producer_of[t.source.name] != job_id:
                producers.append(producer_of[t.source.name])
            else:
                stage_in.append(t)
        wiring[job_id] = (stage_in, stage_out, sorted(set(producers)))
    return wiring


# -- the plan -------------------------------------------------------------------

@dataclass
class JobPlan:
    """One job node of the deployment, planned: its spec for each of its instances
    on each candidate interface, and what the engine does around it."""
    node_id: str
    kind: str
    interfaces: list[str]               # its task_managed_by_interface targets, in order
    parents: list[str]                  # its job_depends_on targets (job node ids)
    # (instance id, interface node id) -> spec
    specs: dict[tuple[str, str], JobSpec | PycompssJob] = field(default_factory=dict)
    policy: JobPolicy = field(default_factory=JobPolicy)
    labels: dict[str, str] = field(default_factory=dict)
    publish: list[str] = field(default_factory=list)
    deployment: dict[str, Any] = field(default_factory=dict)
    stage_in: list[Transfer] = field(default_factory=list)
    stage_out: list[Transfer] = field(default_factory=list)
    producers: list[str] = field(default_factory=list)   # job node ids it waits for


@dataclass
class DeploymentPlan:
    """The whole plan of a deployment and every problem found making it."""
    interfaces: dict[str, InfrastructureSettings] = field(default_factory=dict)
    jobs: dict[str, JobPlan] = field(default_factory=dict)
    dataflow: Dataflow = field(default_factory=Dataflow)
    # transfers tied to no job's inputs or outputs: they run first
    loose_transfers: list[Transfer] = field(default_factory=list)
    errors: list[ConfigError] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """Every problem's message once (a Vault shared by an interface and a data
        infrastructure reports its error in both), in the order found."""
        return list(dict.fromkeys(str(error) for error in self.errors))


class _Planner:
    """Plans a deployment from its views, collecting each problem where found."""

    def __init__(self, views: Mapping[str, NodeView], fetch: bool) -> None:
        self.views = views
        self.fetch = fetch
        self.plan = DeploymentPlan()
        # nodes found invalid: what relies on them is not blamed for it
        self.broken: set[str] = set()

    def problem(self, error: ConfigError, node_id: str) -> None:
        """Record ``error`` of node ``node_id``."""
        self.plan.errors.append(error if error.node else error.for_node(node_id))

    def has_problem(self, node_id: str) -> bool:
        """Whether a problem naming node ``node_id`` first was found."""
        return any(str(e).startswith(f"node '{node_id}'") for e in self.plan.errors)

    def run(self) -> DeploymentPlan:
        """The plan, its problems collected."""
        for view in self.views.values():
            if view.is_a(VAULT_TYPE):
                try:
                    vault_settings(view.id, view.properties)
                except ConfigError as exc:
                    self.problem(exc, view.id)
                    self.broken.add(view.id)
        for view in self.views.values():
            legacy = legacy_problems(view.id, view.types, view.properties, view.relationships)
            if legacy:
                # the original's settings Croupier refuses: said once, not again as unknown
                self.plan.errors.extend(NodeProblem(view.id, text) for text in legacy)
                self.broken.add(view.id)
            elif view.is_a(INTERFACE_TYPE):
                self.interface(view)
            elif view.is_a(EXPORTER_TYPE):
                try:
                    exporter_client(view.id, view.properties)
                except ConfigError as exc:
                    self.problem(exc, view.id)
            elif view.is_a(JOB_TYPE):
                self.job(view)
        for job in self.plan.jobs.values():
            self.job_links(self.views[job.node_id], job)
        flow = self.plan.dataflow = build_dataflow(self.views, self.fetch)
        self.plan.errors.extend(flow.errors)
        wiring = wire_transfers(flow)
        for job_id, (stage_in, stage_out, producers) in wiring.items():
            if job_id in self.plan.jobs:
                job = self.plan.jobs[job_id]
                job.stage_in, job.stage_out, job.producers = stage_in, stage_out, producers
        tied = {id(t) for plan in wiring.values() for t in plan[0] + plan[1]}
        self.plan.loose_transfers = [t for t in flow.transfers.values() if id(t) not in tied]
        return self.plan

    def interface(self, view: NodeView) -> None:
        """The interface's settings, or its problems."""
        try:
            vault = vault_of(view, self.views)
        except ConfigError as exc:
            self.problem(exc, view.id)
            self.broken.add(view.id)
            return
        if vault is not None and vault.id in self.broken:
            self.broken.add(view.id)        # the Vault's own problem is reported
            return
        settings: InfrastructureSettings | None = None
        try:
            settings = interface_settings(view.id, view.properties, vault, fetch=self.fetch,
                                          host=planned_host(view, self.views))
        except ConfigError as exc:
            self.problem(exc, view.id)
            self.broken.add(view.id)
        else:
            self.plan.interfaces[view.id] = settings
        for target_id in view.targets(MONITORED_BY):
            target = self.views.get(target_id)
            if target is None or not target.is_a(EXPORTER_TYPE):
                self.plan.errors.append(NodeProblem(
                    view.id, f"node '{view.id}': {MONITORED_BY} target '{target_id}' is not "
                             f"a {EXPORTER_TYPE}"))
            elif settings is not None:
                try:
                    registration_payload(settings)
                except ConfigError as exc:
                    self.problem(exc, view.id)

    def job(self, view: NodeView) -> None:
        """The job's own settings (those needing no interface), or their problem."""
        job = JobPlan(view.id, job_kind(view.types), view.targets(MANAGED_BY),
                      view.targets(DEPENDS_ON))
        self.plan.jobs[view.id] = job
        try:
            job_options_check(view.id, view.properties, job.kind)
            job.publish = publish_paths(view.id, view.properties)
            job.labels = job_labels(view.id, view.properties)
            job.policy = job_policy(view.id, view.properties)
            job.deployment = deployment_options(view.id, view.properties)
        except ConfigError as exc:
            self.problem(exc, view.id)

    def job_links(self, view: NodeView, job: JobPlan) -> None:
        """The job's interfaces (a spec on each) and parents, or their problems."""
        if not job.interfaces:
            self.plan.errors.append(NodeProblem(
                view.id, f"node '{view.id}': a job needs a {MANAGED_BY} relationship "
                         f"(several let Croupier place it)"))
        for target in job.interfaces:
            if target in self.broken:
                continue                # the interface's own problem is reported
            settings = self.plan.interfaces.get(target)
            if settings is None:
                self.plan.errors.append(NodeProblem(
                    view.id, f"node '{view.id}': {MANAGED_BY} target '{target}' is not a "
                             f"croupier.nodes.InfrastructureInterface"))
            elif (job.kind == 'pycompss') != (settings.scheduler == 'PYCOMPSS'):
                self.plan.errors.append(NodeProblem(
                    view.id, f"node '{view.id}': cannot run on interface '{target}' "
                             f"({settings.scheduler}): PyCOMPSsJobs go to PYCOMPSS "
                             f"interfaces, other jobs to the others"))
            elif not self.has_problem(view.id):
                try:
                    for instance_id in view.instance_ids():
                        job.specs[(instance_id, target)] = job_spec(
                            view.id, instance_id, view.properties, settings, job.kind)
                except ConfigError as exc:
                    self.problem(exc, view.id)
        for target in job.parents:
            if target not in self.plan.jobs:
                self.plan.errors.append(NodeProblem(
                    view.id, f"node '{view.id}': {DEPENDS_ON} target '{target}' is not a "
                             f"croupier.nodes.Job"))


def plan_deployment(views: Mapping[str, NodeView], fetch: bool = False) -> DeploymentPlan:
    """The whole plan of the deployment whose nodes are ``views`` (by node id), every
    problem collected in ``plan.errors``. No network unless ``fetch``: then the
    credentials of interfaces and data infrastructures are read from their Vault
    (SecretsUnavailable when one does not give them)."""
    return _Planner(views, fetch).run()
