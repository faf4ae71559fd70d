"""Batch scripts rendered from job specs: directives checked as text, bodies run by bash."""

import os
import subprocess

import pytest

from croupier_plugin.core.model import JobSpec
from croupier_plugin.core.schedulers import ShellScheduler, SlurmScheduler


def spec(**options):
    return JobSpec.from_options(options.pop('name', 'job one'), options)


def directives(text):
    return [line[len('#SBATCH '):] for line in text.splitlines() if line.startswith('#SBATCH ')]


def test_every_slurm_directive():
    script = SlurmScheduler().render_script(spec(
        commands=['srun hostname'], nodes=2, tasks=8, tasks_per_node=4, cpus_per_task=2,
        max_time='1-02:03:04', partition='debug', memory='4G', cpu_memory='1G',
        account='proj1', qos='normal', reservation='resv1', mail_user='a@b.org',
        mail_type='END,FAIL', stdout_file='out.txt', stderr_file='err.txt', array='0-9%2'))
    assert script.startswith('#!/bin/bash\n')
    assert directives(script) == [
        '--job-name=job_one', '--nodes=2', '--ntasks=8', '--ntasks-per-node=4',
        '--cpus-per-task=2', '--partition=debug', '--mem=4G', '--mem-per-cpu=1G',
        '--account=proj1', '--qos=normal', '--reservation=resv1', '--mail-user=a@b.org',
        '--mail-type=END,FAIL', '--array=0-9%2', '--time=1-02:03:04', '--output=out.txt',
        '--error=err.txt']


def test_default_output_files_and_paths():
    sched = SlurmScheduler()
    s = spec(commands=['true'])
    assert directives(sched.render_script(s))[-2:] == ['--output=job_one.%j.out',
                                                       '--error=job_one.%j.err']
    assert sched.output_paths(s, '42', '/w') == ('/w/job_one.42.out', '/w/job_one.42.err')
    arr = spec(commands=['true'], scale=3)
    assert directives(sched.render_script(arr))[-2:] == ['--output=job_one.%A_%a.out',
                                                         '--error=job_one.%A_%a.err']


def test_modules_use_a_login_shell():
    script = SlurmScheduler().render_script(spec(commands=['true'], modules=['gcc/12', 'openmpi']))
    assert script.startswith('#!/bin/bash -l\n')
    assert "module load gcc/12\nmodule load openmpi\n" in script


def run_body(tmp_path, job_spec, scheduler=None):
    text = (scheduler or SlurmScheduler()).render_script(job_spec)
    path = tmp_path / 'job.sh'
    path.write_text(text)
    # module is not installed here: a stand-in records what was loaded
    env = dict(os.environ, BASH_ENV='')
    return subprocess.run(['bash', str(path)], cwd=tmp_path, capture_output=True, text=True,
                          env=env)


def test_env_values_and_arguments_reach_the_job_literally(tmp_path):
    nasty = ['it\'s "quoted"', '$(touch pwned)', 'a;b && c', 'line1\nline2', '*', '`id`',
             'ünïcödé']
    (tmp_path / 'show.sh').write_text('for a in "$@"; do printf "[%s]\\n" "$a"; done\n'
                                      'printf "{%s}\\n" "$NASTY" "$CROUPIER_JOB_NAME"\n')
    result = run_body(tmp_path, spec(name="n'$(touch pwned2)", script='show.sh',
                                     arguments=nasty, env={'NASTY': '$(touch pwned3);`id`'}))
    assert result.returncode == 0, result.stderr
    expected = ''.join(f'[{a}]\n' for a in nasty) + '{$(touch pwned3);`id`}\n' \
        + "{n'$(touch pwned2)}\n"
    assert result.stdout == expected
    assert not list(tmp_path.glob('pwned*'))


def test_first_failing_command_fails_the_job_and_post_still_runs(tmp_path):
    result = run_body(tmp_path, spec(commands=['echo one', 'exit 7', 'echo never'],
                                     post=['echo post ran']))
    assert result.returncode == 7
    assert result.stdout == 'one\npost ran\n'


def test_failing_pre_stops_before_the_main_part(tmp_path):
    result = run_body(tmp_path, spec(commands=['echo main'], pre=['echo pre', 'false']))
    assert result.returncode == 1
    assert result.stdout == 'pre\n'


def test_pre_sets_the_environment_of_the_main_part(tmp_path):
    result = run_body(tmp_path, spec(commands=['echo "$FROM_PRE"'], pre=['export FROM_PRE=yes']))
    assert (result.returncode, result.stdout) == (0, 'yes\n')


def test_failing_post_fails_a_successful_job(tmp_path):
    result = run_body(tmp_path, spec(commands=['true'], post=['exit 4']))
    assert result.returncode == 4


def test_missing_module_command_fails_the_job(tmp_path):
    result = run_body(tmp_path, spec(commands=['echo main'], modules=['gcc']),
                      ShellScheduler())
    assert result.returncode == 127
    assert 'main' not in result.stdout


def test_executable_script_runs_with_its_own_interpreter(tmp_path):
    script = tmp_path / 'hello.py'
    script.write_text('#!/usr/bin/env python3\nimport sys\nprint("py", sys.argv[1:])\n')
    script.chmod(0o755)
    result = run_body(tmp_path, spec(script='./hello.py', arguments=['x y']))
    assert (result.returncode, result.stdout) == (0, "py ['x y']\n")


@pytest.mark.parametrize('bad', ['--x\n#SBATCH --y', 'out put.txt', 'a"b'])
def test_directive_values_cannot_smuggle_lines(bad):
    from croupier_plugin.core.errors import ConfigError
    with pytest.raises(ConfigError):
        spec(commands=['true'], stdout_file=bad)


def test_module_commands_and_names():
    script = SlurmScheduler().render_script(spec(
        commands=['true'], modules=['module use /apps/modules', 'COMPSs/3.3', "x'y"]))
    assert "module use /apps/modules\nmodule load COMPSs/3.3\nmodule load 'x'\"'\"'y'\n" in script


def test_a_shell_job_ending_between_the_status_looks_is_read_as_ended(tmp_path):
    """SHELL status looks at the exit-code file, then at the process: a job that
    writes its code and ends in between is EXITED with that code, never KILLED."""
    jobs = tmp_path / '.croupier' / 'jobs'
    jobs.mkdir(parents=True)
    (jobs / 'sh-0123abcd.submitted').write_text('')
    (jobs / 'sh-0123abcd.pid').write_text('999999\n')
    scheduler = ShellScheduler()
    # `kill -0` stands for the moment the job writes its code and exits
    race = ('kill() { echo 0 > "$HOME/.croupier/jobs/sh-0123abcd.rc"; return 1; }; '
            + scheduler.status_command(['sh-0123abcd']))
    result = subprocess.run(['bash', '-c', race], capture_output=True, text=True,
                            env=dict(os.environ, HOME=str(tmp_path)))
    status = scheduler.parse_status_output(result.stdout, ['sh-0123abcd'])['sh-0123abcd']
    assert (status.raw_state, status.state.name, status.exit_code) == ('EXITED', 'COMPLETED', 0)
    # a process gone with no code at all is still KILLED
    (jobs / 'sh-0123abcd.rc').unlink()
    result = subprocess.run(['bash', '-c', scheduler.status_command(['sh-0123abcd'])],
                            capture_output=True, text=True,
                            env=dict(os.environ, HOME=str(tmp_path)))
    status = scheduler.parse_status_output(result.stdout, ['sh-0123abcd'])['sh-0123abcd']
    assert (status.raw_state, status.state.name) == ('KILLED', 'FAILED')
