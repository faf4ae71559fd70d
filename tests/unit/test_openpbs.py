"""PBS Pro against output recorded from a real OpenPBS 23.06 server.

The files live in ``<project root>/../shared/fixtures/openpbs/`` (its README
says which job produced each one). Every file is used here: the ``qstat -f``
records (text and JSON) are parsed into the state, exit code and reason a user
sees; the table forms, ``tracejob`` logs, timings and output listings check
those results against what the server itself said; the queue and node records
give placement's and the exporter's figures.
"""

import json
import os
import re
import stat
import subprocess
import sys

import pytest

from croupier_plugin.core.cluster import Cluster
from croupier_plugin.core.engine import Engine, JobFailed, JobPolicy, PlannedJob
from croupier_plugin.core.errors import SchedulerError
from croupier_plugin.core.monitor import Monitor
from croupier_plugin.core.model import JobSpec, JobState
from croupier_plugin.core.placement import Candidate, choose
from croupier_plugin.core.schedulers.pbs import (
    FILES_MARK,
    FORM_MARK,
    QSTAT_RC_MARK,
    PbsScheduler,
    parse_qstat_full,
    parse_qstat_json,
)
from croupier_plugin.core.transport.local import LocalTransport

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OPENPBS = os.path.join(os.path.dirname(ROOT), 'shared', 'fixtures', 'openpbs')


def recorded(name: str) -> str:
    """A recorded file as it is."""
    with open(os.path.join(OPENPBS, name)) as fh:
        return fh.read()


def output(name: str) -> str:
    """A recorded command's output: the file without its ``$ command`` line."""
    return '\n'.join(line for line in recorded(name).splitlines()
                     if not line.startswith('$ ')) + '\n'


def command_outputs(name: str) -> dict:
    """{command line: its output} of a file that records several commands."""
    out, current = {}, None
    for line in recorded(name).splitlines():
        if line.startswith('$ '):
            current = line[2:].strip()
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return {k: '\n'.join(v) + '\n' for k, v in out.items()}


def as_json(text: str) -> str:
    """qstat -F json output as status_command prints it (after its form mark)."""
    return f'{FORM_MARK}json\n{text}'


def status_of(text: str, job_id: str, scheduler=None):
    return (scheduler or PbsScheduler()).parse_status_output(text, [job_id])[job_id]


# -- every finished job, in both forms ------------------------------------------

S = JobState
# job prefix, id, state, exit code, signal, words the reason must hold
FINISHED = [
    ('ok', '0.pbshost', S.COMPLETED, 0, None, ['and finished']),
    ('fail', '1.pbshost', S.FAILED, 3, None, ['and failed']),
    ('arr', '2[].pbshost', S.COMPLETED, 0, None, ['Job Array Began', 'and finished']),
    ('del', '3.pbshost', S.CANCELLED, 271, 15,
     ['deleted while it ran (signal 15)', 'terminated by pbstest@pbshost']),
    ('depA', '5.pbshost', S.COMPLETED, 0, None, ['and finished']),
    ('depB', '6.pbshost', S.COMPLETED, 0, None, ['and finished']),
    ('depC', '7.pbshost', S.FAILED, 3, None, ['and failed']),
    ('depD', '8.pbshost', S.SKIPPED, None, None,
     ['deleted by the server without running', 'afterok:7.pbshost']),
    ('sysheld', '14.pbshost', S.FAILED, -21, None,
     ['JOB_EXEC_FAIL_SECURITY', 'job held due to possible security breach of job tmpdir, '
                                'failed to start and terminated']),
]


@pytest.mark.parametrize('prefix, job_id, state, exit_code, signal, words', FINISHED,
                         ids=[f[0] for f in FINISHED])
def test_finished_job_in_text_and_json(prefix, job_id, state, exit_code, signal, words):
    text = status_of(output(f'{prefix}_qstat_x_f.txt'), job_id)
    from_json = status_of(as_json(output(f'{prefix}_qstat_x_f_json.txt')), job_id)
    assert (text.state, text.exit_code, text.signal) == (state, exit_code, signal)
    for word in words:
        assert word in text.reason
    assert text.raw_state == 'F'
    # both forms say the same to the user
    assert from_json == text


def test_json_attributes_are_named_as_in_the_text_form():
    for prefix, job_id, *_ in FINISHED:
        text = dict(parse_qstat_full(output(f'{prefix}_qstat_x_f.txt')))[job_id]
        from_json = dict(parse_qstat_json(output(f'{prefix}_qstat_x_f_json.txt')))[job_id]
        for name in ('job_state', 'exit_status', 'hold_types', 'comment', 'depend', 'qtime',
                     'stime', 'resources_used.walltime', 'resource_list.walltime'):
            assert from_json.get(name) == text.get(name), (prefix, name)


