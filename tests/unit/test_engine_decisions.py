"""The engine's records and decisions with scripted records, a scripted clock and
scripted infrastructures.

The real scheduler and SSH are exercised in tests/integration and tests/e2e;
here every decision is reached directly, and the loop is driven end to end
against a scripted cluster to see that it carries the decisions out.
"""

import itertools

import pytest

from croupier_plugin.core.cluster import SubmittedJob
from croupier_plugin.core.engine import (Engine, JobFailed, JobPolicy, JobRecord, Outputs,
                                         PlannedJob)
from croupier_plugin.core.engine import decisions
from croupier_plugin.core.model import JobState, JobStatus
from croupier_plugin.core.monitor import Monitor
from croupier_plugin.core.schedulers import SlurmScheduler


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class ScriptedCluster:
    """Takes submissions and answers status requests from a script: each job
    ends in the state ``ends[name]`` (COMPLETED by default) at its first poll."""

    def __init__(self, key='hpc', period=0.01):
        self.key = key
        self.monitor_period = period
        self.scheduler = SlurmScheduler()
        self.ids = itertools.count(100)
        self.submitted = []         # (name, job_id)
        self.cancelled = []
        self.ends = {}
        self.polls = 0

    def submit(self, spec, workdir):
        job_id = str(next(self.ids))
        self.submitted.append((spec.name, job_id))
        return SubmittedJob(spec.name, job_id, self.key, f'{workdir}/{spec.name}.sh',
                            f'{workdir}/{job_id}.out', f'{workdir}/{job_id}.err', 1.0)

    def statuses(self, job_ids):
        self.polls += 1
        names = {i: n for n, i in self.submitted}
        out = {}
        for job_id in job_ids:
            state = self.ends.get(names.get(job_id), JobState.COMPLETED)
            out[job_id] = JobStatus(job_id, state, raw_state=state.value,
                                    exit_code=0 if state is JobState.COMPLETED else 1)
        return out

    def cancel(self, job_ids):
        self.cancelled.extend(job_ids)

    def tail(self, path, lines=20):
        return ''


class Spec:
    def __init__(self, name):
        self.name = name


def job(name, parents=(), record=None, cluster=None, **kw):
    return PlannedJob(name, Spec(name), cluster or ScriptedCluster(), '/w', list(parents),
                      record or {}, **kw)


def jobs_of(*jobs):
    return {j.name: j for j in jobs}


# -- records ----------------------------------------------------------------------

def test_a_stored_record_reads_back_to_exactly_the_same_properties():
    # the form earlier versions stored: users' `croupier status` and resumption read it
    stored = {'job_id': '42', 'state': 'FAILED', 'raw_state': 'NODE_FAIL', 'reason': 'node down',
              'exit_code': 1, 'stdout': '/w/42.out', 'stderr': '/w/42.err',
              'script': '/w/a.sh', 'submitted_at': 10.5, 'ended_at': 20.0,
              'cluster': 'hpc', 'reported': True, 'submit_token': 'abcd',
              'outputs': 'FAILED', 'tried': ['other'],
              'placement': {'chosen': 'hpc', 'reason': 'r', 'figures': {'hpc': 'x'}},
              'attempts': [{'job_id': '41', 'cluster': 'other', 'state': 'MOVED',
                            'raw_state': 'QUEUE_TIMEOUT', 'reason': 'late',
                            'submitted_at': 1.0, 'ended_at': 2.0}]}
    record = JobRecord.from_properties(dict(stored, workdir='/not/a/record/property'))
    assert record.state is JobState.FAILED and record.outputs is Outputs.FAILED
    assert record.attempts[0].state is JobState.MOVED
    assert record.to_properties() == stored
    assert JobRecord.from_properties({}).to_properties() == {}
    assert JobRecord.from_properties({'state': 'SUBMITTING'}).state is JobState.SUBMITTING


