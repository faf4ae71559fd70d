"""Fixtures for the real test bed (SLURM + slurmdbd behind sshd on 127.0.0.1).

The bed is started by tests/bed/bed.sh (tests/run.sh does it before pytest).
With CI=true a bed that cannot be reached fails the tests that need it;
elsewhere they are skipped with the reason.
"""

import json
import os
import shlex
import subprocess
import time
import uuid
from typing import NamedTuple

import pytest
import requests

from croupier_plugin.core.cluster import Cluster
from croupier_plugin.core.schedulers import ShellScheduler, SlurmScheduler
from croupier_plugin.core.transport import SshSettings, SshTransport, close_all
from croupier_plugin.core.transport.base import Transport

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BED_DIR = os.environ.get('CROUPIER_BED_DIR', '/var/lib/croupier-bed')
BED_SCRIPT = os.path.join(ROOT, 'tests', 'bed', 'bed.sh')
IN_CI = os.environ.get('CI', '').lower() in ('1', 'true', 'yes')


def _bed_unavailable(reason):
    if IN_CI:
        pytest.fail(f'test bed unavailable in CI: {reason}', pytrace=False)
    pytest.skip(f'test bed unavailable: {reason}')


class BedInfo(dict):
    """bed.json, with its secrets kept out of assertion messages and logs."""

    def __repr__(self):
        shown = dict(self, password='<hidden>')
        shown['keys'] = dict(self['keys'], ecdsa_passphrase='<hidden>')
        return f'BedInfo({shown!r})'


@pytest.fixture(scope='session')
def bed():
    """The bed's facts (bed.json), starting the bed when it is not up."""
    path = os.path.join(BED_DIR, 'bed.json')
    status = subprocess.run(['bash', BED_SCRIPT, 'status'], capture_output=True, text=True)
    if status.returncode != 0:
        if os.geteuid() != 0:
            _bed_unavailable('not running, and only root can start it')
        start = subprocess.run(['bash', BED_SCRIPT, 'start'], capture_output=True, text=True)
        if start.returncode != 0:
            _bed_unavailable(f'bed.sh start failed:\n{start.stdout}\n{start.stderr}')
    if not os.path.exists(path):
        _bed_unavailable(f'{path} is missing')
    with open(path) as fh:
        info = BedInfo(json.load(fh))
    yield info
    close_all()


@pytest.fixture(scope='session')
def ssh_settings(bed):
    return SshSettings(host=bed['host'], port=bed['port'], user=bed['user'],
                       private_key_file=bed['keys']['ed25519'],
                       known_hosts=bed['known_hosts'], reconnect_timeout=20)


class CountingTransport(Transport):
    """Counts the commands sent through another transport (one exec each)."""

    def __init__(self, inner):
        self.inner = inner
        self.commands = []
        self.login_shell = inner.login_shell

    def run(self, command, timeout=None, idempotent=True, check=False):
        self.commands.append(command)
        return self.inner.run(command, timeout=timeout, idempotent=idempotent, check=check)

    def write_file(self, path, data, mode=0o600):
        return self.inner.write_file(path, data, mode)

    def read_file(self, path):
        return self.inner.read_file(path)

    def put(self, local_path, remote_path, mode=None):
        return self.inner.put(local_path, remote_path, mode)

    def get(self, remote_path, local_path):
        return self.inner.get(remote_path, local_path)


@pytest.fixture
def counting():
    """CountingTransport(inner): counts the commands sent through a real transport."""
    return CountingTransport


@pytest.fixture
def ssh(ssh_settings):
    return CountingTransport(SshTransport(ssh_settings))


@pytest.fixture
def workdir(ssh, bed):
    """A fresh directory in the test user's home, removed afterwards."""
    path = f"{bed['home']}/croupier-tests/{uuid.uuid4().hex[:10]}"
    ssh.inner.makedirs(path)
    yield path
    ssh.inner.run(f'rm -rf -- {shlex.quote(path)}')


@pytest.fixture
def slurm(ssh):
    return Cluster('bed-slurm', ssh, SlurmScheduler(), monitor_period=1.0)


@pytest.fixture
def shell_over_ssh(ssh):
    return Cluster('bed-shell', ssh, ShellScheduler(), monitor_period=0.5)


@pytest.fixture(scope='session')
def vault_bed(bed):
    """The bed's OpenBao with JWT auth configured (see tests/vault_bed.py)."""
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from vault_bed import VaultBed
    with open(bed['vault']['root_token_file']) as fh:
        root_token = fh.read().strip()
    try:
        return VaultBed(bed['vault']['address'], root_token)
    except Exception as exc:      # any failure to reach or configure it
        _bed_unavailable(f'OpenBao at {bed["vault"]["address"]}: {type(exc).__name__}: {exc}')


