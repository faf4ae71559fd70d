"""Names of the original Croupier's schema that Croupier declares so that blueprints
written for it parse, but does not act on (yet).

Each such setting is either harmless at its default or refused here, naming node,
property, value and why: a blueprint never has a setting silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ConfigError

INTERFACE_TYPE = 'croupier.nodes.InfrastructureInterface'
DAI_TYPE = 'croupier.nodes.DataAccessInfrastructure'
GRIDFTP_TYPE = 'croupier.nodes.GridFTPDataAccessInfrastructure'
CKAN_DATASET_TYPE = 'croupier.nodes.CKAN_dataset'
CKAN_RESOURCE_TYPE = 'croupier.nodes.CKAN_resource'
ECMWF_TYPE = 'croupier.nodes.ECMWFVerticalInterpolation'
HPC_DATA_SOURCE_TYPE = 'croupier.nodes.HPCDataSource'
JOB_TYPE = 'croupier.nodes.Job'
CONTAINED_IN = 'interface_contained_in'

# node types refused whole, with the reason
UNSUPPORTED_TYPES = {
    GRIDFTP_TYPE: 'GridFTP data access infrastructures are not supported yet; serve the '
                  'data over SFTP/RSYNC (a DataAccessInfrastructure) instead',
    ECMWF_TYPE: 'the ECMWF vertical interpolation service of the original Croupier is not '
                'supported: fetch its output as a WebDataSource instead',
}

# credentials fields of the original's Credentials data type that Croupier refuses
_CREDENTIAL_REFUSALS = {
    'auth-header': 'HTTP authorization headers are not supported (the header would reach '
                   'the data host\'s process list)',
    'auth-header-label': 'HTTP authorization headers are not supported',
    'ssh_tunnel': 'SSH tunnels are not supported; give the front-end reachable directly '
                  '(host and port)',
    'cert': 'GridFTP certificates are not supported',
    'cert_password': 'GridFTP certificates are not supported',
}

# job_options of the original's job.Options data type that Croupier refuses
_JOB_OPTION_REFUSALS = {
    'group_name': 'is not supported (jobs run with the login user\'s group; use account '
                  'for the charged project)',
    'gpu_memory': 'is not supported yet (ask for GPUs through extra_directives)',
}


def _given(value: Any) -> bool:
    """True for a value a user wrote (not empty, not None)."""
    return value not in (None, '', [], {})


def _credentials_problems(credentials: Any) -> list[ConfigError]:
    """The original's credentials fields that Croupier refuses, where given."""
    if not isinstance(credentials, Mapping):
        return []
    return [ConfigError(f'credentials.{key}', '<hidden>', reason)
            for key, reason in _CREDENTIAL_REFUSALS.items() if _given(credentials.get(key))]


def _interface_problems(props: Mapping[str, Any],
                        relationships: Sequence[tuple[Sequence[str], str]]) -> list[ConfigError]:
    """The original's InfrastructureInterface settings Croupier refuses."""
    problems = []
    for flag, reason in (('simulate', 'dry runs are not supported yet: run the blueprint on '
                                      'a test system instead'),
                         ('recurring_workflow', 'recurring workflows are not supported: '
                                                'execute run_jobs again when needed')):
        value = props.get(flag, False)
        if not isinstance(value, bool):
            problems.append(ConfigError(flag, value, 'must be true or false'))
        elif value:
            problems.append(ConfigError(flag, value, reason))
    internet = props.get('internet_access', False)
    if not isinstance(internet, bool):
        problems.append(ConfigError('internet_access', internet, 'must be true or false'))
    protocols = props.get('supported_prtocols', [])
    if protocols is not None and (not isinstance(protocols, list)
                                  or not all(isinstance(p, str) for p in protocols)):
        problems.append(ConfigError('supported_prtocols', protocols,
                                    'must be a list of protocol names'))
    accounting = props.get('accounting_options') or {}
    if not isinstance(accounting, Mapping):
        problems.append(ConfigError('accounting_options', accounting, 'must be a mapping'))
    elif _given(accounting.get('reporting_user')):
        problems.append(ConfigError('accounting_options.reporting_user',
                                    accounting['reporting_user'],
                                    'accounting reports are not supported yet'))
    agent = props.get('agent_config') or {}
    method = agent.get('install_method', 'none') if isinstance(agent, Mapping) else agent
    if method not in ('none', None, ''):
        problems.append(ConfigError('agent_config.install_method', method,
                                    'Croupier installs no Cloudify agent on an HPC front-end; '
                                    'only none is accepted'))
    monitoring = props.get('monitoring_options') or {}
    if isinstance(monitoring, Mapping):
        if _given(monitoring.get('deployment_label')):
            problems.append(ConfigError('monitoring_options.deployment_label',
                                        monitoring['deployment_label'],
                                        'is not supported (the exporter labels metrics with '
                                        'the deployment id); use hpc_label for the system'))
        only_jobs = monitoring.get('only_jobs', False)
        if only_jobs not in (None, False):
            problems.append(ConfigError('monitoring_options.only_jobs', only_jobs,
                                        'only false is accepted (the exporter always collects '
                                        'queue and job metrics)'))
    config = props.get('config')
    if isinstance(config, Mapping) and _given(config.get('reservation_deletion_path')):
        problems.append(ConfigError('config.reservation_deletion_path',
                                    config['reservation_deletion_path'],
                                    'Croupier does not delete reservations; remove it (a '
                                    'job\'s reservation option is still used)'))
    problems.extend(_credentials_problems(props.get('credentials')))
    credentials = props.get('credentials')
    host = credentials.get('host') if isinstance(credentials, Mapping) else None
    for kinds, target in relationships:
        if CONTAINED_IN in kinds and not _given(host):
            problems.append(ConfigError('credentials.host', host,
                                        f'is required: {CONTAINED_IN} (to \'{target}\') does '
                                        f'not give the front-end\'s address yet'))
    return problems


def legacy_problems(node_id: str, types: Sequence[str], props: Mapping[str, Any],
                    relationships: Sequence[tuple[Sequence[str], str]] = ()) -> list[str]:
    """Messages for the original Croupier's settings on node ``node_id`` (its type
    hierarchy ``types``) that Croupier refuses; empty when there is none."""
    for type_name, reason in UNSUPPORTED_TYPES.items():
        if type_name in types:
            return [f"node '{node_id}': type {type_name}: {reason}"]
    problems: list[ConfigError] = []
    if INTERFACE_TYPE in types:
        problems = _interface_problems(props, relationships)
    elif CKAN_DATASET_TYPE in types:
        problems = []       # its API token is credentials.auth-header (see core/ckan.py)
    elif DAI_TYPE in types:
        problems = _credentials_problems(props.get('credentials'))
    elif HPC_DATA_SOURCE_TYPE in types and isinstance(props.get('workspace'), Mapping) and \
            _given(props['workspace'].get('name')):
        problems = [ConfigError('workspace', props['workspace'],
                                'HPC workspaces are not supported yet; give the folder as '
                                'filepath')]
    elif JOB_TYPE in types:
        options = props.get('job_options')
        if isinstance(options, Mapping):
            problems = [ConfigError(f'job_options.{key}', options[key], reason)
                        for key, reason in _JOB_OPTION_REFUSALS.items()
                        if _given(options.get(key))]
    return [str(problem.for_node(node_id)) for problem in problems]
