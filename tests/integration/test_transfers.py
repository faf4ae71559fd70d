"""Transfers against the bed: HTTP from a local web server, SFTP and rsync between
the bed's two accounts (crtest and crtest2, each with its own key)."""

import hashlib
import os
import re
import shlex
import uuid

import pytest

from croupier_plugin.core.data import (DataInfrastructure, DataSource, Transfer, TransferError,
                                       run_all)
from croupier_plugin.core.errors import ConfigError
from croupier_plugin.core.transport import SshSettings
from croupier_plugin.core.transport.ssh import fingerprint, load_private_key

pytestmark = pytest.mark.bed


def infra(name, bed, user, key_file=None, internet=False, endpoint=None, password=None):
    ssh = None
    if user:
        ssh = SshSettings(host=bed['host'], port=bed['port'], user=user,
                          private_key_file=key_file, password=password,
                          known_hosts=bed['known_hosts'], reconnect_timeout=20)
    return DataInfrastructure(name, endpoint or bed['host'], internet_access=internet, ssh=ssh)


@pytest.fixture
def accounts(bed):
    """(crtest's infrastructure maker, crtest2's)."""
    def mine(internet=False):
        return infra('mine', bed, bed['user'], bed['keys']['ed25519'], internet)

    def peers(internet=False):
        return infra('peers', bed, bed['peer']['user'], bed['peer']['key'], internet)
    return mine, peers


@pytest.fixture
def tag(ssh, peer_ssh):
    """A folder name used in both homes, removed afterwards."""
    name = f'xfer-{uuid.uuid4().hex[:8]}'
    yield name
    for transport in (ssh, peer_ssh):
        transport.run(f'rm -rf -- {shlex.quote(name)}')


def homes_hold(bed, needle):
    """Files under either account's home whose bytes contain ``needle``."""
    found = []
    for home in (bed['home'], bed['peer']['home']):
        for folder, _, files in os.walk(home):
            for name in files:
                path = os.path.join(folder, name)
                try:
                    with open(path, 'rb') as fh:
                        if needle in fh.read():
                            found.append(path)
                except OSError:
                    pass
    return found


def leftovers(transport):
    return transport.run('ls -a ~ | grep croupier-known-hosts || true').stdout.split()


def sshd_log_tail(bed, since):
    with open(bed['sshd_log'], 'rb') as fh:
        fh.seek(since)
        return fh.read().decode('utf-8', 'replace')


@pytest.mark.parametrize('pull', [False, True], ids=['pushed-by-source', 'pulled-by-target'])
def test_rsync_between_two_accounts_lends_the_key_and_leaves_none(bed, ssh, peer_ssh, accounts,
                                                                  tag, pull):
    mine, peers = accounts
    ssh.run(f'mkdir -p {tag}/data/sub && seq 1 1000 > {tag}/data/a.txt && '
            f'printf "x y" > "{tag}/data/sub/with space.txt"', check=True)
    # pushed by the source (crtest) when it has internet access, else pulled by the target
    source = DataSource('src', 'file', f'~/{tag}/data/', mine(internet=not pull))
    target = DataSource('dst', 'file', f'~/{tag}/copy', peers(internet=pull))
    log_size = os.path.getsize(bed['sshd_log'])
    transfer = Transfer('rsync-accounts', 'RSYNC', source, target)
    transfer.check()
    what = transfer.run()
    assert ('pulled by' if pull else 'pushed from') in what
    assert peer_ssh.run(f'cat {tag}/copy/a.txt').stdout == ''.join(f'{i}\n' for i in range(1, 1001))
    assert peer_ssh.run(f'cat "{tag}/copy/sub/with space.txt"').stdout == 'x y'
    # the hop logged in with the lent key of the other account (sshd's own record)
    lent_key_file = bed['keys']['ed25519'] if pull else bed['peer']['key']
    with open(lent_key_file) as fh:
        key_text = fh.read()
    lent = load_private_key(key_text)
    login_user = bed['user'] if pull else bed['peer']['user']
    log = sshd_log_tail(bed, log_size)
    assert re.search(rf'Accepted publickey for {login_user} from 127\.0\.0\.1 port \d+ ssh2: '
                     rf'{lent.get_name().upper().replace("SSH-", "")}\S* '
                     rf'{re.escape(fingerprint(lent))}', log), log[-2000:]
    # no key on either host, no known_hosts file left behind
    body = ''.join(key_text.strip().splitlines()[1:-1]).encode()
    assert homes_hold(bed, body[:60]) == []
    assert leftovers(ssh) == [] and leftovers(peer_ssh) == []


