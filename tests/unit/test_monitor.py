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

    # as Cluster's: a real run, no accounting figures collected
    simulated = False
    accounting = False
    reporting_user = None

    def __init__(self, key, period=10.0):
        self.name = key
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


class MarkerCluster(ScriptedCluster):
    """A scripted cluster whose jobs leave exit-code markers (``markers``:
    job id -> exit code), read through the real SLURM marker parser."""

    def __init__(self, key, period=15.0):
        super().__init__(key, period)
        self.exits = {}         # job id -> what its marker holds ('run', or an exit code)
        self.looks = []
        self.removed = []

    def markers(self, job_ids, spent=(), started=()):
        self.looks.append(list(job_ids))
        self.removed.extend(spent)
        for job_id in spent:
            self.exits.pop(job_id, None)
        text = ''.join(f'{j} {c}\n' for j, c in self.exits.items())
        return self.scheduler.parse_markers(text, job_ids)


def test_markers_are_looked_for_between_status_commands_at_most_one_per_period():
    clock = Clock()
    a = MarkerCluster('a', period=15)
    monitor = Monitor(clock=clock, marker_period=0.5)
    job = monitor.track(a, '1', 'j', marker=True)
    other = monitor.track(a, '2', 'array')          # no marker: the scheduler tells
    a.answers = {'1': status('1', JobState.RUNNING), '2': status('2', JobState.RUNNING)}
    monitor.poll()
    assert len(a.calls) == 1 and a.looks == []      # a status command covers the markers
    for _ in range(10):
        clock.now = monitor.next_wakeup()
        assert monitor.poll() == []
    assert len(a.calls) == 1 and a.looks == [['1']] * 10
    assert clock.now == 1005.0
    a.exits['1'] = 0
    clock.now = monitor.next_wakeup()
    (change,) = monitor.poll()
    assert change.new.state is JobState.COMPLETED and change.new.exit_code == 0
    assert job.status.source == 'exit-code marker'
    # nothing with a marker left: the next wake-up is the status command's
    assert monitor.next_wakeup() == 1015.0
    clock.now = 1015.0
    monitor.poll()
    assert a.calls[-1] == ['2'] and len(a.calls) == 2
    assert monitor.polls('a') == 2 and monitor.marker_checks('a') == 11
    assert other.status.state is JobState.RUNNING
    # the marker read is removed once, at the end
    assert a.removed == []
    monitor.remove_spent_markers()
    assert a.removed == ['1'] and a.exits == {}
    monitor.remove_spent_markers()
    assert a.removed == ['1']


def test_a_marker_of_a_signal_or_a_failed_check_is_left_to_the_scheduler():
    clock = Clock()
    a = MarkerCluster('a', period=15)
    monitor = Monitor(clock=clock, marker_period=1)
    killed = monitor.track(a, '1', 'killed', marker=True)
    broken = monitor.track(a, '2', 'broken', marker=True)
    a.answers = {'1': status('1', JobState.RUNNING), '2': status('2', JobState.RUNNING)}
    monitor.poll()
    a.exits = {'1': 143, '2': 3}
    clock.now += 1
    (change,) = monitor.poll()
    assert change.job is broken and change.new.state is JobState.FAILED
    assert change.new.exit_code == 3
    assert killed.status.state is JobState.RUNNING
    a.markers = lambda ids, spent, started: (_ for _ in ()).throw(TransportError('gone'))
    clock.now += 1
    assert monitor.poll() == [] and killed.status.state is JobState.RUNNING
    a.answers['1'] = status('1', JobState.CANCELLED)
    clock.now = 1015.0
    (change,) = monitor.poll()
    assert change.new.state is JobState.CANCELLED
    # the markers of both are spent: the one read, the one the scheduler explained
    del a.markers
    monitor.remove_spent_markers()
    assert sorted(a.removed) == ['1', '2'] and a.exits == {}


def test_no_marker_check_while_the_infrastructure_does_not_answer():
    clock = Clock()
    a = MarkerCluster('a', period=2)
    monitor = Monitor(clock=clock, marker_period=0.5)
    monitor.track(a, '1', 'j', marker=True)
    a.error = TransportError('down')
    monitor.poll()
    assert monitor.next_wakeup() == clock.now + 2     # the backoff, not the marker period
    clock.now += 2
    monitor.poll()
    assert a.looks == [] and len(a.calls) == 2


