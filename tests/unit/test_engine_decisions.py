"""The engine's records and decisions with scripted records, a scripted clock and
scripted infrastructures.

The real scheduler and SSH are exercised in tests/integration and tests/e2e;
here every decision is reached directly, and the loop is driven end to end
against a scripted cluster to see that it carries the decisions out.
"""

import itertools

import pytest

from croupier_plugin.core.cluster import Cluster, SubmittedJob
from croupier_plugin.core.engine import (Engine, JobFailed, JobPolicy, JobRecord, Outputs,
                                         PlannedJob)
from croupier_plugin.core.engine import decisions
from croupier_plugin.core.model import JobState, JobStatus
from croupier_plugin.core.monitor import Monitor
from croupier_plugin.core.model import JobSpec
from croupier_plugin.core.schedulers import PbsScheduler, SlurmScheduler
from croupier_plugin.core.schedulers.pbs import TorqueScheduler
from croupier_plugin.core.schedulers.shell import ShellScheduler


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class ScriptedCluster(Cluster):
    """Takes submissions and answers status requests from a script: each job
    runs for ``runs[name]`` status requests (none by default), then ends in the
    state ``ends[name]`` (COMPLETED by default). A job submitted to wait for
    others (``after``) is dropped, as SLURM does, when one of them failed.
    What it does not script is Cluster's (no transport: nothing is sent)."""

    def __init__(self, key='hpc', period=0.01):
        self.name = key
        self.monitor_period = period
        self.scheduler = SlurmScheduler()
        self.ids = itertools.count(100)
        self.submitted = []         # (name, job_id)
        self.after = {}             # name -> the ids it was submitted to wait for
        self.cancelled = []
        self.ends = {}
        self.runs = {}
        self.polls = 0

    def submit(self, spec, workdir, after=(), *, token=None, script_data=None):
        job_id = str(next(self.ids))
        self.submitted.append((spec.name, job_id))
        self.after[spec.name] = tuple(after)
        return SubmittedJob(spec.name, job_id, self.name, f'{workdir}/{spec.name}.sh',
                            f'{workdir}/{job_id}.out', f'{workdir}/{job_id}.err', 1.0)

    def _state(self, job_id, names):
        name = names.get(job_id)
        if job_id in self.cancelled:
            return JobState.CANCELLED
        for parent in self.after.get(name, ()):
            parent_state = self._state(parent, names)
            if parent_state.terminal and parent_state is not JobState.COMPLETED:
                return JobState.CANCELLED       # DependencyNeverSatisfied
            if parent_state is not JobState.COMPLETED:
                return JobState.PENDING
        if self.runs.get(name, 0) > 0:
            return JobState.RUNNING
        return self.ends.get(name, JobState.COMPLETED)

    def statuses(self, job_ids):
        self.polls += 1
        names = {i: n for n, i in self.submitted}
        out = {}
        for job_id in job_ids:
            state = self._state(job_id, names)
            out[job_id] = JobStatus(job_id, state, raw_state=state.value,
                                    exit_code=0 if state is JobState.COMPLETED else 1)
        for job_id, status in out.items():
            if status.state is JobState.RUNNING:
                self.runs[names[job_id]] -= 1       # one request's time of running
        return out

    def markers(self, job_ids, spent=(), started=()):
        return {}           # no marker: the status requests tell

    def cancel(self, job_ids):
        self.cancelled.extend(job_ids)

    def tail(self, path, lines=20):
        return ''


def job(name, parents=(), record=None, cluster=None, **kw):
    return PlannedJob(name, JobSpec.from_options(name, {'commands': ['true']}),
                      cluster or ScriptedCluster(), '/w', list(parents), record or {}, **kw)


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


def test_the_infrastructure_is_named_infrastructure_in_code_and_cluster_where_users_see_it():
    record = JobRecord.from_properties({'job_id': '7', 'cluster': 'hpc',
                                        'attempts': [{'job_id': '6', 'cluster': 'old'}]})
    assert record.infrastructure == 'hpc' and record.attempts[0].infrastructure == 'old'
    assert 'cluster' in JobRecord.property_names()
    assert 'infrastructure' not in JobRecord.property_names()
    record.infrastructure = 'other'
    assert record.to_properties()['cluster'] == 'other'
    assert 'infrastructure' not in record.to_properties()

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
    b = job('b', record={'state': 'RUNNING', 'job_id': '2'}, cluster=ScriptedCluster('other'))
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


