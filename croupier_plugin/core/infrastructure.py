"""An InfrastructureInterface's settings, validated from blueprint properties."""

from __future__ import annotations

import math
import posixpath
import re
import secrets
import shlex
import time
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from .cluster import Cluster
from .errors import ConfigError
from .model import has_line_break, directive_word, string_list
from .schedulers import SCHEDULERS, get_scheduler
from .simulate import NoTransport, SimulatedCluster
from .transport import LocalTransport, SshSettings, SshTransport, Transport

TRANSPORTS = ('ssh', 'local')
# (100: a job name or a directory name stays well within the schedulers' and NAME_MAX)
_PREFIX = re.compile(r'[A-Za-z0-9_.\-]{0,100}')
_LABEL = re.compile(r'[A-Za-z0-9_.\-:@/ ]{0,100}')

# property names accepted on the node, with their meaning
INTERFACE_PROPERTIES = ('config', 'credentials', 'job_prefix', 'base_dir', 'workdir_prefix',
                        'monitoring_options', 'skip_cleanup', 'internet_access',
                        'supported_protocols', 'simulate')
CONFIG_KEYS = ('infrastructure_interface', 'modules', 'transport', 'country_tz', 'partition',
               'reservation_deletion_path')
MONITORING_KEYS = ('monitor_period', 'monitor_interface', 'hpc_label', 'unknown_grace',
                   'deployment_label', 'only_jobs')