def test_rsync_into_a_password_only_account_is_refused_before_running(bed, accounts):
    mine, _ = accounts
    password_only = infra('peers', bed, bed['peer']['user'], password='not-used')
    transfer = Transfer('t', 'RSYNC', DataSource('s', 'file', 'a', mine(internet=True)),
                        DataSource('d', 'file', 'b', password_only))
    with pytest.raises(ConfigError) as err:
        transfer.check()
    assert "property 'transfer_protocol' = 'RSYNC'" in str(err.value)
    assert 'private key' in str(err.value) and 'not-used' not in str(err.value)


def test_rsync_without_internet_on_either_side_is_relayed(bed, ssh, peer_ssh, accounts, tag):
    mine, peers = accounts
    ssh.run(f'mkdir -p {tag} && echo relayed > {tag}/r.txt', check=True)
    transfer = Transfer('relay', 'RSYNC', DataSource('s', 'file', f'{tag}/r.txt', mine()),
                        DataSource('d', 'file', f'{tag}/in/', peers()))
    assert 'relayed over SFTP' in transfer.run()
    assert peer_ssh.run(f'cat {tag}/in/r.txt').stdout == 'relayed\n'


def test_sftp_copies_a_folder_between_accounts_with_modes(ssh, peer_ssh, accounts, tag):
    mine, peers = accounts
    ssh.run(f'mkdir -p {tag}/app/bin && printf "#!/bin/sh\\necho hi\\n" > {tag}/app/bin/run && '
            f'chmod 750 {tag}/app/bin/run && head -c 3000000 /dev/urandom > {tag}/app/blob',
            check=True)
    want = ssh.run(f'sha256sum < {tag}/app/blob').stdout.split()[0]
    transfer = Transfer('sftp', 'SFTP', DataSource('s', 'file', f'{tag}/app', mine()),
                        DataSource('d', 'file', f'$HOME/{tag}/app-copy', peers()))
    assert transfer.run().startswith('2 file(s), 30000')
    assert peer_ssh.run(f'sha256sum < {tag}/app-copy/blob').stdout.split()[0] == want
    assert peer_ssh.run(f'stat -c %a {tag}/app-copy/bin/run').stdout.strip() == '750'
    assert peer_ssh.run(f'{tag}/app-copy/bin/run').stdout == 'hi\n'
    assert peer_ssh.run(f'ls -a {tag}/app-copy | grep -c part || true').stdout.strip() == '0'


@pytest.mark.parametrize('protocol', ['SFTP', 'RSYNC'])
def test_a_missing_source_file_is_a_clear_error(ssh, accounts, tag, protocol):
    mine, peers = accounts
    transfer = Transfer('fetch-missing', protocol,
                        DataSource('s', 'file', f'{tag}/nothing-here.dat', mine(internet=True)),
                        DataSource('d', 'file', f'{tag}/x.dat', peers()))
    with pytest.raises(TransferError) as err:
        transfer.run()
    text = str(err.value)
    assert f"{protocol} transfer 'fetch-missing'" in text
    assert 'nothing-here.dat' in text
    assert 'does not exist' in text or 'No such file or directory' in text


