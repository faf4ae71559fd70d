"""The plugin's side of the registration API: what an interface tells the
exporter (scheduler, front-end, login user, label; never a secret).

The registration API asks for the exporter's token. The plugin takes it from
the HPCExporter node's ``token`` (give it as ``{get_secret: NAME}`` so that the
blueprint does not hold it), else from the file its ``token_file`` names on
the host running the plugin, else from the environment variable
``CROUPIER_EXPORTER_TOKEN``. It is sent in the Authorization header only, and
never logged nor kept in runtime properties.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import quote, urlsplit

import requests

from ..errors import ConfigError, CroupierError
from ..schedulers import MONITORS
from .registry import API

if TYPE_CHECKING:
    from ..infrastructure import InfrastructureSettings

TOKEN_ENV = 'CROUPIER_EXPORTER_TOKEN'
# seconds an HPCExporter's timeout may be
TIMEOUT_RANGE = (0.1, 600.0)
_ADDRESS = re.compile(r'https?://[A-Za-z0-9_.\-\[\]:]+(/[A-Za-z0-9_.\-/]*)?')


class ExporterError(CroupierError):
    """The exporter refused a request or could not be reached."""


def exporter_address(props: Mapping[str, Any], node: str = 'HPCExporter') -> str:
    """The exporter's base URL from an HPCExporter node's properties
    (``address``, or the original spelling ``hpc_exporter_address``)."""
    given: list[tuple[str, Any]] = [(k, props.get(k)) for k in ('address', 'hpc_exporter_address')
                                    if props.get(k)]
    if not given:
        raise ConfigError('address', props.get('address'),
                          'is required (e.g. http://127.0.0.1:9110)').for_node(node)
    if len(given) == 2 and given[0][1].rstrip('/') != given[1][1].rstrip('/'):
        raise ConfigError('hpc_exporter_address', given[1][1],
                          f'conflicts with address ({given[0][1]!r})').for_node(node)
    prop, value = given[0]
    if not isinstance(value, str):
        raise ConfigError(prop, value, 'must be a URL such as http://127.0.0.1:9110')\
            .for_node(node)
    if any(c.isspace() for c in value):
        raise ConfigError(prop, value, 'must be a URL such as http://127.0.0.1:9110, '
                                       'without spaces or line breaks').for_node(node)
    if '://' not in value:
        value = 'http://' + value
    if '@' in value:
        # a user:password in the URL: refused, and not repeated in the message
        shown = re.sub(r'//[^/]*@', '//<hidden>@', value)
        raise ConfigError(prop, shown, 'must not hold a user or password (the exporter '
                                       'takes no credentials)').for_node(node)
    if not _ADDRESS.fullmatch(value) or not _has_valid_port(value):
        raise ConfigError(prop, props[prop], 'must be a URL such as http://127.0.0.1:9110')\
            .for_node(node)
    return value.rstrip('/')


def _has_valid_port(url: str) -> bool:
    """Whether ``url``'s port, if it gives one, is a number from 1 to 65535."""
    try:
        port = urlsplit(url).port
    except ValueError:
        return False
    return port != 0


def registration_payload(settings: InfrastructureSettings) -> dict[str, Any]:
    """What the exporter is told about an interface (InfrastructureSettings):
    only names and numbers that are not secrets."""
    if settings.ssh is None:
        raise ConfigError('config.transport', settings.transport,
                          'an interface monitored by an HPCExporter must be reached over ssh '
                          '(the exporter logs in to it)').for_node(settings.name)
    scheduler = settings.scheduler
    if scheduler == 'PYCOMPSS':
        scheduler = (settings.monitor_interface or 'SLURM').upper()
        if scheduler not in MONITORS:
            raise ConfigError('monitoring_options.monitor_interface',
                              settings.monitor_interface, f'must be one of {list(MONITORS)}')\
                .for_node(settings.name)
    return {'scheduler': scheduler, 'host': settings.ssh.host, 'port': settings.ssh.port,
            'user': settings.ssh.user, 'hpc_label': settings.hpc_label,
            'deployment_label': settings.deployment_label, 'only_jobs': settings.only_jobs}


def exporter_timeout(props: dict, node: str = 'HPCExporter') -> float:
    """The HPCExporter's ``timeout``: a finite number of seconds within TIMEOUT_RANGE."""
    value = props.get('timeout', 10)
    low, high = TIMEOUT_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or not low <= value <= high:
        raise ConfigError('timeout', value, f'must be a finite number of seconds from {low:g} '
                                            f'to {high:g}').for_node(node)
    return float(value)


def exporter_token(props: dict, node: str = 'HPCExporter') -> Optional[str]:
    """The token the plugin sends (see the module's docstring), or None."""
    token = props.get('token')
    if token:
        if not isinstance(token, str) or any(c.isspace() for c in token.strip()):
            raise ConfigError('token', '<hidden>', 'must be a string without spaces')\
                .for_node(node)
        return token.strip()
    path = props.get('token_file')
    if path:
        if not isinstance(path, str):
            raise ConfigError('token_file', path, 'must be a file path').for_node(node)
        try:
            with open(os.path.expanduser(path)) as fh:
                text = fh.read().strip()
        except OSError as exc:
            raise ConfigError('token_file', path, f'cannot be read: {exc.strerror}')\
                .for_node(node) from None
        if not text or any(c.isspace() for c in text):
            raise ConfigError('token_file', path, 'must hold the token (one word)')\
                .for_node(node)
        return text
    return os.environ.get(TOKEN_ENV, '').strip() or None