@dataclass
class InfrastructureSettings:
    """How Croupier reaches one InfrastructureInterface and runs its jobs: scheduler,
    transport, login, folders and monitoring, checked from the node's properties."""

    name: str
    scheduler: str
    transport: str = 'ssh'
    ssh: SshSettings | None = None
    modules: list = field(default_factory=list)
    job_prefix: str = ''
    base_dir: str = '$HOME'
    workdir_prefix: str = ''
    monitor_period: float = 15.0
    unknown_grace: float = 180.0
    skip_cleanup: bool = False
    monitor_interface: str | None = None
    hpc_label: str = ''
    partition: str | None = None         # for jobs that name none
    simulate: bool = False                  # a dry run: nothing is sent to the cluster
    accounting: bool = False                # keep each ended job's scheduler figures
    reporting_user: str | None = None    # kept with those figures
    # the exporter's ``deployment`` label of this interface's jobs ('' : the deployment id)
    deployment_label: str = ''
    only_jobs: bool = False                 # the exporter collects no partition metrics
    # the front-end's time zone: the date a recurrent reservation's name is formatted with
    country_tz: str = 'GMT'
    # a site script run with a reservation's name once run_jobs no longer needs it
    reservation_deletion_path: str | None = None

    @classmethod
    def from_properties(cls, name: str, props: Mapping[str, Any]) -> InfrastructureSettings:
        """The settings of node ``name``; ConfigError naming the node, property and value."""
        try:
            return cls._from_properties(name, props)
        except ConfigError as exc:
            raise exc.for_node(name) from None

    @classmethod
    def _from_properties(cls, name: str, props: Mapping[str, Any]) -> InfrastructureSettings:
        config = props.get('config')
        if not isinstance(config, dict):
            raise ConfigError('config', config, 'must be a mapping with infrastructure_interface')
        for key in config:
            if key not in CONFIG_KEYS:
                raise ConfigError(f'config.{key}', config[key],
                                  f'is not a known config field ({", ".join(CONFIG_KEYS)})')
        scheduler = config.get('infrastructure_interface')
        if scheduler is None or scheduler == '':
            raise ConfigError('config.infrastructure_interface', scheduler,
                              f'is required; use one of {sorted(SCHEDULERS)}')
        scheduler = get_scheduler(scheduler).name
        transport = str(config.get('transport') or 'ssh').lower()
        if transport not in TRANSPORTS:
            raise ConfigError('config.transport', config.get('transport'),
                              f'must be one of {TRANSPORTS}')
        modules = string_list('config.modules', config.get('modules'))
        for i, module in enumerate(modules):
            if has_line_break(module) or not module.strip():
                raise ConfigError(f'config.modules[{i}]', module, 'must be a module name or '
                                                                   'a one-line module command')
        country_tz = config.get('country_tz') or 'GMT'
        if not isinstance(country_tz, str) or not _is_time_zone(country_tz):
            raise ConfigError('config.country_tz', country_tz,
                              'must be a time zone name such as Europe/Madrid or GMT')
        deletion = config.get('reservation_deletion_path') or None
        if deletion is not None and (not isinstance(deletion, str) or
                                     has_line_break(deletion) or '\0' in deletion or
                                     not deletion.strip()):
            raise ConfigError('config.reservation_deletion_path', deletion,
                              'must be the one-line path of a script on the front-end')
        partition = config.get('partition') or None
        if partition is not None:
            partition = directive_word('config.partition', partition)
        credentials = props.get('credentials') or {}
        ssh = None
        if transport == 'ssh':
            ssh = SshSettings.from_credentials(credentials)
        else:
            given = [k for k in ('host', 'user', 'password', 'private_key', 'private_key_file')
                     if credentials.get(k)]
            if given:
                raise ConfigError(f'credentials.{given[0]}', '<hidden>',
                                  'must not be given with config.transport: local')
        monitoring = props.get('monitoring_options') or {}
        if not isinstance(monitoring, dict):
            raise ConfigError('monitoring_options', monitoring, 'must be a mapping')
        for key in monitoring:
            if key not in MONITORING_KEYS:
                raise ConfigError(f'monitoring_options.{key}', monitoring[key],
                                  f'is not a known monitoring option '
                                  f'({", ".join(MONITORING_KEYS)})')
        monitor_interface = monitoring.get('monitor_interface') or None
        # refuse a monitor a PYCOMPSS interface cannot use now, not at run time
        get_scheduler(scheduler, monitor=monitor_interface)
        period = seconds_within('monitoring_options.monitor_period',
                                monitoring.get('monitor_period', 15),
                                *(LOCAL_MONITOR_PERIOD_BOUNDS if transport == 'local'
                                  else MONITOR_PERIOD_BOUNDS))
        grace = seconds_within('monitoring_options.unknown_grace',
                               monitoring.get('unknown_grace', 180), *UNKNOWN_GRACE_BOUNDS)
        hpc_label = monitoring.get('hpc_label') or ''
        if not isinstance(hpc_label, str) or not _LABEL.fullmatch(hpc_label):
            raise ConfigError('monitoring_options.hpc_label', hpc_label,
                              'may hold only letters, digits, spaces and . _ - : @ /')
        deployment_label = monitoring.get('deployment_label') or ''
        if not isinstance(deployment_label, str) or not _LABEL.fullmatch(deployment_label):
            raise ConfigError('monitoring_options.deployment_label', deployment_label,
                              'may hold only letters, digits, spaces and . _ - : @ /')
        only_jobs = monitoring.get('only_jobs', False)
        if only_jobs is None:
            only_jobs = False
        if not isinstance(only_jobs, bool):
            raise ConfigError('monitoring_options.only_jobs', only_jobs, 'must be true or false')
        prefix = props.get('job_prefix', '') or ''
        if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
            raise ConfigError('job_prefix', prefix, 'may hold only letters, digits, . _ - '
                                                    '(at most 100)')
        wprefix = props.get('workdir_prefix', '') or ''
        if not isinstance(wprefix, str) or not _PREFIX.fullmatch(wprefix):
            raise ConfigError('workdir_prefix', wprefix, 'may hold only letters, digits, . _ - '
                                                         '(at most 100)')
        base_dir = props.get('base_dir') or '$HOME'
        if not isinstance(base_dir, str) or '\n' in base_dir or '\0' in base_dir:
            raise ConfigError('base_dir', base_dir, 'must be a single-line path')
        skip = props.get('skip_cleanup', False)
        if not isinstance(skip, bool):
            raise ConfigError('skip_cleanup', skip, 'must be true or false')
        simulate = props.get('simulate', False)
        if not isinstance(simulate, bool):
            raise ConfigError('simulate', simulate, 'must be true or false')
        options: Any = props.get('accounting_options')
        # (legacy.py checks the values; given at all, the figures are collected)
        accounting = isinstance(options, dict) and options != {}
        reporting_user = (options.get('reporting_user') or None) if accounting else None
        keeper = get_scheduler(scheduler, monitor=monitor_interface)
        if accounting and keeper.accounting_command(['1']) is None:
            raise ConfigError('accounting_options', options,
                              f'{scheduler} keeps no accounting figures Croupier can read '
                              f'(SLURM, PBS and Torque do): remove accounting_options')
        return cls(name=name, scheduler=scheduler, transport=transport, ssh=ssh,
                   simulate=simulate, accounting=accounting, reporting_user=reporting_user,
                   modules=modules, job_prefix=prefix, base_dir=base_dir,
                   workdir_prefix=wprefix, monitor_period=period, unknown_grace=grace,
                   skip_cleanup=skip, monitor_interface=monitor_interface,
                   hpc_label=hpc_label,
                   partition=partition, deployment_label=deployment_label,
                   only_jobs=only_jobs, country_tz=country_tz,
                   reservation_deletion_path=deletion)

    def local_time(self) -> datetime:
        """Now, in the front-end's time zone (config.country_tz)."""
        return datetime.now(zoneinfo.ZoneInfo(self.country_tz))

    def reservation_deletion_command(self, reservation: str) -> str:
        """The shell command running the site's reservation_deletion_path with the
        reservation's name (a leading ~/ is the login's home)."""
        path = self.reservation_deletion_path or ''
        if path.startswith('~/'):
            script = '"$HOME"/' + shlex.quote(path[2:])
        else:
            script = shlex.quote(path)
        return f'{script} {shlex.quote(reservation)}'

    def make_transport(self) -> Transport:
        """A new transport to the front-end: SSH, this machine, or none in a dry run."""
        if self.simulate:
            # it stands in for a Transport: each of its methods refuses
            return cast(Transport, NoTransport(self.name))
        if self.transport == 'local':
            return LocalTransport()
        assert self.ssh is not None     # _from_properties sets it for transport: ssh
        return SshTransport(self.ssh)

    def cluster(self, transport: Transport | None = None) -> Cluster:
        """The Cluster that submits and watches this interface's jobs (a simulated one
        in a dry run), over ``transport`` or a new one."""
        scheduler = get_scheduler(self.scheduler, monitor=self.monitor_interface)
        if self.simulate:
            return SimulatedCluster(self.name, scheduler)
        cluster = Cluster(self.name, transport or self.make_transport(), scheduler,
                          monitor_period=self.monitor_period)
        cluster.accounting = self.accounting
        cluster.reporting_user = self.reporting_user
        return cluster

    def simulated_workdir(self, deployment_id: str) -> str:
        """The working directory a dry run records: named as create_workdir
        would name it, under base_dir as written (the remote home is not asked
        for), and never created."""
        label = self.workdir_prefix or re.sub(r'[^A-Za-z0-9_.\-]', '_', deployment_id or 'run')
        stamp = time.strftime('%Y%m%dT%H%M%S', time.gmtime())
        return f'{self.base_dir.rstrip("/")}/{label}_{stamp}_{secrets.token_hex(3)}'

    def resolve_base_dir(self, transport: Transport) -> str:
        """base_dir with a leading $HOME or ~ replaced by the remote home."""
        base = self.base_dir
        for head in ('$HOME', '${HOME}', '~'):
            if base == head or base.startswith(head + '/'):
                return transport.home().rstrip('/') + base[len(head):]
        if not base.startswith('/'):
            return transport.home().rstrip('/') + '/' + base
        return base

    def create_workdir(self, transport: Transport, deployment_id: str) -> str:
        """A new directory for this deployment's jobs under base_dir."""
        base = self.resolve_base_dir(transport)
        label = self.workdir_prefix or re.sub(r'[^A-Za-z0-9_.\-]', '_', deployment_id or 'run')
        stamp = time.strftime('%Y%m%dT%H%M%S', time.gmtime())
        path = f'{base.rstrip("/")}/{label}_{stamp}_{secrets.token_hex(3)}'
        transport.run(f'mkdir -p -- {shlex.quote(base)} && mkdir -- {shlex.quote(path)}',
                      check=True)
        return path

    def remove_workdir(self, transport: Transport, path: str) -> None:
        """Remove a working directory this interface's create_workdir made, and
        nothing else (see check_removable_workdir)."""
        check_removable_workdir(path, self.resolve_base_dir(transport),
                                self.workdir_prefix or None)
        transport.run(f'rm -rf -- {shlex.quote(path)}', check=True)


