"""System holds on the bed's SLURM: a job only an administrator could release
ends FAILED with SLURM's reason and is deleted; a user's own hold stays pending.

The administrator's hold is made as it is on a cluster: ``scontrol hold`` run
by root (the tests run as root on the bed's host) on the test user's job.
"""

import subprocess
import time

import pytest

from croupier_plugin.core.model import JobSpec, JobState
from croupier_plugin.core.monitor import Monitor

pytestmark = pytest.mark.bed


def squeue_state(ssh, job_id: str) -> str:
    """The job's state and reason as squeue shows them ('' once it left)."""
    return ssh.inner.run(f'squeue --noheader --states=all --jobs={int(job_id)} '
                         f"-o '%T|%r'").stdout.strip()


def poll_until(monitor: Monitor, job, predicate, limit: float = 30.0):
    """Poll until ``predicate(status)``; every status seen."""
    seen = []
    deadline = time.monotonic() + limit
    while True:
        for change in monitor.poll(force=True):
            seen.append(change.new)
        if job.status is not None and predicate(job.status):
            return seen
        assert time.monotonic() < deadline, seen
        time.sleep(0.3)


def test_admin_hold_fails_the_job_and_deletes_it_user_hold_stays_pending(slurm, workdir):
    # submitted held by its user: JobHeldUser, a hold the user releases
    sub = slurm.submit(JobSpec.from_options('held by user', {
        'commands': ['sleep 1'], 'extra_directives': ['--hold']}), workdir)
    monitor = Monitor(unknown_grace=30)
    job = monitor.track(slurm, sub.job_id, 'held')
    try:
        poll_until(monitor, job, lambda s: s.reason == 'JobHeldUser')
        for _ in range(2):
            monitor.poll(force=True)
            assert (job.status.state, job.status.reason) == (JobState.PENDING, 'JobHeldUser')
        assert squeue_state(slurm.transport, sub.job_id) == 'PENDING|JobHeldUser'

        # an administrator's hold: it would never start on its own
        held = subprocess.run(['scontrol', 'hold', sub.job_id], capture_output=True, text=True)
        assert held.returncode == 0, held.stderr
        poll_until(monitor, job, lambda s: s.terminal)
        status = job.status
        assert (status.state, status.raw_state) == (JobState.FAILED, 'PENDING')
        assert status.reason == 'held by the system, so it would never start: JobHeldAdmin; ' \
                                'deleted'
        # and SLURM no longer keeps it waiting
        deadline = time.monotonic() + 15
        while squeue_state(slurm.transport, sub.job_id).startswith('PENDING'):
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert squeue_state(slurm.transport, sub.job_id) in ('', 'CANCELLED|JobHeldAdmin',
                                                             'CANCELLED|None')
    finally:
        slurm.transport.inner.run(f'scancel {int(sub.job_id)}')
