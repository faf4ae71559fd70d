"""Environment modules for real: Lmod (installed on the bed) in the job's login shell."""

import pytest

from croupier_plugin.core.model import JobSpec, JobState
from croupier_plugin.core.transport import SshTransport

pytestmark = pytest.mark.bed

MODULEFILE = 'setenv("HELLO_MODULE", "loaded 1.0")\n'


@pytest.fixture
def modulefiles(ssh, workdir):
    path = f'{workdir}/modulefiles'
    ssh.inner.makedirs(f'{path}/hello')
    ssh.inner.write_file(f'{path}/hello/1.0.lua', MODULEFILE, mode=0o644)
    return path


def test_job_modules_are_loaded_in_the_jobs_login_shell(slurm, workdir, modulefiles, follow):
    spec = JobSpec.from_options('mod', {'modules': [f'module use {modulefiles}', 'hello/1.0'],
                                        'commands': ['echo "$HELLO_MODULE"']})
    sub = slurm.submit(spec, workdir)
    statuses, _, _ = follow(slurm, [sub.job_id])
    assert statuses[sub.job_id].state is JobState.COMPLETED, slurm.tail(sub.stderr)
    assert slurm.transport.read_file(sub.stdout).decode() == 'loaded 1.0\n'


def test_missing_module_fails_the_job(slurm, workdir, modulefiles, follow):
    spec = JobSpec.from_options('nomod', {'modules': [f'module use {modulefiles}', 'absent/9'],
                                          'commands': ['echo should not run']})
    sub = slurm.submit(spec, workdir)
    statuses, _, _ = follow(slurm, [sub.job_id])
    assert statuses[sub.job_id].state is JobState.FAILED
    assert slurm.transport.read_file(sub.stdout).decode() == ''


def test_login_shell_option_brings_the_module_command(ssh_settings):
    plain = SshTransport(ssh_settings)
    login = plain.with_options(login_shell=True)
    assert plain.run('module --version').exit_code == 127
    assert login.run('module --version').exit_code == 0
