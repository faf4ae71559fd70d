"""SLURM output parsing, on outputs recorded from the bed (tests/fixtures/slurm)."""

import json
import os

import pytest

from croupier_plugin.core.model import JobState
from croupier_plugin.core.schedulers import SlurmScheduler

FIX = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'fixtures', 'slurm')
IDS = json.load(open(os.path.join(FIX, 'status_jobs.json')))['ids']


def fixture(name):
    with open(os.path.join(FIX, name)) as fh:
        return fh.read()


def parse(name, ids=None):
    ids = ids or list(IDS.values())
    return SlurmScheduler().parse_status_output(fixture(name), ids)


def summary(statuses):
    return {role: (statuses[IDS[role]].state, statuses[IDS[role]].exit_code) for role in IDS}


def test_jobs_while_running():
    assert summary(parse('status_mixed.txt')) == {
        'timeout': (JobState.RUNNING, None),
        'running': (JobState.RUNNING, None),
        'pending_begin': (JobState.PENDING, None),
        'completed': (JobState.COMPLETED, 0),
        'failed': (JobState.FAILED, 3),
        'cancelled': (JobState.CANCELLED, 0),
        'array': (JobState.RUNNING, None),
        'array_ok': (JobState.COMPLETED, 0),
    }


def test_jobs_after_they_ended():
    statuses = parse('status_ended.txt')
    assert summary(statuses) == {
        'timeout': (JobState.TIMEOUT, 0),
        'running': (JobState.COMPLETED, 0),
        'pending_begin': (JobState.PENDING, None),
        'completed': (JobState.COMPLETED, 0),
        'failed': (JobState.FAILED, 3),
        'cancelled': (JobState.CANCELLED, 0),
        'array': (JobState.FAILED, 1),
        'array_ok': (JobState.COMPLETED, 0),
    }
    assert statuses[IDS['timeout']].signal == 15      # squeue's raw wait status 15
    assert statuses[IDS['pending_begin']].reason == 'BeginTime'
    assert statuses[IDS['array']].reason.startswith('array: 1/3 elements completed')


def test_jobs_after_squeue_forgot_them_come_from_sacct():
    statuses = parse('status_purged.txt')
    assert summary(statuses)['pending_begin'] == (JobState.CANCELLED, 0)
    assert statuses[IDS['cancelled']].raw_state == 'CANCELLED by 1001'
    assert all(s.source == 'sacct' for s in statuses.values())
    assert summary(statuses)['array'] == (JobState.FAILED, 1)


def test_lagging_accounting_does_not_hide_a_failed_array_element():
    status = parse('status_array_sacct_lag.txt', ['155'])['155']
    assert (status.state, status.exit_code) == (JobState.FAILED, 4)
    assert status.reason.startswith('array: 2/3 elements completed')


def test_an_answer_parsed_again_gives_the_same_statuses_and_changed_rows_new_ones():
    """One scheduler parses every poll's answer: a job's row seen again gives
    the status it gave (the very object: the monitor skips it), whatever the
    order; a changed row, a job asked about under another id's row, or rows of
    both squeue and sacct are parsed afresh, the same as by a new scheduler."""
    from croupier_plugin.core.schedulers.slurm import SACCT_MARK, SQUEUE_RC_MARK

    def answer(squeue, sacct=()):
        return '\n'.join([*squeue, f'{SQUEUE_RC_MARK}0', SACCT_MARK, *sacct]) + '\n'
    scheduler = SlurmScheduler()
    ids = ['11', '12', '13', '14']
    first = scheduler.parse_status_output(
        answer(['11|RUNNING|None|0', '12|PENDING|Priority|0', '13|PENDING|JobHeldAdmin|0',
                '14_1|RUNNING|None|0']), ids)
    again = scheduler.parse_status_output(
        answer(['14_1|RUNNING|None|0', '13|PENDING|JobHeldAdmin|0', '12|PENDING|Priority|0',
                '11|RUNNING|None|0']), ids)
    assert all(again[j] is first[j] for j in ('11', '12', '13'))
    assert first['13'].state is JobState.FAILED        # held by the system, as before
    assert again['14'] == first['14'] and again['14'].state is JobState.RUNNING
    changed = answer(['11|COMPLETED|None|0', '12|PENDING|Priority|0'],
                     ['12|PENDING|0:0|None', '13|FAILED|2:0|NonZeroExitCode'])
    later = scheduler.parse_status_output(changed, ids)
    assert (later['11'].state, later['11'].exit_code) == (JobState.COMPLETED, 0)
    assert (later['13'].state, later['13'].exit_code) == (JobState.FAILED, 2)
    assert later['12'] is not first['12'] and later['12'].state is JobState.PENDING
    assert later['14'].state is JobState.UNKNOWN
    assert later == SlurmScheduler().parse_status_output(changed, ids)


