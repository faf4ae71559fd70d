"""Names of the original Croupier's schema that Croupier declares so that blueprints
written for it parse, and checks here: those it does not act on (yet) and the
types of those it does (``simulate``, ``accounting_options``).

Each such setting is either harmless at its default or refused here, naming node,
property, value and why: a blueprint never has a setting silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ConfigError
from .names import CKAN_DATASET_TYPE, DAI_TYPE, ECMWF_TYPE, INTERFACE_TYPE, JOB_TYPE


# node types refused whole, with the reason
UNSUPPORTED_TYPES = {
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
    'cert': 'GridFTP X.509 certificates are not supported: Croupier runs GridFTP over SSH '
            '(sshftp://) with the credentials\' SSH login (user and private key)',
    'cert_password': 'GridFTP X.509 certificates are not supported: Croupier runs GridFTP '
                     'over SSH (sshftp://) with the credentials\' SSH login',
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


def credential_refusal(key: str) -> str | None:
    """Why Croupier refuses the original's credentials field ``key``, or None."""
    return _CREDENTIAL_REFUSALS.get(key)


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
    simulate = props.get('simulate', False)
    if not isinstance(simulate, bool):
        problems.append(ConfigError('simulate', simulate, 'must be true or false'))
    recurring = props.get('recurring_workflow', False)
    if recurring is not None and not isinstance(recurring, bool):
        # (true: croupier_configure makes a working directory for each recurrence)
        problems.append(ConfigError('recurring_workflow', recurring, 'must be true or false'))
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
    else:
        # the name is kept with each job's figures (who the consumption is for)
        user = accounting.get('reporting_user')
        if user is not None and (not isinstance(user, str) or
                                 any(c in user for c in '\n\r\0') or len(user) > 100):
            problems.append(ConfigError('accounting_options.reporting_user', user,
                                        'must be a user name (one line, at most 100 '
                                        'characters)'))
    agent = props.get('agent_config') or {}
    method = agent.get('install_method', 'none') if isinstance(agent, Mapping) else agent
    if method not in ('none', None, ''):
        problems.append(ConfigError('agent_config.install_method', method,
                                    'Croupier installs no Cloudify agent on an HPC front-end; '
                                    'only none is accepted'))
    problems.extend(_credentials_problems(props.get('credentials')))
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
    elif JOB_TYPE in types:
        options = props.get('job_options')
        if isinstance(options, Mapping):
            problems = [ConfigError(f'job_options.{key}', options[key], reason)
                        for key, reason in _JOB_OPTION_REFUSALS.items()
                        if _given(options.get(key))]
    return [str(problem.for_node(node_id)) for problem in problems]
