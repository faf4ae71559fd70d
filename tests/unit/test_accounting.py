"""Accounting figures: parsing real sacct and qstat output, and following them
through the monitor (one batch per status poll, with it)."""

import os

import pytest

from croupier_plugin.core.accounting import JobFigures, clock_seconds, figures_columns
from croupier_plugin.core.model import JobState, JobStatus
from croupier_plugin.core.monitor import Monitor
from croupier_plugin.core.schedulers import PbsScheduler, SlurmScheduler, TorqueScheduler

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'fixtures')


def fixture(*path):
    with open(os.path.join(FIXTURES, *path)) as fh:
        return fh.read()


@pytest.mark.parametrize('text,seconds', [
    ('00:00:00', 0), ('00:00.636', 0.636), ('01:02', 62), ('1:02:03', 3723),
    ('2-01:00:00', 176400), ('100:00:00', 360000), ('00:05.5', 5.5),
    ('', None), ('x', None), ('1:x', None), ('a-01:00', None), ('00:00.', None),
])
def test_clock_seconds(text, seconds):
    assert clock_seconds(text) == seconds


def test_sacct_figures_of_ended_jobs():
    out = SlurmScheduler().parse_accounting(fixture('slurm', 'sacct_accounting.txt'),
                                            ['3117', '2605', '2578', '487', '999999'])
    assert out['3117'] == JobFigures(2, 0.636, 1, 1, 'sacct')
    # an array: its longest element, and the CPU time, nodes and CPUs of all six
    assert out['2605'].elapsed == 0 and out['2605'].nodes == 6 and out['2605'].cpus == 6
    assert out['2605'].cpu_time == pytest.approx(0.016)
    assert out['2578'] == JobFigures(3, 0.012, 1, 1, 'sacct')
    # cancelled in the queue: nothing ran, nothing allocated
    assert out['487'] == JobFigures(0, 0.0, 0, 2, 'sacct')
    assert '999999' not in out


def test_sacct_figures_wait_for_the_batch_step():
    """slurmdbd records the job's end before its batch step's (with the CPU
    time): until then the figures are not final."""
    lagging = '3117|COMPLETED|2|00:00:00|1|1\n3117.batch|RUNNING|2|00:00:00|1|1\n'
    assert SlurmScheduler().parse_accounting(lagging, ['3117']) == {}
    unfinished = '3117|RUNNING|2|00:00:00|1|1\n'
    assert SlurmScheduler().parse_accounting(unfinished, ['3117']) == {}


def test_accounting_command_quotes_nothing_but_ids():
    command = SlurmScheduler().accounting_command(['12', '13_1'])
    assert command == ('sacct --noheader --parsable2 --jobs=12,13_1 '
                       '--format=JobID,State,ElapsedRaw,TotalCPU,AllocNodes,AllocCPUS')
    with pytest.raises(ValueError):
        SlurmScheduler().accounting_command(['12;rm -rf ~'])


def test_status_table_columns():
    assert figures_columns({'elapsed': 3723, 'cpu_time': 0.636, 'nodes': 2, 'cpus': 8}) == \
        ['1:02:03', '0:00:00.64', '2', '8']
    assert figures_columns({'elapsed': 59, 'cpu_time': 61.0}) == ['0:00:59', '0:01:01', '', '']
    assert figures_columns(None) == ['', '', '', '']


class Scripted:
    """A cluster answering from what the test gives it, counting commands."""
    name = 'hpc'
    monitor_period = 10.0
    accounting = True

    def __init__(self):
        self.scheduler = SlurmScheduler()
        self.states = {}
        self.figures = {}
        self.commands = []

    def statuses(self, job_ids):
        self.commands.append(('status', list(job_ids), []))
        return {j: JobStatus(j, self.states[j], self.states[j].value) for j in job_ids}

    def statuses_and_figures(self, job_ids, accounting_ids):
        self.commands.append(('status', list(job_ids), list(accounting_ids)))
        return ({j: JobStatus(j, self.states[j], self.states[j].value) for j in job_ids},
                {j: self.figures[j] for j in accounting_ids if j in self.figures})


def test_figures_come_with_the_next_status_poll_in_one_batch():
    now = [0.0]
    monitor = Monitor(clock=lambda: now[0])
    cluster = Scripted()
    cluster.states = {'1': JobState.RUNNING, '2': JobState.RUNNING, '3': JobState.RUNNING}
    for job_id in '123':
        monitor.track(cluster, job_id, f'job{job_id}')
    monitor.poll()
    cluster.states.update({'1': JobState.COMPLETED, '2': JobState.FAILED})
    now[0] = 10.0
    monitor.poll()
    assert cluster.commands[-1] == ('status', ['1', '2', '3'], [])
    assert monitor.awaiting_figures()
    cluster.figures = {'1': JobFigures(5, 4.0, 1, 2, 'sacct')}      # 2 not recorded yet
    now[0] = 20.0
    changes = monitor.poll()
    # one command: the status of the running job, the figures of both ended ones
    assert cluster.commands[-1] == ('status', ['3'], ['1', '2'])
    assert [(c.job.job_id, c.figures) for c in changes if c.figures] == \
        [('1', JobFigures(5, 4.0, 1, 2, 'sacct'))]
    cluster.states['3'] = JobState.COMPLETED
    cluster.figures['2'] = JobFigures(1, 0.5, 1, 1, 'sacct')
    now[0] = 30.0
    changes = monitor.poll()
    assert cluster.commands[-1] == ('status', ['3'], ['2'])
    assert [c.job.job_id for c in changes if c.figures] == ['2']
    # the last job's figures: asked for when the run ends, without waiting a period
    cluster.figures['3'] = JobFigures(9, 8.0, 1, 1, 'sacct')
    changes = monitor.collect_figures(deadline=31.0, wait=lambda s: None)
    assert cluster.commands[-1] == ('status', [], ['3'])
    assert [c.job.job_id for c in changes if c.figures] == ['3']
    assert not monitor.awaiting_figures()
    assert len(cluster.commands) == 5