# -- running jobs and arrays ------------------------------------------------------

def test_running_job_in_text_and_json():
    text = status_of(output('ok_qstat_f_running.txt'), '0.pbshost')
    from_json = status_of(as_json(output('ok_qstat_f_json_running.txt')), '0.pbshost')
    assert (text.state, text.raw_state, text.exit_code) == (S.RUNNING, 'R', None)
    assert text.reason.startswith('Job run at Mon Nov 30 at 10:06')
    assert from_json == text


def test_running_array_is_running():
    status = status_of(output('arr_qstat_f_running.txt'), '2[].pbshost')
    assert (status.state, status.raw_state) == (S.RUNNING, 'B')
    assert 'Job Array Began' in status.reason


def test_finished_array_with_its_subjobs_from_json():
    outputs = command_outputs('arr_qstat_x_t.txt')
    json_text = outputs['qstat -x -t -f -F json 2[].pbshost']
    statuses = PbsScheduler().parse_status_output(
        as_json(json_text), ['2[].pbshost', '2[1].pbshost'])
    array = statuses['2[].pbshost']
    assert (array.state, array.exit_code) == (S.COMPLETED, 0)
    assert array.reason.startswith('array: 4/4 elements completed')
    assert (statuses['2[1].pbshost'].state, statuses['2[1].pbshost'].exit_code) == \
        (S.COMPLETED, 0)
    # the table beside it shows the same subjobs, all F
    table = outputs['qstat -x -t 2[].pbshost']
    assert table_states(table) == {'2[].pbshost': 'F', '2[0].pbshost': 'F',
                                   '2[1].pbshost': 'F', '2[2].pbshost': 'F',
                                   '2[3].pbshost': 'F'}


def test_one_failed_subjob_fails_the_array():
    data = json.loads(command_outputs('arr_qstat_x_t.txt')['qstat -x -t -f -F json 2[].pbshost'])
    data['Jobs']['2[2].pbshost']['Exit_status'] = 3
    data['Jobs']['2[].pbshost']['Exit_status'] = 1     # an array's: some subjob failed
    status = status_of(as_json(json.dumps(data)), '2[].pbshost')
    assert (status.state, status.exit_code) == (S.FAILED, 3)
    assert status.reason.startswith('array: 3/4 elements completed')


# -- the table forms agree with what the parser reads ------------------------------

def table_states(text: str) -> dict:
    """{job id: state letter} of qstat's tables (default, -a, -w): the state
    is the column before the last one in each of them."""
    states = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 6 and re.match(r'^[0-9]+(\[[0-9]*\])?\.', fields[0]):
            assert re.match(r'^[A-Z]$', fields[-2]), line
            states[fields[0]] = fields[-2]
    return states


@pytest.mark.parametrize('prefix, job_id', [(f[0], f[1]) for f in FINISHED if f[0] != 'sysheld'])
def test_table_of_each_job_shows_the_state_the_parser_reads(prefix, job_id):
    tables = command_outputs(f'{prefix}_qstat_x.txt')
    assert table_states(tables[f'qstat -x {job_id}']) == {job_id: 'F'}
    assert status_of(output(f'{prefix}_qstat_x_f.txt'), job_id).raw_state == 'F'


@pytest.mark.parametrize('prefix, job_id', [('arr', '2[].pbshost'), ('del', '3.pbshost')])
def test_qstat_without_x_exits_35_for_a_finished_job(prefix, job_id):
    text = recorded(f'{prefix}_qstat_x.txt')
    message = f'qstat: {job_id} Job has finished, use -x or -H to obtain historical job ' \
              f'information\nrc=35'
    assert message in text
    # as the status command hands it over: an answer about that id, not a failed poll
    out = f'{QSTAT_RC_MARK}35\nqstat: {job_id} Job has finished, use -x or -H\n{FILES_MARK}\n'
    status = status_of(out, job_id)
    assert (status.state, status.reason) == (S.UNKNOWN, 'qstat: Unknown Job Id')


