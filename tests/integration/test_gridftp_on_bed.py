"""GRIDFTP transfers on the bed: globus-url-copy (globus-gass-copy-progs) between the
bed's two accounts over sshftp://, served by the GridFTP server's sshftp entry
(globus-gridftp-server-progs, enabled by tests/bed/bed.sh)."""

import os
import re
import shlex
import subprocess
import time
import uuid

import pytest

from croupier_plugin.core.data import DataInfrastructure, DataSource, Transfer, TransferError
from croupier_plugin.core.data_gridftp import CLIENT_SCRIPT, CLIENT_SCRIPT_TEXT, KNOWN_HOSTS_ENV
from croupier_plugin.core.data_workspace import Workspace, prepare, release
from croupier_plugin.core.transport import SshSettings
from croupier_plugin.core.transport.ssh import fingerprint, load_private_key

from test_transfers import homes_hold, leftovers, sshd_log_tail

pytestmark = pytest.mark.bed


@pytest.fixture(autouse=True)
def gridftp_installed():
    if not os.path.exists('/usr/bin/globus-url-copy') or \
            not os.path.exists('/etc/grid-security/sshftp'):
        pytest.fail('GridFTP is not set up on the bed: run tests/bed/install.sh and '
                    'tests/bed/bed.sh setup-data-tools')


@pytest.fixture
def tag(ssh, peer_ssh):
    """A folder name used in both homes, removed afterwards."""
    name = f'gftp-{uuid.uuid4().hex[:8]}'
    yield name
    for transport in (ssh, peer_ssh):
        transport.run(f'rm -rf -- {shlex.quote(name)}')


def infra(name, bed, user, key_file, internet, login_shell=False):
    """An account of the bed as a data access infrastructure."""
    ssh = SshSettings(host=bed['host'], port=bed['port'], user=user, private_key_file=key_file,
                      known_hosts=bed['known_hosts'], login_shell=login_shell,
                      reconnect_timeout=20)
    return DataInfrastructure(name, bed['host'], internet_access=internet, ssh=ssh)


def accounts(bed):
    """Makers of crtest's and crtest2's infrastructures."""
    def mine(internet=False, **kw):
        return infra('mine', bed, bed['user'], bed['keys']['ed25519'], internet, **kw)

    def peers(internet=False, **kw):
        return infra('peers', bed, bed['peer']['user'], bed['peer']['key'], internet, **kw)
    return mine, peers


@pytest.mark.parametrize('pull', [False, True], ids=['pushed-by-source', 'pulled-by-target'])
def test_gridftp_between_two_accounts_over_sshftp(bed, ssh, peer_ssh, tag, pull):
    mine, peers = accounts(bed)
    ssh.run(f'mkdir -p "{tag}/data/sub dir" && seq 1 5000 > {tag}/data/a.txt && '
            f'printf "x y" > "{tag}/data/sub dir/with space.txt"', check=True)
    source = DataSource('src', 'file', f'~/{tag}/data/', mine(internet=not pull))
    target = DataSource('dst', 'file', f'{tag}/copy', peers(internet=pull))
    log_size = os.path.getsize(bed['sshd_log'])
    transfer = Transfer('grid', 'GRIDFTP', source, target)
    transfer.check()
    started = time.monotonic()
    what = transfer.run()
    took = time.monotonic() - started
    assert what.startswith(f"globus-url-copy {'pulled by' if pull else 'pushed from'}")
    assert peer_ssh.run(f'cat {tag}/copy/a.txt').stdout == ''.join(f'{i}\n' for i in range(1, 5001))
    assert peer_ssh.run(f'cat "{tag}/copy/sub dir/with space.txt"').stdout == 'x y'
    # the sshftp hop logged in to the other account with its lent key (sshd's record)
    lent_key_file = bed['keys']['ed25519'] if pull else bed['peer']['key']
    with open(lent_key_file) as fh:
        key_text = fh.read()
    lent = load_private_key(key_text)
    login_user = bed['user'] if pull else bed['peer']['user']
    log = sshd_log_tail(bed, log_size)
    assert re.search(rf'Accepted publickey for {login_user} from 127\.0\.0\.1 port \d+ ssh2: '
                     rf'\S+ {re.escape(fingerprint(lent))}', log), log[-2000:]
    # no key written on either host, no known_hosts file left behind
    body = ''.join(key_text.strip().splitlines()[1:-1]).encode()
    assert homes_hold(bed, body[:60]) == []
    assert leftovers(ssh) == [] and leftovers(peer_ssh) == []
    runner = peer_ssh if pull else ssh
    assert runner.read_file(CLIENT_SCRIPT).decode() == CLIENT_SCRIPT_TEXT
    assert took < 20, took


