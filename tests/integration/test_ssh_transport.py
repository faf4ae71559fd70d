"""The SSH transport against the bed's real sshd."""

import logging
import os
import socket
import subprocess
import threading
import time
import uuid

import pytest

from croupier_plugin.core.errors import (AuthenticationError, CommandInterrupted, ConfigError,
                                         HostKeyError, TransportError)
from croupier_plugin.core.transport import SshSettings, SshTransport
from croupier_plugin.core.transport.ssh import SshConnection, shared_connection

pytestmark = pytest.mark.bed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BED = os.path.join(ROOT, 'tests', 'bed', 'bed.sh')


def read(path):
    with open(path) as fh:
        return fh.read()


def settings(bed, **kw):
    base = dict(host=bed['host'], port=bed['port'], user=bed['user'],
                known_hosts=bed['known_hosts'], reconnect_timeout=5, connect_timeout=5)
    base.update(kw)
    return SshSettings(**base)


def whoami(conn):
    return conn.run('whoami', None, True).stdout.strip()


def accepted_logins(bed):
    # counted from sshd's own log (LogLevel VERBOSE)
    log = read(bed["sshd_log"])
    return log.count("Accepted publickey for") + log.count("Accepted password for")


@pytest.mark.parametrize('kind', ['ed25519', 'ecdsa', 'rsa'])
def test_keys_from_file_and_from_string(bed, kind):
    passphrase = bed['keys']['ecdsa_passphrase'] if kind == 'ecdsa' else None
    path = bed['keys'][kind]
    from_file = SshConnection(settings(bed, private_key_file=path,
                                       private_key_password=passphrase))
    from_text = SshConnection(settings(bed, private_key=read(path),
                                       private_key_password=passphrase))
    try:
        assert whoami(from_file) == whoami(from_text) == bed['user']
    finally:
        from_file.close()
        from_text.close()


def test_encrypted_key_needs_its_passphrase(bed):
    with pytest.raises(ConfigError) as err:
        SshSettings.from_credentials({'host': 'h', 'user': 'u',
                                      'private_key': read(bed['keys']['ecdsa'])})
    assert 'credentials.private_key_password' in str(err.value)
    with pytest.raises(ConfigError) as err:
        SshSettings.from_credentials({'host': 'h', 'user': 'u',
                                      'private_key': read(bed['keys']['ecdsa']),
                                      'private_key_password': 'wrong-passphrase'})
    assert 'wrong-passphrase' not in str(err.value)
    assert 'BEGIN' not in str(err.value)


def test_password_login_and_refusal(bed):
    good = SshConnection(settings(bed, password=bed['password']))
    try:
        assert whoami(good) == bed['user']
    finally:
        good.close()
    bad = SshConnection(settings(bed, password='not-the-password'))
    start = time.monotonic()
    with pytest.raises(AuthenticationError) as err:
        bad.client()
    assert time.monotonic() - start < 5          # refused credentials are not retried
    assert 'not-the-password' not in str(err.value)


def test_unknown_host_key_is_refused(bed, tmp_path):
    empty = tmp_path / 'known_hosts'
    empty.write_text('')
    conn = SshConnection(settings(bed, private_key_file=bed['keys']['ed25519'],
                                  known_hosts=str(empty)))
    with pytest.raises(HostKeyError) as err:
        conn.client()
    assert 'is unknown' in str(err.value)


def test_changed_host_key_is_refused(bed, tmp_path):
    other = tmp_path / 'other'
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(other)], check=True)
    wrong = tmp_path / 'known_hosts'
    wrong.write_text(f"[{bed['host']}]:{bed['port']} {read(str(other) + '.pub')}")
    conn = SshConnection(settings(bed, private_key_file=bed['keys']['ed25519'],
                                  known_hosts=str(wrong)))
    with pytest.raises(HostKeyError) as err:
        conn.client()
    assert 'does not match' in str(err.value)
    pinned_wrong = SshConnection(settings(bed, private_key_file=bed['keys']['ed25519'],
                                          host_key=read(str(other) + '.pub')))
    with pytest.raises(HostKeyError):
        pinned_wrong.client()


def test_pinned_host_key(bed):
    conn = SshConnection(settings(bed, private_key_file=bed['keys']['ed25519'],
                                  known_hosts=None, host_key=bed['host_public_key']))
    try:
        assert whoami(conn) == bed['user']
    finally:
        conn.close()


def test_skipping_the_host_key_check_is_explicit_and_logged(bed, caplog):
    conn = SshConnection(settings(bed, private_key_file=bed['keys']['ed25519'],
                                  known_hosts=None, host_key_check=False))
    with caplog.at_level(logging.WARNING, logger='croupier.ssh'):
        try:
            assert whoami(conn) == bed['user']
        finally:
            conn.close()
    assert 'host key check disabled' in caplog.text
    assert 'SHA256:' in caplog.text


def test_login_shell_option(ssh_settings):
    plain = SshTransport(ssh_settings)
    login = plain.with_options(login_shell=True)
    assert plain.run('shopt -q login_shell').exit_code == 1
    assert login.run('shopt -q login_shell').exit_code == 0
    assert plain.connection is login.connection


