"""SSH transport (paramiko) with one shared connection per login and settings.

Every SshTransport for the same login (host, port, user) with the same
connection settings (host-key checking, credentials, timeouts; see
``SshSettings.pool_key``) in a process uses the same connection: one TCP
connection and one authentication, however many jobs are submitted or polled.
A broken connection is re-opened with exponential backoff, up to
``reconnect_timeout`` seconds. Host keys are always verified
(known_hosts, or a key pinned in the credentials) unless the blueprint opts
out explicitly with ``host_key_check: false``, which is logged as a warning.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import math
import os
import posixpath
import secrets
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeGuard, TypeVar

import paramiko

from ..errors import (AuthenticationError, CommandInterrupted, ConfigError, HostKeyError,
                      TransportError)
from .agent import LentKeys, Loan
from .base import CommandResult, Transport

log = logging.getLogger('croupier.ssh')

_T = TypeVar('_T')

# keys the digest of the secrets in SshSettings.pool_key; never leaves the process
_POOL_SALT = secrets.token_bytes(32)
_KEY_CLASSES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)
_CONNECTION_ERRORS = (paramiko.SSHException, OSError, EOFError, socket.timeout)


@dataclass(frozen=True)
class SshSettings:
    """How to reach one SSH server. Secrets are kept out of ``repr``."""
    host: str
    user: str
    port: int = 22
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    private_key_file: str | None = None
    private_key_password: str | None = field(default=None, repr=False)
    known_hosts: str | None = None
    host_key: str | None = None
    host_key_check: bool = True
    login_shell: bool = False
    connect_timeout: float = 10.0
    reconnect_timeout: float = 60.0
    max_sessions: int = 8
    keepalive: int = 15
    # the site-wide known_hosts file (site configuration), read besides the node's own
    site_known_hosts: str | None = None

    # credentials keys understood, with the original Croupier's spellings
    CREDENTIAL_KEYS = {
        'host': 'host', 'user': 'user', 'username': 'user',
        'port': 'port', 'ssh_port': 'port',
        'password': 'password',
        'private_key': 'private_key', 'private_key_file': 'private_key_file',
        'private_key_password': 'private_key_password',
        'known_hosts': 'known_hosts', 'host_key': 'host_key',
        'host_key_check': 'host_key_check',
        'login_shell': 'login_shell', 'ssh_login_shell': 'login_shell',
        'connect_timeout': 'connect_timeout', 'reconnect_timeout': 'reconnect_timeout',
        'max_sessions': 'max_sessions',
    }

    FIELD_DEFAULTS = {'port': 22, 'login_shell': False, 'host_key_check': True}
    # the defaults plugin.yaml declares for the credentials data type
    PLUGIN_DEFAULTS = {'port': 22, 'ssh_port': 22, 'host_key_check': True, 'login_shell': False,
                       'ssh_login_shell': False, 'connect_timeout': 10, 'reconnect_timeout': 60,
                       'max_sessions': 8}

    @classmethod
    def from_credentials(cls, credentials: Any, prefix: str = 'credentials') -> SshSettings:
        """Validate a blueprint ``credentials`` mapping."""
        if not isinstance(credentials, dict):
            raise ConfigError(prefix, _hide(credentials), 'must be a mapping')
        values: dict[str, Any] = {}
        for key, raw in credentials.items():
            target = cls.CREDENTIAL_KEYS.get(key)
            if target is None:
                raise ConfigError(f'{prefix}.{key}', _hide_if_secret(key, raw),
                                  'is not a known credentials field '
                                  f'({", ".join(sorted(cls.CREDENTIAL_KEYS))})')
            if raw is None or raw == '':
                continue
            if target in values and values[target] != raw:
                # plugin.yaml gives both spellings a default: a default loses
                default = cls.FIELD_DEFAULTS.get(target, object())
                if raw == default:
                    continue
                if values[target] != default:
                    raise ConfigError(f'{prefix}.{key}', _hide_if_secret(key, raw),
                                      f'conflicts with another spelling of {target} '
                                      f'({_hide_if_secret(target, values[target])!r})')
            values[target] = raw
        for required in ('host', 'user'):
            if required not in values:
                raise ConfigError(f'{prefix}.{required}', None, 'is required')
            if not isinstance(values[required], str) or not values[required].strip() or \
                    any(c.isspace() for c in values[required]) or \
                    _looks_like_a_key(values[required]):
                # a key-like value would otherwise reach logs that name the login
                raise ConfigError(f'{prefix}.{required}', _shown(values[required]),
                                  'must be a non-empty word (at most 200 characters)')
        port = values.get('port', 22)
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f'{prefix}.port', _shown(port),
                              'must be a TCP port number (1-65535)')
        values['port'] = port
        for flag in ('host_key_check', 'login_shell'):
            if flag in values and not isinstance(values[flag], bool):
                raise ConfigError(f'{prefix}.{flag}', _shown(values[flag]),
                                  'must be true or false')
        for num in ('connect_timeout', 'reconnect_timeout'):
            if num in values:
                values[num] = _seconds(f'{prefix}.{num}', values[num])
        if 'max_sessions' in values:
            values['max_sessions'] = _session_count(f'{prefix}.max_sessions',
                                                    values['max_sessions'])
        if 'password' not in values and 'private_key' not in values and \
                'private_key_file' not in values:
            raise ConfigError(f'{prefix}', _hide(credentials),
                              'needs a password, a private_key or a private_key_file')
        if 'host_key' in values:
            _pinned_key(values['host'], port, values['host_key'], prefix)
        settings = cls(**values)
        settings.pkey()   # refuse an unreadable key now, not at first connect
        return settings

    @property
    def login(self) -> tuple[str, int, str]:
        """(host, port, user): the account these settings log in to."""
        return (self.host, self.port, self.user)

    @property
    def pool_key(self) -> tuple:
        """What a shared connection must agree on to be reused: the login and
        every setting that decides how the server is trusted or how we
        authenticate (host-key checking, credentials, timeouts, sessions).

        ``login_shell`` is left out: it changes the command, not the
        connection. The secrets enter as one keyed digest (HMAC with a key
        made per process), so the pool key is safe to show and a weak
        password cannot be guessed from it offline.
        """
        secrets_digest = hmac.new(_POOL_SALT, repr(
            (self.password, self.private_key, self.private_key_password)).encode('utf-8'),
            hashlib.sha256).hexdigest()[:32]
        return (self.host, self.port, self.user, self.private_key_file, self.known_hosts,
                self.host_key, self.host_key_check, self.connect_timeout,
                self.reconnect_timeout, self.max_sessions, self.keepalive, secrets_digest)

    @property
    def known_hosts_name(self) -> str:
        """The server's name as known_hosts spells it (``[host]:port`` off port 22)."""
        return self.host if self.port == 22 else f'[{self.host}]:{self.port}'

    def pkey(self) -> paramiko.PKey | None:
        """The private key as a paramiko key object, or None."""
        text = self.private_key
        source = 'credentials.private_key'
        if text is None and self.private_key_file:
            source = 'credentials.private_key_file'
            if _looks_like_a_key(self.private_key_file):
                raise ConfigError(source, _shown(self.private_key_file),
                                  'is the path of a key file; this looks like the key itself '
                                  '(give a key\'s text in credentials.private_key)')
            try:
                with open(os.path.expanduser(self.private_key_file)) as fh:
                    text = fh.read()
            except OSError as exc:
                raise ConfigError(source, self.private_key_file,
                                  f'cannot be read: {exc.strerror}') from None
        if text is None:
            return None
        return load_private_key(text, self.private_key_password, source)


