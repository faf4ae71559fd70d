"""The exporter's HTTP service: ``/metrics`` for Prometheus and a small
registration API for the plugin, on one port (loopback by default).

    GET    /metrics                                        the metrics
    GET    /api/v1/registrations                           what is registered (JSON)
    PUT    /api/v1/registrations/DEPLOYMENT/INTERFACE      register an interface
    POST   /api/v1/registrations/DEPLOYMENT/INTERFACE/jobs add jobs {"jobs": [{name, job_id}]}
    DELETE /api/v1/registrations/DEPLOYMENT/INTERFACE      unregister an interface
    DELETE /api/v1/registrations/DEPLOYMENT                unregister a whole deployment
    GET    /healthz                                        "ok"

A registration names the front-end and the user; the exporter must hold
credentials for them (its configuration or Vault) or it answers 422.
"""

import ipaddress
import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from .collector import HpcCollector
from .config import CredentialsNotFound
from .registry import API, Registry, RegistrationError, parse_jobs, parse_registration

log = logging.getLogger('croupier.exporter')

MAX_BODY = 1 << 20


class ExporterService:
    """The registry, the collector and the HTTP server around them."""

    def __init__(self, config, transport_factory=None):
        self.config = config
        self.registry = Registry(config.state_file)
        self.collector = HpcCollector(self.registry, config, transport_factory)
        self.metrics = CollectorRegistry(auto_describe=False)
        self.metrics.register(self.collector)
        self.httpd = _Server((config.listen, config.port), _Handler)
        self.httpd.service = self
        self._thread = None
        if not _loopback(config.listen):
            log.warning('listening on %s: anyone who reaches it can register jobs to be '
                        'watched with this exporter\'s credentials (the API takes none); '
                        'prefer 127.0.0.1 behind a proxy of your own', config.listen)

    @property
    def address(self):
        host, port = self.httpd.server_address[:2]
        return f'http://{host}:{port}'

    def register(self, deployment, interface, body):
        reg = parse_registration(deployment, interface, body)
        try:
            # refuse a front-end the exporter cannot log in to now, not at every scrape
            self.config.credentials_for(reg.target.host, reg.target.port, reg.target.user)
        except CredentialsNotFound as exc:
            raise RegistrationError(str(exc), status=422) from None
        created = self.registry.register(reg)
        log.info('%s interface %s of deployment %s (%s)',
                 'registered' if created else 're-registered', interface, deployment,
                 reg.target)
        return created

    def serve_forever(self):
        log.info('croupier exporter listening on %s', self.address)
        self.httpd.serve_forever(poll_interval=0.5)

    def start(self):
        """Serve in a background thread (tests, embedding)."""
        self._thread = threading.Thread(target=self.serve_forever, name='croupier-exporter',
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _loopback(address):
    try:
        return ipaddress.ip_address(address.strip('[]')).is_loopback
    except ValueError:
        return address == 'localhost'


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    server_version = 'croupier-exporter'

    def log_message(self, fmt, *args):
        log.debug('%s %s', self.address_string(), fmt % args)

    @property
    def service(self):
        return self.server.service

    def _reply(self, status, body=None, content_type='application/json'):
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body or b''
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status, message):
        self._reply(status, {'error': message})

    def _body(self):
        length = int(self.headers.get('Content-Length') or 0)
        if length > MAX_BODY:
            raise RegistrationError('request body too large', status=413)
        raw = self.rfile.read(length) if length else b''
        try:
            return json.loads(raw or b'{}')
        except ValueError:
            raise RegistrationError('the request body is not JSON') from None

    def _parts(self):
        path = urlsplit(self.path).path
        if not path.startswith(API):
            return None
        rest = path[len(API):].strip('/')
        return [unquote(p) for p in rest.split('/')] if rest else []

    def _route(self, method):
        try:
            path = urlsplit(self.path).path
            if method == 'GET' and path == '/metrics':
                return self._reply(200, generate_latest(self.service.metrics),
                                   CONTENT_TYPE_LATEST)
            if method == 'GET' and path == '/healthz':
                return self._reply(200, 'ok\n', 'text/plain')
            parts = self._parts()
            if parts is None:
                return self._error(404, f'no such resource: {path}')
            if method == 'GET' and not parts:
                regs = [r.as_dict() for r in self.service.registry.registrations()]
                return self._reply(200, {'registrations': regs})
            if method == 'PUT' and len(parts) == 2:
                created = self.service.register(parts[0], parts[1], self._body())
                return self._reply(201 if created else 200, {'registered': parts})
            if method == 'POST' and len(parts) == 3 and parts[2] == 'jobs':
                jobs = parse_jobs(self._body())
                self.service.registry.add_jobs(parts[0], parts[1], jobs)
                return self._reply(200, {'jobs': len(jobs)})
            if method == 'DELETE' and len(parts) in (1, 2):
                removed = self.service.registry.unregister(*parts)
                if not removed:
                    return self._error(404, f'not registered: {"/".join(parts)}')
                log.info('unregistered %s', '/'.join(parts))
                return self._reply(200, {'unregistered': removed})
            return self._error(405 if parts else 404, f'{method} {path} is not supported')
        except RegistrationError as exc:
            return self._error(exc.status, str(exc))
        except Exception:       # noqa: BLE001 - one bad request must not end the service
            log.exception('%s %s failed', method, self.path)
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, 'internal error')

    def do_GET(self):
        self._route('GET')

    def do_PUT(self):
        self._route('PUT')

    def do_POST(self):
        self._route('POST')

    def do_DELETE(self):
        self._route('DELETE')