def test_figures_never_recorded_are_given_up_after_a_few_asks():
    now = [0.0]
    monitor = Monitor(clock=lambda: now[0], accounting_asks=3)
    cluster = Scripted()
    cluster.states = {'1': JobState.COMPLETED}
    monitor.track(cluster, '1', 'job1')
    monitor.poll()
    assert monitor.awaiting_figures()
    asked = monitor.collect_figures(deadline=100.0, wait=lambda s: None)
    assert asked == [] and not monitor.awaiting_figures()
    assert [c for c in cluster.commands if c[2]] == [('status', [], ['1'])] * 3


def test_no_figures_asked_without_accounting_options():
    now = [0.0]
    monitor = Monitor(clock=lambda: now[0])
    cluster = Scripted()
    cluster.accounting = False
    cluster.states = {'1': JobState.COMPLETED}
    monitor.track(cluster, '1', 'job1')
    monitor.poll()
    assert not monitor.awaiting_figures()
    assert monitor.collect_figures(deadline=100.0) == []
    assert cluster.commands == [('status', ['1'], [])]




def openpbs(name):
    path = os.path.join(FIXTURES, 'pbs', 'openpbs_' + name)
    with open(path) as fh:
        return fh.read()


@pytest.mark.parametrize('name,job_id,figures', [
    ('ok_qstat_x_f.txt', '0.pbshost', JobFigures(3, 0.0, 1, 1, 'qstat')),
    ('fail_qstat_x_f.txt', '1.pbshost', JobFigures(0, 0.0, 1, 1, 'qstat')),
    ('del_qstat_x_f.txt', '3.pbshost', JobFigures(3, 0.0, 1, 1, 'qstat')),
])
def test_qstat_figures_of_finished_pbs_jobs(name, job_id, figures):
    assert PbsScheduler().parse_accounting(openpbs(name), [job_id, '99.pbshost']) == \
        {job_id: figures}


def test_qstat_figures_wait_for_the_job_to_finish():
    """A running job's block (job_state R) is not final."""
    text = openpbs('ok_qstat_f_running.txt')
    assert 'job_state = R' in text
    assert PbsScheduler().parse_accounting(text, ['0.pbshost']) == {}


def test_an_arrays_qstat_figures_add_up_its_subjobs():
    """Its own block carries no use: only its subjobs' count."""
    parent = openpbs('arr_qstat_x_f.txt')
    assert PbsScheduler().parse_accounting(parent, ['2[].pbshost']) == {}
    one = openpbs('ok_qstat_x_f.txt').replace('Job Id: 0.pbshost', 'Job Id: 2[0].pbshost')
    two = one.replace('Job Id: 2[0].pbshost', 'Job Id: 2[1].pbshost') \
        .replace('resources_used.walltime = 00:00:03', 'resources_used.walltime = 00:00:05')
    out = PbsScheduler().parse_accounting(parent + one + two, ['2[].pbshost'])
    assert out == {'2[].pbshost': JobFigures(5, 0.0, 2, 2, 'qstat')}


def test_pbs_accounting_command():
    assert PbsScheduler().accounting_command(['12.pbshost', '2[].pbshost']) == \
        "qstat -x -f -t -- 12.pbshost '2[].pbshost'"
    assert TorqueScheduler().accounting_command(['12.srv']) == 'qstat -f -1 -- 12.srv'


def test_a_retried_attempts_figures_go_with_that_attempt():
    """Figures that come back after the job was submitted again belong to the
    attempt they were asked for, not to the new one."""
    from croupier_plugin.core.engine import loop
    from croupier_plugin.core.engine.plan import PlannedJob
    from croupier_plugin.core.model import JobSpec
    from croupier_plugin.core.monitor import JobChange, TrackedJob
    cluster = Scripted()
    cluster.reporting_user = 'acc'
    stored = {}
    job = PlannedJob('a', JobSpec.from_options('a', {'commands': ['true']}), cluster, '/w',
                     [], {'job_id': '8', 'state': 'PENDING',
                          'attempts': [{'job_id': '7', 'state': 'FAILED'}]})
    engine = loop.Engine([job], lambda name, props: stored.update({name: props}))
    ended = JobStatus('7', JobState.FAILED, 'FAILED')
    engine._on_change(JobChange(TrackedJob('a', cluster, '7', ended), ended, ended,
                                figures=JobFigures(4, 1.5, 1, 2, 'sacct')))
    assert 'accounting' not in stored['a']
    assert stored['a']['attempts'][0]['accounting'] == {
        'elapsed': 4, 'cpu_time': 1.5, 'nodes': 1, 'cpus': 2, 'source': 'sacct',
        'reporting_user': 'acc'}
    now = JobStatus('8', JobState.COMPLETED, 'COMPLETED', exit_code=0)
    engine._on_change(JobChange(TrackedJob('a', cluster, '8', now), now, now,
                                figures=JobFigures(9, 2.0, 1, 1, 'sacct')))
    assert stored['a']['accounting']['elapsed'] == 9
