"""Dry runs: a simulated interface's jobs run through the real engine, in
dependency order, with nothing sent anywhere."""

import pytest

from croupier_plugin.core.engine import loop
from croupier_plugin.core.engine.plan import PlannedJob
from croupier_plugin.core.errors import CroupierError
from croupier_plugin.core.infrastructure import InfrastructureSettings
from croupier_plugin.core.model import JobSpec
from croupier_plugin.core.simulate import SimulatedCluster


def settings(**more):
    props = {'config': {'infrastructure_interface': 'SLURM'}, 'simulate': True,
             'credentials': {'host': 'login.example.org', 'user': 'u', 'password': 'pw'}}
    props.update(more)
    return InfrastructureSettings.from_properties('hpc', props)


class Refusing:
    """A transfer that must never run in a dry run."""
    def run(self):
        raise AssertionError('a dry run ran a transfer')


def test_a_simulated_interface_has_no_transport():
    cluster = settings().cluster()
    assert isinstance(cluster, SimulatedCluster)
    with pytest.raises(CroupierError, match='simulated'):
        cluster.transport.run('hostname')
    with pytest.raises(CroupierError, match='simulated'):
        settings().make_transport().home()


def test_simulate_must_be_a_boolean():
    with pytest.raises(CroupierError, match="node 'hpc', property 'simulate' = 'yes'"):
        settings(simulate='yes')


def test_jobs_are_simulated_in_dependency_order():
    cluster = settings().cluster()
    stored = {}
    order = []

    def store(name, props):
        stored[name] = dict(props)
        if props.get('state') == 'COMPLETED' and name not in order:
            order.append(name)
    spec = lambda name, command: JobSpec.from_options(   # noqa: E731
        name, {'commands': [command], 'nodes': 2, 'partition': 'debug'})
    jobs = [PlannedJob('a', spec('a', 'echo a'), cluster, '$HOME/w', []),
            PlannedJob('b', spec('b', 'echo b'), cluster, '$HOME/w', ['a'],
                       stage_in=[Refusing()], stage_out=[Refusing()]),
            PlannedJob('c', spec('c', 'echo c'), cluster, '$HOME/w', ['a']),
            PlannedJob('d', spec('d', 'echo d'), cluster, '$HOME/w', ['b', 'c'])]
    rows = loop.Engine(jobs, store).run()
    assert {r['state'] for r in rows} == {'COMPLETED'}
    assert order[0] == 'a' and order[-1] == 'd' and set(order[1:3]) == {'b', 'c'}
    for name in 'abcd':
        record = stored[name]
        assert record['simulated'] is True and record['raw_state'] == 'SIMULATED'
        assert record['exit_code'] == 0 and record['job_id'].startswith('simulated-')
        assert record['script'] == f'$HOME/w/{name}.sbatch'
        assert '#SBATCH --nodes=2' in record['rendered_script']
        assert f'echo {name}' in record['rendered_script']
    # each dependant was taken up only once its parents completed
    assert stored['d']['submitted_at'] >= max(stored['b']['ended_at'], stored['c']['ended_at'])
    assert stored['b']['outputs'] == 'DONE'
