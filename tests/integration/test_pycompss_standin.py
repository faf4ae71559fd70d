"""PyCOMPSs jobs on the bed: the launcher runs the stand-in enqueue_compss
(tests/bed/stand-ins/enqueue_compss, installed as ~/bin/enqueue_compss of the
test user), which submits to the bed's SLURM; the monitor follows the SLURM job."""


import pytest

from croupier_plugin.core.cluster import Cluster
from croupier_plugin.core.model import JobState
from croupier_plugin.core.schedulers.pycompss import PycompssJob, PycompssScheduler

pytestmark = pytest.mark.bed


APP = '''import os, sys
print("args=" + "|".join(sys.argv[1:]))
print("greeting=" + os.environ.get("GREETING", ""))
print("job=" + os.environ.get("SLURM_JOB_NAME", ""))
sys.stderr.write("app stderr\\n")
sys.exit(int(os.environ.get("APP_EXIT", "0")))
'''

# ssh commands are not login shells, so ~/bin is not on PATH: the job's env
# puts it there (variable references expand in env values, see pycompss.py)
PATH_ENV = {'PATH': '$HOME/bin:$PATH'}


@pytest.fixture
def pycompss(ssh, workdir, install_stand_in):
    install_stand_in('enqueue_compss')
    ssh.inner.makedirs(f'{workdir}/src')
    ssh.inner.write_file(f'{workdir}/src/app.py', APP, mode=0o644)
    return Cluster('bed-pycompss', ssh, PycompssScheduler(), monitor_period=1.0)


def job(name, **options):
    options.setdefault('app_name', 'demo')
    options.setdefault('app_source', 'src')
    options.setdefault('app_file', '$(pwd)/app.py')
    return PycompssJob.from_options(name, options)


def test_pycompss_job_runs_through_enqueue_compss_and_slurm(pycompss, workdir, follow,
                                                          accounting):
    spec = job('pyc-ok',
               env=[PATH_ENV, {'GREETING': 'hello from $USER'}],
               pre_script=['test -x "$HOME/bin/enqueue_compss"'],
               app_args=['one', 'two words', '$(touch pwned)'],
               compss_args={'num_nodes': 1, 'exec_time': 2, 'log_level': 'off',
                            'graph': True, 'tracing': 'false',
                            'python_interpreter': 'python3', 'qos': 'normal'})
    sub = pycompss.submit(spec, workdir)
    assert sub.job_id.isdigit()
    assert sub.stdout == f'{workdir}/src/compss-{sub.job_id}.out'
    assert sub.stderr == f'{workdir}/src/compss-{sub.job_id}.err'

    statuses, _, _ = follow(pycompss, [sub.job_id])
    status = statuses[sub.job_id]
    assert (status.state, status.exit_code) == (JobState.COMPLETED, 0), status.describe()

    out = pycompss.transport.read_file(sub.stdout).decode()
    assert out == ('args=one|two words|$(touch pwned)\n'
                   'greeting=hello from crtest\n'
                   'job=pyc-ok\n')
    assert pycompss.tail(sub.stderr) == 'app stderr\n'
    argv = pycompss.transport.read_file(f'{workdir}/src/enqueue_compss.argv').decode()
    assert argv.splitlines() == [
        '--num_nodes=1', '--exec_time=2', '--log_level=off', '--graph=true',
        '--tracing=false', '--python_interpreter=python3', '--qos=normal',
        '--job_name=pyc-ok', f'{workdir}/src/app.py', 'one', 'two words', '$(touch pwned)']
    # SLURM got the limits enqueue_compss was given
    # (right after the end sacct may list it as 'allocation|1||Unknown')
    acct = accounting(pycompss.transport, f'-j {sub.job_id} -o JobName,NNodes,Timelimit,QOS',
                      lambda text: text.strip() == 'pyc-ok|1|00:02:00|normal').strip()
    assert acct == 'pyc-ok|1|00:02:00|normal'
    listing = pycompss.transport.run(f'ls -R {workdir}').stdout
    assert 'pwned' not in listing


def test_failing_pycompss_app_is_failed_with_its_exit_code(pycompss, workdir, follow):
    spec = job('pyc-bad', env=[PATH_ENV, {'APP_EXIT': 3}],
               compss_args={'num_nodes': 1, 'exec_time': 1})
    sub = pycompss.submit(spec, workdir)
    statuses, _, _ = follow(pycompss, [sub.job_id])
    status = statuses[sub.job_id]
    assert (status.state, status.exit_code) == (JobState.FAILED, 3), status.describe()
    assert pycompss.tail(sub.stderr) == 'app stderr\n'


def test_refused_flag_fails_the_submission_with_the_message(pycompss, workdir):
    from croupier_plugin.core.errors import SchedulerError
    # a flag the stand-in (like the real command) does not know, slipped in by pre_script
    spec = job('pyc-refused', env=[PATH_ENV],
               pre_script=['enqueue_compss() { command enqueue_compss --no_such_flag "$@"; }'])
    with pytest.raises(SchedulerError) as err:
        pycompss.submit(spec, workdir)
    assert err.value.exit_code == 1
    assert 'Bad argument: --no_such_flag' in str(err.value)
