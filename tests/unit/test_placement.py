"""Placement from queue figures: parsing the bed's recorded sinfo/squeue output and
choosing an infrastructure."""

import os

from croupier_plugin.core.model import JobSpec, PartitionFigures
from croupier_plugin.core.placement import Candidate, choose, cores_needed, expected_wait
from croupier_plugin.core.schedulers import SlurmScheduler

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'fixtures', 'slurm')


def test_slurm_queue_figures_from_the_bed():
    with open(os.path.join(FIXTURES, 'queue_figures.txt')) as fh:
        figures = SlurmScheduler().parse_queue_output(fh.read())
    assert figures == {
        'debug': PartitionFigures('debug', True, 1, 1, 0, 16, 2, 14, jobs_pending=3,
                                  jobs_running=0, default=True),
        'second': PartitionFigures('second', False, 1, 1, 0, 16, 2, 14, jobs_pending=1,
                                   jobs_running=1)}


class FakeCluster:
    def __init__(self, key, figures):
        self.name, self.figures, self.monitor_period = key, figures, 5.0


def candidate(name, spec_options, **partitions):
    spec = JobSpec.from_options('j', dict({'commands': ['x']}, **spec_options))
    figures = {p: PartitionFigures(p, **values) for p, values in partitions.items()}
    first = next(iter(figures))
    figures[first] = figures[first]._replace(default=True)
    return Candidate(FakeCluster(name, figures), '/w', spec)


def test_choose_prefers_a_partition_where_the_job_starts_at_once():
    busy = candidate('busy', {}, debug=dict(cores_total=16, cores_idle=16, jobs_pending=4))
    calm = candidate('calm', {}, debug=dict(cores_total=16, cores_idle=2, jobs_pending=0))
    chosen, reason, table = choose([busy, calm], lambda c: c.figures)
    assert chosen is calm
    assert reason.startswith('calm is expected to start it first (partition debug: 2 of 16 '
                             'cores idle, 0 jobs pending')
    assert 'busy: partition debug: 16 of 16 cores idle, 4 jobs pending' in reason


def test_choose_weighs_the_cores_the_job_needs_and_skips_down_or_tried_ones():
    small = candidate('small', {'tasks': 8}, debug=dict(cores_total=4, cores_idle=4))
    big = candidate('big', {'tasks': 8}, debug=dict(cores_total=64, cores_idle=30,
                                                     jobs_pending=1))
    down = candidate('down', {'tasks': 8}, debug=dict(available=False, cores_total=99,
                                                       cores_idle=99))
    assert cores_needed(small.spec) == 8
    chosen, _, _ = choose([down, small, big], lambda c: c.figures)
    assert chosen is small      # both must wait; fewer jobs ahead wins
    chosen, _, _ = choose([down, small, big], lambda c: c.figures, exclude=('small',))
    assert chosen is big
    assert expected_wait(down.cluster.figures['debug'], 1) > expected_wait(None, 1)


def test_a_named_partition_is_the_one_judged():
    spec_second = candidate('a', {'partition': 'second'},
                            debug=dict(cores_total=8, cores_idle=8),
                            second=dict(cores_total=8, cores_idle=0, jobs_pending=9))
    other = candidate('b', {}, debug=dict(cores_total=8, cores_idle=1))
    chosen, _, table = choose([spec_second, other], lambda c: c.figures)
    assert chosen is other and table['a'].startswith('partition second')


def test_a_pycompss_job_is_placed_by_its_queue_and_its_nodes_cores():
    from croupier_plugin.core.schedulers import PycompssJob

    def compss(args):
        return PycompssJob.from_options('j', {'app_file': 'a.py', 'compss_args': args})

    assert cores_needed(compss({})) == 1
    assert cores_needed(compss({'num_nodes': 3, 'cpus_per_node': 8})) == 24
    figures = {'debug': PartitionFigures('debug', cores_total=16, cores_idle=16, default=True),
               'big': PartitionFigures('big', cores_total=64, cores_idle=64, jobs_pending=5)}
    busy = {name: f._replace(cores_idle=0, jobs_pending=9) for name, f in figures.items()}
    spec = compss({'queue': 'debug', 'num_nodes': 2, 'cpus_per_node': 4})
    candidates = [Candidate(FakeCluster('busy', busy), '/w', spec),
                  Candidate(FakeCluster('free', figures), '/w', spec)]
    chosen, reason, table = choose(candidates, lambda cluster: cluster.figures)
    assert chosen.name == 'free'
    assert table['free'].startswith('partition debug: 16 of 16 cores idle')
    # no queue named: the default one
    chosen, _, table = choose([Candidate(FakeCluster('free', figures), '/w',
                                         compss({}))], lambda cluster: cluster.figures)
    assert table['free'].startswith('partition debug')
