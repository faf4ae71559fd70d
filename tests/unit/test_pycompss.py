"""PYCOMPSS: compss_args -> enqueue_compss flags, the launcher script, job ids.

The launcher is executed for real (bash, in a temporary directory) with a
fake enqueue_compss on PATH that records the argv it receives.
"""

import os
import re
import shlex
import subprocess
import textwrap

import pytest

from croupier_plugin.core.errors import ConfigError
from croupier_plugin.core.model import JobState
from croupier_plugin.core.schedulers.pycompss import (
    OPTIONS,
    PycompssJob,
    PycompssOptions,
    PycompssScheduler,
    shell_word,
)
from croupier_plugin.core.schedulers.shell import ShellScheduler
from croupier_plugin.core.schedulers.slurm import SlurmScheduler

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAND_IN = os.path.join(ROOT, 'tests', 'bed', 'stand-ins', 'enqueue_compss')

# The flag column of `enqueue_compss -h` as the COMPSs 3.3 manual prints it
# (Supercomputers > Executing COMPSs applications), plus the pre-3.1
# log-directory flags the manual says were renamed and 3.3.3's provenance folder.
DOCUMENTED = textwrap.dedent('''
    --heterogeneous
    --sc_cfg=<name>
    --exec_time=<minutes>
    --job_name=<name>
    --queue=<name>
    --reservation=<name>
    --job_execution_dir=<path>
    --pre_env_script=<path/to/script>
    --extra_submit_flag=<flag>
    --storage_container_image=<string>
    --storage_cpu_affinity=<string>
    --constraints=<constraints>
    --project_name=<name>
    --qos=<qos>
    --forward_cpus_per_node=<true|false>
    --job_dependency=<jobID>
    --forward_time_limit=<true|false>
    --storage_home=<string>
    --storage_props=<string>
    --agents=<string>, --agents
    --num_nodes=<int>
    --num_switches=<int>
    --type_cfg=<file_location>
    --master=<master_node_type>
    --workers=type_X:nodes,type_Y:nodes
    --cpus_per_node=<int>
    --gpus_per_node=<int>
    --fpgas_per_node=<int>
    --io_executors=<int>
    --fpga_reprogram="<string>
    --max_tasks_per_node=<int>
    --node_memory=<MB>
    --node_storage_bandwidth=<MB>
    --network=<name>
    --prolog="<string>"
    --epilog="<string>"
    --master_working_dir=<name | path>
    --worker_working_dir=<name | path>
    --worker_in_master_cpus=<int>
    --worker_in_master_memory=<int> MB
    --worker_port_range=<min>,<max>
    --jvm_worker_in_master_opts="<string>"
    --container_image=<path>
    --container_compss_path=<path>
    --container_opts="<string>"
    --elasticity=<max_extra_nodes>
    --automatic_scaling=<bool>
    --jupyter_notebook=<path>, --jupyter_notebook
    --ipython
    --ear=<bool|string>
    --graph=<bool>, --graph, -g
    --tracing=<bool>, --tracing, -t
    --monitoring=<int>, --monitoring, -m
    --external_debugger=<int>, --external_debugger
    --jmx_port=<int>
    --task_execution=<compss|storage>
    --storage_impl=<string>
    --storage_conf=<path>
    --project=<path>
    --resources=<path>
    --lang=<name>
    --summary
    --log_level=<level>, --debug, -d
    --extrae_config_file=<path>
    --extrae_config_file_python=<path>
    --trace_label=<string>
    --tracing_task_dependencies=<bool>
    --generate_trace=<bool>
    --delete_trace_packages=<bool>
    --custom_threads=<bool>
    --comm=<ClassName>
    --conn=<className>
    --streaming=<type>
    --streaming_master_name=<str>
    --streaming_master_port=<int>
    --scheduler=<className>
    --scheduler_config_file=<path>
    --checkpoint=<className>
    --checkpoint_params=<string>
    --checkpoint_folder=<path>
    --library_path=<path>
    --classpath=<path>
    --appdir=<path>
    --pythonpath=<path>
    --env_script=<path>
    --log_dir=<path>
    --base_log_dir=<path>
    --specific_log_dir=<path>
    --uuid=<int>
    --master_name=<string>
    --master_port=<int>
    --jvm_master_opts="<string>"
    --jvm_workers_opts="<string>"
    --cpu_affinity="<string>"
    --gpu_affinity="<string>"
    --fpga_affinity="<string>"
    --task_count=<int>
    --input_profile=<path>
    --output_profile=<path>
    --PyObject_serialize=<bool>
    --persistent_worker_c=<bool>
    --enable_external_adaptation=<bool>
    --gen_coredump
    --keep_workingdir
    --python_interpreter=<string>
    --python_propagate_virtual_environment=<bool>
    --python_mpi_worker=<bool>
    --python_memory_profile
    --python_worker_cache=<string>
    --python_cache_profiler=<bool>
    --wall_clock_limit=<int>
    --shutdown_in_node_failure=<bool>
    --provenance=<yaml>, --provenance, -p
    --provenance-folder=<path>
''')


