import pytest

from croupier_plugin.core.errors import ConfigError
from croupier_plugin.core.model import (JobSpec, JobState, parse_duration,
                                        scheduler_job_name)


@pytest.mark.parametrize('text, seconds', [
    ('30', 1800), (30, 1800), ('10:30', 630), ('01:30:00', 5400), ('2-00', 172800),
    ('1-02:03', 93780), ('1-02:03:04', 93784), ('100:00:00', 360000),
])
def test_durations_in_slurm_formats(text, seconds):
    assert parse_duration('job_options.max_time', text) == seconds


@pytest.mark.parametrize('bad', ['', 'ten', '1:2:3:4', '-5', 0, -3, True, '00:00', [1]])
def test_malformed_durations_name_property_and_value(bad):
    with pytest.raises(ConfigError) as err:
        parse_duration('job_options.max_time', bad)
    assert 'job_options.max_time' in str(err.value)
    assert repr(bad) in str(err.value)


def test_options_with_original_spellings():
    spec = JobSpec.from_options('j', {
        'commands': ['echo a', 'echo b'], 'queue': 'debug', 'cpu_memory': '2G',
        'stdout_file': 'o.txt', 'stderr_file': 'e.txt', 'tasks': 4, 'nodes': 2,
        'tasks_per_node': 2, 'max_time': '00:05:00', 'scale': 3,
        'scale_max_in_parallel': 2, 'env': {'A': 'x y', 'B': 3}, 'modules': 'gcc',
    })
    assert spec.partition == 'debug'
    assert spec.mem_per_cpu == '2G'
    assert (spec.stdout, spec.stderr) == ('o.txt', 'e.txt')
    assert spec.array == '0-2%2'
    assert spec.max_time == 300
    assert spec.env == {'A': 'x y', 'B': '3'}
    assert spec.modules == ['gcc']


@pytest.mark.parametrize('options, prop', [
    ({'commands': ['x'], 'nodes': -1}, 'job_options.nodes'),
    ({'commands': ['x'], 'nodes': 'many'}, 'job_options.nodes'),
    ({'commands': ['x'], 'max_time': '1:2:3:4'}, 'job_options.max_time'),
    ({'commands': ['x'], 'memory': 'lots'}, 'job_options.memory'),
    ({'commands': ['x'], 'partition': 'a b'}, 'job_options.partition'),
    ({'commands': ['x'], 'partition': "x'$(id)"}, 'job_options.partition'),
    ({'commands': ['x'], 'mail_type': 'SOMETIMES'}, 'job_options.mail_type'),
    ({'commands': ['x'], 'array': '1-'}, 'job_options.array'),
    ({'commands': ['x'], 'env': {'1BAD': 'v'}}, 'job_options.env.1BAD'),
    ({'commands': ['x'], 'colour': 'blue'}, 'job_options.colour'),
    ({'commands': ['x'], 'script': 'run.sh'}, 'job_options.script'),
    ({'arguments': ['a']}, 'job_options'),
    ({'commands': ['x'], 'arguments': ['a']}, 'job_options.arguments'),
    ({'commands': ['x'], 'stdout': 'out\nfile'}, 'job_options.stdout'),
    ({'commands': ['x'], 'scale_max_in_parallel': 2}, 'job_options.scale_max_in_parallel'),
    ({'commands': ['x'], 'queue': 'a', 'partition': 'b'}, 'job_options.'),
    ({'commands': ['x'], 'nodes': 1, 'tasks_per_node': 2, 'tasks': 4}, 'job_options.tasks'),
    ({'commands': [{'a': 1}]}, 'job_options.commands[0]'),
])
def test_bad_options_name_the_property(options, prop):
    with pytest.raises(ConfigError) as err:
        JobSpec.from_options('j', options)
    assert prop in str(err.value)


def test_error_names_the_node():
    with pytest.raises(ConfigError) as err:
        try:
            JobSpec.from_options('j', {'commands': ['x'], 'nodes': 0})
        except ConfigError as exc:
            raise exc.for_node('first_job')
    assert str(err.value).startswith("node 'first_job', property 'job_options.nodes' = 0")


def test_scheduler_job_names_are_plain():
    assert scheduler_job_name('a b;$(rm -rf /)') == 'a_b___rm_-rf___'
    assert scheduler_job_name('job-1.x') == 'job-1.x'


