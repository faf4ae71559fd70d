"""A deployment planned once, in core, from plain node views (no Cloudify), and the one
decorator that gives Cloudify the core's errors."""

import pytest
from cloudify.exceptions import NonRecoverableError, RecoverableError

from croupier_plugin import edge
from croupier_plugin.core import blueprint
from croupier_plugin.core.blueprint import (DAI_TYPE, DEPENDS_ON, FILE_SOURCE_TYPE, INPUT,
                                            INTERFACE_TYPE, JOB_TYPE, MANAGED_BY, OUTPUT,
                                            TRANSFER_TYPE, VAULT_TYPE, NodeView,
                                            plan_deployment)
from croupier_plugin.core.errors import (CommandInterrupted, ConfigError, HostKeyError,
                                         TransportError)
from croupier_plugin.core.model import JobSpec

LOGIN = {'user': 'u', 'password': 'pw-1'}


def view(node_id, type_name, props=None, rels=(), instances=None):
    return NodeView(node_id, [type_name, 'cloudify.nodes.Root'], props or {},
                    [([rel, 'cloudify.relationships.depends_on'], target)
                     for rel, target in rels], instances or {})


def interface(node_id, host, **more):
    props = {'config': {'infrastructure_interface': 'SLURM'},
             'credentials': dict(LOGIN, host=host)}
    props.update(more)
    return view(node_id, INTERFACE_TYPE, props)


def job(node_id, rels, **props):
    props.setdefault('job_options', {'commands': ['echo hi'], 'nodes': 1, 'tasks': 1})
    return view(node_id, JOB_TYPE, props, rels)


def deployment():
    """Two interfaces, three jobs (one placed on either interface), a file handed from
    the first job to the second by a transfer."""
    nodes = [
        interface('hpc1', 'login1.example.org'),
        interface('hpc2', 'login2.example.org'),
        view('store', DAI_TYPE, {'endpoint': 'login1.example.org', 'credentials': LOGIN}),
        view('out', FILE_SOURCE_TYPE, {'filepath': 'out.dat'}, [('ds_located_at', 'store')]),
        view('in', FILE_SOURCE_TYPE, {'filepath': 'b/in.dat'}, [('ds_located_at', 'store')]),
        view('hand_over', TRANSFER_TYPE, {'transfer_protocol': 'SFTP'},
             [('from_source', 'out'), ('to_target', 'in')]),
        job('first', [(MANAGED_BY, 'hpc1'), (OUTPUT, 'out')],
            max_retries=2, labels=['team=a'], publish=['result.txt']),
        job('second', [(MANAGED_BY, 'hpc1'), (MANAGED_BY, 'hpc2'), (INPUT, 'in')]),
        job('third', [(MANAGED_BY, 'hpc2'), (DEPENDS_ON, 'first')],
            deployment={'bootstrap': 'deploy/setup.sh', 'inputs': [1, True]}),
    ]
    return {n.id: n for n in nodes}


def test_a_deployment_is_planned_whole_and_once(monkeypatch):
    parses = []
    real = JobSpec.from_options.__func__

    def counted(cls, name, options, *args, **kwargs):
        parses.append(name)
        return real(cls, name, options, *args, **kwargs)
    monkeypatch.setattr(JobSpec, 'from_options', classmethod(counted))
    plan = plan_deployment(deployment())
    assert plan.problems == [] and plan.errors == []
    assert sorted(plan.interfaces) == ['hpc1', 'hpc2']
    assert plan.interfaces['hpc2'].ssh.host == 'login2.example.org'
    assert list(plan.jobs) == ['first', 'second', 'third']
    first, second, third = plan.jobs.values()
    # a spec on each candidate interface, named as the scheduler will see it
    assert sorted(second.specs) == [('second', 'hpc1'), ('second', 'hpc2')]
    assert second.specs[('second', 'hpc2')].name == 'second'
    assert first.policy.max_retries == 2 and first.labels == {'team': 'a'}
    assert first.publish == ['result.txt']
    assert third.parents == ['first'] and third.deployment['inputs'] == ['1', 'true']
    # the hand-over runs after 'first'; 'second' waits for it
    assert [t.name for t in first.stage_out] == ['hand_over'] and second.producers == ['first']
    assert plan.loose_transfers == [] and sorted(plan.dataflow.sources) == ['in', 'out']
    # each job's options are read once without an interface, then once per candidate
    assert sorted(parses) == sorted(['first', 'first', 'second', 'second', 'second',
                                     'third', 'third'])