# a timeout longer than this is a typo, not a wish (a day)
MAX_TIMEOUT = 86400.0
# far above any sshd's MaxSessions (OpenSSH's default is 10)
MAX_SESSIONS = 1024


def _seconds(prop: str, value: object) -> float:
    """A timeout in seconds: a finite number in (0, MAX_TIMEOUT].

    NaN compares false with everything, so it would pass a plain ``<= 0``
    check and then make every deadline unreachable.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT:
        raise ConfigError(prop, _shown(value),
                          f'must be a number of seconds above 0 and at most '
                          f'{MAX_TIMEOUT:g} (a day)')
    return float(value)


def _session_count(prop: str, value: object) -> int:
    """A number of concurrent sessions: a whole number in [1, MAX_SESSIONS].

    A fraction is refused rather than rounded: 0.5 would round to no
    session at all and every command would wait for one forever.
    """
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or \
            not 1 <= value <= MAX_SESSIONS:
        raise ConfigError(prop, _shown(value),
                          f'must be a whole number from 1 to {MAX_SESSIONS}')
    return value


def _looks_like_a_key(value: object) -> TypeGuard[str]:
    """True for a value that may be key material pasted into the wrong field:
    a PEM or OpenSSH armour, several lines, or a long unbroken string."""
    if not isinstance(value, str):
        return False
    return ('PRIVATE KEY' in value or '-----BEGIN' in value or '\n' in value or
            'b3BlbnNzaC1rZXktdjE' in value        # base64 of "openssh-key-v1"
            or len(value) > 200)


def _shown(value: object) -> object:
    """``value`` as an error may show it: key-like text is replaced by a
    description that says what it looks like, never by (part of) itself."""
    if _looks_like_a_key(value):
        return f'<hidden: {len(value)} characters that look like key material>'
    return value


def _hide(value: object) -> object:
    """``value`` as an error may show a whole credentials mapping: hidden unless empty."""
    return '<hidden>' if value else value


def _hide_if_secret(key: str, value: object) -> object:
    """``value`` as an error may show it: always hidden for a secret field,
    hidden when it looks like key material for any other."""
    if key in ('password', 'private_key', 'private_key_password'):
        return '<hidden>'
    return _shown(value)


def load_private_key(text: str, passphrase: str | None = None,
                     source: str = 'credentials.private_key') -> paramiko.PKey:
    """An ed25519, ECDSA or RSA key from its text (OpenSSH or PEM format)."""
    if not isinstance(text, str) or 'PRIVATE KEY' not in text:
        raise ConfigError(source, '<hidden>', 'is not a private key in OpenSSH or PEM format')
    needs_passphrase = False
    for key_class in _KEY_CLASSES:
        try:
            return key_class.from_private_key(io.StringIO(text), password=passphrase)
        except paramiko.PasswordRequiredException:
            needs_passphrase = True
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    if needs_passphrase and not passphrase:
        raise ConfigError('credentials.private_key_password', None,
                          'the private key is encrypted: give its passphrase')
    raise ConfigError(source, '<hidden>', 'is not a readable ed25519, ECDSA or RSA key '
                                          '(or its passphrase is wrong)')


def _pinned_key(host: str, port: int, line: str,
                prefix: str = 'credentials') -> tuple[str, paramiko.PKey]:
    """(known_hosts name, key) of a host key pinned in the credentials; ConfigError
    if ``line`` is not a public key line."""
    name = host if port == 22 else f'[{host}]:{port}'
    try:
        entry = paramiko.hostkeys.HostKeyEntry.from_line(f'{name} {line.strip()}')
    except Exception:   # paramiko raises several types for bad base64 or key data
        entry = None
    if entry is None or entry.key is None:
        raise ConfigError(f'{prefix}.host_key', _shown(line),
                          'must be a public key line such as "ssh-ed25519 AAAA..."')
    return name, entry.key


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of a (host) key, as errors and logs show it."""
    import base64
    import hashlib
    digest = hashlib.sha256(key.asbytes()).digest()
    return 'SHA256:' + base64.b64encode(digest).decode().rstrip('=')