def documented_flags():
    """{flag: (takes a value, may be bare)} from the help text above."""
    flags = {}
    for line in DOCUMENTED.strip().splitlines():
        for part in line.split(', '):
            m = re.match(r'^--([A-Za-z_\-]+)(=?)', part.strip())
            if m:
                valued, bare = flags.get(m[1], (False, False))
                flags[m[1]] = (valued or bool(m[2]), bare or not m[2])
    return flags


def sample(option):
    """A valid value of ``option`` and the argv word it must render as."""
    if option.kind == 'switch':
        return True, f'--{option.flag}'
    if option.kind == 'int':
        return option.minimum + 2, f'--{option.flag}={option.minimum + 2}'
    if option.kind in ('bool', 'enum'):
        return option.choices[-1], f'--{option.flag}={option.choices[-1]}'
    if option.flag == 'worker_port_range':
        return '43001,43005', '--worker_port_range=43001,43005'
    return 'value-1', f'--{option.flag}=value-1'


# -- the option table ---------------------------------------------------------

def test_table_covers_every_documented_flag_and_nothing_else():
    flags = {o.flag for o in OPTIONS.values()}
    assert flags == set(documented_flags())
    # keys are the flag names, as croupier.datatypes.pycompss_options spells them
    for key, option in OPTIONS.items():
        assert key == option.flag.replace('-', '_')
    for key in ('num_nodes', 'exec_time', 'log_level', 'graph', 'tracing',
                'python_interpreter', 'qos'):
        assert key in OPTIONS


@pytest.mark.parametrize('key', sorted(OPTIONS))
def test_every_option_maps_to_its_documented_flag(key):
    option = OPTIONS[key]
    valued, bare = documented_flags()[option.flag]
    value, word = sample(option)
    assert PycompssOptions.from_mapping({key: value}).flags() == [word]
    if option.kind == 'switch':
        assert bare and not valued
        assert PycompssOptions.from_mapping({key: False}).flags() == []
    else:
        assert valued
    if option.bare:
        assert bare
        assert PycompssOptions.from_mapping({key: True}).flags() == [f'--{option.flag}']


def test_documented_example_args():
    # the PYCOMPSs args of the COVID-19 inputs in the Croupier documentation
    options = PycompssOptions.from_mapping({
        'num_nodes': 2, 'exec_time': 45, 'log_level': 'off', 'graph': True,
        'tracing': 'false', 'python_interpreter': 'python3', 'qos': 'debug'})
    assert options.flags() == ['--num_nodes=2', '--exec_time=45', '--log_level=off',
                               '--graph=true', '--tracing=false',
                               '--python_interpreter=python3', '--qos=debug']
    assert options.render() == ' '.join(options.flags())


def test_other_shapes_of_compss_args():
    assert PycompssOptions.from_mapping(
        [{'num_nodes': 1}, 'qos=debug', '--summary', '--graph=false']).flags() == \
        ['--num_nodes=1', '--qos=debug', '--summary', '--graph=false']
    # unset values are left out, as with unset job options
    assert PycompssOptions.from_mapping({'qos': None, 'queue': '', 'summary': False}).flags() == []
    assert PycompssOptions.from_mapping(None).flags() == []
    # repeatable flags
    assert PycompssOptions.from_mapping({'prolog': ['echo,a', 'echo,b']}).flags() == \
        ['--prolog=echo,a', '--prolog=echo,b']
    assert PycompssOptions.from_mapping({'node_memory': 'disabled', 'tracing': 'advanced',
                                         'monitoring': 'true', 'max_tasks_per_node': -1}
                                        ).flags() == \
        ['--node_memory=disabled', '--tracing=advanced', '--monitoring',
         '--max_tasks_per_node=-1']


