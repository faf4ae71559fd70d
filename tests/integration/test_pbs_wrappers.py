"""The TORQUE flavour against Debian's slurm-wlm-torque wrappers on the bed.

The wrappers are qsub/qstat/qdel in front of SLURM, not a PBS server: their
qstat shows every ended job as ``C`` without ``exit_status`` (and forgets it
after SLURM's MinJobAge), so how a job ended comes from the exit-code file the
batch script writes, and a qdel through Croupier from its cancel file. Their
qstat knows neither ``-x`` nor ``-t``, so the PBS Pro flavour and arrays cannot
run here.
"""

import time

import pytest

from croupier_plugin.core.cluster import Cluster
from croupier_plugin.core.model import JobSpec, JobState
from croupier_plugin.core.schedulers.pbs import TorqueScheduler

pytestmark = pytest.mark.bed


def job(name, **options):
    return JobSpec.from_options(name, options)


@pytest.fixture
def torque(ssh):
    cluster = Cluster('bed-torque', ssh, TorqueScheduler(), monitor_period=1.0)
    submitted = []
    submit = cluster.submit

    def submit_and_remember(spec, workdir):
        job = submit(spec, workdir)
        submitted.append(job.job_id)
        return job

    cluster.submit = submit_and_remember
    yield cluster
    # the jobs' exit-code and cancel files, and the markers no monitor read
    # here (the workdir fixture removes the rest)
    if submitted:
        ssh.inner.run('cd "$HOME"/.croupier/pbs && rm -f -- '
                      + ' '.join(f'{int(j)}.rc {int(j)}.cancelled' for j in submitted))
        ssh.inner.run('cd "$HOME"/.croupier/pbs-markers && rm -f -- '
                      + ' '.join(f'{int(j)}.rc {int(j)}.run' for j in submitted))


def test_completed_and_failed_jobs_through_qsub(torque, workdir, follow):
    ok = torque.submit(job('pbs ok', commands=['sleep 2', 'echo "hello from $PWD"']), workdir)
    bad = torque.submit(job('pbs_bad', commands=['echo "it broke" >&2', 'exit 3']), workdir)
    # the wrappers' qsub prints SLURM's bare job id
    assert ok.job_id.isdigit() and bad.job_id.isdigit()
    # named as qsub -N tells the wrapper: <name>.o<id> in the submission directory
    assert (ok.stdout, ok.stderr) == (f'{workdir}/pbs_ok.o{ok.job_id}',
                                      f'{workdir}/pbs_ok.e{ok.job_id}')

    before = len(torque.transport.commands)
    statuses, seen, polls = follow(torque, [ok.job_id, bad.job_id])
    assert (statuses[ok.job_id].state, statuses[ok.job_id].exit_code) == (JobState.COMPLETED, 0)
    assert (statuses[bad.job_id].state, statuses[bad.job_id].exit_code) == (JobState.FAILED, 3)
    assert JobState.RUNNING in seen[ok.job_id]
    # one status command per poll for both jobs
    status_commands = torque.transport.commands[before:]
    assert len(status_commands) == polls and all('qstat -f -1 -- "$@"' in c
                                                 for c in status_commands)

    # the job ran in its submission directory ($PBS_O_WORKDIR, or where qsub ran)
    assert torque.transport.read_file(ok.stdout).decode() == f'hello from {workdir}\n'
    assert torque.tail(bad.stderr) == 'it broke\n'


def test_qstat_alone_shows_only_that_the_job_ended(torque, workdir):
    sub = torque.submit(job('pbs_raw', commands=['exit 3']), workdir)
    deadline = time.monotonic() + 20
    while True:
        out = torque.transport.run(f'qstat -f {sub.job_id}').stdout
        if 'job_state = C' in out:
            break
        assert time.monotonic() < deadline, out
        time.sleep(0.3)
    assert 'exit_status' not in out.lower()
    status = torque.scheduler.parse_status_output(out, [sub.job_id])[sub.job_id]
    assert (status.state, status.exit_code) == (JobState.FAILED, None)
    # the status command adds the exit code the job recorded
    status = torque.statuses([sub.job_id])[sub.job_id]
    assert (status.state, status.exit_code) == (JobState.FAILED, 3)


def test_qdel_of_a_running_job_is_cancelled(torque, workdir, follow):
    sub = torque.submit(job('pbs_long', commands=['sleep 300']), workdir)
    deadline = time.monotonic() + 20
    while torque.statuses([sub.job_id])[sub.job_id].state is not JobState.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    result = torque.cancel([sub.job_id])
    assert result.exit_code == 0, result.stdout + result.stderr
    statuses, _, _ = follow(torque, [sub.job_id])
    status = statuses[sub.job_id]
    # SLURM's SIGTERM makes the script record 143 before it ends
    assert (status.state, status.exit_code, status.signal) == (JobState.CANCELLED, 143, 15)


def test_unknown_id_does_not_break_the_poll(torque, workdir):
    sub = torque.submit(job('pbs_known', commands=['sleep 1']), workdir)
    before = len(torque.transport.commands)
    statuses = torque.statuses([sub.job_id, '999999'])
    assert len(torque.transport.commands) == before + 1
    assert statuses[sub.job_id].state in (JobState.PENDING, JobState.RUNNING,
                                          JobState.COMPLETED)
    assert statuses['999999'].state is JobState.UNKNOWN


def test_queue_figures_through_the_wrappers_match_slurms(torque, slurm):
    """The wrappers' qstat -Q -f and pbsnodes -a (text forms, as Torque's) in
    one command: every partition is a queue, with the node's CPUs."""
    before = len(torque.transport.commands)
    figures = torque.queue_figures()
    assert len(torque.transport.commands) == before + 1
    # the wrappers' qstat -B -f exits 153: the figures stand without the server's part
    assert '{ qstat -Q -f || :; }' in torque.transport.commands[-1]
    truth = slurm.queue_figures()
    assert set(figures) == set(truth) == {'debug', 'second'}
    for name, queue in figures.items():
        assert queue.available
        assert (queue.nodes_total, queue.cores_total) == (truth[name].nodes_total,
                                                          truth[name].cores_total)
        assert 0 < queue.cores_idle <= queue.cores_total