def test_all_jobs_table_matches_every_record():
    tables = command_outputs('all_qstat_x.txt')
    listed = table_states(tables['qstat -x'])
    assert listed == {f'{n}.pbshost' if n != 2 else '2[].pbshost': 'F' for n in range(9)}
    with_subjobs = table_states(tables['qstat -x -t'])
    assert set(with_subjobs) == set(listed) | {f'2[{i}].pbshost' for i in range(4)}
    # qstat -t without -x: nothing is live any more
    assert tables['qstat -t'].strip() == ''
    wide = table_states(tables['qstat -xu pbstest -w'])
    assert set(wide) == set(listed) and set(wide.values()) == {'F'}


def test_running_tables_agree_with_the_full_records():
    ok = command_outputs('ok_qstat_running.txt')
    assert table_states(ok['qstat 0.pbshost']) == {'0.pbshost': 'R'}
    assert table_states(ok['qstat -a 0.pbshost']) == {'0.pbshost': 'R'}
    arr = command_outputs('arr_qstat_t_running.txt')
    running = table_states(arr['qstat -t (array running)'])
    assert running == {'2[].pbshost': 'B', **{f'2[{i}].pbshost': 'R' for i in range(4)}}
    assert status_of(output('arr_qstat_f_running.txt'), '2[].pbshost').raw_state == 'B'


# -- holds --------------------------------------------------------------------------

def test_job_held_on_its_dependency_is_pending_not_a_system_hold():
    recorded_outputs = command_outputs('dep_qstat_after_submit.txt')
    assert table_states(recorded_outputs['qstat 5.pbshost 6.pbshost (right after submit)']) \
        == {'5.pbshost': 'R', '6.pbshost': 'H'}
    status = status_of(recorded_outputs['qstat -f 6.pbshost'], '6.pbshost')
    # Hold_Types s, but with depend set: it starts when 5 ends
    assert (status.state, status.raw_state) == (S.PENDING, 'H')
    assert status.reason == 'held (s)'
    assert not PbsScheduler().still_queued(status)


def live_system_hold() -> str:
    """The system-held job as qstat showed it while it was held (state H, no
    Exit_status yet), from its recorded JSON and the comment the server gave
    then: what the recorded F record says, before ``and terminated``."""
    data = json.loads(output('sysheld_qstat_x_f_json.txt'))
    job = data['Jobs']['14.pbshost']
    job['job_state'] = 'H'
    del job['Exit_status']
    job['comment'] = job['comment'].replace(' and terminated', '')
    return as_json(json.dumps(data))


def test_system_held_job_fails_with_the_servers_comment():
    status = status_of(live_system_hold(), '14.pbshost')
    assert (status.state, status.raw_state) == (S.FAILED, 'H')
    assert 'held by the system (Hold_Types s)' in status.reason
    assert 'job held due to possible security breach of job tmpdir, failed to start' \
        in status.reason
    # the cluster must delete it: the server keeps it otherwise
    assert PbsScheduler().still_queued(status)


@pytest.mark.parametrize('holds', ['u', 'o', 'uo'])
def test_user_and_operator_holds_stay_pending(holds):
    data = json.loads(output('sysheld_qstat_x_f_json.txt'))
    job = data['Jobs']['14.pbshost']
    job.update(job_state='H', Hold_Types=holds)
    del job['Exit_status'], job['comment']
    status = status_of(as_json(json.dumps(data)), '14.pbshost')
    assert (status.state, status.reason) == (S.PENDING, f'held ({holds})')
    assert not PbsScheduler().still_queued(status)


def test_held_then_deleted_job_is_cancelled():
    steps = command_outputs('held_qdel.txt')
    assert table_states(steps['qstat 4.pbshost']) == {'4.pbshost': 'H'}
    assert steps['qdel 4.pbshost'].strip() == 'rc=0'
    assert table_states(steps['qstat -x 4.pbshost']) == {'4.pbshost': 'F'}
    # its record then: F, the user hold it was submitted with (qsub -h), no
    # Exit_status (the README: "a job submitted held then deleted: no Exit_status")
    record = 'Job Id: 4.pbshost\n    Job_Name = heldjob\n    job_state = F\n' \
             '    Hold_Types = u\n\n'
    status = status_of(record, '4.pbshost')
    assert (status.state, status.exit_code) == (S.CANCELLED, None)
    assert status.reason == 'deleted before it ran'


# -- the server's own logs and notes agree --------------------------------------------

@pytest.mark.parametrize('prefix, job_id, state, exit_code, signal, words', FINISHED,
                         ids=[f[0] for f in FINISHED])