def test_instances_get_a_spec_each():
    views = deployment()
    views['third'].instances = {'third_a1': {}, 'third_b2': {'job_id': '7'}}
    plan = plan_deployment(views)
    assert sorted(plan.jobs['third'].specs) == [('third_a1', 'hpc2'), ('third_b2', 'hpc2')]
    assert plan.jobs['third'].specs[('third_b2', 'hpc2')].name == 'third_b2'


def test_every_problem_is_collected_together():
    views = deployment()
    views['hpc2'] = interface('hpc2', 'login2.example.org', config={})
    views['vault'] = view('vault', VAULT_TYPE, {'user': 'alice'})
    views['hpc1'].relationships.append(([blueprint.FROM_VAULT], 'vault'))
    views['first'] = job('first', [(MANAGED_BY, 'hpc1'), (OUTPUT, 'out')],
                         max_retries=-1)
    views['third'] = job('third', [(DEPENDS_ON, 'nowhere')])
    views['hand_over'] = view('hand_over', TRANSFER_TYPE, {'transfer_protocol': 'SFTP'},
                              [('to_target', 'in')])
    plan = plan_deployment(views)
    assert all(isinstance(error, ConfigError) and error.node for error in plan.errors)
    assert {error.node for error in plan.errors} == {'vault', 'hpc2', 'first', 'third',
                                                      'hand_over'}
    text = '\n'.join(plan.problems)
    assert "node 'hpc2', property 'config.infrastructure_interface' = None" in text
    assert "node 'first', property 'max_retries' = -1" in text
    assert "node 'third': a job needs a task_managed_by_interface relationship" in text
    assert "node 'third': job_depends_on target 'nowhere' is not a croupier.nodes.Job" in text
    assert "node 'hand_over', property 'from_source' = []" in text
    assert "node 'vault'" in text
    # the interfaces found broken do not make their jobs' problems too
    assert not any(p.startswith("node 'second'") for p in plan.problems)
    assert len(plan.problems) == len(set(plan.problems))


def test_planning_reads_no_secret_unless_asked():
    views = deployment()
    # a Vault nobody listens at: planning without fetch must not ask it
    views['vault'] = view('vault', VAULT_TYPE, {'address': 'http://127.0.0.1:9', 'user': 'a',
                                                'jwt': 'x.y.z'})
    views['hpc1'].relationships.append(([blueprint.FROM_VAULT], 'vault'))
    plan = plan_deployment(views)
    assert plan.problems == []
    assert plan.interfaces['hpc1'].ssh.user == 'u'
    with pytest.raises(blueprint.SecretsUnavailable, match="node 'hpc1': credentials from "
                                                           "Vault node 'vault'"):
        plan_deployment(views, fetch=True)


def test_the_vault_of_a_node_is_found_in_one_place():
    views = deployment()
    views['hpc1'].relationships.append(([blueprint.FROM_VAULT], 'store'))
    with pytest.raises(ConfigError, match="node 'hpc1': retrieve_credentials_from_vault "
                                          "target 'store' is not a croupier.nodes.Vault"):
        blueprint.vault_of(views['hpc1'], views)
    assert blueprint.vault_of(views['hpc2'], views) is None


@pytest.mark.parametrize('error, kind', [
    (TransportError('ssh to h: connection refused'), RecoverableError),
    (CommandInterrupted('ssh to h: connection lost during sbatch'), NonRecoverableError),
    (ConfigError('max_retries', -1, 'must be an integer from 0 to 100', node='j'),
     NonRecoverableError),
    (HostKeyError('host key of h does not match'), NonRecoverableError),
])
def test_core_errors_reach_cloudify_as_recoverable_only_when_transient(error, kind):
    @edge.cloudify_errors
    def operation(ctx=None):
        raise error
    with pytest.raises(Exception) as caught:
        operation(ctx=None)
    assert type(caught.value) is kind
    # the message is the core's, unchanged
    assert str(caught.value) == str(error)
    assert edge.as_cloudify_error(error, "node 'j'").args[0] == f"node 'j': {error}"


def test_the_decorator_leaves_other_errors_and_results_alone():
    @edge.cloudify_errors
    def fine(value):
        return value * 2

    @edge.cloudify_errors
    def broken():
        raise KeyError('x')
    assert fine(4) == 8
    with pytest.raises(KeyError):
        broken()