class KnownHosts:
    """The entries of OpenSSH known_hosts files, read without failing on what
    paramiko cannot parse.

    paramiko's own loader stops at the first ``@cert-authority`` or
    ``@revoked`` line with a raw ``InvalidHostKey``, and paramiko cannot
    verify host certificates against a CA at all. So CA lines are skipped
    with a warning (a host that only a CA vouches for stays unknown and is
    refused); ``@revoked`` keys are kept apart and refused for every host,
    even where a plain line lists them (OpenSSH scopes them by host pattern;
    a revoked key is never one to trust, so Croupier does not). Lines that
    cannot be read are skipped with a warning naming file and line.
    """

    def __init__(self) -> None:
        self.entries: list[paramiko.hostkeys.HostKeyEntry] = []
        self.revoked: set[bytes] = set()        # key blobs

    def load(self, path: str) -> None:
        """Add the entries of the known_hosts file at ``path``."""
        try:
            with open(path, encoding='utf-8', errors='replace') as fh:
                lines = fh.readlines()
        except OSError as exc:
            raise ConfigError('credentials.known_hosts', _shown(path),
                              f'cannot be read: {exc.strerror}') from None
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            marker = None
            if line.startswith('@'):
                marker, _, line = line.partition(' ')
                line = line.strip()
                if marker == '@cert-authority':
                    log.warning('%s:%d: @cert-authority line skipped: Croupier cannot verify '
                                'host certificates; list the host key itself or pin it in '
                                'credentials.host_key', path, number)
                    continue
                if marker != '@revoked':
                    log.warning('%s:%d: unknown marker %s: line skipped', path, number,
                                _shown(marker))
                    continue
            entry = self._entry(line)
            if entry is None:
                log.warning('%s:%d: not a known_hosts line Croupier can read (or a key type '
                            'it does not support): skipped', path, number)
            elif marker == '@revoked':
                self.revoked.add(entry.key.asbytes())
            else:
                self.entries.append(entry)

    @staticmethod
    def _entry(line: str) -> paramiko.hostkeys.HostKeyEntry | None:
        """The paramiko HostKeyEntry of one line, or None if unreadable."""
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        except Exception:   # paramiko raises several types for bad base64 or key data
            return None
        return entry if entry is not None and entry.key is not None else None

    def is_revoked(self, key: paramiko.PKey) -> bool:
        """True if ``key`` is listed in an ``@revoked`` line."""
        return key.asbytes() in self.revoked

    def fill(self, host_keys: paramiko.HostKeys) -> None:
        """Put every entry whose key is not revoked into paramiko's table."""
        for entry in self.entries:
            if self.is_revoked(entry.key):
                continue
            for name in entry.hostnames:
                host_keys.add(name, entry.key.get_name(), entry.key)