def test_tracejob_tells_the_same_end(prefix, job_id, state, exit_code, signal, words):
    log = recorded(f'{prefix}_tracejob.txt')
    status = status_of(output(f'{prefix}_qstat_x_f.txt'), job_id)
    codes = set(re.findall(r'Exit_status=(-?[0-9]+)', log))
    if prefix == 'depD':
        assert not codes
        parent = re.search(r'Job deleted as result of dependency on job (\S+)', log)[1]
        assert parent in status.reason
    elif prefix == 'sysheld':
        assert re.search(r'job not started, Failure (-[0-9]+)', log)[1] == str(exit_code)
        assert 'possible attempted security breach' in log
    else:
        assert codes == {str(status.exit_code)}
    if prefix == 'del':
        assert 'Job to be deleted at request of pbstest@pbshost' in log


def test_timings_record_the_exit_status_the_parser_reads():
    lines = re.findall(r'^(?:(\S+) )?(\S+) Exit_status=(\S+)$', recorded('timings.txt'),
                       re.M)
    assert len(lines) == 12
    prefixes = {f[1]: f[0] for f in FINISHED}
    subjobs = json.loads(
        command_outputs('arr_qstat_x_t.txt')['qstat -x -t -f -F json 2[].pbshost'])
    for _name, job_id, code in lines:
        if job_id in prefixes:
            text = as_json(output(f'{prefixes[job_id]}_qstat_x_f_json.txt'))
        else:
            text = as_json(json.dumps(subjobs))
        status = status_of(text, job_id)
        assert status.exit_code == (None if code == '<none>' else int(code)), job_id
    submit_to_end = dict(re.findall(r'^(\S+?): submit->F ([0-9.]+)s$', recorded('timings.txt'),
                                    re.M))
    # a failing job ends in about the time of a poll or two
    assert float(submit_to_end['fail']) < 5


def test_output_files_are_named_as_croupier_expects():
    listing = recorded('job_output_files.txt')
    names = set(re.findall(r' (\S+\.[oe][0-9.]+)$', listing, re.M))
    scheduler = PbsScheduler()
    for name, job_id in (('okjob', '0.pbshost'), ('failjob', '1.pbshost'),
                         ('deljob', '3.pbshost'), ('depA', '5.pbshost')):
        spec = JobSpec.from_options(name, {'commands': ['true']})
        stdout, stderr = scheduler.output_paths(spec, job_id, '/home/pbstest/jobs')
        assert {os.path.basename(stdout), os.path.basename(stderr)} <= names
    # what a failed job's stderr tail shows
    assert re.search(r'== /home/pbstest/jobs/failjob.e1\nabout to fail', listing)


def test_qdel_of_a_running_job_then_reads_as_cancelled():
    assert command_outputs('del_qdel.txt') == {'qdel 3.pbshost': 'rc=0\n'}
    assert PbsScheduler().cancel_command(['3.pbshost']).endswith('qdel -- "$@"')
    status = status_of(output('del_qstat_x_f.txt'), '3.pbshost')
    assert status.state is S.CANCELLED


def test_jobs_scripts_are_those_the_readme_names():
    assert sorted(os.listdir(os.path.join(OPENPBS, 'jobs'))) == \
        ['arr.sh', 'fail.sh', 'long.sh', 'ok.sh']
    assert 'exit 3' in recorded('jobs/fail.sh')


# -- qstat's exit codes 35 and 153 ---------------------------------------------------

def test_unknown_id_exits_153_and_reads_as_unknown():
    steps = command_outputs('unknown_job.txt')
    assert steps['qstat 99999.pbshost'] == 'qstat: Unknown Job Id 99999.pbshost\nrc=153\n'
    assert steps['qdel 99999.pbshost'].endswith('rc=153\n')
    out = f'{QSTAT_RC_MARK}153\nqstat: Unknown Job Id 99999.pbshost\n{FILES_MARK}\n'
    status = status_of(out, '99999.pbshost')
    assert (status.state, status.reason) == (S.UNKNOWN, 'qstat: Unknown Job Id')