@pytest.mark.parametrize('key,value,problem', [
    ('num_nodes', 0, 'integer >= 1'),
    ('num_nodes', 'two', 'integer >= 1'),
    ('num_nodes', True, 'integer >= 1'),
    ('exec_time', 4.5, 'integer >= 1'),
    ('node_memory', 'lots', "or 'disabled'"),
    ('log_level', 'verbose', 'one of off, info, api, debug, trace'),
    ('log_level', False, "write 'off' in quotes"),
    ('graph', 'maybe', 'one of true, false'),
    ('tracing', 3, 'one of true, false'),
    ('lang', 'rust', 'one of java, c, python'),
    ('summary', 'yes', 'true or false'),
    ('qos', 'debug; rm -rf ~', 'queue-system directive'),
    ('job_name', 'my job', 'queue-system directive'),
    ('worker_port_range', '43001-43005', 'queue-system directive'),
    ('pythonpath', 'a\nb', 'single line'),
    ('pythonpath', ['a'], 'must be a string'),
    ('classpath', True, 'must be a string'),
    ('comm', '  ', 'must not be empty'),
])
def test_bad_values_name_the_property_and_the_value(key, value, problem):
    with pytest.raises(ConfigError) as err:
        PycompssOptions.from_mapping({key: value})
    assert err.value.prop == f'job_options.compss_args.{key}'
    assert err.value.value == value
    assert problem in str(err.value)
    assert f'job_options.compss_args.{key}' in str(err.value)


def test_unknown_option_is_refused_with_a_suggestion():
    with pytest.raises(ConfigError) as err:
        PycompssOptions.from_mapping({'num_node': 2})
    assert err.value.prop == 'job_options.compss_args.num_node'
    assert err.value.value == 2
    assert 'not a documented enqueue_compss option' in str(err.value)
    assert 'num_nodes' in str(err.value)
    with pytest.raises(ConfigError) as err:
        PycompssOptions.from_mapping({'help': True})
    assert err.value.prop == 'job_options.compss_args.help'
    with pytest.raises(ConfigError) as err:
        PycompssOptions.from_mapping('num_nodes=2')
    assert err.value.prop == 'job_options.compss_args'
    with pytest.raises(ConfigError) as err:
        PycompssOptions.from_mapping([{'a': 1, 'b': 2}])
    assert err.value.prop == 'job_options.compss_args[0]'


# -- the job ------------------------------------------------------------------

# the COVID-19 PyCOMPSsJob of the Croupier documentation, with its inputs
COVID = {
    'pre_script': ['echo "preparing $dataset"'],
    'app_name': 'covid19',
    'app_source': 'permedcoe_apps/covid19/covid-19-workflow-main/Workflow/PyCOMPSs/src',
    'env': [{'COMPSS_PYTHON_VERSION': 3},
            {'dataset': '$HOME/permedcoe_apps/covid19/covid-19-workflow-main/Resources/data'}],
    'compss_args': {'num_nodes': 2, 'exec_time': 45, 'log_level': 'off', 'graph': True,
                    'tracing': 'false', 'python_interpreter': 'python3', 'qos': 'debug'},
    'app_file': '$(pwd)/covid19_pilot.py',
    'app_args': {'metadata': '${dataset}/metadata_clean.tsv',
                 'model_prefix': '${dataset}/epithelial_cell_2',
                 'outdir': '$(pwd)/results/', 'ko_file': '$(pwd)/ko_file.txt', 'reps': 2,
                 'model': 'epithelial_cell_2', 'data_folder': '${dataset}',
                 'simulation_time': 100},
    'modules': ['module load COMPSs/3.0', 'module load singularity/3.5.2',
                'module use /apps/modules/modulefiles/tools/COMPSs/libraries', 'permedcoe'],
}