def test_an_archived_attempt_keeps_what_the_status_table_shows():
    record = JobRecord.from_properties({'job_id': '7', 'state': 'TIMEOUT', 'cluster': 'hpc',
                                        'stdout': '/w/o', 'submitted_at': 1.0})
    record.archive_attempt()
    record.reset()
    assert record.to_properties() == {'attempts': [{'job_id': '7', 'cluster': 'hpc',
                                                    'state': 'TIMEOUT',
                                                    'submitted_at': 1.0}]}


# -- resume ---------------------------------------------------------------------------

def test_resume_keeps_completed_follows_submitted_and_recovers_lost_submissions():
    jobs = [job('done', record={'state': 'COMPLETED', 'job_id': '1'}),
            job('running', record={'state': 'RUNNING', 'job_id': '2'}),
            job('lost', record={'state': 'SUBMITTING', 'submit_token': 't'}),
            job('never')]
    hows = {a.job.name: a.how for a in decisions.resume(jobs, rerun_failed=False)}
    assert hows == {'done': 'keep', 'running': 'reattach', 'lost': 'recover', 'never': 'reset'}


def test_an_ended_run_starts_afresh_or_reruns_only_what_did_not_complete():
    def ended_run():
        return [job('a', record={'state': 'COMPLETED', 'job_id': '1'}),
                job('b', ['a'], record={'state': 'FAILED', 'job_id': '2'}),
                job('c', ['b'], record={'state': 'SKIPPED'})]
    assert {a.how for a in decisions.resume(ended_run(), rerun_failed=False)} == {'fresh'}
    hows = [a.how for a in decisions.resume(ended_run(), rerun_failed=True)]
    assert hows == ['keep', 'rerun', 'rerun']
    # a completed job whose outputs did not move has not ended its part
    waiting = [job('a', record={'state': 'COMPLETED', 'job_id': '1', 'outputs': 'PENDING'},
                   stage_out=['t'])]
    assert [a.how for a in decisions.resume(waiting, rerun_failed=False)] == ['keep']


# -- ready, outputs ------------------------------------------------------------------

def test_a_job_is_ready_when_every_parent_completed_and_moved_its_outputs():
    a = job('a', record={'state': 'COMPLETED', 'job_id': '1', 'outputs': 'PENDING'},
            stage_out=['t'])
    b = job('b', record={'state': 'RUNNING', 'job_id': '2'})
    c = job('c', ['a'])
    d = job('d', ['b'])
    e = job('e')
    jobs = jobs_of(a, b, c, d, e)
    assert [s.job.name for s in decisions.ready(jobs, busy=())] == ['e']
    assert decisions.ready(jobs, busy={'e'}) == []
    assert [s.job.name for s in decisions.outputs_ready(jobs, finishing=())] == ['a']
    assert decisions.outputs_ready(jobs, finishing={'a'}) == []
    a.record.outputs = Outputs.DONE
    assert [s.job.name for s in decisions.ready(jobs, busy={'e'})] == ['c']


# -- queue timeouts ------------------------------------------------------------------

def test_a_job_late_in_the_queue_moves_while_an_infrastructure_is_left_then_fails():
    clock = Clock()
    policy = JobPolicy(max_time_in_queue=30)
    late = job('late', record={'state': 'PENDING', 'job_id': '1',
                               'submitted_at': clock.now}, policy=policy,
               placements=['x', 'y'])
    running = job('running', record={'state': 'RUNNING', 'job_id': '2',
                                     'submitted_at': clock.now}, policy=policy)
    jobs = jobs_of(late, running)
    assert decisions.queue_timeouts(jobs, clock.now + 30) == []
    clock.now += 31
    (timeout,) = decisions.queue_timeouts(jobs, clock.now)
    assert timeout.job is late and timeout.move
    late.record.tried = ['x']
    (timeout,) = decisions.queue_timeouts(jobs, clock.now)
    assert not timeout.move


# -- failures, retries, skips -----------------------------------------------------------