FAKE_QSTAT = r'''
"""Replays recorded OpenPBS output for the ids it is given; logs each call.
With -F json it prints ONE JSON object holding every known job, as qstat does."""
import json, os, sys
fake = os.environ['FAKE_DIR']
with open(os.path.join(fake, 'calls'), 'a') as log:
    log.write(' '.join(['qstat'] + sys.argv[1:]) + '\n')
args = sys.argv[1:]
as_json = '-F' in args
if as_json and os.path.exists(os.path.join(fake, 'no-json')):
    sys.stderr.write("qstat: invalid option -- 'F'\nusage: qstat [-f] ...\n")
    sys.exit(2)
ids = [a for a in args if not a.startswith('-') and a != 'json']
rc, jobs, text = 0, {}, []
for job_id in ids:
    path = os.path.join(fake, 'yes' if as_json else 'no', job_id)
    if os.path.exists(path):
        data = open(path).read()
        if as_json:
            jobs.update(json.loads(data)['Jobs'])
        else:
            text.append(data)
    else:
        sys.stderr.write(open(os.path.join(fake, 'err', job_id)).read())
        rc = int(open(os.path.join(fake, 'rc', job_id)).read())
if as_json and jobs:
    print(json.dumps({'timestamp': 1796033240, 'pbs_version': '23.06.06',
                      'pbs_server': 'pbshost', 'Jobs': jobs}, indent='\t'))
sys.stdout.write(''.join(text))
sys.exit(rc)
'''


@pytest.fixture
def fake_server(tmp_path):
    """A qstat and a qdel that replay the recorded outputs of 0.pbshost (JSON
    and text), 99999.pbshost (unknown, exit 153) and 3.pbshost without -x
    (exit 35), so that status_command's shell runs as on the server."""
    bindir = tmp_path / 'bin'
    for sub in ('bin', 'yes', 'no', 'err', 'rc', 'home/.croupier/pbs'):
        (tmp_path / sub).mkdir(parents=True)
    (tmp_path / 'yes' / '0.pbshost').write_text(output('ok_qstat_x_f_json.txt'))
    (tmp_path / 'no' / '0.pbshost').write_text(output('ok_qstat_x_f.txt'))
    (tmp_path / 'err' / '99999.pbshost').write_text('qstat: Unknown Job Id 99999.pbshost\n')
    (tmp_path / 'rc' / '99999.pbshost').write_text('153\n')
    finished = command_outputs('del_qstat_x.txt')['qstat 3.pbshost'].split('\nrc=')[0]
    (tmp_path / 'err' / '3.pbshost').write_text(finished + '\n')
    (tmp_path / 'rc' / '3.pbshost').write_text('35\n')
    for name, text in (('qstat', f'#!{sys.executable}\n{FAKE_QSTAT}'),
                       ('qdel', '#!/bin/sh\necho "qdel $*" >> "$FAKE_DIR/calls"\n'),
                       ('qsub', '#!/bin/sh\necho "qsub $*" >> "$FAKE_DIR/calls"\n'
                                'cat "$FAKE_DIR/next-id"\n')):
        path = bindir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, PATH=f'{bindir}:{os.environ["PATH"]}', FAKE_DIR=str(tmp_path),
               HOME=str(tmp_path / 'home'))
    return tmp_path, env


def calls(tmp_path) -> list:
    path = tmp_path / 'calls'
    return path.read_text().splitlines() if path.exists() else []


def run_status(scheduler, ids, env):
    result = subprocess.run(['sh', '-c', scheduler.status_command(ids)], env=env,
                            capture_output=True, text=True)
    return result, scheduler.parse_status_output(result.stdout, ids)


def test_json_status_is_one_qstat_for_all_ids_and_35_153_do_not_fail_it(fake_server):
    tmp_path, env = fake_server
    ids = ['0.pbshost', '99999.pbshost', '3.pbshost']
    scheduler = PbsScheduler()
    result, statuses = run_status(scheduler, ids, env)
    assert result.returncode == 0, result.stderr
    assert calls(tmp_path) == ['qstat -x -f -F json -- 0.pbshost 99999.pbshost 3.pbshost']
    assert (statuses['0.pbshost'].state, statuses['0.pbshost'].exit_code) == (S.COMPLETED, 0)
    assert statuses['99999.pbshost'].state is S.UNKNOWN
    assert statuses['3.pbshost'].state is S.UNKNOWN
    assert not scheduler.json_refused


def test_a_qstat_without_json_falls_back_to_text_in_the_same_command(fake_server):
    tmp_path, env = fake_server
    (tmp_path / 'no-json').write_text('')
    scheduler = PbsScheduler()
    result, statuses = run_status(scheduler, ['0.pbshost', '99999.pbshost'], env)
    assert result.returncode == 0, result.stderr
    assert calls(tmp_path) == ['qstat -x -f -F json -- 0.pbshost 99999.pbshost',
                               'qstat -x -f -- 0.pbshost 99999.pbshost']
    assert (statuses['0.pbshost'].state, statuses['0.pbshost'].exit_code) == (S.COMPLETED, 0)
    assert statuses['99999.pbshost'].state is S.UNKNOWN
    # remembered: the next poll asks in text at once
    assert scheduler.json_refused
    result, statuses = run_status(scheduler, ['0.pbshost'], env)
    assert calls(tmp_path)[2:] == ['qstat -x -f -- 0.pbshost']
    assert statuses['0.pbshost'].exit_code == 0
    assert '-F json' not in scheduler.queue_command()
    assert '{ qstat -Q -f || :; }' in scheduler.queue_command()


