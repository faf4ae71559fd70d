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
        JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT,
        JobState.SKIPPED}


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
    from croupier_plugin.core import blueprint
    from croupier_plugin.core.exporter.registry import RegistrationError, check_name
    from croupier_plugin.core.schedulers.pycompss import PycompssJob
    from cloudify.exceptions import NonRecoverableError
    with pytest.raises(RegistrationError):
        check_name('interface', 'hpc\n')
    with pytest.raises(NonRecoverableError):
        edge.not_recoverable(blueprint.job_labels)('j', {'labels': {'team\n': 'a'}})
    with pytest.raises(ConfigError):
        PycompssJob.from_options('j', {'app_file': 'a.py', 'modules': ['COMPSs\n']})
    with pytest.raises(ConfigError):
        PycompssJob.from_options('j', {'app_file': 'a.py', 'compss_args': {'qos': 'debug\n'}})


NAN, INF = float('nan'), float('inf')


def _interface(monitoring):
    from croupier_plugin.core.infrastructure import InfrastructureSettings
    return InfrastructureSettings.from_properties('hpc', {
        'config': {'infrastructure_interface': 'SLURM'},
        'credentials': {'host': 'h', 'user': 'u', 'password': 'pw'},
        'monitoring_options': monitoring})


@pytest.mark.parametrize('key, value', [
    ('monitor_period', NAN), ('monitor_period', INF), ('monitor_period', -INF),
    ('monitor_period', 1e-9), ('monitor_period', 0.5), ('monitor_period', 0),
    ('monitor_period', 86401), ('monitor_period', True), ('monitor_period', '15'),
    ('monitor_period', 10 ** 400),
    ('unknown_grace', NAN), ('unknown_grace', INF), ('unknown_grace', -1),
    ('unknown_grace', True), ('unknown_grace', 86401),
])
def test_monitoring_numbers_are_finite_and_within_bounds(key, value):
    """.nan busy-looped the monitor, .inf never polled again, 1e-9 flooded the
    login node with status commands; a NaN grace meant zero."""
    with pytest.raises(ConfigError) as err:
        _interface({key: value})
    assert f"node 'hpc', property 'monitoring_options.{key}' = {value!r}" in str(err.value)


def test_monitoring_numbers_at_their_bounds_are_accepted():
    assert _interface({'monitor_period': 1, 'unknown_grace': 0}).monitor_period == 1.0
    from croupier_plugin.core.infrastructure import InfrastructureSettings
    local = InfrastructureSettings.from_properties('here', {
        'config': {'infrastructure_interface': 'SHELL', 'transport': 'local'},
        'monitoring_options': {'monitor_period': 0.5}})
    assert local.monitor_period == 0.5      # no login node to spare: a shorter floor
    for bad in (0.01, NAN):
        with pytest.raises(ConfigError):
            InfrastructureSettings.from_properties('here', {
                'config': {'infrastructure_interface': 'SHELL', 'transport': 'local'},
                'monitoring_options': {'monitor_period': bad}})
    settings = _interface({'monitor_period': 86400, 'unknown_grace': 86400.0})
    assert (settings.monitor_period, settings.unknown_grace) == (86400.0, 86400.0)


@pytest.mark.parametrize('key', ['nodes', 'tasks', 'tasks_per_node', 'cpus_per_task', 'scale',
                                 'repeat'])
@pytest.mark.parametrize('value', [NAN, INF, 2.0, 2.5, True, 10 ** 12, 10 ** 400, -1, 0, '²'],
                         ids=['nan', 'inf', '2.0', '2.5', 'true', '10**12', '10**400', '-1',
                              '0', 'superscript-2'])
def test_counts_are_integers_within_bounds(key, value):
    options = {'commands': ['x'], key: value}
    with pytest.raises(ConfigError) as err:
        JobSpec.from_options('j', options)
    assert f"'job_options.{key}' = {value!r}" in str(err.value)


@pytest.mark.parametrize('value', [NAN, INF, 2.0, True, 10 ** 12, 0])
def test_scale_max_in_parallel_is_a_count(value):
    with pytest.raises(ConfigError) as err:
        JobSpec.from_options('j', {'commands': ['x'], 'scale': 4, 'scale_max_in_parallel': value})
    assert f"'job_options.scale_max_in_parallel' = {value!r}" in str(err.value)


@pytest.mark.parametrize('key, value', [
    ('max_time', NAN), ('max_time', INF), ('max_time', 1.5), ('max_time', 10 ** 12),
    ('max_time', '999999999'), ('memory', '9' * 30), ('cpu_memory', '9' * 30 + 'G'),
    ('partition', 'p' * 2000),
])
def test_times_sizes_and_words_have_bounds(key, value):
    with pytest.raises(ConfigError) as err:
        JobSpec.from_options('j', {'commands': ['x'], key: value})
    assert f"'job_options.{key}'" in str(err.value)


@pytest.mark.parametrize('field', ['start', 'end', 'step'])
@pytest.mark.parametrize('value', [NAN, INF, -INF, True, 10 ** 400, 1e300],
                         ids=['nan', 'inf', '-inf', 'true', '10**400', '1e300'])