# -- the scheduler runs the DAG (issue 17) ------------------------------------------------

def test_a_child_waits_in_the_scheduler_for_parents_it_can_carry():
    hpc = ScriptedCluster('hpc')
    running = {'state': 'RUNNING', 'job_id': '2'}

    def decide(child_kw=None, parent_kw=None, parent_record=None, parent_cluster=hpc):
        parent = job('p', record=dict(parent_record or running), cluster=parent_cluster,
                     **(parent_kw or {}))
        done = job('d', record={'state': 'COMPLETED', 'job_id': '1'}, cluster=hpc)
        child = job('c', ['p', 'd'], **dict({'cluster': hpc}, **(child_kw or {})))
        return [(s.job.name, s.after) for s in
                decisions.ready(jobs_of(parent, done, child), busy={'p'})]

    # the completed parent needs no dependency, the running one is the scheduler's
    assert decide() == [('c', ('2',))]
    # a pending parent: the child is not queued yet (one level beyond what runs)
    assert decide(parent_record={'state': 'PENDING', 'job_id': '2'}) == []
    # where the scheduler cannot carry the edge, the engine waits as before
    assert decide(parent_cluster=ScriptedCluster('other')) == []
    assert decide(parent_record={'state': 'SUBMITTING'}) == []
    assert decide(parent_kw={'stage_out': ['a transfer']}) == []
    assert decide(parent_kw={'policy': JobPolicy(max_retries=1)}) == []
    assert decide(parent_kw={'placements': ['x', 'y']}) == []
    assert decide(child_kw={'placements': ['x', 'y']}) == []
    assert decide(child_kw={'policy': JobPolicy(max_time_in_queue=60)}) == []
    shell = ScriptedCluster('hpc')
    shell.scheduler = ShellScheduler()
    assert decide(parent_cluster=shell, child_kw={'cluster': shell}) == []


def test_pbs_carries_plain_parents_but_not_arrays():
    pbs = PbsScheduler()
    assert pbs.holds_for(JobSpec.from_options('p', {'commands': ['true']}))
    assert not pbs.holds_for(JobSpec.from_options('p', {'commands': ['true'], 'array': '1-3'}))
    assert SlurmScheduler().holds_for(JobSpec.from_options('p', {'commands': ['true'],
                                                                  'array': '1-3'}))
    command = pbs.submit_command(JobSpec.from_options('c', {'commands': ['true']}), '/w/c.pbs',
                                 '/w', after=['7.host', '8.host'])
    assert "-W depend=afterok:7.host:8.host" in command
    command = SlurmScheduler().submit_command(JobSpec.from_options('c', {'commands': ['x']}),
                                              '/w/c.sbatch', '/w', after=['7', '8'])
    assert '--dependency=afterok:7:8 --kill-on-invalid-dep=yes' in command
    with pytest.raises(ValueError):
        SlurmScheduler().submit_command(JobSpec.from_options('c', {'commands': ['x']}),
                                        '/w/c.sbatch', '/w', after=['7;rm -rf ~'])


def test_a_held_child_is_not_a_failure_while_its_parent_decides_its_fate():
    hpc = ScriptedCluster('hpc')
    parent = job('p', record={'state': 'RUNNING', 'job_id': '1'}, cluster=hpc)
    child = job('c', ['p'], record={'state': 'CANCELLED', 'job_id': '2'}, cluster=hpc)
    jobs = jobs_of(parent, child)
    assert [j.name for j in decisions.held(jobs)] == ['c']
    assert decisions.failed(jobs) == []
    parent.record.state = JobState.FAILED
    assert [f.job.name for f in decisions.failed(jobs)] == ['p']
    parent.record.state = JobState.COMPLETED
    # its parent completed: a cancelled child is a failure of its own
    assert [f.job.name for f in decisions.failed(jobs)] == ['c']
    # a child seen running started: whatever the records say of its parent
    parent.record.state = JobState.RUNNING
    child.record.state = JobState.RUNNING
    assert decisions.held(jobs) == []


