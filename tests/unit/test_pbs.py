"""PBS Pro and Torque: scripts, qsub ids and qstat parsing on tests/fixtures/pbs.

The torque_* and pbspro_* fixtures follow the documented formats (sources in
tests/fixtures/pbs/README.md); the wrapper_* ones are real outputs of
Debian's slurm-wlm-torque wrappers on the test bed.
"""

import os
import re
import shlex
import stat
import subprocess

import pytest

from croupier_plugin.core.errors import ConfigError
from croupier_plugin.core.model import JobSpec, JobState
from croupier_plugin.core.schedulers.pbs import (
    FILES_MARK,
    QSTAT_RC_MARK,
    PbsScheduler,
    TorqueScheduler,
    parse_qstat_full,
    pbs_size,
)

FIX = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'fixtures', 'pbs')
FLAVOURS = [TorqueScheduler, PbsScheduler]


def fixture(name):
    with open(os.path.join(FIX, name)) as fh:
        return fh.read()


def wrapper_ids():
    """The ids of the jobs recorded on the bed (first line of wrapper_commands.tsv)."""
    header = fixture('wrapper_commands.tsv').splitlines()[0]
    return dict(re.findall(r'(\w+)=(\d+)', header.split('ids:')[1]))


W = wrapper_ids()


def spec(**options):
    return JobSpec.from_options(options.pop('name', 'job one'), options)


def directives(text):
    return [line[len('#PBS '):] for line in text.splitlines() if line.startswith('#PBS ')]


FULL = dict(commands=['mpirun ./app'], nodes=2, tasks=8, tasks_per_node=4, cpus_per_task=2,
            max_time='1-02:03:04', partition='debug', memory='4G', cpu_memory='500M',
            account='proj1', mail_user='a@b.org', mail_type='END,FAIL',
            stdout_file='out.txt', stderr_file='err.txt',
            extra_directives=['-l gres=gpu:1', '-W umask=022'])


# -- rendering ---------------------------------------------------------------

def test_every_torque_directive():
    script = TorqueScheduler().render_script(spec(array='0-9%2', **FULL))
    assert script.startswith('#!/bin/bash\n')
    assert directives(script) == [
        '-N job_one', '-l nodes=2:ppn=8', '-l mem=8gb', '-l walltime=26:03:04',
        '-l pmem=500mb', '-q debug', '-A proj1', '-M a@b.org', '-m ae',
        '-o out.txt', '-e err.txt', '-t 0-9%2', '-l gres=gpu:1', '-W umask=022']


def test_every_pbspro_directive():
    script = PbsScheduler().render_script(spec(array='0-9', **FULL))
    assert script.startswith('#!/bin/bash\n')
    assert directives(script) == [
        '-N job_one', '-l select=2:ncpus=8:mpiprocs=4:ompthreads=2:mem=4gb',
        '-l place=scatter', '-l walltime=26:03:04', '-l pmem=500mb', '-q debug',
        '-A proj1', '-M a@b.org', '-m ae', '-o out.txt', '-e err.txt', '-J 0-9',
        '-l gres=gpu:1', '-W umask=022']


@pytest.mark.parametrize('options, torque, pbspro', [
    ({}, [], []),
    ({'tasks': 6}, ['-l nodes=1:ppn=6'], ['-l select=1:ncpus=6:mpiprocs=6']),
    ({'nodes': 3, 'tasks': 7}, ['-l nodes=3:ppn=3'],
     ['-l select=3:ncpus=3:mpiprocs=3', '-l place=scatter']),
    ({'nodes': 2}, ['-l nodes=2:ppn=1'], ['-l select=2:ncpus=1:mpiprocs=1', '-l place=scatter']),
    ({'cpus_per_task': 4}, ['-l nodes=1:ppn=4'], ['-l select=1:ncpus=4:mpiprocs=1:ompthreads=4']),
    ({'memory': '500M'}, ['-l mem=500mb'], ['-l select=1:ncpus=1:mpiprocs=1:mem=500mb']),
    ({'memory': 1024}, ['-l mem=1024mb'], ['-l select=1:ncpus=1:mpiprocs=1:mem=1024mb']),
])
def test_resource_requests(options, torque, pbspro):
    s = spec(commands=['true'], **options)
    assert TorqueScheduler().resource_directives(s) == torque
    assert PbsScheduler().resource_directives(s) == pbspro