def test_failures_are_retried_as_the_policy_says_and_reported_once():
    flaky = job('flaky', record={'state': 'FAILED', 'raw_state': 'NODE_FAIL', 'job_id': '1'},
                policy=JobPolicy(max_retries=1, retry_on=frozenset({'NODE_FAIL'})))
    broken = job('broken', record={'state': 'FAILED', 'raw_state': 'FAILED', 'job_id': '2'},
                 policy=JobPolicy(max_retries=1, retry_on=frozenset({'NODE_FAIL'})))
    dropped = job('dropped', record={'state': 'SKIPPED', 'job_id': '3'},
                  policy=JobPolicy(max_retries=5))
    never = job('never', record={'state': 'SKIPPED'})
    told = job('told', record={'state': 'FAILED', 'job_id': '4', 'reported': True})
    jobs = jobs_of(flaky, broken, dropped, never, told)
    found = decisions.failed(jobs)
    assert [f.job.name for f in found] == ['flaky', 'broken', 'dropped']
    retries, fatal = decisions.retry_or_fail(found + found)
    assert [r.job.name for r in retries] == ['flaky']
    assert 'attempt 1 ended FAILED (NODE_FAIL); attempt 2 of 2 follows' == retries[0].reason
    assert [f.job.name for f in fatal] == ['broken', 'dropped']
    flaky.record.archive_attempt()
    _, fatal = decisions.retry_or_fail(decisions.failed(jobs))
    assert 'flaky' in [f.job.name for f in fatal]
    assert [j.name for j in decisions.never_submitted(jobs_of(job('x'), flaky))] == ['x']


def test_the_graph_is_checked():
    assert decisions.check_graph(jobs_of(job('a', ['b']), job('b', ['a']))) == \
        'job dependencies form a cycle: a -> b -> a'
    assert decisions.check_graph(jobs_of(job('a', ['zz']))) == \
        "job 'a' depends on unknown job 'zz'"
    assert decisions.check_graph(jobs_of(job('a'), job('b', ['a']))) is None


# -- the loop carries the decisions out -------------------------------------------------

def run(jobs, **kw):
    records, events = {}, []
    engine = Engine(jobs, lambda name, record: records.__setitem__(name, record),
                    events=lambda kind, job, **info: events.append((kind, job.name)),
                    monitor=Monitor(unknown_grace=5), **kw)
    return engine, records, events


def test_the_loop_runs_a_dag_in_order_and_stores_plain_records():
    cluster = ScriptedCluster()
    jobs = [job('first', cluster=cluster), job('left', ['first'], cluster=cluster),
            job('right', ['first'], cluster=cluster),
            job('last', ['left', 'right'], cluster=cluster)]
    engine, records, _ = run(jobs)
    summary = engine.run()
    order = [name for name, _ in cluster.submitted]
    assert order[0] == 'first' and order[-1] == 'last' and len(order) == 4
    assert {r['state'] for r in summary} == {'COMPLETED'}
    last = dict(records['last'])
    assert len(last.pop('submit_token')) == 16
    assert last == {'job_id': '103', 'state': 'COMPLETED', 'raw_state': 'COMPLETED',
                               'reason': '', 'exit_code': 0, 'stdout': '/w/103.out',
                               'stderr': '/w/103.err', 'script': '/w/last.sh',
                               'submitted_at': 1.0, 'ended_at': records['last']['ended_at'],
                               'cluster': 'hpc'}
    assert all(isinstance(r['state'], str) and type(r['state']) is str
               for r in records.values())


def test_the_loop_retries_then_fails_and_skips_the_dependants():
    cluster = ScriptedCluster()
    cluster.ends['bad'] = JobState.FAILED
    jobs = [job('bad', cluster=cluster, policy=JobPolicy(max_retries=1)),
            job('after', ['bad'], cluster=cluster)]
    engine, records, events = run(jobs)
    with pytest.raises(JobFailed, match="job 'bad' .* ended FAILED"):
        engine.run()
    assert [name for name, _ in cluster.submitted] == ['bad', 'bad']
    assert ('retrying', 'bad') in events
    assert records['after'] == {'state': 'SKIPPED', 'reason': 'a job it depends on failed'}
    assert records['bad']['reported'] and len(records['bad']['attempts']) == 1