def _revoked_message(settings: 'SshSettings', key: paramiko.PKey) -> str:
    """The refusal of a server that shows a revoked host key."""
    return (f'host key of {settings.known_hosts_name} ({key.get_name()} {fingerprint(key)}) '
            f'is marked @revoked in known_hosts. Refusing to connect')


class _RejectUnknown(paramiko.MissingHostKeyPolicy):
    """Refuses a server whose host key is not known, with Croupier's own
    error (and a clearer one for a revoked key)."""

    def __init__(self, settings: 'SshSettings', known: KnownHosts) -> None:
        self.settings = settings
        self.known = known

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        """Called by paramiko for a key in no known_hosts entry: always refuse."""
        if self.known.is_revoked(key):
            raise HostKeyError(_revoked_message(self.settings, key))
        raise HostKeyError(
            f'host key of {self.settings.known_hosts_name} ({key.get_name()} '
            f'{fingerprint(key)}) is unknown: add it to known_hosts '
            f'(credentials.known_hosts) or pin it in credentials.host_key; '
            f'host_key_check: false skips the check')


class _AcceptUnverified(paramiko.MissingHostKeyPolicy):
    """Used only when the blueprint sets host_key_check: false."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        """Called by paramiko for a key in no known_hosts entry: accept it, warned."""
        log.warning('host key check DISABLED by configuration: accepting %s key %s of %s '
                    'without verification', key.get_name(), fingerprint(key), hostname)


class SshConnection:
    """One paramiko connection, shared by every SshTransport of the same key."""

    def __init__(self, settings: SshSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._sftp_lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._sessions = threading.BoundedSemaphore(settings.max_sessions)
        self.connects = 0      # connections opened over this object's life

    def __repr__(self) -> str:
        s = self.settings
        return f'SshConnection({s.user}@{s.host}:{s.port})'

    # -- connecting ---------------------------------------------------------

    def _new_client(self) -> paramiko.SSHClient:
        """A new connected and authenticated paramiko client (one attempt)."""
        s = self.settings
        client = paramiko.SSHClient()
        known = KnownHosts()      # stays empty with a pinned key or no check
        if s.host_key:
            name, key = _pinned_key(s.host, s.port, s.host_key)
            client.get_host_keys().add(name, key.get_name(), key)
            client.set_missing_host_key_policy(_RejectUnknown(s, known))
        elif s.host_key_check:
            files = [os.path.expanduser(s.known_hosts)] if s.known_hosts else [
                os.path.expanduser('~/.ssh/known_hosts'), '/etc/ssh/ssh_known_hosts']
            if s.site_known_hosts and os.path.exists(s.site_known_hosts):
                client.get_host_keys().load(s.site_known_hosts)
            for path in files:
                if os.path.exists(path):
                    known.load(path)
                elif s.known_hosts:
                    raise ConfigError('credentials.known_hosts', _shown(s.known_hosts),
                                      'file does not exist')
            known.fill(client.get_host_keys())
            client.set_missing_host_key_policy(_RejectUnknown(s, known))
        else:
            log.warning('host key check disabled for %s@%s:%s (credentials.host_key_check: '
                        'false)', s.user, s.host, s.port)
            client.set_missing_host_key_policy(_AcceptUnverified())
        try:
            client.connect(s.host, port=s.port, username=s.user, password=s.password,
                           pkey=s.pkey(), timeout=s.connect_timeout,
                           banner_timeout=s.connect_timeout, auth_timeout=s.connect_timeout,
                           channel_timeout=s.connect_timeout,
                           allow_agent=False, look_for_keys=False)
        except HostKeyError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            if known.is_revoked(exc.key):
                raise HostKeyError(_revoked_message(s, exc.key)) from None
            raise HostKeyError(
                f'host key of {s.known_hosts_name} does not match the known key: server '
                f'sent {exc.key.get_name()} {fingerprint(exc.key)}, expected '
                f'{fingerprint(exc.expected_key)}. Refusing to connect; if the key changed '
                f'legitimately, update known_hosts or credentials.host_key') from None
        except paramiko.AuthenticationException:
            client.close()
            raise AuthenticationError(f'{s.user}@{s.host}:{s.port} refused the credentials '
                                      f'(authentication failed)') from None
        except paramiko.SSHException as exc:
            client.close()
            raise TransportError(f'SSH to {s.user}@{s.host}:{s.port} failed: {exc}') from None
        except (OSError, EOFError, socket.timeout) as exc:
            client.close()
            raise TransportError(f'cannot connect to {s.host}:{s.port}: '
                                 f'{exc or type(exc).__name__}') from None
        transport = client.get_transport()
        assert transport is not None   # set by the connect() that just succeeded
        transport.set_keepalive(s.keepalive)
        self.connects += 1
        log.info('SSH connection %d opened to %s@%s:%s', self.connects, s.user, s.host, s.port)
        return client

    def client(self) -> paramiko.SSHClient:
        """The live paramiko client, (re)connecting with exponential backoff."""
        with self._lock:
            if self._client is not None:
                transport = self._client.get_transport()
                if transport is not None and transport.is_active():
                    return self._client
                self._drop_locked()
            deadline = time.monotonic() + self.settings.reconnect_timeout
            delay = 0.25
            attempt = 0
            while True:
                attempt += 1
                try:
                    self._client = self._new_client()
                    return self._client
                except TransportError as exc:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TransportError(
                            f'{exc} (gave up after {attempt} attempts in '
                            f'{self.settings.reconnect_timeout:g} s)') from None
                    wait = min(delay, remaining)
                    log.warning('%s; retrying in %.2f s', exc, wait)
                    time.sleep(wait)
                    delay = min(delay * 2, 15.0)

    def broken(self, client: paramiko.SSHClient) -> None:
        """Forget ``client`` if it is still the current one (it failed)."""
        with self._lock:
            if self._client is client:
                self._drop_locked()

    def _drop_locked(self) -> None:
        client, self._client = self._client, None
        # not under _sftp_lock: a thread stuck in an SFTP request on this dead
        # connection holds it until the close below wakes it
        sftp, self._sftp = self._sftp, None
        for closable in (sftp, client):
            if closable is not None:
                try:
                    closable.close()
                except Exception:   # closing a dead connection may raise anything
                    pass

    def close(self) -> None:
        """Close the connection (the next use opens a new one)."""
        with self._lock:
            self._drop_locked()

    # -- commands -----------------------------------------------------------

    def run(self, command: str, timeout: float | None, idempotent: bool,
            loan: Loan | None = None) -> CommandResult:
        """Run ``command`` as sent (already wrapped) in a session of its own, at most
        ``max_sessions`` at once; an idempotent command is re-run on a broken
        connection, another raises CommandInterrupted."""
        deadline = time.monotonic() + self.settings.reconnect_timeout
        refusals = 0
        with self._sessions:
            while True:
                client = self.client()
                try:
                    transport = client.get_transport()
                    if transport is None:
                        # another thread closed this client since client() returned it:
                        # a broken connection, re-opened below
                        raise EOFError('connection closed')
                    channel = transport.open_session(timeout=self.settings.connect_timeout)
                except _CONNECTION_ERRORS as exc:
                    # nothing ran: safe to retry whatever the command is
                    if time.monotonic() > deadline:
                        raise TransportError(f'cannot open an SSH session: {exc}') from None
                    transport = client.get_transport()
                    if isinstance(exc, paramiko.SSHException) and transport is not None \
                            and transport.is_active():
                        # the server refused one more session (its MaxSessions counts
                        # sessions still closing): wait for one to end, keep the
                        # connection. (paramiko may report this as a ChannelException
                        # or, when threads race for the saved error, a bare SSHException.)
                        refusals += 1
                        time.sleep(min(0.05 * 2 ** refusals, 1.0))
                    else:
                        self.broken(client)
                    continue
                try:
                    with LentKeys(channel.get_transport(), loan) as lent:
                        if loan is not None:
                            lent.forward(channel)
                        # nothing is ever sent on stdin: a command that reads it gets
                        # end-of-file at once, as the local transport's does. (Not by
                        # sending EOF on the channel: paramiko may send it after its
                        # close, and sshd then ends the whole connection.)
                        channel.exec_command('exec </dev/null; ' + command)
                        return self._collect(channel, timeout, command)
                except _CONNECTION_ERRORS as exc:
                    self.broken(client)
                    if not idempotent:
                        raise CommandInterrupted(
                            f'connection lost while running a command that must not be '
                            f'repeated ({exc or type(exc).__name__})') from None
                    if time.monotonic() > deadline:
                        raise TransportError(f'connection lost repeatedly: {exc}') from None
                    log.warning('connection lost while running a command (%s); re-running it',
                                exc or type(exc).__name__)
                finally:
                    channel.close()

    @staticmethod
    def _collect(channel: paramiko.Channel, timeout: float | None,
                 command: str) -> CommandResult:
        """Read stdout and stderr together (a full window on one would stall
        the other) until the server's EOF, then take the exit status."""
        out: list[bytes] = []
        err: list[bytes] = []
        end = None if timeout is None else time.monotonic() + timeout

        def expired() -> bool:
            return end is not None and time.monotonic() > end

        while True:
            got = False
            while channel.recv_ready():
                out.append(channel.recv(65536))
                got = True
            while channel.recv_stderr_ready():
                err.append(channel.recv_stderr(65536))
                got = True
            if got:
                continue
            if channel.eof_received or channel.closed:
                break
            if expired():
                raise TransportError(f'command timed out after {timeout} s: {command[:200]}')
            # the channel's pipe becomes readable on data, EOF or close
            select.select([channel], [], [], 0.2)
        while not channel.exit_status_ready():
            if channel.closed and not channel.get_transport().is_active():
                raise EOFError('connection closed before the exit status arrived')
            if expired():
                raise TransportError(f'command timed out after {timeout} s: {command[:200]}')
            channel.status_event.wait(0.2)
        status = channel.recv_exit_status()
        if status == -1 and _connection_ending(channel.get_transport()):
            raise EOFError('connection closed before the exit status arrived')
        return CommandResult(status, b''.join(out).decode('utf-8', 'replace'),
                             b''.join(err).decode('utf-8', 'replace'))

    def server_key(self) -> paramiko.PKey:
        """The server's host key, as verified when the connection was opened."""
        transport = self.client().get_transport()
        if transport is None:
            # another thread closed the connection since client() returned it
            raise TransportError('the SSH connection closed before its host key was read')
        return transport.get_remote_server_key()

    # -- files --------------------------------------------------------------

    def open_sftp(self) -> paramiko.SFTPClient:
        """A new SFTP session of its own on the shared connection, for long
        copies that must not hold up the shared session; the caller closes it."""
        client = self.client()
        try:
            return client.open_sftp()
        except _CONNECTION_ERRORS as exc:
            self.broken(client)
            raise TransportError(f'cannot open an SFTP session: {exc}') from None

    def sftp_call(self, fn: Callable[[paramiko.SFTPClient], _T]) -> _T:
        """Run ``fn(sftp)``; file operations are idempotent, so retry once on a
        broken connection."""
        for attempt in (1, 2):
            client = self.client()
            try:
                # one request at a time: concurrent requests on one paramiko
                # SFTPClient deadlock (each thread may read the other's reply)
                with self._sftp_lock:
                    if self._sftp is None:
                        self._sftp = client.open_sftp()
                    return fn(self._sftp)
            except (paramiko.SSHException, EOFError, socket.timeout, ConnectionError) as exc:
                self.broken(client)
                if attempt == 2:
                    raise TransportError(f'SFTP failed: {exc}') from None
            except FileNotFoundError:
                raise
            except OSError as exc:
                # a status from the SFTP server (no such file, permission denied)
                raise TransportError(f'SFTP: {exc}') from None
        raise AssertionError('not reached: the second attempt returns or raises')