def follow_jobs(cluster, job_ids, limit=60, grace=30):
    """Poll with the monitor until every job ended; return (statuses, states seen, polls)."""
    from croupier_plugin.core.monitor import Monitor
    monitor = Monitor(unknown_grace=grace)
    tracked = [monitor.track(cluster, j, j) for j in job_ids]
    seen = {j: [] for j in job_ids}
    deadline = time.monotonic() + limit
    while monitor.active():
        assert time.monotonic() < deadline, f'jobs still active: {seen}'
        for change in monitor.poll():
            seen[change.job.job_id].append(change.new.state)
        time.sleep(0.2)
    return {t.job_id: t.status for t in tracked}, seen, monitor.polls(cluster.name)


@pytest.fixture
def follow():
    """follow(cluster, job_ids, limit=60, grace=30): see follow_jobs."""
    return follow_jobs


@pytest.fixture
def install_stand_in(ssh, bed):
    """install_stand_in(name): puts tests/bed/stand-ins/NAME in the test user's ~/bin."""
    def install(name):
        with open(os.path.join(ROOT, 'tests', 'bed', 'stand-ins', name)) as fh:
            ssh.inner.makedirs(f"{bed['home']}/bin")
            ssh.inner.write_file(f"{bed['home']}/bin/{name}", fh.read(), mode=0o755)
    return install


def accounting_until(transport, sacct_args, ready, limit=15):
    """stdout of ``sacct -n -X -P <sacct_args>`` once ``ready(stdout)`` holds, or
    after ``limit`` seconds: slurmdbd records a job that just ended a few seconds
    after squeue shows it ended."""
    deadline = time.monotonic() + limit
    while True:
        out = transport.run(f'sacct -n -X -P {sacct_args}').stdout
        if ready(out) or time.monotonic() > deadline:
            return out
        time.sleep(0.5)


@pytest.fixture
def accounting():
    """accounting(transport, sacct_args, ready, limit=15): see accounting_until."""
    return accounting_until


class WebServer:
    """A real HTTP file server on loopback, serving ``root``; it records every
    request (time, path, User-Agent). Paths under /slow/ answer after a second."""

    def __init__(self, root):
        import http.server
        import threading
        self.root = root
        self.requests = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kw):
                super().__init__(*args, directory=str(root), **kw)

            def do_GET(self):
                server.requests.append((time.time(), self.path,
                                        self.headers.get('User-Agent', '')))
                if self.path.startswith('/slow/'):
                    time.sleep(1.0)
                    self.path = self.path[len('/slow'):]
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}'
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def web_server(tmp_path):
    root = tmp_path / 'web'
    root.mkdir()
    server = WebServer(root)
    yield server
    server.close()


@pytest.fixture
def peer_ssh(bed):
    """The bed's second account (its own key only), for transfers between accounts."""
    return SshTransport(SshSettings(host=bed['host'], port=bed['port'],
                                    user=bed['peer']['user'],
                                    private_key_file=bed['peer']['key'],
                                    known_hosts=bed['known_hosts'], reconnect_timeout=20))


# Every blueprint a test parses is resolved as a Cloudify Manager 7.0.5 resolves it,
# against the types files that manager serves (../shared beside the project; in CI a
# copy of shared/ sits beside the clone). Set before any test runs, so the `croupier`
# processes tests start inherit it.
MANAGER_TYPES = os.path.join(os.path.dirname(ROOT), 'shared', 'cloudify-manager-types')
if not os.path.isdir(os.path.join(MANAGER_TYPES, 'spec')):
    raise RuntimeError(f'{MANAGER_TYPES} is missing: the tests parse blueprints against the '
                       f"types files a Cloudify Manager 7.0.5 serves")
os.environ['CROUPIER_CLOUDIFY_TYPES'] = MANAGER_TYPES


@pytest.fixture(scope='session')
def ckan_bed(bed):
    """The bed's CKAN (ckan.json: url, api_token), started when it is not up."""
    path = os.path.join(BED_DIR, 'ckan.json')
    up = False
    if os.path.exists(path):
        with open(path) as fh:
            url = json.load(fh)['url']
        try:
            up = requests.get(f'{url}/api/3/action/status_show', timeout=10).ok
        except requests.RequestException:
            up = False
    if not up:
        if os.geteuid() != 0:
            _bed_unavailable('CKAN is not running, and only root can start it')
        start = subprocess.run(['bash', BED_SCRIPT, 'start-ckan'], capture_output=True,
                               text=True)
        if start.returncode != 0:
            _bed_unavailable(f'bed.sh start-ckan failed:\n{start.stdout}\n{start.stderr}')
    with open(path) as fh:
        info = json.load(fh)
    with open(info['api_token_file']) as fh:
        token = fh.read().strip()
    return CkanBed(info['url'], token)


class CkanBed(NamedTuple):
    """The bed's CKAN: its address and a sysadmin's API token (kept out of repr)."""
    url: str
    token: str

    def __repr__(self) -> str:
        return f'CkanBed(url={self.url!r}, token=<hidden>)'