def test_json_that_does_not_parse_fails_the_poll_once_then_text():
    scheduler = PbsScheduler()
    broken = as_json(output('ok_qstat_x_f_json.txt').replace('"okjob"', '"ok\tjob\x01'))
    with pytest.raises(SchedulerError, match='no valid JSON'):
        scheduler.parse_status_output(broken + f'{QSTAT_RC_MARK}0\n\n{FILES_MARK}\n',
                                      ['0.pbshost'])
    assert scheduler.json_refused
    assert '-F json' not in scheduler.status_command(['0.pbshost'])


def test_system_held_job_is_deleted_by_the_cluster(fake_server):
    tmp_path, env = fake_server
    (tmp_path / 'yes' / '14.pbshost').write_text(live_system_hold().split('\n', 1)[1])
    cluster = Cluster('openpbs', LocalTransport(env=env), PbsScheduler())
    status = cluster.statuses(['14.pbshost', '0.pbshost'])
    held = status['14.pbshost']
    assert held.state is S.FAILED and held.reason.endswith('; deleted')
    assert 'failed to start' in held.reason
    # one qdel, for the held job only, after a cancel file that marks it
    assert calls(tmp_path)[-1] == 'qdel -- 14.pbshost'
    assert (tmp_path / 'home/.croupier/pbs/14.pbshost.cancelled').exists()
    assert status['0.pbshost'].state is S.COMPLETED


def test_job_the_server_skipped_fails_the_run_as_skipped(fake_server):
    tmp_path, env = fake_server
    (tmp_path / 'yes' / '8.pbshost').write_text(output('depD_qstat_x_f_json.txt'))
    (tmp_path / 'next-id').write_text('8.pbshost\n')
    (tmp_path / 'work').mkdir()
    cluster = Cluster('openpbs', LocalTransport(env=env), PbsScheduler(), monitor_period=0.2)
    spec = JobSpec.from_options('depD', {'commands': ['true'],
                                         'extra_directives': ['-W depend=afterok:7.pbshost']})
    records = {}
    engine = Engine([PlannedJob('depD', spec, cluster, str(tmp_path / 'work'))],
                    lambda name, record: records.__setitem__(name, record),
                    monitor=Monitor(unknown_grace=5))
    with pytest.raises(JobFailed) as failed:
        engine.run()
    assert "job 'depD' (openpbs job 8.pbshost) ended SKIPPED (F)" in str(failed.value)
    assert 'a job it depends on did not end as required (afterok:7.pbshost' in str(failed.value)
    assert (records['depD']['state'], records['depD']['job_id']) == ('SKIPPED', '8.pbshost')


def test_user_held_job_waits_until_max_time_in_queue(fake_server):
    tmp_path, env = fake_server
    data = json.loads(output('sysheld_qstat_x_f_json.txt'))
    job = data['Jobs']['14.pbshost']
    job.update(job_state='H', Hold_Types='u')
    del job['Exit_status'], job['comment']
    (tmp_path / 'yes' / '14.pbshost').write_text(json.dumps(data))
    (tmp_path / 'next-id').write_text('14.pbshost\n')
    (tmp_path / 'work').mkdir()
    cluster = Cluster('openpbs', LocalTransport(env=env), PbsScheduler(), monitor_period=0.2)
    spec = JobSpec.from_options('held', {'commands': ['true']})
    records = {}
    engine = Engine([PlannedJob('held', spec, cluster, str(tmp_path / 'work'),
                                policy=JobPolicy(max_time_in_queue=1.5))],
                    lambda name, record: records.__setitem__(name, record),
                    monitor=Monitor(unknown_grace=5))
    with pytest.raises(JobFailed, match='max_time_in_queue'):
        engine.run()
    assert (records['held']['state'], records['held']['raw_state']) == ('FAILED',
                                                                        'QUEUE_TIMEOUT')
    # pending (held by its user) until then, and deleted at the limit
    polls = [c for c in calls(tmp_path) if c.startswith('qstat')]
    assert len(polls) >= 3
    assert calls(tmp_path)[-1] == 'qdel -- 14.pbshost'


# -- queue figures ------------------------------------------------------------------

