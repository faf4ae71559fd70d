"""SingularityJob scripts, run by bash with the stand-in runtime on PATH."""

import os
import shutil
import subprocess

import pytest

from croupier_plugin.core.errors import ConfigError
from croupier_plugin.core.model import JobSpec
from croupier_plugin.core.schedulers import SlurmScheduler

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAND_IN = os.path.join(ROOT, 'tests', 'bed', 'stand-ins', 'singularity')


def spec(**options):
    return JobSpec.from_options('ctr', options, container=True)


def run(tmp_path, job_spec, runtime='singularity'):
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    shutil.copy(STAND_IN, bindir / runtime)
    script = tmp_path / 'job.sh'
    script.write_text(SlurmScheduler().render_script(job_spec))
    env = dict(os.environ, PATH=f'{bindir}:/usr/bin:/bin')
    return subprocess.run(['bash', str(script)], cwd=tmp_path, capture_output=True, text=True,
                          env=env)


def test_commands_run_inside_the_image_with_home_and_binds(tmp_path):
    result = run(tmp_path, spec(image='lolcow.sif', home='/home/x y', volumes=['/data:/d', '/s'],
                                commands=['echo "in $SINGULARITY_IMAGE"',
                                          'echo "home=$SINGULARITY_HOME binds=$SINGULARITY_BINDS"']))
    assert result.returncode == 0, result.stderr
    assert result.stdout == 'in lolcow.sif\nhome=/home/x y binds=/data:/d,/s\n'
    argv = (tmp_path / 'singularity.argv').read_text().splitlines()
    assert argv[:8] == ['exec', '-H', '/home/x y', '-B', '/data:/d', '-B', '/s', 'lolcow.sif']


def test_apptainer_is_used_when_present(tmp_path):
    result = run(tmp_path, spec(image='i.sif', commands=['echo ok']), runtime='apptainer')
    assert (result.returncode, result.stdout) == (0, 'ok\n')


def test_script_with_literal_arguments_and_failure_code(tmp_path):
    (tmp_path / 'app.sh').write_text('printf "[%s]\\n" "$@"; exit 6\n')
    (tmp_path / 'app.sh').chmod(0o755)
    args = ['a b', '$(touch pwned)', "it's"]
    result = run(tmp_path, spec(image='i.sif', script='./app.sh', arguments=args))
    assert result.returncode == 6
    assert result.stdout == ''.join(f'[{a}]\n' for a in args)
    assert not (tmp_path / 'pwned').exists()


def test_launcher_wraps_the_runtime():
    text = SlurmScheduler().render_script(spec(image='i.sif', commands=['x'], launcher='srun'))
    assert '\nsrun "$croupier_runtime" exec i.sif bash -c ' in text


def test_missing_runtime_fails_clearly(tmp_path):
    script = tmp_path / 'job.sh'
    script.write_text(SlurmScheduler().render_script(spec(image='i.sif', commands=['true'])))
    result = subprocess.run(['/bin/bash', str(script)], capture_output=True, text=True,
                            env={'PATH': '/nonexistent'})
    assert result.returncode == 127
    assert 'neither apptainer nor singularity' in result.stderr


@pytest.mark.parametrize('options, prop', [
    ({'commands': ['x']}, 'job_options.image'),
    ({'commands': ['x'], 'image': 'i', 'launcher': 'aprun'}, 'job_options.launcher'),
    ({'commands': ['x'], 'image': 'i', 'volumes': ['']}, 'job_options.volumes[0]'),
])
def test_bad_container_options(options, prop):
    with pytest.raises(ConfigError) as err:
        JobSpec.from_options('c', options, container=True)
    assert prop in str(err.value)


def test_container_options_belong_to_singularity_jobs():
    with pytest.raises(ConfigError) as err:
        JobSpec.from_options('c', {'commands': ['x'], 'image': 'i.sif'})
    assert 'croupier.nodes.SingularityJob' in str(err.value)