@pytest.mark.parametrize('fetched_by', ['target', 'orchestrator'])
def test_http_fetches_to_the_host(bed, ssh, web_server, accounts, tag, fetched_by):
    mine, _ = accounts
    payload = os.urandom(200_000)
    (web_server.root / 'blob.bin').write_bytes(payload)
    web = DataInfrastructure('web', web_server.url, protocols=('HTTP',))
    transfer = Transfer('get', 'HTTP', DataSource('s', 'web', '/blob.bin', web),
                        DataSource('d', 'file', f'~/{tag}/dl/', mine(fetched_by == 'target')))
    transfer.check()
    transfer.run()
    digest = ssh.run(f'sha256sum < {tag}/dl/blob.bin').stdout.split()[0]
    assert digest == hashlib.sha256(payload).hexdigest()
    agent = web_server.requests[-1][2]
    assert agent.startswith('curl' if fetched_by == 'target' else 'python-requests'), agent


@pytest.mark.parametrize('fetched_by', ['target', 'orchestrator'])
def test_http_404_is_a_clear_error_and_leaves_no_file(ssh, web_server, accounts, tag, fetched_by):
    mine, _ = accounts
    web = DataInfrastructure('web', web_server.url)
    transfer = Transfer('get-missing', 'HTTP', DataSource('s', 'web', 'no/such.csv', web),
                        DataSource('d', 'file', f'{tag}/such.csv', mine(fetched_by == 'target')))
    with pytest.raises(TransferError) as err:
        transfer.run()
    text = str(err.value)
    assert "HTTP transfer 'get-missing'" in text
    assert f'{web_server.url}/no/such.csv' in text
    assert '404' in text
    assert ssh.run(f'ls -a {tag} 2>/dev/null').stdout.split() in ([], ['.', '..'])


def test_independent_transfers_run_concurrently(ssh, web_server, accounts, tag):
    mine, _ = accounts
    for i in range(4):
        (web_server.root / f'{i}.txt').write_text(str(i))
    web = DataInfrastructure('web', web_server.url)
    transfers = [Transfer(f'get{i}', 'HTTP', DataSource('s', 'web', f'slow/{i}.txt', web),
                          DataSource('d', 'file', f'{tag}/{i}.txt', mine(True)))
                 for i in range(4)]
    run_all(transfers)
    # each answer takes a second: one after the other, the requests would arrive a
    # second or more apart; run together, all arrive while the first is still waited on
    arrivals = sorted(at for at, path, _ in web_server.requests if path.startswith('/slow/'))
    assert len(arrivals) == 4
    assert arrivals[-1] - arrivals[0] < 1.0, arrivals
    assert ssh.run(f'cat {tag}/0.txt {tag}/1.txt {tag}/2.txt {tag}/3.txt').stdout == '0123'


# -- the engine runs them at the right moment -----------------------------------------

def _engine_run(jobs):
    from croupier_plugin.core.engine import Engine
    from croupier_plugin.core.monitor import Monitor
    records, events = {}, []
    engine = Engine(jobs, lambda n, r: records.__setitem__(n, dict(r)),
                    events=lambda kind, job, **info: events.append((kind, job.name)),
                    monitor=Monitor(unknown_grace=30))
    return engine, records, events