def test_covid19_launcher_lines_in_order():
    spec = PycompssJob.from_options('croupier_covid19_0x1', COVID)
    script = PycompssScheduler().render_script(spec)
    assert script.splitlines() == [
        '#!/bin/bash -l',
        '# croupier: submits PyCOMPSs job croupier_covid19_0x1 with enqueue_compss',
        'export CROUPIER_JOB_NAME=croupier_covid19_0x1',
        'export CROUPIER_APP_NAME=covid19',
        'set -e',
        'module load COMPSs/3.0',
        'module load singularity/3.5.2',
        'module use /apps/modules/modulefiles/tools/COMPSs/libraries',
        'module load permedcoe',
        'echo "preparing $dataset"',
        'export COMPSS_PYTHON_VERSION=3',
        'export dataset="${HOME}/permedcoe_apps/covid19/covid-19-workflow-main/Resources/data"',
        'cd permedcoe_apps/covid19/covid-19-workflow-main/Workflow/PyCOMPSs/src',
        ('enqueue_compss --num_nodes=2 --exec_time=45 --log_level=off --graph=true '
         '--tracing=false --python_interpreter=python3 --qos=debug '
         '--job_name=croupier_covid19_0x1 "${PWD}/covid19_pilot.py" '
         '"${dataset}/metadata_clean.tsv" "${dataset}/epithelial_cell_2" "${PWD}/results/" '
         '"${PWD}/ko_file.txt" 2 epithelial_cell_2 "${dataset}" 100'),
    ]


def test_launcher_without_modules_is_not_a_login_shell():
    spec = PycompssJob.from_options('x', {'app_file': 'app.py'})
    scheduler = PycompssScheduler()
    script = scheduler.render_script(spec)
    assert script.startswith('#!/bin/bash\n')
    assert 'cd ' not in script and 'module' not in script
    assert script.endswith('\nenqueue_compss --job_name=x app.py\n')
    assert scheduler.submit_command(spec, '/w d/x.compss.sh', '/w d') == \
        "cd '/w d' && bash '/w d/x.compss.sh' < /dev/null"
    with_modules = PycompssJob.from_options('x', {'app_file': 'app.py', 'modules': ['COMPSs']})
    assert scheduler.submit_command(with_modules, '/w/x.sh', '/w') == \
        'cd /w && bash -l /w/x.sh < /dev/null'


def test_job_name_comes_from_the_job_unless_compss_args_give_one():
    scheduler = PycompssScheduler()
    spec = PycompssJob.from_options('croupier job/1', {'app_file': 'a.py'})
    assert '--job_name=croupier_job_1 a.py' in scheduler.render_script(spec)
    named = PycompssJob.from_options('j', {'app_file': 'a.py',
                                           'compss_args': {'job_name': 'mine', 'qos': 'q'}})
    assert scheduler.enqueue_command(named) == 'enqueue_compss --qos=q --job_name=mine a.py'


@pytest.mark.parametrize('options,prop,problem', [
    ({}, 'job_options.app_file', 'is required'),
    ({'app_file': 'a.py', 'script': 'x'}, 'job_options.script', 'not a PyCOMPSs job option'),
    ({'app_file': ['a.py']}, 'job_options.app_file', 'must be a string'),
    ({'app_file': 'a\nb.py'}, 'job_options.app_file', 'single line'),
    ({'app_file': 'a.py', 'app_args': 3}, 'job_options.app_args', 'list of strings'),
    ({'app_file': 'a.py', 'app_args': ['x', {'y': 1}]}, 'job_options.app_args[1]',
     'must be a string'),
    ({'app_file': 'a.py', 'env': {'1BAD': 'x'}}, 'job_options.env.1BAD', 'not a valid'),
    ({'app_file': 'a.py', 'env': ['NOEQUALS']}, 'job_options.env[0]', 'NAME=value'),
    ({'app_file': 'a.py', 'modules': ['COMPSs; rm -rf ~']}, 'job_options.modules[0]',
     'module name'),
    ({'app_file': 'a.py', 'modules': ['module']}, 'job_options.modules[0]', 'subcommand'),
    ({'app_file': 'a.py', 'pre_script': ['ok', 'two\nlines']}, 'job_options.pre_script[1]',
     'single line'),
    ({'app_file': 'a.py', 'compss_args': {'num_nodes': -1}},
     'job_options.compss_args.num_nodes', 'integer >= 1'),
])
def test_bad_job_options_name_the_property(options, prop, problem):
    with pytest.raises(ConfigError) as err:
        PycompssJob.from_options('j', options)
    assert err.value.prop == prop
    assert problem in str(err.value)


def test_env_forms():
    for env in ({'A': 1, 'B': True}, [{'A': 1}, {'B': True}], ['A=1', 'B=true']):
        assert PycompssJob.from_options('j', {'app_file': 'a', 'env': env}).env == \
            {'A': '1', 'B': 'true'}


# -- the launcher, run for real ------------------------------------------------

