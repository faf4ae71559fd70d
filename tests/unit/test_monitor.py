"""Monitor logic with a scripted clock and scripted scheduler answers.

The real scheduler and SSH are exercised in tests/integration; here the
answers are chosen to reach every branch at once (grace expiry, outages).
"""

import pytest

from croupier_plugin.core.errors import TransportError
from croupier_plugin.core.model import JobState, JobStatus
from croupier_plugin.core.monitor import InfrastructureUnreachable, Monitor
from croupier_plugin.core.schedulers import SlurmScheduler


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class ScriptedCluster:
    """Answers status requests from a script, counting each request."""

    def __init__(self, key, period=10.0):
        self.key = key
        self.monitor_period = period
        self.scheduler = SlurmScheduler()
        self.calls = []
        self.answers = {}
        self.error = None

    def statuses(self, job_ids):
        self.calls.append(list(job_ids))
        if self.error:
            raise self.error
        return {j: self.answers.get(j, self.scheduler.missing(j, 'test')) for j in job_ids}


def status(job_id, state, **kw):
    return JobStatus(job_id, state, raw_state=state.value, **kw)


def test_one_call_per_cluster_per_cycle_at_each_period():
    clock = Clock()
    a, b = ScriptedCluster('a', period=10), ScriptedCluster('b', period=30)
    monitor = Monitor(clock=clock)
    for i in range(100):
        monitor.track(a, str(i), f'a{i}')
        a.answers[str(i)] = status(str(i), JobState.RUNNING)
    for i in range(100, 130):
        monitor.track(b, str(i), f'b{i}')
        b.answers[str(i)] = status(str(i), JobState.PENDING)
    changes = monitor.poll()
    assert len(changes) == 130
    assert [len(c) for c in a.calls] == [100] and [len(c) for c in b.calls] == [30]
    clock.now += 10
    assert monitor.poll() == []            # no change, but 'a' was asked again
    assert len(a.calls) == 2 and len(b.calls) == 1
    assert monitor.next_wakeup() == clock.now + 10
    clock.now += 20
    monitor.poll()
    assert len(a.calls) == 3 and len(b.calls) == 2


def test_finished_jobs_are_not_asked_about_again():
    clock = Clock()
    a = ScriptedCluster('a', period=1)
    monitor = Monitor(clock=clock)
    monitor.track(a, '1', 'one')
    monitor.track(a, '2', 'two')
    a.answers = {'1': status('1', JobState.COMPLETED, exit_code=0),
                 '2': status('2', JobState.RUNNING)}
    monitor.poll()
    clock.now += 1
    monitor.poll()
    assert a.calls == [['1', '2'], ['2']]


def test_unknown_job_fails_after_the_grace_period():
    clock = Clock()
    a = ScriptedCluster('a', period=5)
    monitor = Monitor(clock=clock, unknown_grace=60)
    job = monitor.track(a, '7', 'ghost')
    monitor.poll()
    assert job.status.state is JobState.UNKNOWN
    clock.now += 55
    monitor.poll()
    assert job.status.state is JobState.UNKNOWN
    clock.now += 10
    (change,) = monitor.poll()
    assert change.new.state is JobState.FAILED
    assert 'not known to the scheduler any more for 65 s' in change.new.reason
    assert monitor.next_wakeup() is None    # nothing left to wait for


def test_unknown_raw_state_is_bounded_too():
    clock = Clock()
    a = ScriptedCluster('a', period=5)
    monitor = Monitor(clock=clock, unknown_grace=10)
    job = monitor.track(a, '8', 'odd')
    a.answers['8'] = JobStatus('8', JobState.UNKNOWN, raw_state='WEIRD_NEW_STATE')
    monitor.poll()
    clock.now += 11
    monitor.poll()
    assert job.status.state is JobState.FAILED
    assert "'WEIRD_NEW_STATE', which Croupier does not know" in job.status.reason


def test_unknown_then_known_again_resets_the_grace():
    clock = Clock()
    a = ScriptedCluster('a', period=5)
    monitor = Monitor(clock=clock, unknown_grace=10)
    job = monitor.track(a, '9', 'flaky')
    monitor.poll()
    clock.now += 8
    a.answers['9'] = status('9', JobState.RUNNING)
    monitor.poll()
    del a.answers['9']
    clock.now += 8
    monitor.poll()
    assert job.status.state is JobState.UNKNOWN     # 8 s into a new grace, not 16


def test_outage_backs_off_then_gives_up():
    clock = Clock()
    a = ScriptedCluster('a', period=2)
    monitor = Monitor(clock=clock, outage_limit=100, max_backoff=30)
    job = monitor.track(a, '1', 'j')
    a.answers['1'] = status('1', JobState.RUNNING)
    monitor.poll()
    a.error = TransportError('connection refused')
    waits = []
    with pytest.raises(InfrastructureUnreachable) as err:
        for _ in range(50):
            clock.now = monitor.next_wakeup()
            before = clock.now
            monitor.poll()
            waits.append(monitor.next_wakeup() - before)
    assert waits[:5] == [2, 4, 8, 16, 30]
    assert 'connection refused' in str(err.value)
    assert job.status.state is JobState.RUNNING     # last known state is kept


def test_recovery_after_an_outage_resets_the_backoff():
    clock = Clock()
    a = ScriptedCluster('a', period=2)
    monitor = Monitor(clock=clock)
    monitor.track(a, '1', 'j')
    a.answers['1'] = status('1', JobState.RUNNING)
    a.error = TransportError('down')
    monitor.poll()
    clock.now = monitor.next_wakeup()
    monitor.poll()
    a.error = None
    clock.now = monitor.next_wakeup()
    monitor.poll()
    assert monitor.next_wakeup() == clock.now + 2
