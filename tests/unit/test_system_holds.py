"""Held jobs: a hold only an administrator can release ends the job (FAILED,
and the cluster deletes it); a user's or operator's hold stays PENDING, which
the job's max_time_in_queue bounds. SLURM's rows are squeue's, in the status
command's format (JobArrayID|State|Reason|exit_code); PBS's are qstat -f's."""

import pytest

from croupier_plugin.core.model import JobState
from croupier_plugin.core.schedulers.pbs import PbsScheduler, TorqueScheduler
from croupier_plugin.core.schedulers.slurm import SlurmScheduler


@pytest.mark.parametrize('reason, state', [
    ('JobHeldAdmin', JobState.FAILED),
    # slurmctld's words for a job whose launch failed and that it requeued held
    ('launch failed requeued held', JobState.FAILED),
    ('launch_failed_requeued_held', JobState.FAILED),
    ('JobHeldUser', JobState.PENDING),
    ('Resources', JobState.PENDING),
    ('Priority', JobState.PENDING),
])
def test_slurm_system_holds_end_the_job(reason, state):
    scheduler = SlurmScheduler()
    status = scheduler.parse_status_output(f'41|PENDING|{reason}|0\n', ['41'])['41']
    assert (status.state, status.raw_state) == (state, 'PENDING')
    assert reason in status.reason
    assert scheduler.still_queued(status) is (state is JobState.FAILED)
    if state is JobState.FAILED:
        assert status.reason == f'held by the system, so it would never start: {reason}'


def test_slurm_ended_jobs_are_not_deleted_again():
    scheduler = SlurmScheduler()
    statuses = scheduler.parse_status_output('42|FAILED|NonZeroExitCode|768\n'
                                             '43|RUNNING|None|0\n', ['42', '43'])
    assert not any(scheduler.still_queued(s) for s in statuses.values())


@pytest.mark.parametrize('flavour', [TorqueScheduler, PbsScheduler])
@pytest.mark.parametrize('holds, extra, state', [
    ('s', '', JobState.FAILED),
    ('u', '    comment = job held due to possible security breach of job tmpdir, '
          'failed to start\n', JobState.FAILED),
    ('s', '    depend = afterok:5.srv@srv\n', JobState.PENDING),     # waits on its parent
    ('u', '', JobState.PENDING),
    ('o', '', JobState.PENDING),
])
def test_pbs_system_holds_end_the_job(flavour, holds, extra, state):
    text = f'Job Id: 9.srv\n    job_state = H\n    Hold_Types = {holds}\n{extra}\n'
    scheduler = flavour()
    status = scheduler.parse_status_output(text, ['9.srv'])['9.srv']
    assert (status.state, status.raw_state) == (state, 'H')
    assert scheduler.still_queued(status) is (state is JobState.FAILED)
    if state is JobState.FAILED:
        assert status.reason.startswith(f'held by the system (Hold_Types {holds}), so it '
                                        f'would never start: ')
