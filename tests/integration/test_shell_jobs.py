"""SHELL jobs: real background processes, on this machine and over SSH on the bed."""

import shlex
import time
import uuid

import pytest

from croupier_plugin.core.cluster import Cluster
from croupier_plugin.core.model import JobSpec, JobState
from croupier_plugin.core.monitor import Monitor
from croupier_plugin.core.schedulers import ShellScheduler
from croupier_plugin.core.transport import LocalTransport


def wait_terminal(cluster, job_id, limit=30):
    monitor = Monitor(unknown_grace=5)
    job = monitor.track(cluster, job_id, 'j')
    seen = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for change in monitor.poll(force=True):
            seen.append(change.new.state)
        if job.status and job.status.terminal:
            return job.status, seen
        time.sleep(0.2)
    raise AssertionError(f'job {job_id} did not end in {limit} s; states {seen}')


@pytest.fixture
def local(tmp_path):
    return Cluster('local-shell', LocalTransport(), ShellScheduler(), monitor_period=0.2), \
        str(tmp_path)


@pytest.fixture(params=['local', 'ssh'])
def shell_cluster(request, tmp_path):
    if request.param == 'local':
        yield Cluster('local-shell', LocalTransport(), ShellScheduler(), 0.2), str(tmp_path)
    else:
        cluster = request.getfixturevalue('shell_over_ssh')
        yield cluster, request.getfixturevalue('workdir')


def test_completed_job_with_output(shell_cluster):
    cluster, wd = shell_cluster
    job = cluster.submit(JobSpec.from_options('hello', {'commands': ['sleep 0.5', 'echo hi']}), wd)
    assert job.job_id.startswith('sh-')
    status, seen = wait_terminal(cluster, job.job_id)
    assert status.state is JobState.COMPLETED and status.exit_code == 0
    assert JobState.RUNNING in seen or JobState.PENDING in seen
    assert cluster.transport.read_file(job.stdout) == b'hi\n'


def test_failed_job_keeps_exit_code_and_stderr(shell_cluster):
    cluster, wd = shell_cluster
    job = cluster.submit(JobSpec.from_options('bad', {'commands': ['echo oops >&2', 'exit 5']}),
                         wd)
    status, _ = wait_terminal(cluster, job.job_id)
    assert (status.state, status.exit_code) == (JobState.FAILED, 5)
    assert cluster.tail(job.stderr) == 'oops\n'


def test_cancel_ends_the_whole_job(shell_cluster):
    cluster, wd = shell_cluster
    marker = f'croupier-child-{uuid.uuid4().hex[:8]}'
    job = cluster.submit(JobSpec.from_options('long', {
        'commands': [f'bash -c "exec -a {marker} sleep 300" & wait']}), wd)
    deadline = time.monotonic() + 10
    while cluster.statuses([job.job_id])[job.job_id].state is not JobState.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    cluster.cancel([job.job_id])
    status, _ = wait_terminal(cluster, job.job_id)
    assert status.state is JobState.CANCELLED
    time.sleep(0.3)
    # '[c]' keeps pgrep from matching the shell that runs it
    left = cluster.transport.run(f'pgrep -f {shlex.quote("[c]" + marker[1:])} || true').stdout
    assert left.strip() == ''


def test_time_limit_gives_timeout(local):
    cluster, wd = local
    job = cluster.submit(JobSpec.from_options('slow', {'commands': ['sleep 30'],
                                                       'max_time': '0:02'}), wd)
    status, _ = wait_terminal(cluster, job.job_id, limit=20)
    assert status.state is JobState.TIMEOUT


def test_unknown_id_is_unknown(local):
    cluster, _ = local
    status = cluster.statuses(['sh-doesnotexist'])['sh-doesnotexist']
    assert status.state is JobState.UNKNOWN


def _job_files(cluster, job_id, pid_text):
    """Leave a job's state files as a launcher would at some instant: submitted,
    with ``pid_text`` in its pid file and no exit code yet."""
    cluster.transport.run(
        'd="$HOME/.croupier/jobs"; mkdir -p "$d" && : > "$d/%s.submitted" && '
        'printf %%s %s > "$d/%s.pid"' % (job_id, shlex.quote(pid_text), job_id))


def test_a_pid_file_being_written_is_not_read_as_a_killed_job(local):
    cluster, _ = local
    job_id = 'sh-' + uuid.uuid4().hex[:16]
    _job_files(cluster, job_id, '')     # the launcher has opened the file, not yet written it
    try:
        status = cluster.statuses([job_id])[job_id]
        assert status.state is JobState.RUNNING, status
    finally:
        cluster.transport.run(f'rm -f "$HOME/.croupier/jobs/{job_id}".*')


def test_a_launcher_gone_without_an_exit_code_is_a_failed_job(local):
    cluster, _ = local
    job_id = 'sh-' + uuid.uuid4().hex[:16]
    gone = cluster.transport.run('sh -c \'echo $$\'').stdout.strip()   # a pid that has ended
    _job_files(cluster, job_id, gone)
    try:
        status = cluster.statuses([job_id])[job_id]
        assert (status.state, status.raw_state) == (JobState.FAILED, 'KILLED'), status
        assert 'without recording an exit code' in status.reason
    finally:
        cluster.transport.run(f'rm -f "$HOME/.croupier/jobs/{job_id}".*')