def test_ids_nobody_knows_are_unknown():
    statuses = parse('status_purged.txt', ['31', '424242'])
    assert statuses['31'].state is JobState.TIMEOUT
    assert statuses['424242'].state is JobState.UNKNOWN


def test_failed_row_exit_code_from_squeue_wait_status():
    # squeue_mixed.txt was recorded with -O JobID,State,Reason,exit_code,...
    # (ids as listed in tests/fixtures/slurm/commands.tsv for that recording)
    statuses = SlurmScheduler().parse_status_output(fixture('squeue_mixed.txt'),
                                                    ['26', '27', '25', '19'])
    assert (statuses['26'].state, statuses['26'].exit_code) == (JobState.FAILED, 3)
    assert (statuses['27'].state, statuses['27'].signal) == (JobState.CANCELLED, 15)
    assert statuses['25'].state is JobState.COMPLETED
    assert (statuses['19'].state, statuses['19'].reason) == (JobState.PENDING, 'BeginTime')


@pytest.mark.parametrize('raw, state', [
    ('PENDING', JobState.PENDING), ('PD', JobState.PENDING), ('CONFIGURING', JobState.PENDING),
    ('REQUEUED', JobState.PENDING), ('REQUEUE_HOLD', JobState.PENDING),
    ('REQUEUE_FED', JobState.PENDING), ('RESV_DEL_HOLD', JobState.PENDING),
    ('RUNNING', JobState.RUNNING), ('R', JobState.RUNNING), ('COMPLETING', JobState.RUNNING),
    ('CG', JobState.RUNNING), ('SUSPENDED', JobState.RUNNING), ('STOPPED', JobState.RUNNING),
    ('RESIZING', JobState.RUNNING), ('SIGNALING', JobState.RUNNING),
    ('STAGE_OUT', JobState.RUNNING),
    ('COMPLETED', JobState.COMPLETED), ('CD', JobState.COMPLETED),
    ('FAILED', JobState.FAILED), ('F', JobState.FAILED), ('NODE_FAIL', JobState.FAILED),
    ('NF', JobState.FAILED), ('BOOT_FAIL', JobState.FAILED), ('BF', JobState.FAILED),
    ('OUT_OF_MEMORY', JobState.FAILED), ('OOM', JobState.FAILED),
    ('PREEMPTED', JobState.FAILED), ('PR', JobState.FAILED), ('SPECIAL_EXIT', JobState.FAILED),
    ('CANCELLED', JobState.CANCELLED), ('CANCELLED by 1001', JobState.CANCELLED),
    ('CA', JobState.CANCELLED), ('REVOKED', JobState.CANCELLED),
    ('TIMEOUT', JobState.TIMEOUT), ('TO', JobState.TIMEOUT), ('DEADLINE', JobState.TIMEOUT),
    ('DL', JobState.TIMEOUT), ('CANCELLED+', JobState.CANCELLED),
    ('SOMETHING_NEW', JobState.UNKNOWN),
])
def test_every_state_maps_somewhere(raw, state):
    assert SlurmScheduler().normalize(raw) is state


def test_sbatch_outputs():
    sched = SlurmScheduler()
    parsable = fixture('sbatch_parsable.txt')
    plain = fixture('sbatch_plain.txt')
    assert sched.parse_submit_output(parsable) == parsable.strip().split(';')[0]
    assert sched.parse_submit_output(plain) == plain.split()[-1]
    assert sched.parse_submit_output('42;cluster2\n') == '42'
    with pytest.raises(ValueError):
        sched.parse_submit_output(fixture('sbatch_bad_partition.txt'))