def _connection_ending(transport: paramiko.Transport, wait: float = 1.0) -> bool:
    """Whether a session closed without an exit status was closed by the end of
    its connection: paramiko closes a dead connection's sessions first and marks the
    connection inactive a moment later, so the answer is awaited briefly: the
    connection's thread ends once it is marked inactive. (A command killed by a
    signal also leaves no exit status, on a live connection.)"""
    if transport.is_active():
        transport.join(wait)
    return not transport.is_active()


_POOL: dict[tuple, SshConnection] = {}
_POOL_LOCK = threading.Lock()


def shared_connection(settings: SshSettings) -> SshConnection:
    """The process-wide connection for ``settings.pool_key``, created on first
    use: settings that differ in anything that matters to trust or
    authentication never share a connection, even for the same login."""
    with _POOL_LOCK:
        conn = _POOL.get(settings.pool_key)
        if conn is None:
            conn = _POOL[settings.pool_key] = SshConnection(settings)
        return conn


def close_all() -> None:
    """Close every shared connection (at process end or between tests)."""
    with _POOL_LOCK:
        conns = list(_POOL.values())
        _POOL.clear()
    for conn in conns:
        conn.close()


def _sftp_path(path: str) -> str:
    # SFTP resolves relative paths from the login directory; '~' is not expanded
    if path == '~':
        return '.'
    if path.startswith('~/'):
        return path[2:]
    if path.startswith('$HOME/'):
        return path[6:]
    return path