def test_the_slurm_marker_left_by_a_script_is_read_by_the_marker_command(tmp_path):
    """The real script and the real command, in bash (the bed runs them in SLURM)."""
    import os
    import subprocess
    from croupier_plugin.core.model import JobSpec
    scheduler = SlurmScheduler()
    env = dict(os.environ, HOME=str(tmp_path))
    for job_id, commands in (('55', ['exit 3']), ('56', ['true']), ('57', ['kill -TERM $$'])):
        script = tmp_path / f'{job_id}.sbatch'
        script.write_text(scheduler.render_script(JobSpec.from_options('j', {
            'commands': commands})))
        subprocess.run(['bash', str(script)], env=dict(env, SLURM_JOB_ID=job_id))
    # an array's elements leave markers of their own (see the array test below)
    assert '"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"' in scheduler.render_script(
        JobSpec.from_options('a', {'commands': ['true'], 'array': '1-3'}))

    def look(spent=(), started=()):
        out = subprocess.run(['bash', '-c', scheduler.marker_command(spent, started)],
                             env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return sorted(out.stdout.splitlines())
    text = '\n'.join(look())
    assert text.splitlines() == ['55 3', '55 run', '56 0', '56 run', '57 143', '57 run']
    ended = scheduler.parse_markers(text, ['55', '56', '57', '58'])
    assert (ended['55'].state, ended['55'].exit_code) == (JobState.FAILED, 3)
    assert (ended['56'].state, ended['56'].exit_code) == (JobState.COMPLETED, 0)
    assert '57' not in ended            # killed by a signal: the scheduler tells why
    assert look(spent=['55', '56']) == ['57 143', '57 run']
    assert look(started=['57']) == ['57 143']
    assert sorted(os.listdir(tmp_path / '.croupier' / 'slurm')) == ['57.rc']
    assert look(spent=['57']) == []
    # a job that started and did not end yet
    running = scheduler.parse_markers('60 run\n', ['60'])['60']
    assert running.state is JobState.RUNNING and running.source == 'start marker'
    with pytest.raises(ValueError):
        scheduler.marker_command(['1; rm -rf ~'])
    with pytest.raises(ValueError):
        scheduler.marker_command((), ['1 /'])


def test_markers_nobody_removed_are_pruned_after_two_weeks_at_the_first_look(tmp_path,
                                                                            monkeypatch):
    """Runs killed before removing their markers leave them behind: a cluster's
    first look (then one a day) removes those older than MARKER_KEEP_DAYS, with
    the real command in bash; younger ones stay, a resumed run still reads them."""
    import os
    import time
    from croupier_plugin.core.cluster import Cluster
    from croupier_plugin.core.schedulers.base import MARKER_KEEP_DAYS
    from croupier_plugin.core.transport import LocalTransport
    folder = tmp_path / '.croupier' / 'slurm'
    folder.mkdir(parents=True)
    day = 86400

    def leave(name, text, days_ago):
        (folder / name).write_text(text + '\n')
        then = time.time() - days_ago * day
        os.utime(folder / name, (then, then))
    leave('70.rc', '0', MARKER_KEEP_DAYS + 1)
    leave('70.run', 'run', MARKER_KEEP_DAYS + 1)
    leave('71.run', 'run', MARKER_KEEP_DAYS + 30)      # killed by a signal: no exit code
    leave('72.rc', '3', MARKER_KEEP_DAYS - 1)
    leave('73.rc', '0', 0)
    (folder / 'notes.txt').write_text('not a marker\n')
    os.utime(folder / 'notes.txt', (0, 0))
    cluster = Cluster('hpc', LocalTransport(env=dict(os.environ, HOME=str(tmp_path))),
                      SlurmScheduler())
    seen = cluster.markers(['70', '72', '73'])
    assert {j: s.state for j, s in seen.items()} == {'72': JobState.FAILED,
                                                     '73': JobState.COMPLETED}
    assert sorted(os.listdir(folder)) == ['72.rc', '73.rc', 'notes.txt']
    # not again within a day: an old marker left now stays until the next pruning
    leave('74.rc', '0', MARKER_KEEP_DAYS + 1)
    assert cluster.markers(['74'])['74'].state is JobState.COMPLETED
    assert '74.rc' in os.listdir(folder)
    later = time.monotonic() + Cluster.PRUNE_EVERY + 1
    monkeypatch.setattr(time, 'monotonic', lambda: later)
    assert cluster.markers(['74']) == {}
    assert sorted(os.listdir(folder)) == ['72.rc', '73.rc', 'notes.txt']


def test_a_start_marker_says_running_once():
    clock = Clock()
    a = MarkerCluster('a', period=15)
    monitor = Monitor(clock=clock, marker_period=0.5)
    job = monitor.track(a, '1', 'j', marker=True)
    a.answers['1'] = status('1', JobState.PENDING)
    monitor.poll()
    a.exits['1'] = 'run'
    clock.now = monitor.next_wakeup()
    (change,) = monitor.poll()
    assert change.new.state is JobState.RUNNING and job.status.source == 'start marker'
    clock.now = monitor.next_wakeup()
    assert monitor.poll() == []                 # seen once, whatever the marker says
    a.exits['1'] = 0
    clock.now = monitor.next_wakeup()
    (change,) = monitor.poll()
    assert change.new.state is JobState.COMPLETED


def test_slurm_array_elements_leave_markers_and_the_array_ends_with_its_last(tmp_path):
    """The real array script and listing in bash: each element leaves its own
    markers (with the array's element count); the array is running from its
    first start marker, and ends when every element left its exit code."""
    import os
    import subprocess
    from croupier_plugin.core.model import JobSpec
    scheduler = SlurmScheduler()
    env = dict(os.environ, HOME=str(tmp_path))
    array = JobSpec.from_options('a', {'commands': ['exit "$RC"'], 'array': '0-4:2'})
    assert scheduler.leaves_marker(array)
    script = tmp_path / 'array.sbatch'
    script.write_text(scheduler.render_script(array))

    def element(array_id, task, job_id, rc, count=3):
        subprocess.run(['bash', str(script)], env=dict(
            env, SLURM_JOB_ID=job_id, SLURM_ARRAY_JOB_ID=array_id, SLURM_ARRAY_TASK_ID=task,
            SLURM_ARRAY_TASK_COUNT=str(count), RC=str(rc)))

    def look(spent=(), started=()):
        out = subprocess.run(['bash', '-c', scheduler.marker_command(spent, started)],
                             env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout

    for task, job_id in (('0', '71'), ('2', '72')):
        element('70', task, job_id, 0)
    element('80', '0', '81', 0)
    element('80', '2', '82', 3)
    element('80', '4', '83', 0)
    element('90', '0', '91', 143, count=1)
    (tmp_path / '.croupier/slurm/75_3.run').write_text('run\n')
    seen = scheduler.parse_markers(look(), ['70', '75', '80', '90'])
    # 70: two of three elements ended, the third not started: the scheduler
    # tells whether it waits or runs
    assert '70' not in seen
    # 75: an element started and did not end: the array runs
    assert seen['75'].state is JobState.RUNNING and seen['75'].source == 'start marker'
    # 80: all three ended, one with exit code 3: the array failed
    assert (seen['80'].state, seen['80'].exit_code) == (JobState.FAILED, 3)
    assert seen['80'].reason.startswith('array: 2/3 elements completed')
    # 90: an element killed by a signal: the scheduler tells why
    assert '90' not in seen
    element('70', '4', '73', 0)
    # the start markers read go first: the exit codes stay until the array ended
    ended = scheduler.parse_markers(look(started=['70']), ['70'])['70']
    assert (ended.state, ended.exit_code, ended.source) == (JobState.COMPLETED, 0,
                                                           'exit-code marker')
    assert sorted(os.listdir(tmp_path / '.croupier' / 'slurm')) == \
        ['70_0.rc', '70_2.rc', '70_4.rc', '75_3.run', '80_0.rc', '80_0.run', '80_2.rc',
         '80_2.run', '80_4.rc', '80_4.run', '90_0.rc', '90_0.run']
    look(spent=['70', '75', '80', '90'])
    assert os.listdir(tmp_path / '.croupier' / 'slurm') == []
    # an array id is never read as a plain job's, nor the other way round
    assert scheduler.parse_markers('5_0 0 1\n', ['50', '5_0']) == {}