def test_the_loop_submits_children_to_wait_for_running_parents():
    cluster = ScriptedCluster()
    cluster.runs = {'first': 3, 'left': 2, 'right': 2}
    jobs = [job('first', cluster=cluster), job('left', ['first'], cluster=cluster),
            job('right', ['first'], cluster=cluster),
            job('last', ['left', 'right'], cluster=cluster)]
    engine, records, _ = run(jobs)
    engine.run()
    ids = dict(cluster.submitted)
    assert sorted(ids) == ['first', 'last', 'left', 'right']     # each once
    assert cluster.after['left'] == cluster.after['right'] == (ids['first'],)
    assert sorted(cluster.after['last']) == sorted((ids['left'], ids['right']))
    assert {r['state'] for r in records.values()} == {'COMPLETED'}


def test_a_failed_parent_skips_its_waiting_children_and_alone_fails_the_run():
    cluster = ScriptedCluster()
    cluster.runs = {'first': 3}
    cluster.ends = {'first': JobState.FAILED}
    jobs = [job('first', cluster=cluster), job('child', ['first'], cluster=cluster),
            job('grandchild', ['child'], cluster=cluster)]
    engine, records, _ = run(jobs)
    with pytest.raises(JobFailed) as failed:
        engine.run()
    assert [j.name for j, _, _ in failed.value.failures] == ['first']
    ids = dict(cluster.submitted)
    # the child waited in the scheduler for its running parent, and was dropped
    assert cluster.after['child'] == (ids['first'],)
    assert records['child']['state'] == 'SKIPPED' and 'job_id' not in records['child']
    assert records['child']['reason'] == \
        f"a job it depends on failed (first): its hpc job {ids['child']}, waiting for it, " \
        f"was cancelled before it started"
    assert ids['child'] in cluster.cancelled
    # its own child was never submitted: its parent never ran
    assert 'grandchild' not in ids
    assert records['grandchild'] == {'state': 'SKIPPED', 'reason': 'a job it depends on failed'}


# -- PBS/Torque: the same guarantees (issue 17) ----------------------------------------------

class PbsCluster(ScriptedCluster):
    """A scripted PBS infrastructure: ids as qsub prints them ('100.srv'), jobs
    whose scripts leave markers (a job runs for ``runs[name]`` marker looks or
    status requests), and what happens to a job waiting with ``-W
    depend=afterok`` on a parent that failed: ``dropped`` None leaves it queued
    for ever (the bed's Torque wrappers over SLURM: DependencyNeverSatisfied),
    SKIPPED has the server delete it (PBS Pro)."""

    def __init__(self, key='hpc', period=0.01, dropped=None):
        super().__init__(key, period)
        self.scheduler = TorqueScheduler()
        self.dropped = dropped
        self.looks = 0

    def submit(self, spec, workdir, after=(), *, token=None, script_data=None):
        sub = super().submit(spec, workdir, after)
        sub.job_id += '.srv'
        self.submitted[-1] = (spec.name, sub.job_id)
        return sub

    def _state(self, job_id, names):
        state = super()._state(job_id, names)
        if state is JobState.CANCELLED and job_id not in self.cancelled:
            # a parent failed: the server's way with the dependant
            return self.dropped or JobState.PENDING
        return state

    def markers(self, job_ids, spent=(), started=()):
        self.looks += 1
        names = {i: n for n, i in self.submitted}
        lines = []
        for job_id in job_ids:
            state = self._state(job_id, names)
            if state is JobState.RUNNING:
                self.runs[names[job_id]] -= 1
                lines.append(f'{job_id} run')
            elif state in (JobState.COMPLETED, JobState.FAILED):
                lines.append(f'{job_id} {0 if state is JobState.COMPLETED else 3}')
        return self.scheduler.parse_markers('\n'.join(lines), job_ids)