@pytest.mark.parametrize('text, size', [('4G', '4gb'), ('500M', '500mb'), ('1024', '1024mb'),
                                        ('2T', '2tb'), ('512K', '512kb')])
def test_memory_in_pbs_units(text, size):
    assert pbs_size(text) == size


@pytest.mark.parametrize('mail_type, letters', [
    ('END', 'e'), ('FAIL', 'a'), ('BEGIN', 'b'), ('ALL', 'abe'), ('NONE', 'n'),
    ('BEGIN,END,FAIL', 'abe'), ('END,BEGIN', 'be')])
def test_mail_types_become_pbs_letters(mail_type, letters):
    s = spec(commands=['true'], mail_type=mail_type)
    for flavour in FLAVOURS:
        assert f'-m {letters}' in directives(flavour().render_script(s))


def test_defaults_name_the_job_and_leave_output_files_to_pbs():
    for flavour in FLAVOURS:
        d = directives(flavour().render_script(spec(commands=['true'])))
        assert d == ['-N job_one']
    # PBS wants a job name that starts with a letter
    assert directives(TorqueScheduler().render_script(spec(name='01 step', commands=['true']))) \
        == ['-N j01_step']


def test_modules_use_a_login_shell():
    script = TorqueScheduler().render_script(spec(commands=['true'], modules=['gcc/12']))
    assert script.startswith('#!/bin/bash -l\n#PBS ')
    assert '\nmodule load gcc/12\n' in script


def test_scale_throttle_on_pbspro_is_refused_by_name():
    with pytest.raises(ConfigError) as err:
        PbsScheduler().render_script(spec(commands=['true'], scale=10, scale_max_in_parallel=2))
    assert err.value.prop == 'job_options.scale_max_in_parallel'
    assert '-t 0-9%2' in TorqueScheduler().render_script(
        spec(commands=['true'], scale=10, scale_max_in_parallel=2))


@pytest.mark.parametrize('flavour, array, prop', [
    (PbsScheduler, '1,3,5', 'job_options.array'),
    (PbsScheduler, '4', 'job_options.array'),
    (TorqueScheduler, '0-10:2', 'job_options.array'),
])
def test_array_forms_a_flavour_cannot_take(flavour, array, prop):
    with pytest.raises(ConfigError) as err:
        flavour().render_script(spec(commands=['true'], array=array))
    assert err.value.prop == prop


def test_pbspro_array_step_and_torque_lists():
    assert '-J 0-10:2' in directives(PbsScheduler().render_script(
        spec(commands=['true'], array='0-10:2')))
    assert '-t 1,3,5-7' in directives(TorqueScheduler().render_script(
        spec(commands=['true'], array='1,3,5-7')))


@pytest.mark.parametrize('options, prop', [
    ({'qos': 'high'}, 'job_options.qos'),
    ({'reservation': 'r1'}, 'job_options.reservation'),
    ({'mail_type': 'TIME_LIMIT_90'}, 'job_options.mail_type'),
    ({'mail_type': 'NONE,END'}, 'job_options.mail_type'),
])
def test_options_without_pbs_equivalent_are_refused(options, prop):
    for flavour in FLAVOURS:
        with pytest.raises(ConfigError) as err:
            flavour().render_script(spec(commands=['true'], **options))
        assert err.value.prop == prop


def run_script(tmp_path, text, env=None, home=None):
    path = tmp_path / 'job.pbs'
    path.write_text(text)
    workdir = tmp_path / 'work'
    workdir.mkdir(exist_ok=True)
    full_env = dict(os.environ, BASH_ENV='', HOME=str(home or tmp_path),
                    PBS_O_WORKDIR=str(workdir), **(env or {}))
    return subprocess.run(['bash', str(path)], cwd='/', capture_output=True, text=True,
                           env=full_env)


def test_job_runs_in_the_submission_directory_and_records_its_exit_code(tmp_path):
    text = TorqueScheduler().render_script(spec(commands=['pwd', 'exit 3']))
    result = run_script(tmp_path, text, env={'PBS_JOBID': '42.srv'})
    assert (result.returncode, result.stdout) == (3, f'{tmp_path}/work\n')
    assert (tmp_path / '.croupier/pbs/42.srv.rc').read_text() == '3\n'


