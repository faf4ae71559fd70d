"""What the exporter watches: deployments' interfaces and their jobs.

A registration names one interface of one deployment: its scheduler and the
front-end (host, port, login user), never a secret; jobs are added to it as
they are submitted, and it is removed at uninstall. Interfaces of several
deployments on the same front-end (same scheduler, host, port and user) form
one target, asked once per scrape about all their jobs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConfigError, CroupierError
from ..files import replace_file
from ..schedulers import SCHEDULERS
from ..schedulers.base import check_job_ids

log = logging.getLogger('croupier.exporter')

API = '/api/v1/registrations'
NAME = re.compile(r'[A-Za-z0-9_.@\-]{1,200}')
_HOST = re.compile(r'[A-Za-z0-9_.\-:\[\]]{1,255}')
_USER = re.compile(r'[A-Za-z0-9_.@\-]{1,100}')
_LABEL = re.compile(r'[A-Za-z0-9_.\-:@/ ]{0,100}')
REGISTRATION_KEYS = ('scheduler', 'host', 'port', 'user', 'hpc_label', 'deployment_label',
                     'only_jobs')
# what a registration never carries: the exporter refuses it rather than ignore it
SECRET_KEYS = ('password', 'private_key', 'private_key_password', 'passphrase',
               'ssh_password', 'ssh_pkey', 'pkey', 'token', 'jwt', 'secret', 'credentials')
# schedulers whose status command the exporter can run (PYCOMPSS interfaces
# register the scheduler that follows their jobs)
WATCHABLE = ('SLURM', 'PBS', 'TORQUE', 'SHELL')


class RegistrationError(CroupierError):
    """A registration the exporter cannot take; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class Target:
    """One front-end as one user with one scheduler."""
    scheduler: str
    host: str
    port: int
    user: str

    def __str__(self) -> str:
        return f'{self.scheduler} {self.user}@{self.host}:{self.port}'


@dataclass
class Registration:
    """One interface of one deployment as the exporter watches it: its target,
    labels and jobs."""
    deployment: str
    interface: str
    target: Target
    label: str = ''
    jobs: dict[str, str] = field(default_factory=dict)     # job name -> scheduler job id
    # the interface's monitoring_options.deployment_label: the ``deployment``
    # label of its job metrics in place of the deployment id
    deployment_label: str = ''
    # monitoring_options.only_jobs: the interface wants no partition metrics
    only_jobs: bool = False

    @property
    def deployment_name(self) -> str:
        """The ``deployment`` label of the interface's job metrics."""
        return self.deployment_label or self.deployment

    @property
    def infrastructure(self) -> str:
        """The ``infrastructure`` label: the interface's hpc_label, else its host."""
        if self.label:
            return self.label
        t = self.target
        return t.host if t.port == 22 else f'{t.host}:{t.port}'

    def as_dict(self) -> dict[str, Any]:
        """The registration as the API shows it and the state file keeps it."""
        t = self.target
        return {'deployment': self.deployment, 'interface': self.interface,
                'scheduler': t.scheduler, 'host': t.host, 'port': t.port, 'user': t.user,
                'hpc_label': self.label, 'deployment_label': self.deployment_label,
                'only_jobs': self.only_jobs, 'jobs': dict(self.jobs)}


def check_name(what: str, value: Any) -> str:
    """``value`` when it is a valid deployment, interface or job name;
    RegistrationError naming ``what`` otherwise."""
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise RegistrationError(f'{what} {value!r} must be 1-200 letters, digits or . _ - @')
    return value


def parse_registration(deployment: Any, interface: Any, body: Any) -> Registration:
    """A Registration from an HTTP body; RegistrationError names the bad field."""
    check_name('deployment', deployment)
    check_name('interface', interface)
    if not isinstance(body, dict):
        raise RegistrationError('the registration must be a JSON object')
    for key in body:
        if key.lower() in SECRET_KEYS or any(s in key.lower() for s in ('password', 'key',
                                                                          'token', 'secret')):
            raise RegistrationError(
                f"field '{key}' = '<hidden>': secrets are never accepted over HTTP; the "
                f"exporter takes credentials from its own configuration or from Vault")
        if key not in REGISTRATION_KEYS:
            raise RegistrationError(f"field '{key}' = {body[key]!r}: is not a registration "
                                    f"field ({', '.join(REGISTRATION_KEYS)})")
    scheduler = str(body.get('scheduler') or '').upper()
    if scheduler not in SCHEDULERS or scheduler not in WATCHABLE:
        raise RegistrationError(f"field 'scheduler' = {body.get('scheduler')!r}: must be one "
                                f"of {list(WATCHABLE)}")
    host = body.get('host')
    if not isinstance(host, str) or not _HOST.fullmatch(host):
        raise RegistrationError(f"field 'host' = {host!r}: must be a host name or address")
    port = body.get('port', 22)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise RegistrationError(f"field 'port' = {port!r}: must be a TCP port number")
    user = body.get('user')
    if not isinstance(user, str) or not _USER.fullmatch(user):
        raise RegistrationError(f"field 'user' = {user!r}: must be a login name")
    label = body.get('hpc_label') or ''
    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise RegistrationError(f"field 'hpc_label' = {label!r}: may hold only letters, "
                                f"digits, spaces and . _ - : @ /")
    deployment_label = body.get('deployment_label') or ''
    if not isinstance(deployment_label, str) or not _LABEL.fullmatch(deployment_label):
        raise RegistrationError(f"field 'deployment_label' = {deployment_label!r}: may hold "
                                f"only letters, digits, spaces and . _ - : @ /")
    only_jobs = body.get('only_jobs', False)
    if not isinstance(only_jobs, bool):
        raise RegistrationError(f"field 'only_jobs' = {only_jobs!r}: must be true or false")
    return Registration(deployment, interface, Target(scheduler, host, port, user), label,
                        deployment_label=deployment_label, only_jobs=only_jobs)