def pbs_run(jobs, marker_period=0.01):
    records = {}
    engine = Engine(jobs, lambda name, record: records.__setitem__(name, record),
                    monitor=Monitor(unknown_grace=5, marker_period=marker_period))
    return engine, records


def test_a_pbs_dag_runs_on_the_schedulers_dependency_and_its_markers():
    # a 15 s period: qstat is asked once, when the first job is followed;
    # every start and end after that is read from the markers
    cluster = PbsCluster(period=15)
    cluster.runs = {'first': 3, 'left': 2, 'right': 2, 'last': 1}
    jobs = [job('first', cluster=cluster), job('left', ['first'], cluster=cluster),
            job('right', ['first'], cluster=cluster),
            job('last', ['left', 'right'], cluster=cluster)]
    engine, records = pbs_run(jobs)
    engine.run()
    ids = dict(cluster.submitted)
    assert len(cluster.submitted) == 4 and sorted(ids) == ['first', 'last', 'left', 'right']
    assert cluster.after['left'] == cluster.after['right'] == (ids['first'],)
    assert sorted(cluster.after['last']) == sorted((ids['left'], ids['right']))
    assert {r['state'] for r in records.values()} == {'COMPLETED'}
    assert cluster.polls == 1 and cluster.looks > 4


@pytest.mark.parametrize('dropped', [None, JobState.SKIPPED],
                         ids=['left queued (wrappers)', 'deleted by the server (PBS Pro)'])
def test_a_failed_pbs_parent_skips_its_waiting_children_and_alone_fails_the_run(dropped):
    cluster = PbsCluster(dropped=dropped)
    cluster.runs = {'first': 3, 'long': 50}
    cluster.ends = {'bad': JobState.FAILED}
    cluster.runs['bad'] = 2
    jobs = [job('first', cluster=cluster), job('bad', ['first'], cluster=cluster),
            job('long', ['first'], cluster=cluster),
            job('after', ['bad', 'long'], cluster=cluster),
            job('later', ['after'], cluster=cluster)]
    engine, records = pbs_run(jobs)
    with pytest.raises(JobFailed) as failed:
        engine.run()
    assert [j.name for j, _, _ in failed.value.failures] == ['bad']
    ids = dict(cluster.submitted)
    assert len(cluster.submitted) == len(ids) == 4          # none twice; 'later' never
    assert sorted(cluster.after['after']) == sorted((ids['bad'], ids['long']))
    # Croupier deleted the waiting dependant the moment it saw the failure
    assert ids['after'] in cluster.cancelled
    assert records['after']['state'] == 'SKIPPED' and 'job_id' not in records['after']
    assert records['after']['reason'] == \
        f"a job it depends on failed (bad): its hpc job {ids['after']}, waiting for it, " \
        f"was cancelled before it started"
    assert records['later'] == {'state': 'SKIPPED', 'reason': 'a job it depends on failed'}
    assert records['long']['state'] == 'CANCELLED'


# -- cancelling, one command per infrastructure -------------------------------------------

def test_jobs_are_cancelled_with_one_command_per_infrastructure_and_a_refusal_is_told():
    from croupier_plugin.core.engine.loop import cancel_by_infrastructure
    from croupier_plugin.core.errors import TransportError

    class Refusing(ScriptedCluster):
        def cancel(self, job_ids):
            raise TransportError('connection refused')

    here, there, down = ScriptedCluster('here'), ScriptedCluster('there'), Refusing('down')
    calls = []
    here.cancel = lambda ids: calls.append(('here', list(ids)))
    there.cancel = lambda ids: calls.append(('there', list(ids)))
    items = [(here, '1'), (there, '2'), (down, '3'), (here, '4'), (here, None)]
    done = cancel_by_infrastructure(items, lambda i: i[0], lambda i: i[1], 'test jobs')
    assert calls == [('here', ['1', '4']), ('there', ['2'])]
    assert [(c.name, [i[1] for i in some], sent) for c, some, sent in done] == \
        [('here', ['1', '4', None], True), ('there', ['2'], True), ('down', ['3'], False)]
