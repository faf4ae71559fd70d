"""Lend private keys to a command on a remote host, as an SSH agent would.

Some transfers need one host to log in to another (rsync from host A to host
B over SSH). Croupier never writes B's key on A: it runs the command on A with
agent forwarding, and answers A's agent requests itself, from memory. A can
ask for signatures while the command runs; it never sees the key.

The agent protocol (draft-miller-ssh-agent): each message is a uint32 length,
a type byte and a payload. Only listing identities and signing are answered;
everything else (adding keys, locking, extensions) is refused.
"""

import logging
import struct
import threading

import paramiko

log = logging.getLogger('croupier.agent')

FAILURE = 5
REQUEST_IDENTITIES = 11
IDENTITIES_ANSWER = 12
SIGN_REQUEST = 13
SIGN_RESPONSE = 14
RSA_SHA2_256 = 2
RSA_SHA2_512 = 4

_LENT = {}                  # paramiko Transport -> {key blob: [key, users]}
_LENT_LOCK = threading.Lock()


def _read_exact(channel, size):
    data = b''
    while len(data) < size:
        chunk = channel.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _string(data):
    return struct.pack('>I', len(data)) + data


def answer(keys, request):
    """The agent's reply (without its length) to one request message."""
    msg = paramiko.Message(request)
    kind = msg.get_byte()[0]
    if kind == REQUEST_IDENTITIES:
        body = struct.pack('>BI', IDENTITIES_ANSWER, len(keys))
        for blob in keys:
            body += _string(blob) + _string(b'croupier')
        return body
    if kind == SIGN_REQUEST:
        blob = msg.get_binary()
        data = msg.get_binary()
        flags = msg.get_int()
        key = keys.get(blob)
        if key is None:
            return bytes([FAILURE])
        algorithm = None
        if key.get_name() == 'ssh-rsa':
            algorithm = ('rsa-sha2-512' if flags & RSA_SHA2_512 else
                         'rsa-sha2-256' if flags & RSA_SHA2_256 else 'ssh-rsa')
        signature = key.sign_ssh_data(data, algorithm) if algorithm else key.sign_ssh_data(data)
        return bytes([SIGN_RESPONSE]) + _string(signature.asbytes())
    return bytes([FAILURE])


def _serve(transport, channel):
    """Answer one forwarded agent connection until the remote side closes it."""
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
                keys = {blob: entry[0] for blob, entry in _LENT.get(transport, {}).items()}
            reply = answer(keys, request)
            channel.sendall(struct.pack('>I', len(reply)) + reply)
    except (OSError, EOFError, paramiko.SSHException) as exc:
        log.debug('forwarded agent connection ended: %s', exc)
    finally:
        channel.close()


class LentKeys:
    """Keys lent to commands run over ``transport`` while the context is open.

    Several commands on one connection may borrow at once; the server cannot
    say which command a forwarded agent connection belongs to, so each is
    answered with the keys lent on that connection at that moment.
    """

    def __init__(self, transport, keys):
        self.transport = transport
        self.keys = [k for k in keys if k is not None]

    def __enter__(self):
        with _LENT_LOCK:
            lent = _LENT.setdefault(self.transport, {})
            for key in self.keys:
                entry = lent.setdefault(key.asbytes(), [key, 0])
                entry[1] += 1
        return self

    def __exit__(self, *exc):
        with _LENT_LOCK:
            lent = _LENT.get(self.transport, {})
            for key in self.keys:
                entry = lent.get(key.asbytes())
                if entry is not None:
                    entry[1] -= 1
                    if entry[1] <= 0:
                        del lent[key.asbytes()]
            if not lent:
                _LENT.pop(self.transport, None)

    def forward(self, channel):
        """Ask the server to forward agent requests of ``channel``'s command to us."""
        transport = self.transport
        channel.request_forward_agent(
            lambda chan: threading.Thread(target=_serve, args=(transport, chan), daemon=True,
                                          name='croupier-agent').start())