def test_sweep_numbers_are_finite_and_bounded(field, value):
    """NaN and inf in a sweep ended in a traceback (int(nan), float overflow)."""
    sweep = dict({'name': 'N', 'start': 1, 'end': 3, 'step': 1}, **{field: value})
    with pytest.raises(ConfigError) as err:
        JobSpec.from_options('j', {'commands': ['x'], 'parameter_sweep': [sweep]})
    assert 'job_options.parameter_sweep[0]' in str(err.value)


@pytest.mark.parametrize('props, prop', [
    ({'max_retries': NAN}, 'max_retries'), ({'max_retries': 1.0}, 'max_retries'),
    ({'max_retries': True}, 'max_retries'), ({'max_retries': 10 ** 6}, 'max_retries'),
    ({'max_time_in_queue': NAN}, 'max_time_in_queue'),
    ({'max_time_in_queue': INF}, 'max_time_in_queue'),
    ({'max_time_in_queue': False}, 'max_time_in_queue'),
    ({'max_time_in_queue': 0.5}, 'max_time_in_queue'),
    ({'max_time_in_queue': 10 ** 12}, 'max_time_in_queue'),
])
def test_job_policy_numbers(props, prop):
    from croupier_plugin import edge
    from croupier_plugin.core import blueprint
    from cloudify.exceptions import NonRecoverableError
    with pytest.raises(NonRecoverableError) as err:
        edge.not_recoverable(blueprint.job_policy)('j', props)
    assert f"node 'j', property '{prop}' = {props[prop]!r}" in str(err.value)


@pytest.mark.parametrize('args, prop', [
    ({'num_nodes': 10 ** 12}, 'num_nodes'), ({'master_port': 70000}, 'master_port'),
    ({'jmx_port': 65536}, 'jmx_port'), ({'exec_time': NAN}, 'exec_time'),
    ({'exec_time': INF}, 'exec_time'), ({'num_nodes': 2.0}, 'num_nodes'),
])
def test_compss_numbers_have_bounds(args, prop):
    from croupier_plugin.core.schedulers.pycompss import PycompssJob
    with pytest.raises(ConfigError) as err:
        PycompssJob.from_options('j', {'app_file': 'a.py', 'compss_args': args})
    assert f'job_options.compss_args.{prop}' in str(err.value)


def test_the_monitor_refuses_a_grace_that_is_not_a_finite_number():
    from croupier_plugin.core.monitor import Monitor
    for bad in (NAN, INF, -1.0):
        with pytest.raises(ValueError):
            Monitor(unknown_grace=bad)


# -- the working directory's removal guard -------------------------------------

BASE = '/home/alice'
MADE = '/home/alice/run1_20261130T101500_a1b2c3'


@pytest.mark.parametrize('path', [
    '', '/', '//', '~', '.', '..', '../..', '/home', '/home/', BASE, BASE + '/',
    'run1_20261130T101500_a1b2c3',                      # relative
    'home/alice/run1_20261130T101500_a1b2c3',           # relative
    '/home//alice/run1_20261130T101500_a1b2c3',         # not normalised
    '//home/alice/run1_20261130T101500_a1b2c3',
    '/home/alice/./run1_20261130T101500_a1b2c3',
    MADE + '/',
    MADE + '/..',
    '/home/alice/../bob/run1_20261130T101500_a1b2c3',
    '/home/bob/run1_20261130T101500_a1b2c3',            # not under base_dir
    '/home/alice/sub/run1_20261130T101500_a1b2c3',      # not directly under base_dir
    '/home/alice/run1',                                 # no generated suffix
    '/home/alice/run1_20261130T101500',
    '/home/alice/run1_20261130T101500_a1b2c3x',
    '/home/alice/run1_2026113T101500_a1b2c3',
    '/home/alice/other_20261130T101500_a1b2c3',         # another prefix than the interface's
    '/home/alice/run1_20261130T101500_a1b2c3\n',
    '/home/alice/run1_20261130T101500_A1B2C3',
    None, 7,
])
def test_the_workdir_guard_refuses_what_create_workdir_does_not_make(path):
    from croupier_plugin.core.infrastructure import check_removable_workdir
    with pytest.raises(ConfigError) as err:
        check_removable_workdir(path, BASE, 'run1')
    assert "'workdir'" in str(err.value)


def test_the_workdir_guard_accepts_what_create_workdir_makes():
    from croupier_plugin.core.infrastructure import check_removable_workdir
    assert check_removable_workdir(MADE, BASE, 'run1') == MADE
    assert check_removable_workdir(MADE, BASE + '/', 'run1') == MADE
    # without a workdir_prefix the label is the cleaned-up deployment id
    assert check_removable_workdir('/scratch/dep-1.x_20261130T101500_00ff00', '/scratch',
                                   None) == '/scratch/dep-1.x_20261130T101500_00ff00'
    assert check_removable_workdir('/run_20261130T101500_00ff00', '/', None)