def test_terminal_states():
    assert {s for s in JobState if s.terminal} == {
        JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT}


def test_extra_directives_are_single_lines():
    with pytest.raises(ConfigError) as err:
        JobSpec.from_options('j', {'commands': ['x'], 'extra_directives': ['--a\nrm -rf ~']})
    assert 'job_options.extra_directives[0]' in str(err.value)


def test_credentials_spellings_and_defaults():
    from croupier_plugin.core.transport import SshSettings
    base = {'host': 'h', 'user': 'u', 'password': 'pw'}
    # plugin.yaml gives both spellings their default: the one set by the user wins
    s = SshSettings.from_credentials(dict(base, port=22, ssh_port=2222, login_shell=False,
                                          ssh_login_shell=True))
    assert (s.port, s.login_shell) == (2222, True)
    s = SshSettings.from_credentials(dict(base, port=2200, ssh_port=22))
    assert s.port == 2200
    with pytest.raises(ConfigError) as err:
        SshSettings.from_credentials(dict(base, port=2200, ssh_port=2222))
    assert 'credentials.ssh_port' in str(err.value)
    with pytest.raises(ConfigError) as err:
        SshSettings.from_credentials(dict(base, port=0))
    assert "'credentials.port' = 0" in str(err.value)
    assert 'pw' not in repr(SshSettings.from_credentials(base))


@pytest.mark.parametrize('key, value', [
    ('partition', 'debug\n'), ('account', 'proj\n'), ('qos', 'normal\n'),
    ('reservation', 'r1\n'), ('mail_user', 'a@b.c\n'), ('stdout_file', 'out.txt\n'),
    ('stderr_file', 'err.txt\n'), ('array', '0-3\n'), ('memory', '4G\n'),
    ('cpu_memory', '1G\n'), ('mail_type', 'END\n'), ('max_time', '10\n'),
    ('nodes', '2\n'), ('env', {'A\n': 'x'}), ('extra_directives', ['--exclusive\n']),
])
def test_a_trailing_newline_is_refused_in_what_goes_into_a_directive_line(key, value):
    """`^...$` with re.match let one trailing newline through, breaking the directive."""
    with pytest.raises(ConfigError) as err:
        JobSpec.from_options('j', {'commands': ['x'], key: value})
    assert f'job_options.{key}' in str(err.value)


def test_a_trailing_newline_is_refused_in_interface_and_factory_names():
    from croupier_plugin.core.infrastructure import InfrastructureSettings
    base = {'config': {'infrastructure_interface': 'SLURM'},
            'credentials': {'host': 'h', 'user': 'u', 'password': 'pw'}}
    for prop, extra in (('job_prefix', {'job_prefix': 'cr\n'}),
                        ('workdir_prefix', {'workdir_prefix': 'w\n'}),
                        ('monitoring_options.hpc_label', {'monitoring_options':
                                                          {'hpc_label': 'x\n'}}),
                        ('config.partition', {'config': {'infrastructure_interface': 'SLURM',
                                                         'partition': 'debug\n'}})):
        with pytest.raises(ConfigError) as err:
            InfrastructureSettings.from_properties('hpc', dict(base, **extra))
        assert prop in str(err.value)
    with pytest.raises(ConfigError):
        JobSpec.from_options('j', {'commands': ['x'], 'parameter_sweep':
                                   [{'name': 'N\n', 'start': 1, 'end': 2}]})


def test_a_trailing_newline_is_refused_in_other_validated_names():
    from croupier_plugin import edge
    from croupier_plugin.core.exporter.registry import RegistrationError, check_name
    from croupier_plugin.core.schedulers.pycompss import PycompssJob
    from cloudify.exceptions import NonRecoverableError
    with pytest.raises(RegistrationError):
        check_name('interface', 'hpc\n')
    with pytest.raises(NonRecoverableError):
        edge.job_labels('j', {'labels': {'team\n': 'a'}})
    with pytest.raises(ConfigError):
        PycompssJob.from_options('j', {'app_file': 'a.py', 'modules': ['COMPSs\n']})
    with pytest.raises(ConfigError):
        PycompssJob.from_options('j', {'app_file': 'a.py', 'compss_args': {'qos': 'debug\n'}})