def test_files_of_an_earlier_job_with_the_same_id_go(tmp_path):
    old = tmp_path / '.croupier/pbs'
    old.mkdir(parents=True)
    (old / '42.srv.rc').write_text('0\n')
    (old / '42.srv.cancelled').write_text('')
    text = TorqueScheduler().render_script(spec(commands=['ls "$HOME/.croupier/pbs"']))
    result = run_script(tmp_path, text, env={'PBS_JOBID': '42.srv'})
    assert (result.returncode, result.stdout) == (0, '')
    assert sorted(p.name for p in old.iterdir()) == ['42.srv.rc']


def test_debian_wrapper_job_records_under_slurm_job_id(tmp_path):
    text = PbsScheduler().render_script(spec(commands=['true']))
    env = {k: v for k, v in os.environ.items() if k != 'PBS_JOBID'}
    env['SLURM_JOB_ID'] = '77'
    path = tmp_path / 'job.pbs'
    path.write_text(text)
    result = subprocess.run(['bash', str(path)], cwd=tmp_path, capture_output=True, text=True,
                            env=dict(env, HOME=str(tmp_path), BASH_ENV=''))
    assert result.returncode == 0
    assert (tmp_path / '.croupier/pbs/77.rc').read_text() == '0\n'


def test_killed_job_records_128_plus_signal_not_zero(tmp_path):
    text = TorqueScheduler().render_script(spec(commands=['sleep 30']))
    path = tmp_path / 'job.pbs'
    path.write_text(text)
    proc = subprocess.Popen(['bash', str(path)], cwd=tmp_path, start_new_session=True,
                            env=dict(os.environ, HOME=str(tmp_path), PBS_JOBID='9.srv',
                                     BASH_ENV=''),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rc_file = tmp_path / '.croupier/pbs/9.srv.rc'
    # the batch system signals the whole job (like qdel or a walltime kill)
    for _ in range(100):
        if subprocess.run(['pgrep', '-s', str(proc.pid), 'sleep'],
                          capture_output=True).returncode == 0:
            break
        subprocess.run(['sleep', '0.05'])
    os.killpg(proc.pid, 15)
    assert proc.wait(timeout=10) == 143
    assert rc_file.read_text() == '143\n'


def test_arrays_write_no_exit_code_file(tmp_path):
    text = TorqueScheduler().render_script(spec(commands=['true'], array='0-1'))
    assert 'croupier_rc_dir' not in text
    assert run_script(tmp_path, text, env={'PBS_JOBID': '5[1].srv'}).returncode == 0


# -- submission --------------------------------------------------------------

def test_submit_command_quotes_every_value():
    s = spec(commands=['true'], stdout_file='o.txt', stderr_file='logs/e.txt')
    command = TorqueScheduler().submit_command(s, "/w/it's here/job.pbs", "/w/it's here")
    assert command == ("cd '/w/it'\"'\"'s here' && qsub -N job_one -o o.txt -e logs/e.txt "
                       "'/w/it'\"'\"'s here/job.pbs'")
    assert shlex.split(command)[1] == "/w/it's here"
    assert PbsScheduler().submit_command(spec(commands=['true']), '/w/j.pbs', '/w') \
        == 'cd /w && qsub -N job_one /w/j.pbs'


def test_output_paths():
    for flavour in FLAVOURS:
        sched = flavour()
        assert sched.output_paths(spec(commands=['true']), '123.srv', '/w') \
            == ('/w/job_one.o123', '/w/job_one.e123')
        assert sched.output_paths(spec(commands=['true']), '671', '/w/') \
            == ('/w/job_one.o671', '/w/job_one.e671')
        given = spec(commands=['true'], stdout_file='out.txt', stderr_file='/abs/err.txt')
        assert sched.output_paths(given, '1.srv', '/w') == ('/w/out.txt', '/abs/err.txt')
        assert sched.output_paths(spec(commands=['true'], scale=3), '7[].srv', '/w') \
            == (None, None)


@pytest.mark.parametrize('name, job_id', [
    ('torque_qsub.txt', '101.napali'), ('torque_qsub_array.txt', '1098[].hostname'),
    ('pbspro_qsub.txt', '1234.pbsserver'), ('pbspro_qsub_array.txt', '1240[].pbsserver'),
    ('wrapper_qsub.txt', W['ok']),
])
def test_qsub_outputs(name, job_id):
    for flavour in FLAVOURS:
        assert flavour().parse_submit_output(fixture(name)) == job_id


def test_qsub_output_with_warnings_before_the_id():
    out = 'qsub: warning: something odd\n55.srv.example.org\n'
    assert TorqueScheduler().parse_submit_output(out) == '55.srv.example.org'


def test_qsub_error_text_is_not_an_id():
    with pytest.raises(ValueError):
        TorqueScheduler().parse_submit_output(fixture('wrapper_qsub_bad_queue.txt'))
    with pytest.raises(ValueError):
        PbsScheduler().parse_submit_output('qsub: Unknown queue\n')


# -- status ------------------------------------------------------------------

T, PB = TorqueScheduler, PbsScheduler
CASES = [
    # flavour, fixture, id, state, exit code, signal, words in the reason
    (T, 'torque_qstat_queued.txt', '102.napali', JobState.PENDING, None, None, ''),
    (T, 'torque_qstat_running.txt', '103.napali', JobState.RUNNING, None, None, ''),
    (T, 'torque_qstat_exiting.txt', '104.napali', JobState.RUNNING, None, None, ''),
    (T, 'torque_qstat_completed.txt', '105.napali', JobState.COMPLETED, 0, None, ''),
    (T, 'torque_qstat_failed.txt', '106.napali', JobState.FAILED, 3, None, ''),
    (T, 'torque_qstat_walltime.txt', '107.napali', JobState.TIMEOUT, -11, None,
     'JOB_EXEC_OVERLIMIT_WT'),
    (T, 'torque_qstat_walltime_signal.txt', '108.napali', JobState.TIMEOUT, 265, 9, 'walltime'),
    (T, 'torque_qstat_cancelled.txt', '109.napali', JobState.FAILED, 271, 15, 'signal 15'),
    (T, 'torque_qstat_held.txt', '110.napali', JobState.PENDING, None, None, 'held (u)'),
    (T, 'torque_qstat_array.txt', '1098[].hostname', JobState.RUNNING, None, None,
     'array: 1/3 elements completed'),
    (T, 'torque_qstat_array_ended.txt', '1098[].hostname', JobState.FAILED, 3, None,
     'array: 2/3 elements completed'),
    (T, 'torque_qstat_doc_exit_status.txt', '179.host', JobState.FAILED, -1, None,
     'JOB_EXEC_FAIL1'),
    (PB, 'pbspro_qstat_queued.txt', '1235.pbsserver', JobState.PENDING, None, None,
     'Not Running: Insufficient amount of resource: ncpus (R: 64 A: 32 T: 32)'),
    (PB, 'pbspro_qstat_running.txt', '1236.pbsserver', JobState.RUNNING, None, None,
     'Job run at'),
    (PB, 'pbspro_qstat_exiting.txt', '1237.pbsserver', JobState.RUNNING, None, None, ''),
    (PB, 'pbspro_qstat_finished.txt', '1238.pbsserver', JobState.COMPLETED, 0, None,
     'and finished'),
    (PB, 'pbspro_qstat_failed.txt', '1239.pbsserver', JobState.FAILED, 3, None, ''),
    (PB, 'pbspro_qstat_walltime.txt', '1241.pbsserver', JobState.TIMEOUT, 271, 15,
     'killed after its walltime'),
    (PB, 'pbspro_qstat_walltime_code.txt', '1242.pbsserver', JobState.TIMEOUT, -29, None,
     'JOB_EXEC_KILL_WALLTIME'),
    (PB, 'pbspro_qstat_held.txt', '1243.pbsserver', JobState.PENDING, None, None, 'held (u)'),
    (PB, 'pbspro_qstat_array.txt', '1240[].pbsserver', JobState.RUNNING, None, None,
     'array: 1/3 elements completed'),
    (PB, 'pbspro_qstat_array_ended.txt', '1240[].pbsserver', JobState.FAILED, 3, None,
     'array: 2/3 elements completed'),
    (T, 'wrapper_qstat_running.txt', W['ok'], JobState.RUNNING, None, None, ''),
]


@pytest.mark.parametrize('flavour, name, job_id, state, exit_code, signal, reason', CASES,
                         ids=[c[1] for c in CASES])
def test_status_of_every_fixture(flavour, name, job_id, state, exit_code, signal, reason):
    status = flavour().parse_status_output(fixture(name), [job_id])[job_id]
    assert (status.state, status.exit_code, status.signal) == (state, exit_code, signal)
    assert reason in status.reason
    assert status.raw_state


def test_folded_values_are_joined_where_they_were_cut():
    attrs = dict(parse_qstat_full(fixture('torque_qstat_doc_exit_status.txt')))['179.host']
    assert attrs['sched_hint'].startswith('Post job file processing error; job 179.host on '
                                          'host node1/0Bad UID for job execution')
    assert attrs['variable_list'].endswith('PBS_O_WORKDIR=/opt/moab,PBS_O_QUEUE=batchq')
    pbs = dict(parse_qstat_full(fixture('pbspro_qstat_finished.txt')))['1238.pbsserver']
    assert 'PBS_O_WORKDIR=/home/crtest/w,' in pbs['variable_list']


def test_many_jobs_in_one_output():
    text = ''.join(fixture(f'torque_qstat_{n}.txt')
                   for n in ('queued', 'running', 'completed', 'failed', 'held'))
    statuses = TorqueScheduler().parse_status_output(
        text, ['102.napali', '103.napali', '105.napali', '106.napali', '110.napali'])
    assert [s.state for s in statuses.values()] == [
        JobState.PENDING, JobState.RUNNING, JobState.COMPLETED, JobState.FAILED,
        JobState.PENDING]


def test_short_ids_match_full_server_names():
    text = fixture('torque_qstat_failed.txt').replace('106.napali', '106.napali.example.org')
    status = TorqueScheduler().parse_status_output(text, ['106.napali'])['106.napali']
    assert (status.state, status.exit_code) == (JobState.FAILED, 3)


def composite(qstat_stdout='', rc=0, stderr='', files=''):
    """The output of status_command: qstat's stdout, its rc and stderr, the files."""
    return f'{qstat_stdout}{QSTAT_RC_MARK}{rc}\n{stderr}\n{FILES_MARK}\n{files}'


def test_unknown_ids_are_unknown_and_do_not_hide_the_others():
    for flavour, known, name, unknown in (
            (T, '106.napali', 'torque_qstat_failed.txt', 'torque_qstat_unknown.stderr.txt'),
            (PB, '1239.pbsserver', 'pbspro_qstat_failed.txt', 'pbspro_qstat_unknown.stderr.txt')):
        gone = fixture(unknown).split()[-1]
        out = composite(fixture(name), rc=153, stderr=fixture(unknown))
        statuses = flavour().parse_status_output(out, [known, gone, '424242'])
        assert statuses[known].state is JobState.FAILED
        assert statuses[gone].state is JobState.UNKNOWN
        assert statuses[gone].reason == 'qstat: Unknown Job Id'
        assert statuses['424242'].state is JobState.UNKNOWN


def test_finished_without_history_reads_as_unknown():
    out = composite(rc=35, stderr=fixture('pbspro_qstat_finished_no_x.stderr.txt'))
    status = PbsScheduler().parse_status_output(out, ['1238.pbsserver'])['1238.pbsserver']
    assert status.state is JobState.UNKNOWN


def test_exit_code_file_tells_how_a_purged_job_ended():
    out = composite(rc=153, stderr='qstat: Unknown Job Id 5.srv\n',
                    files='rc 5.srv 0\nrc 6.srv 2\nrc 7.srv 143\ncancelled 7.srv\n'
                          'cancelled 8.srv\n')
    statuses = TorqueScheduler().parse_status_output(out, ['5.srv', '6.srv', '7.srv', '8.srv'])
    assert (statuses['5.srv'].state, statuses['5.srv'].exit_code) == (JobState.COMPLETED, 0)
    assert (statuses['6.srv'].state, statuses['6.srv'].exit_code) == (JobState.FAILED, 2)
    assert (statuses['7.srv'].state, statuses['7.srv'].signal) == (JobState.CANCELLED, 15)
    assert statuses['8.srv'].state is JobState.CANCELLED
    assert all(s.source in ('exit-code file', 'cancel file') for s in statuses.values())


def test_qstat_exit_status_wins_over_the_file():
    out = composite(fixture('torque_qstat_failed.txt'), files='rc 106.napali 0\n')
    status = TorqueScheduler().parse_status_output(out, ['106.napali'])['106.napali']
    assert (status.state, status.exit_code, status.source) == (JobState.FAILED, 3, 'qstat')


def test_cancel_file_does_not_turn_success_into_cancelled():
    out = composite(fixture('torque_qstat_completed.txt'), files='cancelled 105.napali\n')
    assert TorqueScheduler().parse_status_output(out, ['105.napali'])['105.napali'].state \
        is JobState.COMPLETED
    out = composite(fixture('torque_qstat_cancelled.txt'), files='cancelled 109.napali\n')
    status = TorqueScheduler().parse_status_output(out, ['109.napali'])['109.napali']
    assert (status.state, status.exit_code) == (JobState.CANCELLED, 271)


# The Debian wrapper's qstat shows C for every ended job and never an exit
# status: alone, it can only say that a job ended.
@pytest.mark.parametrize('name, job_id', [('wrapper_qstat_completed.txt', W['ok']),
                                          ('wrapper_qstat_failed.txt', W['failed']),
                                          ('wrapper_qstat_cancelled.txt', W['long'])])
def test_wrapper_qstat_alone_cannot_tell_success(name, job_id):
    status = TorqueScheduler().parse_status_output(fixture(name), [job_id])[job_id]
    assert (status.state, status.raw_state, status.exit_code) == (JobState.FAILED, 'C', None)
    assert status.reason == 'ended without an exit status'


def test_wrapper_status_command_output_recorded_on_the_bed():
    ids = [W['ok'], W['failed'], W['long'], '999999']
    statuses = TorqueScheduler().parse_status_output(fixture('wrapper_status_command.txt'), ids)
    assert [(s.state, s.exit_code) for s in statuses.values()] == [
        (JobState.COMPLETED, 0), (JobState.FAILED, 3), (JobState.CANCELLED, 143),
        (JobState.UNKNOWN, None)]


def test_wrapper_mixed_ids_one_call():
    statuses = TorqueScheduler().parse_status_output(
        fixture('wrapper_qstat_mixed.txt'), [W['ok'], W['failed'], W['long'], '999999'])
    assert statuses[W['ok']].state is JobState.RUNNING
    assert statuses['999999'].state is JobState.UNKNOWN


@pytest.mark.parametrize('flavour, raw, state', [
    (T, 'Q', JobState.PENDING), (T, 'H', JobState.PENDING), (T, 'W', JobState.PENDING),
    (T, 'T', JobState.PENDING), (T, 'R', JobState.RUNNING), (T, 'E', JobState.RUNNING),
    (T, 'S', JobState.RUNNING), (T, 'U', JobState.UNKNOWN), (T, 'Z', JobState.UNKNOWN),
    (PB, 'Q', JobState.PENDING), (PB, 'H', JobState.PENDING), (PB, 'W', JobState.PENDING),
    (PB, 'T', JobState.PENDING), (PB, 'M', JobState.PENDING), (PB, 'R', JobState.RUNNING),
    (PB, 'E', JobState.RUNNING), (PB, 'S', JobState.RUNNING), (PB, 'U', JobState.RUNNING),
    (PB, 'B', JobState.RUNNING), (PB, 'Z', JobState.UNKNOWN),
])
def test_every_live_state_maps_somewhere(flavour, raw, state):
    text = f'Job Id: 1.srv\n    job_state = {raw}\n\n'
    assert flavour().parse_status_output(text, ['1.srv'])['1.srv'].state is state


@pytest.mark.parametrize('flavour, letter', [(T, 'C'), (PB, 'F'), (PB, 'X')])
@pytest.mark.parametrize('code, state', [(0, JobState.COMPLETED), (3, JobState.FAILED),
                                         (137, JobState.FAILED), (-4, JobState.FAILED)])
def test_ended_states_follow_the_exit_status(flavour, letter, code, state):
    text = f'Job Id: 1.srv\n    job_state = {letter}\n    exit_status = {code}\n\n'
    assert flavour().parse_status_output(text, ['1.srv'])['1.srv'].state is state


def test_negative_codes_differ_between_flavours():
    text = 'Job Id: 1.srv\n    job_state = {}\n    Exit_status = -11\n\n'
    torque = TorqueScheduler().parse_status_output(text.format('C'), ['1.srv'])['1.srv']
    pbspro = PbsScheduler().parse_status_output(text.format('F'), ['1.srv'])['1.srv']
    assert torque.state is JobState.TIMEOUT           # JOB_EXEC_OVERLIMIT_WT
    assert pbspro.state is JobState.FAILED            # JOB_EXEC_RERUN
    assert 'JOB_EXEC_RERUN' in pbspro.reason


@pytest.mark.parametrize('comment', [
    'job killed: walltime 152 exceeded limit 120',
    'Job run at Thu May 14 at 07:04 on (node1:ncpus=1) and exceeded resource walltime'])
def test_walltime_comment_means_timeout(comment):
    text = (f'Job Id: 1.srv\n    job_state = F\n    Exit_status = 271\n'
            f'    comment = {comment}\n\n')
    status = PbsScheduler().parse_status_output(text, ['1.srv'])['1.srv']
    assert (status.state, status.signal) == (JobState.TIMEOUT, 15)
    assert PbsScheduler().parse_status_output(
        fixture('pbspro_qstat_walltime_code.txt'), ['1242.pbsserver'])['1242.pbsserver'] \
        .reason.endswith('and exceeded resource walltime')


# -- commands ----------------------------------------------------------------

def test_status_command_is_one_qstat_for_any_number_of_ids():
    ids = [f'{i}.srv' for i in range(1, 1001)]
    for flavour, expected in ((T, 'qstat -f -1 -- "$@"'), (PB, 'qstat -x -f -- "$@"')):
        command = flavour().status_command(ids)
        # PBS Pro: qstat -F json, and the text form only when that is refused
        # (test_openpbs.py shows that one qstat runs on a server with JSON)
        assert command.count('qstat ') == (1 if flavour is T else 2) and expected in command
        assert command.startswith('set -- 1.srv 2.srv 3.srv ')
    assert 'qstat -f -1 -t -- "$@"' in T().status_command(['1.srv', '7[].srv'])
    assert 'qstat -x -f -t -- "$@"' in PB().status_command(['7[].srv'])
    assert "'7[].srv'" in PB().status_command(['7[].srv'])


@pytest.mark.parametrize('bad', ['1;rm -rf ~', '$(id)', '1 2', '', '`id`', '-ualice',
                                 '--help', '-1.srv', '1.srv\n'])
def test_status_and_cancel_refuse_non_ids(bad):
    for flavour in FLAVOURS:
        with pytest.raises(ValueError):
            flavour().status_command(['1.srv', bad])
        with pytest.raises(ValueError):
            flavour().cancel_command([bad])


def test_cancel_command_is_one_qdel_after_the_cancel_files():
    command = TorqueScheduler().cancel_command(['1.srv', '2[].srv'])
    assert command.count('qdel ') == 1 and command.endswith('qdel -- "$@"')
    assert command.index(': > "$d/$i.cancelled"') < command.index('qdel')


def test_qdel_and_qstat_end_their_options_before_the_ids():
    # qdel and qstat (Torque, PBS Pro and Debian's wrappers) take the ids as operands
    for flavour in FLAVOURS:
        assert flavour().cancel_command(['1.srv']).endswith('qdel -- "$@"')
        assert ' -- "$@"' in flavour().status_command(['1.srv'])


FAKE_QSTAT = r'''#!/bin/sh
rc=0
for a in "$@"; do
  case "$a" in
    -*) ;;
    down) echo "qstat: cannot connect to server srv (errno=111)" >&2; exit 1 ;;
    1.srv) printf 'Job Id: 1.srv\n    job_state = R\n\n' ;;
    2.srv) printf 'Job Id: 2.srv\n    job_state = C\n    exit_status = 3\n\n' ;;
    *) echo "qstat: Unknown Job Id $a" >&2; rc=153 ;;
  esac
done
exit $rc
'''


@pytest.fixture
def fake_qstat(tmp_path):
    """A qstat that prints documented outputs, to run the status command's shell."""
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    qstat = bindir / 'qstat'
    qstat.write_text(FAKE_QSTAT)
    qstat.chmod(qstat.stat().st_mode | stat.S_IXUSR)
    home = tmp_path / 'home'
    (home / '.croupier/pbs').mkdir(parents=True)
    env = dict(os.environ, PATH=f'{bindir}:{os.environ["PATH"]}', HOME=str(home))
    return env, home


def test_status_command_survives_unknown_ids_in_sh(fake_qstat):
    env, home = fake_qstat
    (home / '.croupier/pbs/3.srv.rc').write_text('0\n')
    sched = TorqueScheduler()
    ids = ['1.srv', '2.srv', '3.srv', '4.srv']
    result = subprocess.run(['sh', '-c', sched.status_command(ids)], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    statuses = sched.parse_status_output(result.stdout, ids)
    assert [(s.state, s.exit_code) for s in statuses.values()] == [
        (JobState.RUNNING, None), (JobState.FAILED, 3), (JobState.COMPLETED, 0),
        (JobState.UNKNOWN, None)]
    assert statuses['4.srv'].reason == 'qstat: Unknown Job Id'


def test_status_command_fails_when_qstat_itself_fails(fake_qstat):
    env, _home = fake_qstat
    result = subprocess.run(['sh', '-c', TorqueScheduler().status_command(['down', '1.srv'])],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert 'cannot connect to server' in result.stderr


def test_status_command_fails_without_qstat(tmp_path):
    env = dict(os.environ, PATH='/nonexistent', HOME=str(tmp_path))
    result = subprocess.run(['/bin/sh', '-c', PbsScheduler().status_command(['1.srv'])],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 127
    assert re.search('qstat.*not found', result.stderr)


# -- markers (issue 17): the end of a job seen without asking qstat ------------------------

def test_scripts_leave_start_and_exit_code_markers_that_one_listing_reads(tmp_path):
    """The real scripts and the real listing command, in bash; both flavours,
    and the wrappers' SLURM_JOB_ID."""
    for flavour in FLAVOURS:
        scheduler = flavour()
        home = tmp_path / scheduler.name
        home.mkdir()
        plain = spec(commands=['true'])
        assert scheduler.leaves_marker(plain)
        # an array's elements end one by one: qstat tells
        assert not scheduler.leaves_marker(spec(commands=['true'], array='0-1'))
        assert run_script(tmp_path, scheduler.render_script(spec(commands=['exit 3'])),
                          env={'PBS_JOBID': '55.srv'}, home=home).returncode == 3
        assert run_script(tmp_path, scheduler.render_script(plain),
                          env={'PBS_JOBID': '56.srv'}, home=home).returncode == 0
        env = {k: v for k, v in os.environ.items() if k != 'PBS_JOBID'}
        wrapped = tmp_path / 'wrapped.pbs'
        wrapped.write_text(scheduler.render_script(spec(commands=['kill -TERM $$'])))
        assert subprocess.run(['bash', str(wrapped)], cwd=tmp_path, capture_output=True,
                              env=dict(env, HOME=str(home), BASH_ENV='',
                                       SLURM_JOB_ID='57')).returncode == 143

        def look(spent=(), started=()):
            out = subprocess.run(['bash', '-c', scheduler.marker_command(spent, started)],
                                 env=dict(os.environ, HOME=str(home)), capture_output=True,
                                 text=True)
            assert out.returncode == 0, out.stderr
            return sorted(out.stdout.splitlines())
        text = '\n'.join(look())
        assert text.splitlines() == ['55.srv 3', '55.srv run', '56.srv 0', '56.srv run',
                                     '57 143', '57 run']
        seen = scheduler.parse_markers(text, ['55.srv', '56.srv', '57', '58.srv'])
        assert (seen['55.srv'].state, seen['55.srv'].exit_code) == (JobState.FAILED, 3)
        assert (seen['56.srv'].state, seen['56.srv'].exit_code) == (JobState.COMPLETED, 0)
        assert '57' not in seen and '58.srv' not in seen   # a signal: qstat tells why
        assert look(spent=['55.srv', '56.srv']) == ['57 143', '57 run']
        assert look(started=['57']) == ['57 143']
        assert look(spent=['57']) == []
        # read markers go; the exit-code files the status command reads stay
        assert sorted(p.name for p in (home / '.croupier/pbs').iterdir()) == \
            ['55.srv.rc', '56.srv.rc', '57.rc']
        with pytest.raises(ValueError):
            scheduler.marker_command(['1; rm -rf ~'])


def test_a_pbs_job_started_by_its_parent_end_leaves_a_start_marker_first(tmp_path):
    """A job that is still running has a start marker and no exit code yet, so
    its waiting dependants can be queued behind it."""
    scheduler = TorqueScheduler()
    text = scheduler.render_script(spec(commands=['ls "$HOME/.croupier/pbs-markers"']))
    result = run_script(tmp_path, text, env={'PBS_JOBID': '61.srv'})
    assert (result.returncode, result.stdout) == (0, '61.srv.run\n')
    running = scheduler.parse_markers('61.srv run\n', ['61.srv'])['61.srv']
    assert running.state is JobState.RUNNING and running.source == 'start marker'
