"""Job factories: the rows they make, the refusals, and the parameter table that
each array element reads (run for real in bash, as SLURM, PBS Pro and Torque
name the element's index)."""

import os
import subprocess

import pytest

from croupier_plugin.core.errors import ConfigError
from croupier_plugin.core.model import JobSpec, factory_rows
from croupier_plugin.core.schedulers import PbsScheduler, SlurmScheduler, TorqueScheduler
from croupier_plugin.core.schedulers.shell import ShellScheduler


def test_a_sweep_gives_the_product_of_its_ranges():
    rows = factory_rows('p', 'parameter_sweep', [{'name': 'a', 'start': 1, 'end': 5, 'step': 2},
                                                 {'name': 'b', 'start': 0.1, 'end': 0.3,
                                                  'step': 0.1}])
    assert rows == [{'a': a, 'b': b} for a in ('1', '3', '5') for b in ('0.1', '0.2', '0.3')]
    assert factory_rows('p', 'parameter_sweep', [{'name': 'n', 'start': 3, 'end': 0,
                                                  'step': -2}]) == [{'n': '3'}, {'n': '1'}]


def test_zip_and_repeat():
    assert factory_rows('p', 'zip', [{'name': 'x', 'values': [1, 'two', True]},
                                     {'name': 'y', 'values': ['a b', '$(no)', 3.5]}]) == [
        {'x': '1', 'y': 'a b'}, {'x': 'two', 'y': '$(no)'}, {'x': 'true', 'y': '3.5'}]
    assert factory_rows('p', 'repeat', 3) == [{}, {}, {}]


@pytest.mark.parametrize('kind, raw, prop, value', [
    ('parameter_sweep', [{'name': 'a', 'start': 1, 'end': 5, 'step': -1}], 'p[0].step', -1),
    ('parameter_sweep', [{'name': 'a', 'start': 1, 'end': 5, 'step': 0}], 'p[0].step', 0),
    ('parameter_sweep', [{'name': 'a', 'start': 'one', 'end': 5}], 'p[0].start', 'one'),
    ('parameter_sweep', [{'name': '1a', 'start': 1, 'end': 5}], 'p[0].name', '1a'),
    ('parameter_sweep', [{'name': 'PATH', 'start': 1, 'end': 5}], 'p[0].name', 'PATH'),
    ('parameter_sweep', [{'name': 'a', 'start': 1, 'end': 5, 'by': 1}], 'p[0].by', 1),
    ('parameter_sweep', [{'name': 'a', 'start': 1, 'end': 2000}], 'p[0]', None),
    ('zip', [{'name': 'a', 'values': [1, 2]}, {'name': 'b', 'values': [1]}],
     'p[1].values', [1]),
    ('zip', [{'name': 'a', 'values': [1]}, {'name': 'a', 'values': [2]}], 'p[1].name', 'a'),
    ('zip', [{'name': 'a', 'values': []}], 'p[0].values', []),
    ('zip', 'a', 'p', 'a'),
    ('repeat', 0, 'p', 0),
    ('repeat', 5000, 'p', 5000),
])
def test_bad_factories_are_refused_naming_property_and_value(kind, raw, prop, value):
    with pytest.raises(ConfigError) as err:
        factory_rows('p', kind, raw)
    assert err.value.prop == prop
    if value is not None:
        assert err.value.value == value


def test_one_factory_per_job_and_not_with_scale():
    with pytest.raises(ConfigError) as err:
        JobSpec.from_options('j', {'commands': ['x'], 'repeat': 2, 'zip': [
            {'name': 'a', 'values': [1, 2]}]})
    assert 'give one job factory' in str(err.value)
    with pytest.raises(ConfigError) as err:
        JobSpec.from_options('j', {'commands': ['x'], 'repeat': 2, 'scale': 2})
    assert err.value.prop == 'job_options.scale'


def test_a_shell_interface_refuses_factories():
    spec = JobSpec.from_options('j', {'commands': ['x'], 'repeat': 2})
    with pytest.raises(ConfigError) as err:
        ShellScheduler().check(spec)
    assert err.value.prop == 'job_options.repeat'


@pytest.mark.parametrize('scheduler, index_var', [(SlurmScheduler(), 'SLURM_ARRAY_TASK_ID'),
                                                 (PbsScheduler(), 'PBS_ARRAY_INDEX'),
                                                 (TorqueScheduler(), 'PBS_ARRAYID')])