def queue_output(queues: str, nodes: str, server: str) -> str:
    """queue_command's output around the three commands' outputs."""
    return (f'@@croupier-queues@@\n{queues}\n@@croupier-nodes@@\n{nodes}\n'
            f'@@croupier-server@@\n{server}\n')


def test_queue_figures_from_json():
    figures = PbsScheduler().parse_queue_output(queue_output(
        output('queue_qstat_Q_f_F_json.txt'), output('queue_pbsnodes_a_F_json.txt'),
        output('queue_qstat_B_f_F_json.txt')))
    workq = figures['workq']
    # three jobs of 3 cpus on the 8-cpu node: two running, one queued
    assert (workq.available, workq.default) == (True, True)
    assert (workq.nodes_total, workq.nodes_allocated, workq.nodes_idle) == (1, 1, 0)
    assert (workq.cores_total, workq.cores_allocated, workq.cores_idle) == (8, 6, 2)
    assert (workq.jobs_pending, workq.jobs_running) == (1, 2)
    # the tables recorded at the same time say the same
    row = output('queue_qstat_Q.txt').splitlines()[-1].split()
    assert (row[0], int(row[5]), int(row[6])) == ('workq', workq.jobs_pending,
                                                  workq.jobs_running)
    states = table_states(output('queue_qstat_a.txt'))
    assert sorted(states.values()) == ['Q', 'R', 'R']


def test_node_figures_from_the_text_form_match_json():
    nodes_text = output('queue_pbsnodes_a.txt')
    queues = '{"Queue": {"workq": {"state_count": "Queued:1 Running:2", ' \
             '"enabled": "True", "started": "True"}}}\n'
    from_text = PbsScheduler().parse_queue_output(queue_output(queues, nodes_text, ''))
    from_json = PbsScheduler().parse_queue_output(
        queue_output(queues, output('queue_pbsnodes_a_F_json.txt'), ''))
    assert from_text == from_json
    assert from_text['workq'].cores_idle == 2


def test_queue_figures_of_the_bed_wrappers_text_forms():
    with open(os.path.join(ROOT, 'tests', 'fixtures', 'pbs', 'wrapper_queue_figures.txt')) as fh:
        figures = PbsScheduler().parse_queue_output(fh.read())
    assert sorted(figures) == ['debug', 'second']
    for queue in figures.values():
        # no queue tied to a node: each queue sees the one node; no state counts
        assert (queue.available, queue.default) == (True, False)
        assert (queue.nodes_total, queue.nodes_idle, queue.cores_total, queue.cores_idle) == \
            (1, 1, 16, 16)
        assert (queue.jobs_pending, queue.jobs_running) == (0, 0)


def test_queue_command_is_one_command_with_json_forms():
    command = PbsScheduler().queue_command()
    assert command.count('qstat -Q -f -F json') == 1 and 'pbsnodes -a -F json' in command
    assert 'qstat -B -f -F json' in command


def test_placement_prefers_the_queue_with_idle_cores():
    busy = PbsScheduler().parse_queue_output(queue_output(
        output('queue_qstat_Q_f_F_json.txt'), output('queue_pbsnodes_a_F_json.txt'),
        output('queue_qstat_B_f_F_json.txt')))
    idle_data = json.loads(output('queue_pbsnodes_a_F_json.txt'))
    idle_data['nodes']['pbshost']['resources_assigned']['ncpus'] = 0
    queues = json.loads(output('queue_qstat_Q_f_F_json.txt'))
    queues['Queue']['workq']['state_count'] = 'Queued:0 Running:0'
    idle = PbsScheduler().parse_queue_output(queue_output(
        json.dumps(queues), json.dumps(idle_data), output('queue_qstat_B_f_F_json.txt')))

    class Infra:
        def __init__(self, key, figures):
            self.name, self.figures = key, figures

    spec = JobSpec.from_options('j', {'commands': ['true'], 'tasks': 3})
    candidates = [Candidate(Infra('busy', busy), '/w', spec),
                  Candidate(Infra('idle', idle), '/w', spec)]
    chosen, reason, table = choose(candidates, lambda infra: infra.figures)
    assert chosen.name == 'idle'
    assert table['busy'] == 'partition workq: 2 of 8 cores idle, 1 jobs pending, 2 running'