def run_at_once(transports, command, times):
    """Each transport runs ``command`` ``times`` times in a thread of its own, all at
    once: the exit codes, and the errors raised (named, for the asserts)."""
    results, errors = [], []

    def work(t):
        try:
            for _ in range(times):
                results.append(t.run(command).exit_code)
        except Exception as exc:     # kept for the caller's assert, which names it
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(t,)) for t in transports]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results, errors


def test_one_connection_shared_by_every_user_in_the_process(bed, ssh_settings):
    from croupier_plugin.core.transport import close_all
    close_all()
    sshd_log = bed['sshd_log']       # not the whole bed: a failed assert would print it
    before = len(read(sshd_log))
    transports = [SshTransport(ssh_settings) for _ in range(5)]
    results, errors = run_at_once(transports * 2, 'echo $$', 4)
    assert errors == [] and results == [0] * 40
    connection = transports[0].connection
    assert all(t.connection is connection for t in transports)
    # one login by this process: other processes may log in to the bed meanwhile,
    # so sshd's log is searched for the login from this connection's own port
    assert connection.connects == 1
    port = connection.client().get_transport().sock.getsockname()[1]
    time.sleep(0.2)
    logins = [line for line in read(sshd_log)[before:].splitlines()
              if 'Accepted publickey for' in line or 'Accepted password for' in line]
    assert [line for line in logins if f' port {port} ' in line], logins


def test_many_short_commands_at_once_keep_the_one_connection(bed, ssh_settings):
    """Commands that end at once, ten at a time on one connection: the server never
    ends the connection for a message about a session it already closed, and every
    command reports its own exit code (never a made-up one)."""
    from croupier_plugin.core.transport import close_all
    close_all()
    sshd_log = bed['sshd_log']
    before = len(read(sshd_log))
    transports = [SshTransport(ssh_settings) for _ in range(10)]
    results, errors = run_at_once(transports, 'exit 3', 30)
    connection = transports[0].connection
    port = connection.client().get_transport().sock.getsockname()[1]
    time.sleep(0.2)
    ended = [line for line in read(sshd_log)[before:].splitlines()
             if 'Disconnecting' in line and f' port {port}:' in line]
    assert ended == []
    assert errors == [] and results == [3] * 300
    assert connection.connects == 1


def kill_sessions(bed):
    # ends every connection of the test user on the server side
    subprocess.run(['pkill', '-f', f"sshd: {bed['user']}"], check=False)


def test_reconnects_with_backoff_after_the_server_comes_back(bed, ssh_settings):
    transport = SshTransport(ssh_settings)
    assert transport.run('true').exit_code == 0
    subprocess.run(['bash', BED, 'stop-sshd'], check=True, capture_output=True)
    kill_sessions(bed)
    restarter = threading.Timer(3, lambda: subprocess.run(['bash', BED, 'start-sshd'],
                                                          check=True, capture_output=True))
    restarter.start()
    try:
        start = time.monotonic()
        assert transport.run('echo back').stdout == 'back\n'
        assert time.monotonic() - start >= 2.5
        assert transport.connection.connects >= 2
    finally:
        restarter.join()


def test_interrupted_submission_is_not_repeated(bed, ssh_settings, workdir):
    transport = SshTransport(ssh_settings)
    marker = f'{workdir}/runs-{uuid.uuid4().hex[:6]}'
    killer = threading.Timer(1.0, kill_sessions, args=(bed,))
    killer.start()
    with pytest.raises(CommandInterrupted):
        transport.run(f'echo x >> {marker}; sleep 5', idempotent=False)
    killer.join()
    assert transport.run(f'cat {marker}').stdout == 'x\n'      # ran once, not twice


def test_idempotent_command_is_rerun_after_a_drop(bed, ssh_settings):
    transport = SshTransport(ssh_settings)
    transport.run('true')
    killer = threading.Timer(1.0, kill_sessions, args=(bed,))
    killer.start()
    result = transport.run('sleep 2; echo done')
    killer.join()
    assert result.stdout == 'done\n'


def test_silent_server_hits_the_connect_timeout(bed):
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(5)
    port = server.getsockname()[1]
    try:
        conn = SshConnection(SshSettings(host='127.0.0.1', port=port, user='x', password='y',
                                         host_key_check=False, connect_timeout=1,
                                         reconnect_timeout=2))
        start = time.monotonic()
        with pytest.raises(TransportError) as err:
            conn.client()
        elapsed = time.monotonic() - start
        assert 2 <= elapsed < 8
        assert 'gave up after' in str(err.value)
    finally:
        server.close()


def test_shared_connection_key(bed, ssh_settings):
    assert shared_connection(ssh_settings) is SshTransport(ssh_settings).connection


def test_concurrent_file_writes_share_the_connection(ssh_settings, workdir):
    transport = SshTransport(ssh_settings)
    errors = []

    def write(i):
        try:
            transport.write_file(f'{workdir}/f{i}', f'content {i}\n' * 1000)
        except Exception as exc:        # collected for the assertion below
            errors.append(exc)
    threads = [threading.Thread(target=write, args=(i,)) for i in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not any(th.is_alive() for th in threads), 'SFTP writes deadlocked'
    assert errors == []
    for i in range(12):
        assert transport.read_file(f'{workdir}/f{i}') == (f'content {i}\n' * 1000).encode()
