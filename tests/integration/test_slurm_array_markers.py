"""SLURM job arrays leave markers (issue 17 point 3): each element its own,
and the monitor reads the array's end from them, asking squeue/sacct at most
once per period."""

import time

import pytest

from croupier_plugin.core.cluster import Cluster
from croupier_plugin.core.model import JobSpec, JobState
from croupier_plugin.core.monitor import Monitor
from croupier_plugin.core.schedulers import SlurmScheduler

pytestmark = pytest.mark.bed


def follow_array(ssh, workdir: str, commands: list) -> tuple:
    """Submit a three-element array and follow it at a 15 s period with
    markers looked for every 0.5 s; (its last status, seconds from the
    submission to its end, status commands sent, states seen)."""
    cluster = Cluster('bed-slurm', ssh, SlurmScheduler(), monitor_period=15.0)
    asked = []
    statuses = cluster.statuses

    def counted(job_ids):
        asked.append(list(job_ids))
        return statuses(job_ids)
    cluster.statuses = counted
    spec = JobSpec.from_options('array_marks', {'commands': commands, 'array': '0-2'})
    assert cluster.scheduler.leaves_marker(spec)
    began = time.monotonic()
    sub = cluster.submit(spec, workdir)
    monitor = Monitor(marker_period=0.5)
    job = monitor.track(cluster, sub.job_id, spec.name, marker=True)
    seen = []
    deadline = began + 40
    while monitor.active():
        assert time.monotonic() < deadline, seen
        seen += [c.new.state for c in monitor.poll()]
        wake = monitor.next_wakeup()
        if wake is not None:
            time.sleep(max(0.0, min(0.5, wake - time.monotonic())))
    took = time.monotonic() - began
    monitor.remove_spent_markers()
    left = ssh.run(f'ls "$HOME"/.croupier/slurm | grep "^{sub.job_id}_" || true').stdout
    assert left == '', left
    return job.status, took, asked, seen


def test_an_array_ends_from_its_elements_markers_within_a_period(ssh, workdir):
    status, took, asked, seen = follow_array(ssh, workdir, ['sleep 2'])
    assert (status.state, status.exit_code, status.source) == \
        (JobState.COMPLETED, 0, 'exit-code marker')
    assert status.reason == 'array: 3/3 elements completed'
    # the squeue at the first poll only: the end came before the next period
    assert len(asked) == 1 and took < 15, (asked, took)
    assert JobState.RUNNING in seen


def test_an_array_with_a_failed_element_fails_with_its_exit_code(ssh, workdir):
    status, took, asked, _ = follow_array(
        ssh, workdir, ['sleep 1', 'if [ "$SLURM_ARRAY_TASK_ID" = 1 ]; then exit 3; fi'])
    assert (status.state, status.exit_code) == (JobState.FAILED, 3), status
    assert status.reason == 'array: 2/3 elements completed; element 1 ended with exit code 3'
    assert len(asked) == 1 and took < 15, (asked, took)