def test_outputs_move_before_dependants_start_and_are_resumed(bed, ssh, slurm, workdir):
    from croupier_plugin.core.engine import JobFailed, PlannedJob
    from croupier_plugin.core.model import JobSpec
    here = infra('hpc', bed, bed['user'], bed['keys']['ed25519'])
    made = DataSource('made', 'file', f'{workdir}/made.txt', here)
    moved = DataSource('moved', 'file', f'{workdir}/moved/', here)
    hand_over = Transfer('hand-over', 'SFTP', made, moved)
    producer = PlannedJob('producer', JobSpec.from_options('producer', {
        'commands': ['echo produced > made.txt']}), slurm, workdir,
        stage_out=[hand_over])
    # the consumer reads the moved copy: it must not start before the transfer ran
    consumer = PlannedJob('consumer', JobSpec.from_options('consumer', {
        'commands': ['cat moved/made.txt > consumed.txt']}), slurm, workdir,
        parents=['producer'])
    engine, records, events = _engine_run([producer, consumer])
    engine.run()
    assert records['producer']['outputs'] == 'DONE'
    assert records['consumer']['state'] == 'COMPLETED'
    assert ssh.run(f'cat {workdir}/consumed.txt').stdout == 'produced\n'
    assert events.index(('outputs', 'producer')) < events.index(('submitted', 'consumer'))

    # a run that stopped after the job completed but before its outputs moved: the
    # next run moves them and submits nothing again
    ssh.run(f'rm -rf {workdir}/moved && echo again > {workdir}/made.txt', check=True)
    record = dict(records['producer'], outputs='PENDING')
    again = PlannedJob('producer', producer.spec, slurm, workdir, record=record,
                       stage_out=[Transfer('hand-over', 'SFTP', made, moved)])
    engine, records2, events2 = _engine_run([again])
    engine.run()
    assert records2['producer']['job_id'] == record['job_id']
    assert records2['producer']['outputs'] == 'DONE'
    assert not any(kind == 'submitted' for kind, _ in events2)
    assert ssh.run(f'cat {workdir}/moved/made.txt').stdout == 'again\n'

    # an input transfer that fails: the job is never submitted, its dependant skipped
    broken = Transfer('broken', 'SFTP', DataSource('gone', 'file', f'{workdir}/gone.txt', here),
                      DataSource('to', 'file', f'{workdir}/to.txt', here))
    first = PlannedJob('first', JobSpec.from_options('first', {'commands': ['true']}), slurm,
                       workdir, stage_in=[broken])
    second = PlannedJob('second', JobSpec.from_options('second', {'commands': ['true']}), slurm,
                        workdir, parents=['first'])
    engine, records3, _ = _engine_run([first, second])
    with pytest.raises(JobFailed) as err:
        engine.run()
    assert "SFTP transfer 'broken'" in str(err.value) and 'gone.txt does not exist' in str(err.value)
    assert records3['first']['raw_state'] == 'NOT_SUBMITTED' and not records3['first'].get('job_id')
    assert records3['second']['state'] == 'SKIPPED'


# -- what copies may carry, and where they may write (security review) ----------------

def test_an_sftp_relay_drops_setuid_setgid_and_sticky_bits(ssh, peer_ssh, accounts, tag):
    mine, peers = accounts
    ssh.run(f'mkdir -p {tag}/bin && for f in suid sgid keep; do echo $f > {tag}/bin/$f; done && '
            f'chmod 4755 {tag}/bin/suid && chmod 2750 {tag}/bin/sgid && chmod 640 {tag}/bin/keep',
            check=True)
    assert ssh.run(f'stat -c %a {tag}/bin/suid').stdout.strip() == '4755'
    Transfer('relay', 'SFTP', DataSource('s', 'file', f'{tag}/bin', mine()),
             DataSource('d', 'file', f'{tag}/bin-copy', peers())).run()
    modes = peer_ssh.run(f'cd {tag}/bin-copy && stat -c "%n %a" keep sgid suid').stdout.split()
    assert modes == ['keep', '640', 'sgid', '750', 'suid', '755']


def test_published_outputs_keep_no_setuid_bit_and_the_results_stay_private(
        bed, ssh, workdir, tmp_path):
    from croupier_plugin.core.data import Publication
    ssh.run(f'cd {workdir} && mkdir -p out/sub && echo tool > out/tool && chmod 4755 out/tool && '
            f'echo open > out/sub/open && chmod 666 out/sub/open && echo g > out/g && '
            f'chmod 2775 out/g', check=True)
    folder = tmp_path / 'results' / 'job1'
    publication = Publication('job1', lambda: (ssh.inner, workdir), ['out'], str(folder))
    assert publication.run().startswith('3 file(s)')
    # this test runs as root, as an orchestrator may: a 4755 copy would be a root setuid file
    assert os.stat(folder / 'out' / 'tool').st_uid == os.geteuid()
    modes = {str(p.relative_to(folder)): p.stat().st_mode & 0o7777
             for p in folder.rglob('*')}
    assert modes == {'out': 0o700, 'out/sub': 0o700, 'out/tool': 0o755, 'out/sub/open': 0o644,
                     'out/g': 0o755}
    assert os.stat(tmp_path / 'results').st_mode & 0o777 == 0o700
    assert os.stat(folder).st_mode & 0o777 == 0o700