def parse_jobs(body: Any) -> dict[str, str]:
    """{name: job id} from ``{"jobs": [{"name": ..., "job_id": ...}, ...]}``."""
    jobs = body.get('jobs') if isinstance(body, dict) else None
    if not isinstance(jobs, list) or not jobs:
        raise RegistrationError("field 'jobs' must be a non-empty list of "
                                "{\"name\": ..., \"job_id\": ...}")
    out: dict[str, str] = {}
    for i, job in enumerate(jobs):
        if not isinstance(job, dict) or set(job) != {'name', 'job_id'}:
            raise RegistrationError(f"jobs[{i}] = {job!r}: must be {{\"name\": ..., "
                                    f"\"job_id\": ...}}")
        check_name(f'jobs[{i}].name', job['name'])
        try:
            check_job_ids([job['job_id']])
        except ValueError:
            raise RegistrationError(f"jobs[{i}].job_id = {job['job_id']!r}: is not a "
                                    f"scheduler job id") from None
        out[job['name']] = str(job['job_id'])
    return out


class Registry:
    """The registrations, kept in memory and, with ``state_file``, on disk
    (written atomically after each change, read at start)."""

    def __init__(self, state_file: str | None = None) -> None:
        self.state_file = state_file
        self._lock = threading.Lock()
        self._regs: dict[tuple[str, str], Registration] = {}
        if state_file and os.path.exists(state_file):
            self._load()

    def register(self, registration: Registration) -> bool:
        """Add or replace an interface's registration (its jobs are kept when
        the front-end is the same). True when it is new."""
        key = (registration.deployment, registration.interface)
        with self._lock:
            old = self._regs.get(key)
            if old is not None and old.target == registration.target:
                registration.jobs = dict(old.jobs, **registration.jobs)
            self._regs[key] = registration
            self._save()
        return old is None

    def add_jobs(self, deployment: str, interface: str, jobs: Mapping[str, str]) -> None:
        """Add ``jobs`` ({name: job id}) to an interface's registration;
        RegistrationError (404) when it is not registered."""
        with self._lock:
            reg = self._regs.get((deployment, interface))
            if reg is None:
                raise RegistrationError(f'interface {interface!r} of deployment '
                                        f'{deployment!r} is not registered', status=404)
            reg.jobs.update(jobs)
            self._save()

    def unregister(self, deployment: str, interface: str | None = None) -> int:
        """Remove one interface's registration, or all of a deployment's;
        returns how many were removed."""
        with self._lock:
            keys = [k for k in self._regs
                    if k[0] == deployment and (interface is None or k[1] == interface)]
            for key in keys:
                del self._regs[key]
            if keys:
                self._save()
        return len(keys)

    def registrations(self) -> list[Registration]:
        """Copies of every registration."""
        with self._lock:
            return [replace(r, jobs=dict(r.jobs)) for r in self._regs.values()]

    def by_target(self) -> dict[Target, list[Registration]]:
        """Copies of the registrations grouped by target (front-end, user, scheduler)."""
        groups: dict[Target, list[Registration]] = {}
        for reg in self.registrations():
            groups.setdefault(reg.target, []).append(reg)
        return groups

    def _save(self) -> None:
        if not self.state_file:
            return
        data = [r.as_dict() for r in self._regs.values()]
        folder = os.path.dirname(os.path.abspath(self.state_file))
        os.makedirs(folder, exist_ok=True)
        replace_file(self.state_file, json.dumps(data, indent=1))

    def _load(self) -> None:
        """Read the registrations the state file holds; ConfigError names
        ``state_file`` when it is not a file this exporter wrote."""
        def bad(problem: str) -> ConfigError:
            return ConfigError('state_file', self.state_file, problem + ' (move it away to '
                               'start with no registrations)')
        assert self.state_file is not None      # read only when there is one
        try:
            with open(self.state_file) as fh:
                data = json.load(fh)
        except OSError as exc:
            raise bad(f'cannot be read: {exc.strerror}') from None
        except ValueError as exc:
            raise bad(f'is not a registrations file (not JSON: {exc})') from None
        if not isinstance(data, list):
            raise bad('is not a registrations file (not a JSON list)')
        for i, item in enumerate(data):
            try:
                if not isinstance(item, dict):
                    raise RegistrationError('not a JSON object')
                item = dict(item)
                jobs = item.pop('jobs', {})
                if not isinstance(jobs, dict):
                    raise RegistrationError("field 'jobs' is not a mapping")
                for name, job_id in jobs.items():
                    check_name('job name', name)
                    check_job_ids([str(job_id)])
                missing = [k for k in ('deployment', 'interface') if k not in item]
                if missing:
                    raise RegistrationError(f"field '{missing[0]}' is missing")
                reg = parse_registration(item.pop('deployment'), item.pop('interface'), item)
            except (RegistrationError, ValueError) as exc:
                raise bad(f'is not a registrations file (entry {i}: {exc})') from None
            reg.jobs = {name: str(job_id) for name, job_id in jobs.items()}
            self._regs[(reg.deployment, reg.interface)] = reg
        log.info('%d registrations read from %s', len(self._regs), self.state_file)