def test_exporter_scrape_has_queue_figures_and_job_states():
    scheduler = PbsScheduler()
    command = scheduler.exporter_command(['0.pbshost'])
    assert command.index('qstat -Q -f -F json') < command.index('@@croupier-jobs@@') < \
        command.index('qstat -x -f -F json')
    scrape = ('@@croupier-now=Mon Nov 30 10:07:30 2026\n' + queue_output(
        output('queue_qstat_Q_f_F_json.txt'), output('queue_pbsnodes_a_F_json.txt'),
        output('queue_qstat_B_f_F_json.txt')) + '@@croupier-jobs@@\n'
        + as_json(output('ok_qstat_x_f_json.txt')) + f'{QSTAT_RC_MARK}0\n\n{FILES_MARK}\n')
    partitions, statuses, times = scheduler.parse_exporter_output(scrape, ['0.pbshost'])
    assert [(p.name, p.cores_idle, p.jobs_pending) for p in partitions] == [('workq', 2, 1)]
    assert statuses['0.pbshost'].state is S.COMPLETED
    assert (times['0.pbshost'].queued, times['0.pbshost'].walltime) == (0, 3)
    # no job yet: the figures alone, and no qstat of ids (it would list every job)
    assert 'qstat -x -f' not in scheduler.exporter_command([])


# -- every recorded file is used above ------------------------------------------------

def test_every_recorded_file_is_tested():
    source = open(__file__).read()
    prefixes = {f[0] for f in FINISHED}
    for name in sorted(os.listdir(OPENPBS)):
        if name in ('README.md', 'jobs'):
            continue
        by_prefix = re.match(r'^([A-Za-z]+)_(qstat_x_f(_json)?|qstat_x|tracejob)\.txt$', name)
        assert (by_prefix and by_prefix[1] in prefixes) or f"'{name}'" in source, name


def test_json_objects_one_after_the_other_are_all_read():
    text = output('ok_qstat_x_f_json.txt') + output('fail_qstat_x_f_json.txt')
    assert [job_id for job_id, _ in parse_qstat_json(text)] == ['0.pbshost', '1.pbshost']
    with pytest.raises(ValueError):
        parse_qstat_json(text + '{"Jobs": ')


def test_torque_text_figures_count_busy_cpus_and_skip_down_nodes():
    # the layout of Torque's qstat -Q -f / pbsnodes -a / qstat -B -f (Torque 6
    # writes a node's jobs as CPU ranges: 0-2/20.srv)
    text = queue_output(
        'Queue: batch\n    queue_type = Execution\n    total_jobs = 5\n'
        '    state_count = Transit:0 Queued:2 Held:1 Waiting:0 Running:2 Exiting:0 '
        'Complete:0\n    enabled = True\n    started = True\n\n'
        'Queue: closed\n    queue_type = Execution\n    enabled = False\n    started = True\n',
        'n1\n     state = job-exclusive\n     np = 4\n     jobs = 0-2/20.srv,3/21.srv\n\n'
        'n2\n     state = free\n     np = 4\n     jobs = 0/22.srv\n\n'
        'n3\n     state = down,offline\n     np = 4\n',
        'Server: srv\n    default_queue = batch\n')
    from croupier_plugin.core.schedulers.pbs import TorqueScheduler
    figures = TorqueScheduler().parse_queue_output(text)
    batch = figures['batch']
    assert (batch.available, batch.default, batch.jobs_pending, batch.jobs_running) == \
        (True, True, 3, 2)
    assert (batch.nodes_total, batch.nodes_allocated, batch.nodes_idle) == (3, 2, 0)
    assert (batch.cores_total, batch.cores_allocated, batch.cores_idle) == (12, 5, 3)
    assert (figures['closed'].available, figures['closed'].default) == (False, False)


def test_status_of_many_jobs_costs_in_proportion_to_their_number(monkeypatch):
    """Finding each job's record goes through an index, not a scan of every
    record (1,000 jobs: 2,000,000 id comparisons before, a few thousand now)."""
    from croupier_plugin.core.schedulers import pbs
    job = json.loads(output('ok_qstat_x_f_json.txt'))['Jobs']['0.pbshost']
    ids = [f'{i}.pbshost' for i in range(1000)]
    text = as_json(json.dumps({'Jobs': {i: job for i in ids}}, indent='\t'))
    calls = []
    real = pbs._sequence
    monkeypatch.setattr(pbs, '_sequence', lambda job_id: calls.append(job_id) or real(job_id))
    statuses = PbsScheduler().parse_status_output(
        text + f'\n{QSTAT_RC_MARK}0\n\n{FILES_MARK}\n', ids)
    assert all(s.state is S.COMPLETED for s in statuses.values())
    assert len(calls) <= 3 * len(ids)
