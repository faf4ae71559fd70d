"""Lend private keys to a command on a remote host, as an SSH agent would.

Some transfers need one host to log in to another (rsync from host A to host
B over SSH). Croupier never writes B's key on A: it runs the command on A with
agent forwarding, and answers A's agent requests itself, from memory. A can
ask for signatures while the command runs; it never sees the key.

A forwarded agent can be used by any process on A that reaches its socket,
so each loan is bound to one destination: the host key of B that Croupier
verified, and B's login. OpenSSH's ``ssh`` (8.9 and later) opens each agent
connection with a ``session-bind@openssh.com`` message: B's host key, the
session identifier of its connection to B and B's signature of that
identifier. Croupier checks that signature, and then signs only a
public-key login request (RFC 4252, section 7) for that very session, for
the lent user, with a key lent for that host key. It refuses unbound
connections, a second binding, bindings made for further forwarding
(``is_forwarding``), and any other data to sign. The loan ends the moment
the command ends: its keys are withdrawn and the agent connections it
served are closed.

The agent protocol (draft-miller-ssh-agent): each message is a uint32 length,
a type byte and a payload. Only listing identities, signing and the
session-bind extension are answered; everything else (adding keys, locking,
other extensions) is refused.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import paramiko

log = logging.getLogger('croupier.agent')

FAILURE = 5
SUCCESS = 6
REQUEST_IDENTITIES = 11
IDENTITIES_ANSWER = 12
SIGN_REQUEST = 13
SIGN_RESPONSE = 14
EXTENSION = 27
RSA_SHA2_256 = 2
RSA_SHA2_512 = 4
SESSION_BIND = 'session-bind@openssh.com'
USERAUTH_REQUEST = 50           # SSH_MSG_USERAUTH_REQUEST, RFC 4252
PUBLICKEY_METHODS = ('publickey', 'publickey-hostbound-v00@openssh.com')


@dataclass(frozen=True)
class Loan:
    """Private keys lent for logging in as ``user`` to the host whose key is
    ``host_key`` (the key Croupier itself verified for that host)."""
    keys: tuple[paramiko.PKey | None, ...]      # a key that could not be loaded is None
    host_key: paramiko.PKey
    user: str


# (key blob, host key blob, user): what one lent key may sign for
Slot = tuple[bytes, bytes, str]

# paramiko Transport -> {(key blob, host key blob, user): [key, loans using it]}
_LENT: dict[paramiko.Transport, dict[Slot, list[Any]]] = {}
# paramiko Transport -> the agent connections being served on it
_SESSIONS: dict[paramiko.Transport, set[AgentSession]] = {}
_LENT_LOCK = threading.Lock()


class AgentSession:
    """One forwarded agent connection and the SSH session it is bound to."""

    def __init__(self, transport: paramiko.Transport, channel: paramiko.Channel) -> None:
        self.transport = transport
        self.channel = channel
        self.host_key: bytes | None = None      # blob of the bound host key
        self.session_id: bytes | None = None
        self.forwarding = False

    def close(self) -> None:
        """End this agent connection (the remote side sees its socket close)."""
        try:
            self.channel.close()
        except Exception:   # closing an already dead channel may raise anything
            pass


def _read_exact(channel: paramiko.Channel, size: int) -> bytes | None:
    """Exactly ``size`` bytes from ``channel``, or None if it closed first."""
    data = b''
    while len(data) < size:
        chunk = channel.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _string(data: bytes) -> bytes:
    """``data`` as an SSH string: its uint32 length, then itself."""
    return struct.pack('>I', len(data)) + data


def _fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return 'SHA256:' + base64.b64encode(digest).decode().rstrip('=')


def _public_key(blob: bytes) -> paramiko.PKey | None:
    """The public key in an SSH key blob, or None if it is not one paramiko knows."""
    try:
        kind = paramiko.Message(blob).get_text()
        return paramiko.PKey.from_type_string(kind, blob)
    except Exception:   # malformed blobs raise several types
        return None


def _bind(session: AgentSession, msg: paramiko.Message) -> bytes:
    """Handle session-bind@openssh.com: bind ``session`` once, to a host key
    whose signature of the session identifier checks out."""
    host_blob = msg.get_binary()
    session_id = msg.get_binary()
    signature = msg.get_binary()
    forwarding = msg.get_boolean()
    if session.host_key is not None:
        log.warning('agent: refused a second session binding on one agent connection')
        return bytes([FAILURE])
    host_key = _public_key(host_blob)
    if host_key is None or not session_id or \
            not host_key.verify_ssh_sig(session_id, paramiko.Message(signature)):
        log.warning('agent: refused a session binding whose host key signature does not '
                    'verify')
        return bytes([FAILURE])
    session.host_key, session.session_id, session.forwarding = host_blob, session_id, forwarding
    log.debug('agent connection bound to host key %s %s%s', host_key.get_name(),
              _fingerprint(host_key), ' (for forwarding)' if forwarding else '')
    return bytes([SUCCESS])


def _login_request(data: bytes) -> tuple[bytes, str, bytes, bytes | None] | None:
    """(session id, user, key blob, host key blob or None) of a public-key
    login request to sign, or None if ``data`` is anything else."""
    try:
        msg = paramiko.Message(data)
        session_id = msg.get_binary()
        if msg.get_byte()[0] != USERAUTH_REQUEST:
            return None
        user = msg.get_text()
        service = msg.get_text()
        method = msg.get_text()
        if service != 'ssh-connection' or method not in PUBLICKEY_METHODS or \
                not msg.get_boolean():
            return None
        msg.get_text()                  # the signature algorithm
        key_blob = msg.get_binary()
        host_blob = msg.get_binary() if method == PUBLICKEY_METHODS[1] else None
        if msg.get_remainder():
            return None
        return session_id, user, key_blob, host_blob
    except Exception:   # truncated or malformed data raises several types
        return None


def _sign(session: AgentSession, lent: Mapping[Slot, paramiko.PKey],
          msg: paramiko.Message) -> bytes:
    """Handle a signature request: only a login to the bound host and session,
    as the lent user, with a key lent for that host."""
    blob = msg.get_binary()
    data = msg.get_binary()
    flags = msg.get_int()
    if session.host_key is None:
        log.warning('agent: refused to sign on an agent connection not bound to an SSH '
                    'session (session-bind@openssh.com)')
        return bytes([FAILURE])
    if session.forwarding:
        log.warning('agent: refused to sign for a connection that forwards the agent further')
        return bytes([FAILURE])
    request = _login_request(data)
    if request is None:
        log.warning('agent: refused to sign data that is not an SSH public-key login')
        return bytes([FAILURE])
    session_id, user, key_blob, host_blob = request
    if session_id != session.session_id or key_blob != blob or \
            (host_blob is not None and host_blob != session.host_key):
        log.warning('agent: refused to sign a login that is not for the bound session')
        return bytes([FAILURE])
    key = lent.get((blob, session.host_key, user))
    if key is None:
        log.warning('agent: refused to sign a login as %s to a host or with a key that '
                    'was not lent for it', user)
        return bytes([FAILURE])
    algorithm = None
    if key.get_name() == 'ssh-rsa':
        algorithm = ('rsa-sha2-512' if flags & RSA_SHA2_512 else
                     'rsa-sha2-256' if flags & RSA_SHA2_256 else 'ssh-rsa')
    signature = key.sign_ssh_data(data, algorithm) if algorithm else key.sign_ssh_data(data)
    return bytes([SIGN_RESPONSE]) + _string(signature.asbytes())


def answer(session: AgentSession, lent: Mapping[Slot, paramiko.PKey], request: bytes) -> bytes:
    """The agent's reply (without its length) to one request message, given
    the keys ``lent`` on the session's connection ({(key blob, host key blob,
    user): key})."""
    msg = paramiko.Message(request)
    kind = msg.get_byte()[0]
    if kind == REQUEST_IDENTITIES:
        blobs = sorted({blob for blob, host, _ in lent
                        if session.host_key is None or host == session.host_key})
        body = struct.pack('>BI', IDENTITIES_ANSWER, len(blobs))
        for blob in blobs:
            body += _string(blob) + _string(b'croupier')
        return body
    if kind == SIGN_REQUEST:
        return _sign(session, lent, msg)
    if kind == EXTENSION and msg.get_text() == SESSION_BIND:
        return _bind(session, msg)
    return bytes([FAILURE])


def _serve(session: AgentSession) -> None:
    """Answer one forwarded agent connection until either side closes it."""
    channel = session.channel
    try:
        while True:
            head = _read_exact(channel, 4)
            if head is None:
                return
            (size,) = struct.unpack('>I', head)
            if size > 256 * 1024:
                return
            request = _read_exact(channel, size)
            if request is None:
                return
            with _LENT_LOCK:
                lent = {slot: entry[0]
                        for slot, entry in _LENT.get(session.transport, {}).items()}
            try:
                reply = answer(session, lent, request)
            except Exception:   # a malformed request: refuse it, keep serving
                reply = bytes([FAILURE])
            channel.sendall(struct.pack('>I', len(reply)) + reply)
    except (OSError, EOFError, paramiko.SSHException) as exc:
        log.debug('forwarded agent connection ended: %s', exc)
    finally:
        with _LENT_LOCK:
            _SESSIONS.get(session.transport, set()).discard(session)
        session.close()


def _accept(transport: paramiko.Transport, channel: paramiko.Channel) -> None:
    """A forwarded agent connection arrived: serve it while a loan is open on
    ``transport``, else close it at once."""
    session = AgentSession(transport, channel)
    with _LENT_LOCK:
        if transport not in _LENT:
            session.close()
            return
        _SESSIONS.setdefault(transport, set()).add(session)
    threading.Thread(target=_serve, args=(session,), daemon=True,
                     name='croupier-agent').start()


class LentKeys:
    """A loan of keys to commands run over ``transport`` while the context is open.

    Several commands on one connection may borrow at once; the server cannot
    say which command a forwarded agent connection belongs to, so each agent
    connection is answered with the keys lent on that connection, for the
    host key it is bound to.
    """

    def __init__(self, transport: paramiko.Transport, loan: Loan | None) -> None:
        self.transport = transport
        self.slots: list[tuple[Slot, paramiko.PKey]] = []
        if loan is not None:
            host = loan.host_key.asbytes()
            self.slots = [((key.asbytes(), host, loan.user), key)
                          for key in loan.keys if key is not None]

    def __enter__(self) -> LentKeys:
        with _LENT_LOCK:
            lent = _LENT.setdefault(self.transport, {})
            for slot, key in self.slots:
                entry = lent.setdefault(slot, [key, 0])
                entry[1] += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with _LENT_LOCK:
            lent = _LENT.get(self.transport, {})
            for slot, _ in self.slots:
                entry = lent.get(slot)
                if entry is not None:
                    entry[1] -= 1
                    if entry[1] <= 0:
                        del lent[slot]
            hosts = {host for _, host, _ in lent}
            if not lent:
                _LENT.pop(self.transport, None)
            # close what this loan may have served: connections bound to a host
            # no loan is open for any more, and unbound ones once no loan is left
            ended = [s for s in _SESSIONS.get(self.transport, ())
                     if (s.host_key is None and not lent) or
                     (s.host_key is not None and s.host_key not in hosts)]
            for session in ended:
                _SESSIONS[self.transport].discard(session)
            if not _SESSIONS.get(self.transport):
                _SESSIONS.pop(self.transport, None)
        for session in ended:
            session.close()

    def forward(self, channel: paramiko.Channel) -> None:
        """Ask the server to forward agent requests of ``channel``'s command to us."""
        transport = self.transport
        channel.request_forward_agent(lambda chan: _accept(transport, chan))