def test_each_element_reads_its_own_row_literally(tmp_path, scheduler, index_var):
    hostile = ['$(touch pwned)', "it's", 'a b;c', '`id`']
    spec = JobSpec.from_options('j', {
        'script': 'show.sh', 'arguments': ['--v=${v}', '$w', 'plain $vv $HOME'],
        'zip': [{'name': 'v', 'values': hostile}, {'name': 'w', 'values': [1, 2, 3, 4]}]})
    (tmp_path / 'show.sh').write_text('printf "[%s]" "$@" "$CROUPIER_PARAMETER_v" '
                                      '"$CROUPIER_TASK_INDEX"\n')
    script = scheduler.render_script(spec).replace('#!/bin/bash -l', '#!/bin/bash')
    (tmp_path / 'job.sh').write_text(script)
    for index, value in enumerate(hostile):
        env = dict(os.environ, **{index_var: str(index)})
        out = subprocess.run(['bash', 'job.sh'], cwd=tmp_path, env=env, capture_output=True,
                             text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout == f'[--v={value}][{index + 1}][plain $vv $HOME][{value}][{index}]'
    assert sorted(os.listdir(tmp_path)) == ['job.sh', 'show.sh']
    # an index outside the table is an error, not a silent run
    env = dict(os.environ, **{index_var: '9'})
    out = subprocess.run(['bash', 'job.sh'], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 64 and 'not in the parameter table' in out.stderr


# -- retry policy -------------------------------------------------------------------

def test_retry_policy_counts_attempts_and_matches_states():
    from croupier_plugin.core.engine import JobPolicy
    any_failure = JobPolicy(max_retries=2)
    assert any_failure.retries({'state': 'FAILED'})
    assert any_failure.retries({'state': 'TIMEOUT', 'attempts': [{}]})
    assert not any_failure.retries({'state': 'FAILED', 'attempts': [{}, {}]})
    # moves to another infrastructure are not retries
    assert any_failure.retries({'state': 'FAILED', 'attempts': [{'state': 'MOVED'}] * 3})
    # a cancellation is someone's decision; an unknown fate may still be running
    assert not any_failure.retries({'state': 'CANCELLED'})
    assert not any_failure.retries({'state': 'UNKNOWN'})
    chosen = JobPolicy(max_retries=1, retry_on=frozenset({'NODE_FAIL', 'TIMEOUT'}))
    assert chosen.retries({'state': 'FAILED', 'raw_state': 'NODE_FAIL'})
    assert chosen.retries({'state': 'TIMEOUT', 'raw_state': 'TIMEOUT'})
    assert not chosen.retries({'state': 'FAILED', 'raw_state': 'FAILED'})
    assert not chosen.retries({'state': 'FAILED', 'raw_state': 'OUT_OF_MEMORY'})
    assert not JobPolicy().retries({'state': 'FAILED'})


def test_bad_policies_are_refused_naming_the_property():
    from cloudify.exceptions import NonRecoverableError
    from croupier_plugin.core import blueprint
    from croupier_plugin.edge import not_recoverable
    job_policy = not_recoverable(blueprint.job_policy)
    job_labels = not_recoverable(blueprint.job_labels)
    for props, text in (({'max_retries': -1}, "property 'max_retries' = -1"),
                        ({'max_retries': 'two'}, "property 'max_retries' = 'two'"),
                        ({'retry_on': ['SOMETIMES']}, "property 'retry_on' = ['SOMETIMES']"),
                        ({'max_time_in_queue': 'soon'}, "property 'max_time_in_queue' = 'soon'"),
                        ({'labels': ['novalue']}, "property 'labels' = ['novalue']"),
                        ({'labels': {'a b': 1}}, "property 'labels.a b' = 1")):
        with pytest.raises(NonRecoverableError) as err:
            job_policy('j', props)
            job_labels('j', props)
        assert f"node 'j', {text}" in str(err.value)
    policy = job_policy('j', {'max_retries': 2, 'retry_on': ['node_fail'],
                              'max_time_in_queue': '00:10:00'})
    assert policy.retry_on == {'NODE_FAIL'} and policy.max_time_in_queue == 600
    assert job_labels('j', {'labels': ['a=1', 'b = two']}) == {'a': '1', 'b': 'two'}