def _is_time_zone(name: str) -> bool:
    """Whether ``name`` is a time zone of the IANA database (GMT and UTC among them)."""
    if has_line_break(name) or not name.strip() or name.startswith('/') or '..' in name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


# the name create_workdir gives: <label>_<UTC stamp>_<6 hex digits>
_WORKDIR_SUFFIX = r'_[0-9]{8}T[0-9]{6}_[0-9a-f]{6}'
_WORKDIR_LABEL = r'[A-Za-z0-9_.\-]+'


def check_removable_workdir(path: object, base: str, label: str | None) -> str:
    """``path`` when it has the exact shape create_workdir gives a working
    directory: directly under the (resolved) ``base``, named ``label`` (the
    interface's workdir_prefix; any cleaned-up deployment id when None), a UTC
    stamp and a random suffix, absolute and normalised (no ``//``, ``.``,
    ``..`` or trailing ``/``). Anything else raises ConfigError: the path comes
    from runtime properties, which a bug or a hand edit may have changed, and
    it goes to ``rm -rf``."""
    refused = ConfigError('workdir', path, 'refusing to remove a path Croupier did not create '
                                           f'(a directory directly under {base!r} named '
                                           f'<prefix>_<time>_<suffix>)')
    if not isinstance(path, str) or not isinstance(base, str) or not base.startswith('/'):
        raise refused
    if not path.startswith('/') or posixpath.normpath(path) != path or \
            '..' in path.split('/') or any(c in path for c in '\n\r\0'):
        raise refused
    parent, name = posixpath.split(path)
    if parent != posixpath.normpath(base).replace('//', '/'):
        raise refused
    shape = (re.escape(label) if label else _WORKDIR_LABEL) + _WORKDIR_SUFFIX
    if not re.fullmatch(shape, name):
        raise refused
    return path


# a period under a second floods the login node with status commands; over a
# day, a job's end goes unseen for longer than anyone waits
MONITOR_PERIOD_BOUNDS = (1.0, 86400.0)
# the orchestrator's own processes (transport: local) have no login node to spare
LOCAL_MONITOR_PERIOD_BOUNDS = (0.1, 86400.0)
# 0 fails an unknown job at once; beyond a day a lost job is waited on for nothing
UNKNOWN_GRACE_BOUNDS = (0.0, 86400.0)


def seconds_within(prop: str, value: object, minimum: float, maximum: float) -> float:
    """A number of seconds from ``minimum`` to ``maximum``: finite (NaN
    compares false with everything, so it is refused first), not a boolean."""
    # (bounds first: math.isfinite cannot take an int beyond a float's range)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not minimum <= value <= maximum or not math.isfinite(value):
        raise ConfigError(prop, value, f'must be a number of seconds from {minimum:g} to '
                                       f'{maximum:g}')
    return float(value)