def test_gridftp_copies_one_file_into_a_folder_on_the_same_login(bed, ssh, tag):
    mine, _ = accounts(bed)
    ssh.run(f'mkdir -p {tag} && head -c 300000 /dev/urandom > {tag}/blob.bin', check=True)
    transfer = Transfer('grid', 'GRIDFTP', DataSource('s', 'file', f'{tag}/blob.bin', mine()),
                        DataSource('d', 'file', f'~/{tag}/out/deeper/', mine()))
    assert transfer.run().startswith(f"globus-url-copy on {bed['host']} in ")
    assert ssh.run(f'cmp {tag}/blob.bin {tag}/out/deeper/blob.bin').exit_code == 0


def test_gridftp_into_a_workspace(bed, ssh, peer_ssh, tag):
    """An HPCDataSource's workspace (made with the tools) receives a GRIDFTP transfer."""
    mine, peers = accounts(bed)
    ws = Workspace(f'{tag}-ws', create=True)
    hpc = peers(internet=True, login_shell=True)
    state = prepare(hpc, ws)
    try:
        ssh.run(f'mkdir -p {tag} && echo "in ws" > {tag}/f.txt', check=True)
        target = DataSource('d', 'file', 'input/', peers(internet=True, login_shell=True),
                            workspace=ws)
        Transfer('grid', 'GRIDFTP', DataSource('s', 'file', f'{tag}/f.txt', mine()),
                 target).run()
        assert peer_ssh.run(f'cat {state.path}/input/f.txt').stdout == 'in ws\n'
    finally:
        release(hpc, state)


def test_a_missing_source_fails_naming_it(bed, tag):
    mine, peers = accounts(bed)
    transfer = Transfer('grid', 'GRIDFTP', DataSource('s', 'file', f'{tag}/none.txt', mine()),
                        DataSource('d', 'file', f'{tag}/x.txt', peers(internet=True)))
    with pytest.raises(TransferError) as err:
        transfer.run()
    assert f'{tag}/none.txt does not exist on {bed["host"]}' in str(err.value)


def test_a_client_script_of_the_users_own_is_kept_and_the_transfer_refused(bed, ssh, tag):
    mine, peers = accounts(bed)
    saved = ssh.run(f'test -f {CLIENT_SCRIPT} && cat {CLIENT_SCRIPT}')
    own = '#!/bin/sh\n# the user\'s own sshftp client\nexec ssh "$4@$2"\n'
    ssh.write_file(CLIENT_SCRIPT, own, mode=0o700)
    try:
        ssh.run(f'mkdir -p {tag} && echo a > {tag}/a.txt', check=True)
        transfer = Transfer('grid', 'GRIDFTP', DataSource('s', 'file', f'{tag}/a.txt',
                                                          mine(internet=True)),
                            DataSource('d', 'file', f'{tag}/a.txt', peers()))
        with pytest.raises(TransferError, match="is not Croupier's"):
            transfer.run()
        assert ssh.read_file(CLIENT_SCRIPT).decode() == own
    finally:
        if saved.exit_code == 0:
            ssh.write_file(CLIENT_SCRIPT, saved.stdout, mode=0o700)
        else:
            ssh.run(f'rm -f -- {CLIENT_SCRIPT}')


def test_the_sshftp_hop_refuses_a_host_key_other_than_the_pinned_one(bed, ssh, tag, tmp_path):
    """The client script Croupier installs trusts only the key it is given: with the
    bed's real key the hop reaches authentication; with another key ssh refuses the
    host before logging in."""
    mine, _ = accounts(bed)
    ssh.run(f'mkdir -p {tag} && echo a > {tag}/a.txt', check=True)
    # a transfer installs the client script
    Transfer('t', 'GRIDFTP', DataSource('s', 'file', f'{tag}/a.txt', mine(internet=True)),
             DataSource('d', 'file', f'{tag}/b.txt', mine())).run()
    assert ssh.read_file(CLIENT_SCRIPT).decode() == CLIENT_SCRIPT_TEXT
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(tmp_path / 'k')],
                   check=True)
    other = (tmp_path / 'k.pub').read_text().split()[:2]
    pinned = f"[127.0.0.1]:{bed['port']} {bed['host_public_key']}\n"
    ssh.write_file(f'{tag}/right', pinned)
    ssh.write_file(f'{tag}/wrong', f"[127.0.0.1]:{bed['port']} {' '.join(other)}\n")
    hop = (f'~/{CLIENT_SCRIPT} sshftp://x 127.0.0.1 {bed["port"]} {bed["peer"]["user"]} '
           f'</dev/null')
    right = ssh.run(f'{KNOWN_HOSTS_ENV}="$HOME"/{tag}/right {hop}')
    wrong = ssh.run(f'{KNOWN_HOSTS_ENV}="$HOME"/{tag}/wrong {hop}')
    # no key is lent here: with the right host key the login fails at authentication
    assert 'Permission denied (publickey' in right.stderr, right.stderr
    assert right.exit_code != 0 and wrong.exit_code != 0
    assert 'REMOTE HOST IDENTIFICATION HAS CHANGED' in wrong.stderr or \
        'Host key verification failed' in wrong.stderr, wrong.stderr
    assert 'Permission denied' not in wrong.stderr
