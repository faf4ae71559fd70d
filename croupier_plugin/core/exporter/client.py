"""The plugin's side of the registration API: what an interface tells the
exporter (scheduler, front-end, login user, label; never a secret)."""

import re
import threading
from urllib.parse import quote

import requests

from ..errors import ConfigError, CroupierError
from ..schedulers import MONITORS
from .registry import API

_ADDRESS = re.compile(r'https?://[A-Za-z0-9_.\-\[\]:]+(/[A-Za-z0-9_.\-/]*)?')


class ExporterError(CroupierError):
    """The exporter refused a request or could not be reached."""


def exporter_address(props, node='HPCExporter'):
    """The exporter's base URL from an HPCExporter node's properties
    (``address``, or the original spelling ``hpc_exporter_address``)."""
    given = [(k, props.get(k)) for k in ('address', 'hpc_exporter_address') if props.get(k)]
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
    value = value.strip()
    if '://' not in value:
        value = 'http://' + value
    if '@' in value:
        # a user:password in the URL: refused, and not repeated in the message
        shown = re.sub(r'//[^/]*@', '//<hidden>@', value)
        raise ConfigError(prop, shown, 'must not hold a user or password (the exporter '
                                       'takes no credentials)').for_node(node)
    if not _ADDRESS.fullmatch(value):
        raise ConfigError(prop, props[prop], 'must be a URL such as http://127.0.0.1:9110')\
            .for_node(node)
    return value.rstrip('/')


def registration_payload(settings):
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
            'user': settings.ssh.user, 'hpc_label': settings.hpc_label}


class ExporterClient:
    def __init__(self, address, timeout=10.0):
        self.address = address.rstrip('/')
        self.timeout = timeout

    def _url(self, *parts):
        return self.address + API + ''.join('/' + quote(str(p), safe='') for p in parts)

    def _call(self, method, url, body=None, missing_ok=False):
        try:
            response = requests.request(method, url, json=body, timeout=self.timeout)
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
            raise ExporterError(f'exporter at {self.address} refused {method} '
                                f'{url[len(self.address):]} ({response.status_code}): '
                                f'{str(reason).strip()[:500]}')
        return response.json() if response.content else None

    def health(self):
        try:
            response = requests.get(self.address + '/healthz', timeout=self.timeout)
        except requests.RequestException as exc:
            raise ExporterError(f'exporter at {self.address} is unreachable: '
                                f'{type(exc).__name__}') from None
        if response.status_code != 200:
            raise ExporterError(f'exporter at {self.address} answered /healthz with '
                                f'{response.status_code}')

    def register(self, deployment, interface, payload):
        return self._call('PUT', self._url(deployment, interface), payload)

    def add_jobs(self, deployment, interface, jobs):
        """``jobs``: {name: job id}."""
        body = {'jobs': [{'name': n, 'job_id': str(j)} for n, j in jobs.items()]}
        return self._call('POST', self._url(deployment, interface, 'jobs'), body)

    def unregister(self, deployment, interface=None):
        parts = (deployment,) if interface is None else (deployment, interface)
        return self._call('DELETE', self._url(*parts), missing_ok=True)

    def registrations(self):
        return self._call('GET', self._url())['registrations']


class JobRegistrar:
    """Tells the exporter about submitted jobs from a background thread, in
    batches, so that a slow or absent exporter never delays a submission.
    ``warn(message)`` is called once per distinct failure."""

    def __init__(self, clients, deployment, warn):
        self.clients = clients          # interface -> ExporterClient
        self.deployment = deployment
        self.warn = warn
        self._pending = []
        self._cond = threading.Condition()
        self._closing = False
        self._warned = set()
        self._thread = threading.Thread(target=self._loop, name='croupier-job-registrar',
                                        daemon=True)
        self._thread.start()

    def add(self, interface, name, job_id):
        if interface not in self.clients:
            return
        with self._cond:
            self._pending.append((interface, name, str(job_id)))
            self._cond.notify()

    def close(self, timeout=15.0):
        """Send what is pending (for at most ``timeout`` seconds), then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)

    def _loop(self):
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                batch, self._pending = self._pending, []
                if not batch and self._closing:
                    return
            groups = {}
            for interface, name, job_id in batch:
                groups.setdefault(interface, {})[name] = job_id
            for interface, jobs in groups.items():
                try:
                    self.clients[interface].add_jobs(self.deployment, interface, jobs)
                except ExporterError as exc:
                    if str(exc) not in self._warned:
                        self._warned.add(str(exc))
                        self.warn(f'{interface}: jobs not registered with the exporter: {exc}')
