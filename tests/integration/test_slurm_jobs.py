"""SLURM jobs over real SSH on the bed: submit, states, exit codes, cancel, limits."""

import re
import shlex
import time

import pytest

from croupier_plugin.core.model import JobSpec, JobState

pytestmark = pytest.mark.bed


def job(name, **options):
    return JobSpec.from_options(name, options)


@pytest.fixture(scope='module')
def timed_out_job(request):
    """A job over its 1-minute limit, submitted when the module starts so the
    other tests run while SLURM lets it time out (slurmctld checks limits about
    every 30 s, so it ends 60-90 s after it started)."""
    cluster = request.getfixturevalue('module_slurm')
    wd = request.getfixturevalue('module_workdir')
    return cluster.submit(job('over_limit', commands=['sleep 600'], max_time='1'), wd)


@pytest.fixture(scope='module')
def module_slurm(ssh_settings):
    from croupier_plugin.core.cluster import Cluster
    from croupier_plugin.core.schedulers import SlurmScheduler
    from croupier_plugin.core.transport import SshTransport
    return Cluster('bed-slurm', SshTransport(ssh_settings), SlurmScheduler(),
                   monitor_period=1.0)


@pytest.fixture(scope='module')
def module_workdir(module_slurm, bed):
    path = f"{bed['home']}/croupier-tests/slurm-{int(time.time())}"
    module_slurm.transport.makedirs(path)
    yield path
    module_slurm.transport.run(f'rm -rf -- {shlex.quote(path)}')


def test_completed_job_goes_through_running(timed_out_job, slurm, workdir, follow):
    sub = slurm.submit(job('ok', commands=['sleep 3', 'echo "hello from $SLURM_JOB_ID"']),
                       workdir)
    assert sub.job_id.isdigit()
    assert sub.stdout == f'{workdir}/ok.{sub.job_id}.out'
    statuses, seen, _ = follow(slurm, [sub.job_id])
    status = statuses[sub.job_id]
    assert (status.state, status.exit_code) == (JobState.COMPLETED, 0)
    assert JobState.RUNNING in seen[sub.job_id]
    assert slurm.transport.read_file(sub.stdout).decode() == f'hello from {sub.job_id}\n'


def test_failing_job_is_failed_with_its_exit_code(slurm, workdir, follow):
    sub = slurm.submit(job('bad', commands=['echo "it broke" >&2', 'exit 3']), workdir)
    statuses, _, _ = follow(slurm, [sub.job_id])
    status = statuses[sub.job_id]
    assert (status.state, status.exit_code) == (JobState.FAILED, 3)
    assert slurm.tail(sub.stderr) == 'it broke\n'


def test_cancelled_job(slurm, workdir, follow):
    sub = slurm.submit(job('long', commands=['sleep 300']), workdir)
    deadline = time.monotonic() + 30
    while slurm.statuses([sub.job_id])[sub.job_id].state is not JobState.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    slurm.cancel([sub.job_id])
    statuses, _, _ = follow(slurm, [sub.job_id])
    assert statuses[sub.job_id].state is JobState.CANCELLED


def test_rejected_submission_is_an_error_with_sbatch_message(slurm, workdir):
    from croupier_plugin.core.errors import SchedulerError
    with pytest.raises(SchedulerError) as err:
        slurm.submit(job('nowhere', commands=['true'], partition='no_such_partition'), workdir)
    assert 'invalid partition' in str(err.value).lower()


def test_fifty_jobs_one_status_command_per_cycle(slurm, workdir, follow):
    subs = [slurm.submit(job(f'many{i}', commands=[f'sleep {1 + i % 3}', f'exit {i % 2}']),
                         workdir) for i in range(50)]
    before = len(slurm.transport.commands)
    statuses, _, polls = follow(slurm, [s.job_id for s in subs], limit=120)
    status_commands = slurm.transport.commands[before:]
    # every command the monitor sent was a status command, one per cycle
    assert len(status_commands) == polls
    assert all(c.startswith('ids=') for c in status_commands)
    assert polls >= 2
    for i, sub in enumerate(subs):
        expected = (JobState.COMPLETED, 0) if i % 2 == 0 else (JobState.FAILED, 1)
        assert (statuses[sub.job_id].state, statuses[sub.job_id].exit_code) == expected


def test_arguments_reach_the_job_literally(slurm, workdir, follow):
    args = ['it\'s "quoted"', '$(touch pwned)', 'a; touch pwned2', 'two\nlines', '*', '`id`']
    slurm.transport.write_file(f'{workdir}/show.sh',
                               'for a in "$@"; do printf "[%s]\\n" "$a"; done\n', mode=0o755)
    sub = slurm.submit(job('args', script='show.sh', arguments=args,
                           env={'EVIL': '$(touch pwned3)'}), workdir)
    statuses, _, _ = follow(slurm, [sub.job_id])
    assert statuses[sub.job_id].state is JobState.COMPLETED
    out = slurm.transport.read_file(sub.stdout).decode()
    assert out == ''.join(f'[{a}]\n' for a in args)
    listing = slurm.transport.run(f'ls {shlex.quote(workdir)}').stdout.split()
    assert not [name for name in listing if name.startswith('pwned')]


def test_array_job_fails_when_an_element_fails(slurm, workdir, follow):
    sub = slurm.submit(job('arr', commands=['exit $((SLURM_ARRAY_TASK_ID == 1 ? 4 : 0))'],
                           scale=3), workdir)
    statuses, _, _ = follow(slurm, [sub.job_id])
    status = statuses[sub.job_id]
    assert (status.state, status.exit_code) == (JobState.FAILED, 4)
    assert '2/3 elements completed' in status.reason


def test_vanished_job_fails_after_the_grace_period(slurm, follow):
    # an id SLURM never issued: neither squeue nor sacct knows it
    ghost = '999999'
    start = time.monotonic()
    statuses, seen, _ = follow(slurm, [ghost], limit=30, grace=3)
    assert statuses[ghost].state is JobState.FAILED
    assert 'grace period' in statuses[ghost].reason
    assert seen[ghost][0] is JobState.UNKNOWN
    assert 3 <= time.monotonic() - start < 15


def test_time_limit_gives_timeout(timed_out_job, module_slurm, follow, accounting):
    statuses, _, _ = follow(module_slurm, [timed_out_job.job_id], limit=150)
    assert statuses[timed_out_job.job_id].state is JobState.TIMEOUT
    # sacct's record of the ended job
    out = accounting(module_slurm.transport, f'-j {timed_out_job.job_id} -o State',
                     lambda text: text.startswith('TIMEOUT')).strip()
    assert re.match(r'^TIMEOUT', out)


def test_many_ids_go_through_one_user_wide_squeue(slurm, workdir, follow):
    subs = [slurm.submit(job(f'wide{i}', commands=[f'exit {i}']), workdir) for i in range(3)]
    ghosts = [str(900000 + i) for i in range(60)]      # ids SLURM never issued
    real = [s.job_id for s in subs]
    statuses, _, polls = follow(slurm, real + ghosts, limit=60, grace=3)
    assert len(real + ghosts) > slurm.scheduler.MANY_IDS
    assert '--me' in slurm.transport.commands[-1]
    assert [(statuses[j].state, statuses[j].exit_code) for j in real] == [
        (JobState.COMPLETED, 0), (JobState.FAILED, 1), (JobState.FAILED, 2)]
    assert {statuses[g].state for g in ghosts} == {JobState.FAILED}    # vanished, after grace