FAKE_ENQUEUE = '''#!/bin/bash
# records its argv (NUL-separated, so newlines survive) and answers like sbatch
printf '%s\\0' "$@" > "$ARGV_FILE"
pwd > "$ARGV_FILE.cwd"
echo "SC Configuration:          default.cfg"
echo "Temp submit script is: /tmp/tmp.pBG5yfFxEo"
echo "Submitted batch job 474130"
'''


def run_launcher(tmp_path, spec, env=None):
    """Render, write and run the launcher as Cluster.submit would; return
    (job id, argv enqueue_compss received, its cwd)."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / 'enqueue_compss'
    fake.write_text(FAKE_ENQUEUE)
    fake.chmod(0o755)
    workdir = tmp_path / 'work dir'
    workdir.mkdir(exist_ok=True)
    scheduler = PycompssScheduler()
    script = workdir / f'{spec.name}{scheduler.script_suffix}'
    script.write_text(scheduler.render_script(spec))
    argv_file = tmp_path / 'argv'
    run_env = {'PATH': f'{bin_dir}:/usr/bin:/bin', 'HOME': str(tmp_path / 'home'),
               'ARGV_FILE': str(argv_file), **(env or {})}
    result = subprocess.run(['bash', '-c', scheduler.submit_command(spec, str(script),
                                                                    str(workdir))],
                            capture_output=True, text=True, env=run_env, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    job_id = scheduler.parse_submit_output(result.stdout)
    argv = argv_file.read_bytes().decode().split('\0')[:-1]
    cwd = (tmp_path / 'argv.cwd').read_text().strip()
    return job_id, argv, cwd


HOSTILE = ['it\'s "quoted"', '$(touch pwned)', 'a; touch pwned2', 'two\nlines', '*',
           '`touch pwned3`', '${A:-$(touch pwned4)}', '$1 $@ $$', 'back\\slash', '',
           '-x', '--qos=evil']


def test_hostile_values_arrive_literally(tmp_path):
    spec = PycompssJob.from_options('lit', {
        'app_file': 'app; touch pwned5.py',
        'app_args': HOSTILE,
        'env': {'EVIL': '$(touch pwned6)'},
        'pre_script': ['test "$EVIL" = ""'],      # env comes after pre_script
        'compss_args': {'jvm_master_opts': '-Dx="a b";$(touch pwned7)',
                        'prolog': ['echo,`touch pwned8`'], 'qos': 'debug'},
    })
    job_id, argv, cwd = run_launcher(tmp_path, spec)
    assert job_id == '474130'
    assert argv == ['--jvm_master_opts=-Dx="a b";$(touch pwned7)',
                    '--prolog=echo,`touch pwned8`', '--qos=debug', '--job_name=lit',
                    'app; touch pwned5.py'] + HOSTILE
    assert cwd == str(tmp_path / 'work dir')
    made = [p.name for p in tmp_path.rglob('pwned*')]
    assert made == []


def test_variable_references_expand_as_in_the_documented_example(tmp_path):
    home = tmp_path / 'home'
    (home / 'apps' / 'src').mkdir(parents=True)
    spec = PycompssJob.from_options('covid', {
        'app_source': '~/apps/src',
        'env': [{'dataset': '$HOME/data'}, {'OUT': '${dataset}/out dir'}],
        'app_file': '$(pwd)/covid19_pilot.py',
        'app_args': {'metadata': '${dataset}/metadata_clean.tsv', 'outdir': '$(pwd)/results/',
                     'reps': 2, 'out': '$OUT', 'literal': '$(pwd'},
        'compss_args': {'pythonpath': '$(pwd)', 'num_nodes': 2},
    })
    _, argv, cwd = run_launcher(tmp_path, spec)
    src = str(home / 'apps' / 'src')
    assert cwd == src
    assert argv == [f'--pythonpath={src}', '--num_nodes=2', '--job_name=covid',
                    f'{src}/covid19_pilot.py', f'{home}/data/metadata_clean.tsv',
                    f'{src}/results/', '2', f'{home}/data/out dir', '$(pwd']


def test_relative_app_source_is_in_the_working_directory(tmp_path):
    (tmp_path / 'work dir' / 'src').mkdir(parents=True)
    spec = PycompssJob.from_options('rel', {'app_source': 'src', 'app_file': 'a.py'})
    _, _, cwd = run_launcher(tmp_path, spec)
    assert cwd == str(tmp_path / 'work dir' / 'src')
    assert PycompssScheduler().output_paths(spec, '7', str(tmp_path / 'work dir')) == (
        f'{tmp_path}/work dir/src/compss-7.out', f'{tmp_path}/work dir/src/compss-7.err')


def test_failing_pre_script_stops_the_submission(tmp_path):
    spec = PycompssJob.from_options('stop', {'app_file': 'a.py', 'pre_script': ['false']})
    with pytest.raises(AssertionError):
        run_launcher(tmp_path, spec)
    assert not (tmp_path / 'argv').exists()


def test_shell_word():
    assert shell_word('plain') == 'plain'
    assert shell_word('a b') == "'a b'"
    assert shell_word('$HOME/x') == '"${HOME}/x"'
    assert shell_word('$(pwd)/x') == '"${PWD}/x"'
    assert shell_word('~/x y') == "~/'x y'"
    assert shell_word('$(id)') == '"\\$(id)"'
    for text in HOSTILE + ['~', '~/', '$', '${}', '"$HOME"']:
        if '$' not in text and not text.startswith('~'):
            assert shell_word(text) == shlex.quote(text)


# -- output paths, submission output, status and cancel --------------------------

def test_output_paths():
    scheduler = PycompssScheduler()

    def paths(options, workdir='/w'):
        spec = PycompssJob.from_options('j', {'app_file': 'a.py', **options})
        return scheduler.output_paths(spec, '12', workdir)

    assert paths({}) == ('/w/compss-12.out', '/w/compss-12.err')
    assert paths({'app_source': '/apps/src/'}) == ('/apps/src/compss-12.out',
                                                   '/apps/src/compss-12.err')
    assert paths({'app_source': 'src', 'compss_args': {'job_execution_dir': '/scratch/x'}}) \
        == ('/scratch/x/compss-12.out', '/scratch/x/compss-12.err')
    # only the remote shell knows these
    assert paths({'app_source': '$HOME/src'}) == (None, None)
    assert paths({'app_source': '~/src'}) == (None, None)


ENQUEUE_OUTPUT = '''SC Configuration:          default.cfg
JobName:                   croupier_covid19_0x1
Queue:                     default
Reservation:               disabled
Num Nodes:                 3
Num Switches:              0
GPUs per node:             0
Job dependency:            None
Exec-Time:                 00:15
QoS:                       debug
Constraints:               disabled
Storage Home:              null
Storage Properties:        null
Other:                     --sc_cfg=default.cfg
                        --cpus_per_node=48
                        --master_working_dir=/path/to/app_dir
                        --worker_working_dir=shared_disk
                        --lang=python
 
Temp submit script is: /scratch/tmp/tmp.pBG5yfFxEo
Requesting 144 processes
Submitted batch job 474130
'''


def test_job_id_from_enqueue_compss_output():
    parse = PycompssScheduler().parse_submit_output
    assert parse(ENQUEUE_OUTPUT) == '474130'
    # a site profile may print after it
    assert parse(ENQUEUE_OUTPUT + 'Bye from the login node\n') == '474130'
    assert parse('Submitted batch job 42 on cluster c1\n') == '42'
    # a bare id on the last line (qsub under PBS, sbatch --parsable wrappers)
    assert parse('Temp submit script is: /tmp/x\n1234.pbs-server\n') == '1234.pbs-server'
    assert parse('88\n') == '88'
    assert parse('Job <5150> is submitted to queue <normal>.\n') == '5150'
    for bad in ('', 'Temp submit script is: /tmp/x\n',
                'sbatch: error: Batch job submission failed: Invalid qos specification\n'):
        with pytest.raises(ValueError):
            parse(bad)


def test_status_and_cancel_are_the_monitor_schedulers():
    slurm = SlurmScheduler()
    scheduler = PycompssScheduler()
    assert scheduler.status_command(['11', '12']) == slurm.status_command(['11', '12'])
    assert scheduler.cancel_command(['11', '12']) == 'scancel -- 11 12'
    text = ('11|COMPLETED|None|0\n12|RUNNING|None|0\n@@croupier-squeue-rc=0\n'
            '@@croupier-sacct@@\n')
    statuses = scheduler.parse_status_output(text, ['11', '12'])
    assert statuses == slurm.parse_status_output(text, ['11', '12'])
    assert statuses['11'].state is JobState.COMPLETED
    assert statuses['12'].state is JobState.RUNNING
    assert scheduler.normalize('TIMEOUT') is JobState.TIMEOUT
    with pytest.raises(ValueError):
        scheduler.cancel_command(['1; rm -rf ~'])
    # another monitor scheduler
    shell = ShellScheduler()
    other = PycompssScheduler(monitor=shell)
    assert other.status_command(['sh-1']) == shell.status_command(['sh-1'])
    assert other.cancel_command(['sh-1']) == shell.cancel_command(['sh-1'])
    assert other.STATES is shell.STATES


def test_render_refuses_a_plain_job_spec():
    from croupier_plugin.core.model import JobSpec
    with pytest.raises(TypeError):
        PycompssScheduler().render_script(JobSpec(name='x', commands=['true']))


# -- the bed's stand-in accepts exactly the documented flags ------------------------

def run_stand_in(tmp_path, args):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    sbatch = bin_dir / 'sbatch'
    sbatch.write_text('#!/bin/bash\nprintf "%s\\n" "$@" > sbatch.argv\n'
                      'cp "${@: -1}" sbatch.script\necho "Submitted batch job 31"\n')
    sbatch.chmod(0o755)
    return subprocess.run(['bash', STAND_IN, *args], cwd=tmp_path, capture_output=True,
                          text=True, env={'PATH': f'{bin_dir}:/usr/bin:/bin'}, timeout=30,
                          check=False)


def test_stand_in_accepts_every_flag_of_the_table(tmp_path):
    assert os.access(STAND_IN, os.X_OK)
    flags = [sample(o)[1] for o in OPTIONS.values()]
    flags += [f'--{o.flag}' for o in OPTIONS.values() if o.bare]
    flags = [f for f in flags if not f.startswith(('--num_nodes', '--exec_time', '--job_name',
                                                   '--qos', '--job_execution_dir',
                                                   '--python_interpreter'))]
    args = flags + ['--num_nodes=1', '--exec_time=3', '--qos=normal', '--job_name=n',
                    '--python_interpreter=python3', '-g', '-t', '-d', 'app.py', 'a b', '$(x)']
    result = run_stand_in(tmp_path, args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert PycompssScheduler().parse_submit_output(result.stdout) == '31'
    assert (tmp_path / 'enqueue_compss.argv').read_text() == ''.join(f'{a}\n' for a in args)
    sbatch_argv = (tmp_path / 'sbatch.argv').read_text().splitlines()
    assert sbatch_argv[:8] == ['-J', 'n', '-t', '3', '-D', str(tmp_path), '-o', 'compss-%j.out']
    assert '-N 1 --qos=normal' in ' '.join(sbatch_argv)
    assert '-p value-1' in ' '.join(sbatch_argv)
    # the job runs the app with its arguments, each one word
    script = (tmp_path / 'sbatch.script').read_text()
    assert script.splitlines()[-1].split() == ['python3', 'app.py', 'a\\', 'b', '\\$\\(x\\)']


@pytest.mark.parametrize('flag', ['--num_node=2', '--bogus', '-x', '--num_nodes', '--qos',
                                  '--num_nodes=0', '--exec_time=soon'])
def test_stand_in_refuses_undocumented_flags(tmp_path, flag):
    result = run_stand_in(tmp_path, [flag, 'app.py'])
    assert result.returncode == 1
    assert 'Bad argument' in result.stderr and 'Usage:' in result.stderr
    assert not (tmp_path / 'sbatch.argv').exists()


def test_schedulers_without_dependencies_refuse_to_make_a_job_wait():
    # the engine gives `after` only where holds_for is true; these never carry a
    # dependency, so a job given one must not be submitted as if it had none
    from croupier_plugin.core.model import JobSpec

    compss = PycompssJob.from_options('j', {'app_file': 'a.py'})
    plain = JobSpec.from_options('j', {'commands': ['true']})
    assert not PycompssScheduler().holds_for(compss)
    assert not ShellScheduler().holds_for(plain)
    with pytest.raises(ValueError, match='cannot make a job wait'):
        PycompssScheduler().submit_command(compss, '/w/j.sh', '/w', ['12'])
    with pytest.raises(ValueError, match='cannot make a job wait'):
        ShellScheduler().submit_command(plain, '/w/j.sh', '/w', ['sh-1'])
    assert 'bash' in PycompssScheduler().submit_command(compss, '/w/j.sh', '/w', [])
    assert '--dependency=afterok:12' in SlurmScheduler().submit_command(plain, '/w/j.sh',
                                                                        '/w', ['12'])