def test_publishing_follows_no_link_out_of_the_working_directory(bed, ssh, workdir, tmp_path):
    from croupier_plugin.core.data import Publication
    ssh.run(f'cd {workdir} && mkdir -p out && echo r > out/r.txt && '
            f'ln -s /etc/passwd out/passwd && ln -s . out/loop && ln -s /etc conf && '
            f'ln -s /etc/hostname name.txt', check=True)
    folder = tmp_path / 'results' / 'job1'
    publication = Publication('job1', lambda: (ssh.inner, workdir), ['out'], str(folder))
    done = publication.run()
    # links inside a published folder are left out, with a warning in what was done
    assert done.startswith('1 file(s), 2 bytes published')
    assert done.endswith(f'2 symbolic link(s) left out: {workdir}/out/loop, {workdir}/out/passwd')
    assert sorted(os.listdir(folder / 'out')) == ['r.txt']
    # a published path that is a link, or goes through one, fails the publication
    for path, link in (('name.txt', 'name.txt'), ('conf/hostname', 'conf')):
        publication.paths = [path]
        with pytest.raises(TransferError) as err:
            publication.run()
        assert str(err.value) == (f"publishing the outputs of job 'job1' failed: {workdir}/"
                                  f"{link} on {bed['user']}@{bed['host']} is a symbolic link, "
                                  f"and links are not followed" +
                                  (' here' if link == path else ' while publishing'))
    assert sorted(os.listdir(folder)) == ['out']


@pytest.mark.parametrize('fetched_by', ['target', 'orchestrator'])
def test_http_into_a_folder_keeps_the_file_in_it(bed, ssh, web_server, accounts, tag,
                                                 fetched_by):
    mine, _ = accounts
    escaped = f'{tag}-escaped'
    # the web server decodes and normalizes the path: it serves <escaped> from its root, and
    # saved under the decoded name the file would land in the home, outside the folder
    (web_server.root / escaped).write_text('dropped outside the folder')
    web = DataInfrastructure('web', web_server.url)
    transfer = Transfer('get', 'HTTP', DataSource('s', 'web', f'/data/..%2F..%2F{escaped}', web),
                        DataSource('d', 'file', f'{tag}/in/', mine(fetched_by == 'target')))
    try:
        with pytest.raises(TransferError) as err:
            transfer.run()
        assert "property 'resource' = " in str(err.value)
        assert f"its last part decodes to '../../{escaped}'" in str(err.value)
        assert web_server.requests == []
        assert not os.path.exists(os.path.join(bed['home'], escaped))
    finally:
        ssh.run(f'rm -f -- {shlex.quote(escaped)}')


@pytest.mark.parametrize('hosts', ['one host', 'pushed-by-source', 'pulled-by-target'])
def test_rsync_takes_a_relative_path_with_a_colon_for_a_local_one(ssh, peer_ssh, accounts, tag,
                                                                  hosts):
    mine, peers = accounts
    source = f'{tag}-run_12:30.log'
    target = f'{tag}-copy_12:30.log'
    ssh.run(f'echo "started at 12:30" > {shlex.quote(source)}', check=True)
    if hosts == 'one host':
        ends, reader = (mine(), mine()), ssh
    else:
        pushed = hosts == 'pushed-by-source'
        ends, reader = (mine(internet=pushed), peers(internet=not pushed)), peer_ssh
    try:
        done = Transfer('colon', 'RSYNC', DataSource('s', 'file', source, ends[0]),
                        DataSource('d', 'file', target, ends[1])).run()
        assert done.startswith('rsync'), done
        assert reader.run(f'cat {shlex.quote(target)}').stdout == 'started at 12:30\n'
    finally:
        for transport in (ssh, peer_ssh):
            transport.run(f'rm -f -- {shlex.quote(source)} {shlex.quote(target)}')


