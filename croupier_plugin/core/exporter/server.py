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

Every ``/api/v1`` route asks for the configuration's token
(``Authorization: Bearer TOKEN``); ``/metrics`` and ``/healthz`` do not. A
request must arrive within ``REQUEST_READ_SECONDS`` with a body of at most
``MAX_BODY`` bytes announced by ``Content-Length``; at most
``MAX_CONNECTIONS`` connections are served at once (more are answered 503).
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import json
import logging
import socket
import threading
import time
from http import HTTPStatus
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from ..errors import ConfigError
from .collector import HpcCollector
from .config import CredentialsNotFound
from .registry import API, Registry, RegistrationError, parse_jobs, parse_registration

if TYPE_CHECKING:
    from ..transport.base import Transport
    from .config import ExporterConfig
    from .registry import Target

log = logging.getLogger('croupier.exporter')

MAX_BODY = 1 << 20
# a connection that sends nothing for this long is closed
IDLE_SECONDS = 10.0
# the whole request (line, headers, body) must have arrived by then
REQUEST_READ_SECONDS = 30.0
MAX_CONNECTIONS = 32


class ExporterService:
    """The registry, the collector and the HTTP server around them."""

    def __init__(self, config: ExporterConfig,
                 transport_factory: Callable[[Target], Transport] | None = None) -> None:
        self.config = config
        self.registry = Registry(config.state_file)
        self.collector = HpcCollector(self.registry, config, transport_factory)
        self.metrics = CollectorRegistry(auto_describe=False)
        self.metrics.register(self.collector)
        self.httpd = _bind(config.listen, config.port)
        self.httpd.service = self
        self._thread: threading.Thread | None = None
        if not _loopback(config.listen):
            log.warning('listening on %s: anyone who reaches it can read the metrics, and '
                        'the token crosses the network in clear (plain HTTP); prefer '
                        '127.0.0.1 behind a TLS proxy of your own', config.listen)

    @property
    def address(self) -> str:
        """The service's base URL (an IPv6 address in brackets)."""
        # set from the bound socket's name, whose host is text
        host, port = cast('tuple[str, int]', self.httpd.server_address[:2])
        if ':' in host:
            host = f'[{host}]'
        return f'http://{host}:{port}'

    def authorized(self, header: str) -> bool:
        """Whether an Authorization header carries the configured token."""
        scheme, _, given = (header or '').strip().partition(' ')
        try:
            expected = self.config.current_token()
        except ConfigError as exc:
            # the token file went missing or bad while running: refuse everyone
            log.error('the registration API refuses every request: %s', exc)
            return False
        if scheme.lower() != 'bearer' or not given or not expected:
            return False
        return hmac.compare_digest(given.strip().encode(), expected.encode())

    def register(self, deployment: str, interface: str, body: Any) -> bool:
        """Register an interface from a PUT body, refused (422) when the exporter
        has no credentials for its front-end; True when it is new."""
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

    def serve_forever(self) -> None:
        """Serve HTTP requests until stop()."""
        log.info('croupier exporter listening on %s', self.address)
        self.httpd.serve_forever(poll_interval=0.5)

    def start(self) -> ExporterService:
        """Serve in a background thread (tests, embedding)."""
        self._thread = threading.Thread(target=self.serve_forever, name='croupier-exporter',
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and asking; close the exporter's connections."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.collector.close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip('[]')).is_loopback
    except ValueError:
        return address == 'localhost'


def _bind(listen: str, port: int) -> '_Server':
    """The HTTP server bound to ``listen``:``port`` (IPv4 or IPv6, as the
    address says); ConfigError names the setting that cannot be used."""
    host = listen.strip('[]')
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError('listen', listen, f'is not an address of this host: '
                                            f'{exc.strerror}') from None
    family, _, _, _, sockaddr = infos[0]
    try:
        return _Server(sockaddr, family)
    except OSError as exc:
        prop, value = ('port', port) if exc.errno in (errno.EADDRINUSE, errno.EACCES) \
            else ('listen', listen)
        raise ConfigError(prop, value, f'cannot be listened on ({listen} port {port}): '
                                       f'{exc.strerror}') from None


class _Server(ThreadingHTTPServer):
    """One thread per connection, at most MAX_CONNECTIONS of them."""
    daemon_threads = True
    allow_reuse_address = True
    # connections waiting to be accepted (socketserver's 5 makes a burst wait
    # for SYN retransmissions, a second or more each)
    request_queue_size = 128
    service: ExporterService      # set by ExporterService

    def __init__(self, address: tuple, family: int) -> None:
        # the family must be known before the socket is made
        self.address_family = family
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._refused_logged = 0.0
        super().__init__(address, _Handler)

    def process_request(self, request: socket.socket | tuple[bytes, socket.socket],
                        client_address: Any) -> None:
        """Serve the connection in a thread of its own when a slot is free,
        else answer 503 at once (without a thread) and close it."""
        if not self._slots.acquire(blocking=False):
            # a TCP server's request is the connected socket
            self._refuse(cast(socket.socket, request), client_address)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: socket.socket | tuple[bytes, socket.socket],
                               client_address: Any) -> None:
        """As ThreadingMixIn.process_request_thread, then free the connection's slot."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket, client_address: Any) -> None:
        body = b'{"error": "too many connections"}'
        try:
            request.settimeout(1.0)
            request.sendall(b'HTTP/1.0 503 Service Unavailable\r\n'
                            b'Content-Type: application/json\r\nConnection: close\r\n'
                            b'Retry-After: 1\r\nContent-Length: ' + str(len(body)).encode() +
                            b'\r\n\r\n' + body)
        except OSError:
            pass
        self.shutdown_request(request)
        now = time.monotonic()
        if now - self._refused_logged > 60:
            # at most one line a minute: a flood must not flood the log too
            self._refused_logged = now
            log.warning('%d connections open: refused one from %s', MAX_CONNECTIONS,
                        client_address[0])


class _BadRequest(Exception):
    """A request refused before routing; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = 'croupier-exporter'
    # socketserver applies it to the connection: an idle client is dropped
    timeout = IDLE_SECONDS

    def setup(self) -> None:
        """As BaseHTTPRequestHandler.setup, then start the request's read watchdog."""
        super().setup()
        # the idle timeout alone lets a client trickle a byte at a time for ever
        self._watchdog = threading.Timer(REQUEST_READ_SECONDS, self._cut)
        self._watchdog.daemon = True
        self._watchdog.start()

    def finish(self) -> None:
        """Stop the watchdog, then as BaseHTTPRequestHandler.finish."""
        self._watchdog.cancel()
        super().finish()

    def _cut(self) -> None:
        """The request took too long to arrive: end the connection."""
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def log_message(self, fmt: str, *args: Any) -> None:
        """As BaseHTTPRequestHandler.log_message, to the exporter's debug log."""
        log.debug('%s %s', self.address_string(), fmt % args)

    @property
    def service(self) -> ExporterService:
        """The ExporterService this request is served by."""
        return self.server.service

    def _reply(self, status: int, body: dict[str, Any] | list[Any] | str | bytes | None = None,
               content_type: str = 'application/json') -> None:
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

    def _error(self, status: int, message: str) -> None:
        self._reply(status, {'error': message})

    def _length(self, method: str) -> int:
        """The announced body length: required for PUT and POST, a plain
        decimal number, at most MAX_BODY."""
        if self.headers.get('Transfer-Encoding'):
            raise _BadRequest(411, 'a body must be sent with Content-Length, not '
                                   'Transfer-Encoding')
        given = self.headers.get_all('Content-Length') or []
        if not given:
            if method in ('PUT', 'POST'):
                raise _BadRequest(411, 'Content-Length is required')
            return 0
        value = given[0].strip()
        if len(given) > 1 or not value.isascii() or not value.isdigit():
            raise _BadRequest(400, f'Content-Length {", ".join(given)[:40]!r} is not a '
                                   f'length in bytes')
        length = int(value)
        if length > MAX_BODY:
            raise _BadRequest(413, f'the body ({length} bytes) is over {MAX_BODY} bytes')
        return length

    def _read_body(self, length: int) -> bytes:
        raw = self.rfile.read(length) if length else b''
        if len(raw) != length:
            raise _BadRequest(400, f'the body ended after {len(raw)} of {length} bytes')
        return raw

    @staticmethod
    def _json(raw: bytes) -> Any:
        try:
            return json.loads(raw or b'{}')
        except ValueError:
            raise RegistrationError('the request body is not JSON') from None

    def _parts(self) -> list[str] | None:
        path = urlsplit(self.path).path
        if not path.startswith(API):
            return None
        rest = path[len(API):].strip('/')
        return [unquote(p) for p in rest.split('/')] if rest else []

    def _route(self, method: str) -> None:
        """Check, read and answer one request."""
        try:
            self._answer(method)
        except _BadRequest as exc:
            self.close_connection = True
            self._watchdog.cancel()
            try:
                self._error(exc.status, str(exc))
            except OSError:
                pass        # the client left first
        except TimeoutError:
            # the client stopped sending: nobody is left to read an answer
            self.close_connection = True

    def _answer(self, method: str) -> None:
        length = self._length(method)
        path = urlsplit(self.path).path
        if path.startswith(API) and not self.service.authorized(
                self.headers.get('Authorization', '')):
            log.warning('%s %s from %s: refused, no valid token', method, path,
                        self.client_address[0])
            raise _BadRequest(401, 'the registration API needs the exporter\'s token '
                                   '(Authorization: Bearer TOKEN)')
        raw = self._read_body(length) if method in ('PUT', 'POST') else b''
        self._watchdog.cancel()
        try:
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
                created = self.service.register(parts[0], parts[1], self._json(raw))
                return self._reply(201 if created else 200, {'registered': parts})
            if method == 'POST' and len(parts) == 3 and parts[2] == 'jobs':
                jobs = parse_jobs(self._json(raw))
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

    def do_GET(self) -> None:
        """Answer a GET request."""
        self._route('GET')

    def do_PUT(self) -> None:
        """Answer a PUT request."""
        self._route('PUT')

    def do_POST(self) -> None:
        """Answer a POST request."""
        self._route('POST')

    def do_DELETE(self) -> None:
        """Answer a DELETE request."""
        self._route('DELETE')