def client_from_properties(props: dict, node: str = 'HPCExporter') -> 'ExporterClient':
    """The client of an HPCExporter node; a bad property names node, property and value."""
    return ExporterClient(exporter_address(props, node), exporter_timeout(props, node),
                          token=exporter_token(props, node))


class ExporterClient:
    """Calls to the exporter's registration API (``token``: the exporter's
    token; kept out of ``repr`` and messages)."""

    def __init__(self, address: str, timeout: float = 10.0,
                 token: Optional[str] = None) -> None:
        self.address = address.rstrip('/')
        self.timeout = timeout
        self._token = token

    def __repr__(self) -> str:
        return f'ExporterClient({self.address!r})'

    def _headers(self) -> dict[str, str]:
        return {'Authorization': f'Bearer {self._token}'} if self._token else {}

    def _url(self, *parts: object) -> str:
        return self.address + API + ''.join('/' + quote(str(p), safe='') for p in parts)

    def _call(self, method: str, url: str, body: Any = None, missing_ok: bool = False) -> Any:
        try:
            response = requests.request(method, url, json=body, timeout=self.timeout,
                                        headers=self._headers())
        except requests.RequestException as exc:
            raise ExporterError(f'exporter at {self.address} is unreachable: '
                                f'{type(exc).__name__}') from None
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code >= 400:
            try:
                reason = response.json().get('error') or response.text
            except ValueError:
                reason = response.text
            hint = ''
            if response.status_code == 401:
                hint = (' (the plugin sent no token: give the HPCExporter a token or '
                        f'token_file, or set {TOKEN_ENV})' if not self._token else
                        ' (the token the plugin sent is not the exporter\'s)')
            raise ExporterError(f'exporter at {self.address} refused {method} '
                                f'{url[len(self.address):]} ({response.status_code}): '
                                f'{str(reason).strip()[:500]}{hint}')
        return response.json() if response.content else None

    def health(self) -> None:
        """Raise ExporterError unless the exporter answers /healthz with 200."""
        try:
            response = requests.get(self.address + '/healthz', timeout=self.timeout)
        except requests.RequestException as exc:
            raise ExporterError(f'exporter at {self.address} is unreachable: '
                                f'{type(exc).__name__}') from None
        if response.status_code != 200:
            raise ExporterError(f'exporter at {self.address} answered /healthz with '
                                f'{response.status_code}')

    def check(self) -> None:
        """The exporter answers and takes the token (a wrong token fails here,
        at configure, rather than at the first registration)."""
        self.health()
        self.registrations()

    def register(self, deployment: str, interface: str, payload: dict[str, Any]) -> Any:
        """Register (or replace) ``interface`` of ``deployment`` with its
        registration_payload; the exporter's answer."""
        return self._call('PUT', self._url(deployment, interface), payload)

    def add_jobs(self, deployment: str, interface: str, jobs: Mapping[str, object]) -> Any:
        """Add ``jobs`` ({name: job id}) to the registration of ``interface``;
        the exporter's answer."""
        body = {'jobs': [{'name': n, 'job_id': str(j)} for n, j in jobs.items()]}
        return self._call('POST', self._url(deployment, interface, 'jobs'), body)

    def unregister(self, deployment: str, interface: str | None = None) -> Any:
        """Drop the registration of ``interface`` (of every interface of
        ``deployment`` without it); None when the exporter had none."""
        parts = (deployment,) if interface is None else (deployment, interface)
        return self._call('DELETE', self._url(*parts), missing_ok=True)

    def registrations(self) -> Any:
        """The registrations the exporter holds (the API's ``registrations`` list)."""
        return self._call('GET', self._url())['registrations']


class JobRegistrar:
    """Tells the exporter about submitted jobs from a background thread, in
    batches, so that a slow or absent exporter never delays a submission.
    ``warn(message)`` is called once per distinct failure."""

    def __init__(self, clients: Mapping[str, ExporterClient], deployment: str,
                 warn: Callable[[str], object]) -> None:
        self.clients = clients          # interface -> ExporterClient
        self.deployment = deployment
        self.warn = warn
        self._pending: list[tuple[str, str, str]] = []
        self._cond = threading.Condition()
        self._closing = False
        self._warned: set[str] = set()
        self._thread = threading.Thread(target=self._loop, name='croupier-job-registrar',
                                        daemon=True)
        self._thread.start()

    def add(self, interface: str, name: str, job_id: object) -> None:
        """Queue job ``name`` (scheduler id ``job_id``) of ``interface`` for
        registration; ignored for an interface no exporter monitors."""
        if interface not in self.clients:
            return
        with self._cond:
            self._pending.append((interface, name, str(job_id)))
            self._cond.notify()

    def close(self, timeout: float = 15.0) -> None:
        """Send what is pending (for at most ``timeout`` seconds), then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                batch, self._pending = self._pending, []
                if not batch and self._closing:
                    return
            groups: dict[str, dict[str, str]] = {}
            for interface, name, job_id in batch:
                groups.setdefault(interface, {})[name] = job_id
            for interface, jobs in groups.items():
                try:
                    self.clients[interface].add_jobs(self.deployment, interface, jobs)
                except ExporterError as exc:
                    if str(exc) not in self._warned:
                        self._warned.add(str(exc))
                        self.warn(f'{interface}: jobs not registered with the exporter: {exc}')
