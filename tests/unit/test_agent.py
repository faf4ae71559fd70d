"""The lending agent's refusals, message by message (the bed tests drive it
with OpenSSH's own client: tests/integration/test_agent_binding.py)."""

import os
import struct

import paramiko
import pytest

from croupier_plugin.core.transport import agent

USER = 'peer'


def _string(data: bytes) -> bytes:
    return struct.pack('>I', len(data)) + data


def bind_request(host_key, session_id, signer=None, forwarding=False) -> bytes:
    """session-bind@openssh.com for ``session_id``, signed by ``signer``
    (the host key itself unless another key is given)."""
    signature = (signer or host_key).sign_ssh_data(session_id).asbytes()
    return bytes([agent.EXTENSION]) + _string(agent.SESSION_BIND.encode()) + \
        _string(host_key.asbytes()) + _string(session_id) + _string(signature) + \
        (b'\1' if forwarding else b'\0')


def login(session_id, key, user=USER, method='publickey', host_key=None, tail=b'') -> bytes:
    """What an SSH client signs to log in with ``key`` (RFC 4252, section 7)."""
    data = _string(session_id) + bytes([50]) + _string(user.encode()) + \
        _string(b'ssh-connection') + _string(method.encode()) + b'\1' + \
        _string(key.get_name().encode()) + _string(key.asbytes())
    if host_key is not None:
        data += _string(host_key.asbytes())
    return data + tail


def sign_request(key, data) -> bytes:
    return bytes([agent.SIGN_REQUEST]) + _string(key.asbytes()) + _string(data) + \
        struct.pack('>I', 0)


@pytest.fixture(scope='module')
def keys():
    """(lent key, the destination's host key, another host's key)."""
    return paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate(), \
        paramiko.ECDSAKey.generate()


@pytest.fixture
def lent(keys):
    key, host, _ = keys
    return {(key.asbytes(), host.asbytes(), USER): key}


def signed(reply: bytes) -> bool:
    return reply[0] == agent.SIGN_RESPONSE


def test_a_bound_login_is_signed_and_verifies(keys, lent):
    key, host, _ = keys
    session_id = os.urandom(32)
    session = agent.AgentSession(None, None)
    assert agent.answer(session, lent, bind_request(host, session_id)) == bytes([agent.SUCCESS])
    data = login(session_id, key)
    reply = paramiko.Message(agent.answer(session, lent, sign_request(key, data)))
    assert reply.get_byte()[0] == agent.SIGN_RESPONSE
    assert key.verify_ssh_sig(data, paramiko.Message(reply.get_binary()))
    hostbound = login(session_id, key, method='publickey-hostbound-v00@openssh.com',
                      host_key=host)
    assert signed(agent.answer(session, lent, sign_request(key, hostbound)))


def test_an_unbound_connection_gets_no_signature(keys, lent):
    key, _, _ = keys
    session = agent.AgentSession(None, None)
    assert not signed(agent.answer(session, lent, sign_request(key, login(b'sid', key))))


def test_a_binding_not_signed_by_its_host_key_is_refused(keys, lent):
    key, host, other = keys
    session = agent.AgentSession(None, None)
    assert agent.answer(session, lent, bind_request(host, b'sid', signer=other)) == \
        bytes([agent.FAILURE])
    assert not signed(agent.answer(session, lent, sign_request(key, login(b'sid', key))))


def test_a_second_binding_is_refused(keys, lent):
    key, host, other = keys
    session = agent.AgentSession(None, None)
    assert agent.answer(session, lent, bind_request(other, b'first')) == bytes([agent.SUCCESS])
    assert agent.answer(session, lent, bind_request(host, b'second')) == bytes([agent.FAILURE])
    assert not signed(agent.answer(session, lent, sign_request(key, login(b'second', key))))


def test_a_connection_bound_elsewhere_is_not_even_shown_the_key(keys, lent):
    key, _, other = keys
    session = agent.AgentSession(None, None)
    agent.answer(session, lent, bind_request(other, b'sid'))
    listing = paramiko.Message(agent.answer(session, lent, bytes([agent.REQUEST_IDENTITIES])))
    assert listing.get_byte()[0] == agent.IDENTITIES_ANSWER and listing.get_int() == 0
    assert not signed(agent.answer(session, lent, sign_request(key, login(b'sid', key))))


@pytest.mark.parametrize('case', ['forwarding', 'other session', 'other user', 'not a login',
                                  'trailing bytes', 'other host in hostbound login',
                                  'other key in the login'])
def test_a_bound_connection_signs_nothing_else(keys, lent, case):
    key, host, other = keys
    session = agent.AgentSession(None, None)
    agent.answer(session, lent, bind_request(host, b'sid', forwarding=case == 'forwarding'))
    data = {
        'forwarding': login(b'sid', key),
        'other session': login(b'another', key),
        'other user': login(b'sid', key, user='root'),
        'not a login': _string(b'sid') + b'anything at all',
        'trailing bytes': login(b'sid', key, tail=b'x'),
        'other host in hostbound login': login(
            b'sid', key, method='publickey-hostbound-v00@openssh.com', host_key=other),
        'other key in the login': login(b'sid', other),
    }[case]
    assert not signed(agent.answer(session, lent, sign_request(key, data)))
