"""The keys Croupier lends through agent forwarding sign only a login to the
host key and account they were lent for, checked with the session binding
that the bed's own OpenSSH client sends (session-bind@openssh.com)."""

import logging
import subprocess
import time
import uuid

import pytest

from croupier_plugin.core.transport.agent import Loan
from croupier_plugin.core.transport.ssh import load_private_key

pytestmark = pytest.mark.bed

# the hop a transfer makes, with the host key check left to the agent's binding
HOP = ('ssh -p {port} -o BatchMode=yes -o StrictHostKeyChecking=no '
       '-o UserKnownHostsFile=/dev/null -o GlobalKnownHostsFile=/dev/null '
       '-o PasswordAuthentication=no -o LogLevel=ERROR')


@pytest.fixture
def here(ssh):
    """The bed's first account (crtest), where the borrowing commands run."""
    return ssh.inner


@pytest.fixture
def peer_key(bed):
    """The second account's (crtest2's) private key: the one lent."""
    with open(bed['peer']['key']) as fh:
        return load_private_key(fh.read())


@pytest.fixture
def other_host_key(tmp_path):
    """A host key the bed's sshd does not have."""
    path = tmp_path / 'other'
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(path)],
                   check=True)
    return load_private_key(path.read_text())


def hop(bed, command='whoami', forward=False):
    """A login of crtest2 on the bed's sshd, run from crtest's account."""
    options = HOP.format(port=bed['port']) + (' -A' if forward else '')
    return f"{options} {bed['peer']['user']}@{bed['host']} {command}"


def test_a_login_to_the_lent_host_and_account_is_signed(bed, here, peer_key):
    loan = Loan((peer_key,), here.connection.server_key(), bed['peer']['user'])
    result = here.run_lending_keys(hop(bed), loan, timeout=30)
    assert (result.exit_code, result.stdout) == (0, f"{bed['peer']['user']}\n"), result.stderr


def test_a_signature_on_an_unbound_agent_connection_is_refused(bed, here, peer_key, caplog):
    loan = Loan((peer_key,), here.connection.server_key(), bed['peer']['user'])
    name = f'.croupier-agent-test-{uuid.uuid4().hex[:8]}'
    here.write_file(f'{name}.pub', f'{peer_key.get_name()} {peer_key.get_base64()}\n')
    here.write_file(f'{name}.txt', 'any data\n')
    try:
        with caplog.at_level(logging.WARNING, logger='croupier.agent'):
            result = here.run_lending_keys(
                f'ssh-add -l && ssh-keygen -Y sign -f {name}.pub -n file {name}.txt',
                loan, timeout=30)
        # the agent was reachable and listed the key, and refused to sign with it
        assert 'croupier (ED25519)' in result.stdout
        assert result.exit_code != 0
        assert 'agent refused operation' in result.stderr
        assert 'not bound to an SSH session' in caplog.text
        assert here.run(f'test -e {name}.txt.sig').exit_code == 1
    finally:
        here.run(f'rm -f -- {name}.pub {name}.txt {name}.txt.sig')


def test_a_login_to_another_host_key_is_refused(bed, here, peer_key, other_host_key):
    # lent for a host whose key is not the one this sshd proves it holds: the
    # agent connection bound to this sshd is not even offered the key
    loan = Loan((peer_key,), other_host_key, bed['peer']['user'])
    result = here.run_lending_keys(f'ssh-add -l; {hop(bed)}', loan, timeout=30)
    assert result.exit_code == 255 and bed['peer']['user'] not in result.stdout
    assert 'croupier (ED25519)' in result.stdout      # unbound, the agent lists it
    assert 'Permission denied' in result.stderr


def test_a_login_as_another_account_is_refused(bed, here, peer_key, caplog):
    # lent for an account other than the one the hop logs in to
    loan = Loan((peer_key,), here.connection.server_key(), 'someone-else')
    with caplog.at_level(logging.WARNING, logger='croupier.agent'):
        result = here.run_lending_keys(hop(bed), loan, timeout=30)
    assert result.exit_code == 255 and result.stdout == ''
    assert f"refused to sign a login as {bed['peer']['user']}" in caplog.text


def test_a_login_relayed_through_a_further_forwarding_is_refused(bed, here, peer_key,
                                                                 caplog):
    loan = Loan((peer_key,), here.connection.server_key(), bed['peer']['user'])
    with caplog.at_level(logging.WARNING, logger='croupier.agent'):
        result = here.run_lending_keys(
            hop(bed, f'"{hop(bed)}; echo inner=\\$?"', forward=True), loan, timeout=30)
    # the first hop logs in; the second, through the forwarded agent, does not
    assert result.exit_code == 0, result.stderr
    assert result.stdout == 'inner=255\n'
    assert 'forwards the agent further' in caplog.text


def test_nothing_can_use_the_agent_once_the_command_ended(bed, here, peer_key):
    loan = Loan((peer_key,), here.connection.server_key(), bed['peer']['user'])
    name = f'.croupier-agent-late-{uuid.uuid4().hex[:8]}'
    # a process left behind by the command tries the agent a second later
    late = (f"setsid sh -c 'sleep 1; {hop(bed)} > {name} 2>&1; echo rc=$? >> {name}' "
            f'< /dev/null > /dev/null 2>&1 &')
    try:
        assert here.run_lending_keys(late, loan, timeout=30).exit_code == 0
        deadline = time.monotonic() + 20
        while 'rc=' not in here.run(f'cat {name} 2>/dev/null').stdout:
            assert time.monotonic() < deadline, 'the late login never finished'
            time.sleep(0.3)
        output = here.run(f'cat {name}').stdout
        assert 'rc=255' in output and bed['peer']['user'] + '\n' not in output
    finally:
        here.run(f'rm -f -- {name}')