class SshTransport(Transport):
    """Commands and files on a remote host over the shared SSH connection."""

    def __init__(self, settings: SshSettings | dict[str, Any]) -> None:
        """``settings``, or a blueprint ``credentials`` mapping to check into them."""
        if isinstance(settings, dict):
            settings = SshSettings.from_credentials(settings)
        self.settings = settings
        self.login_shell = settings.login_shell
        self.connection = shared_connection(settings)

    def __repr__(self) -> str:
        s = self.settings
        return f'SshTransport({s.user}@{s.host}:{s.port})'

    def with_options(self, **changes: Any) -> SshTransport:
        """A transport to the same server with some SshSettings fields changed (it
        shares a connection only if they leave the pool key as it is)."""
        return SshTransport(replace(self.settings, **changes))

    def connect(self) -> None:
        """Open (or check) the connection now: a login check."""
        self.connection.client()

    def run(self, command: str, timeout: float | None = None, idempotent: bool = True,
            check: bool = False) -> CommandResult:
        """As Transport.run, on the shared connection."""
        result = self.connection.run(self.wrap(command), timeout, idempotent)
        return self.checked(command, result) if check else result

    def run_lending_keys(self, command: str, loan: Loan,
                         timeout: float | None = None) -> CommandResult:
        """Run ``command`` with SSH agent forwarding, answering its agent
        requests from memory with the keys of ``loan`` (they never reach the
        host's disk), for logins to the loan's host key and user only, until
        the command ends."""
        return self.connection.run(self.wrap(command), timeout, True, loan=loan)

    def write_file(self, path: str, data: bytes | str, mode: int = 0o600) -> None:
        """As Transport.write_file, over SFTP: a temporary file, then a rename."""
        if isinstance(data, str):
            data = data.encode('utf-8')
        target = _sftp_path(path)
        tmp = posixpath.join(posixpath.dirname(target),
                             f'.croupier-{secrets.token_hex(6)}.tmp')

        def write(sftp: paramiko.SFTPClient) -> None:
            try:
                with sftp.open(tmp, 'wb') as fh:
                    fh.write(data)
                sftp.chmod(tmp, mode)
                sftp.posix_rename(tmp, target)
            except BaseException as exc:
                try:
                    sftp.remove(tmp)
                except (OSError, paramiko.SSHException):
                    pass
                if isinstance(exc, FileNotFoundError):
                    # a missing folder: a write that cannot be done, as any other
                    raise TransportError(f'SFTP: cannot write {path}: {exc}') from None
                raise
        self.connection.sftp_call(write)

    def read_file(self, path: str) -> bytes:
        """As Transport.read_file, over SFTP."""
        def read(sftp: paramiko.SFTPClient) -> bytes:
            with sftp.open(_sftp_path(path), 'rb') as fh:
                return fh.read()
        return self.connection.sftp_call(read)