@pytest.mark.parametrize('trouble', ['results folder is a file', 'a folder in the way'])
def test_a_publication_failing_here_fails_its_job_and_cancels_the_others(bed, ssh, slurm,
                                                                        workdir, tmp_path,
                                                                        trouble):
    from croupier_plugin.core.data import Publication
    from croupier_plugin.core.engine import JobFailed, PlannedJob
    from croupier_plugin.core.model import JobSpec
    results = tmp_path / 'results'
    if trouble == 'results folder is a file':
        results.write_text('a file where the results folder should be')
        why = f"publishing the outputs of job 'quick' failed: {results} exists and is not a " \
              f"folder"
    else:
        # an OSError from the local file system (as a full disk would give)
        (results / 'quick' / 'quick.txt' / 'kept').mkdir(parents=True)
        why = f"publishing the outputs of job 'quick' into {results / 'quick'} failed: " \
              f"[Errno 21] Is a directory: "
    publication = Publication('quick', lambda: (ssh.inner, workdir), ['quick.txt'],
                              str(results / 'quick'))
    quick = PlannedJob('quick', JobSpec.from_options('quick', {
        'commands': ['echo done > quick.txt']}), slurm, workdir, stage_out=[publication])
    slow = PlannedJob('slow', JobSpec.from_options('slow', {'commands': ['sleep 120']}), slurm,
                      workdir)
    engine, records, events = _engine_run([quick, slow])
    try:
        with pytest.raises(JobFailed) as err:
            engine.run()
    finally:
        # a run that crashed would leave the slow job running
        left = records.get('slow', {})
        if left.get('job_id') and left.get('state') != 'CANCELLED':
            slurm.cancel([left['job_id']])
    assert records['quick']['state'] == 'FAILED'
    assert records['quick']['raw_state'] == 'OUTPUTS_FAILED'
    assert records['quick']['outputs'] == 'FAILED' and records['quick']['reported']
    assert records['quick']['reason'].startswith(
        f'the job completed, but moving its outputs failed: {why}'), records['quick']['reason']
    assert why in str(err.value) and "job 'quick'" in str(err.value)
    assert records['slow']['state'] == 'CANCELLED' and records['slow']['reported']
    assert records['slow']['reason'] == 'cancelled: another job failed'
    assert ('cancelled', 'slow') in events
    # the scheduler was told: the slow job is no longer queued or running
    shown = ssh.run(f"squeue -h -j {records['slow']['job_id']} -o %T").stdout.split()
    assert not set(shown) & {'PENDING', 'RUNNING'}, shown
    # nothing half written was left in the results
    if trouble == 'a folder in the way':
        assert sorted(os.listdir(results / 'quick')) == ['quick.txt']


@pytest.mark.parametrize('hosts', ['one host', 'pushed-by-source', 'pulled-by-target'])
def test_rsync_drops_setuid_setgid_and_sticky_bits(ssh, peer_ssh, accounts, tag, hosts):
    mine, peers = accounts
    ssh.run(f'mkdir -p {tag}/bin/shared && echo s > {tag}/bin/suid && echo k > {tag}/bin/keep && '
            f'chmod 4755 {tag}/bin/suid && chmod 640 {tag}/bin/keep && '
            f'chmod 3775 {tag}/bin/shared', check=True)
    if hosts == 'one host':
        ends, reader = (mine(), mine()), ssh
    else:
        pushed = hosts == 'pushed-by-source'
        ends, reader = (mine(internet=pushed), peers(internet=not pushed)), peer_ssh
    done = Transfer('modes', 'RSYNC', DataSource('s', 'file', f'{tag}/bin/', ends[0]),
                    DataSource('d', 'file', f'{tag}/copy', ends[1])).run()
    assert done.startswith('rsync'), done
    modes = reader.run(f'cd {tag}/copy && stat -c "%n %a" keep shared suid').stdout.split()
    assert modes == ['keep', '640', 'shared', '775', 'suid', '755']