def test_status_command_is_one_command_for_any_number_of_ids():
    command = SlurmScheduler().status_command([str(i) for i in range(1, 1001)])
    assert command.count('squeue ') == 1 and command.count('sacct ') == 1
    assert "ids=1,2,3," in command


@pytest.mark.parametrize('bad', ['1;rm -rf ~', '$(id)', '1 2', '', '-ualice', '--help',
                                 '-1', '123\n', '_1', '.1'])
def test_status_and_cancel_refuse_non_ids(bad):
    sched = SlurmScheduler()
    with pytest.raises(ValueError):
        sched.status_command([bad])
    with pytest.raises(ValueError):
        sched.cancel_command([bad])


@pytest.mark.parametrize('bad', ['1,2', '3,', ',', '1;rm -rf ~', '', '-u', '1 2', '4\n'])
def test_one_non_id_among_thousands_is_refused_by_name(bad):
    """The ids are checked joined by ',' in one match: an id holding a ','
    (which would pass as two) or any other non-id among them is still refused,
    named, wherever it stands."""
    from croupier_plugin.core.schedulers.base import check_job_ids
    good = [str(i) for i in range(1, 5001)]
    for at in (0, 2500, 5000):
        ids = good[:at] + [bad] + good[at:]
        with pytest.raises(ValueError) as err:
            check_job_ids(ids)
        assert repr(bad) in str(err.value)
        with pytest.raises(ValueError):
            SlurmScheduler().status_command(ids)
    assert check_job_ids(good + ['7_[1-3]', '8.batch', '9+0']) == \
        good + ['7_[1-3]', '8.batch', '9+0']


def test_array_elements_by_their_own_ids():
    running = parse('status_mixed.txt', ['37_2', '37'])
    assert running['37_2'].state is JobState.RUNNING
    ended = parse('status_ended.txt', ['37_0', '37_1', '37_2'])
    assert [(ended[i].state, ended[i].exit_code) for i in ('37_0', '37_1', '37_2')] == [
        (JobState.COMPLETED, 0), (JobState.FAILED, 1), (JobState.FAILED, 2)]


def test_a_live_array_element_is_not_asked_of_sacct():
    import subprocess
    command = SlurmScheduler().status_command(['37_2', '40'])
    awk_part = command.split('m=$(printf "%s\\n" "$sq" | ')[1].split('); if')[0]
    def missing(rows):
        return subprocess.run(['bash', '-c', 'ids=37_2,40; printf "%s\\n" "$SQ" | ' + awk_part],
                              capture_output=True, text=True, env={'SQ': rows}).stdout.strip()
    assert missing('37_2|RUNNING|None|0\n37_0|COMPLETED|None|0') == '40'
    assert sorted(missing('37_2|COMPLETED|None|0\n40|RUNNING|None|0').split(',')) == ['37_2']


def test_refusals_that_mean_nothing_was_submitted():
    from croupier_plugin.core.transport.base import CommandResult
    sched = SlurmScheduler()
    down = CommandResult(1, '', fixture('sbatch_controller_down.stderr.txt'))
    assert sched.transient_submit_error(down)
    bad = CommandResult(1, '', fixture('sbatch_bad_partition.stderr.txt'))
    assert not sched.transient_submit_error(bad)


def test_cancel_ends_the_options_before_the_ids():
    """scancel takes the ids as operands: after `--` an id can never be read as an
    option (squeue and sacct take them as an option's value, where only the id's
    validation protects)."""
    assert SlurmScheduler().cancel_command(['12', '13_4']) == 'scancel -- 12 13_4'


def test_a_looked_up_id_must_look_like_an_id():
    sched = SlurmScheduler()
    assert sched.parse_lookup_output('-ualice|croupier:tok\n', 'tok') is None
    assert sched.parse_lookup_output('77|croupier:tok\n', 'tok') == '77'
