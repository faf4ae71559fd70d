"""A submission whose answer is lost (connection or orchestrator died right after
sbatch ran) is found again by its token: never submitted twice, never lost."""

import shlex
import uuid

import pytest

from croupier_plugin.core.cluster import Cluster
from croupier_plugin.core.engine import Engine, PlannedJob
from croupier_plugin.core.errors import CommandInterrupted
from croupier_plugin.core.model import JobSpec
from croupier_plugin.core.monitor import Monitor
from croupier_plugin.core.schedulers import SlurmScheduler

pytestmark = pytest.mark.bed


class AnswerLost:
    """Runs every command for real; a submission's answer is then 'lost'."""

    def __init__(self, inner):
        self.inner = inner
        self.login_shell = False
        self.lost = 0

    def run(self, command, timeout=None, idempotent=True, check=False):
        result = self.inner.run(command, timeout=timeout, idempotent=idempotent, check=check)
        if not idempotent and self.lost == 0:
            self.lost += 1
            raise CommandInterrupted('connection lost while running a command that must '
                                     'not be repeated (test)')
        return result

    def __getattr__(self, name):
        return getattr(self.inner, name)


def run_engine(cluster, workdir, name, record=None):
    spec = JobSpec.from_options(name, {'commands': ['echo done']})
    records, events = {}, []
    job = PlannedJob(name, spec, cluster, workdir, [], dict(record or {}))
    engine = Engine([job], lambda n, r: records.__setitem__(n, r),
                    events=lambda kind, j, **info: events.append(kind),
                    monitor=Monitor(unknown_grace=30))
    engine.run()
    return records[name], events


def jobs_named(ssh, name, expected, accounting):
    """The ids SLURM's accounting has under ``name``."""
    return accounting(ssh, f'-S now-1hours -o JobID --name={shlex.quote(name)}',
                      lambda text: len(text.split()) >= expected).split()


def test_lost_answer_is_found_by_its_token(ssh, workdir, accounting):
    name = f'lost-{uuid.uuid4().hex[:6]}'
    lossy = AnswerLost(ssh.inner)
    cluster = Cluster('bed', lossy, SlurmScheduler(), monitor_period=1)
    record, events = run_engine(cluster, workdir, name)
    assert lossy.lost == 1
    assert record['state'] == 'COMPLETED'
    assert 'reattached' in events and 'resubmitting' not in events
    assert jobs_named(ssh, name, 1, accounting) == [record['job_id']]


def test_restart_during_submission_reattaches(ssh, workdir, accounting):
    name = f'restart-{uuid.uuid4().hex[:6]}'
    cluster = Cluster('bed', ssh.inner, SlurmScheduler(), monitor_period=1)
    token = uuid.uuid4().hex[:16]
    # the earlier run got as far as sbatch, then died before storing the id
    spec = JobSpec.from_options(name, {'commands': ['echo done']})
    first = cluster.submit(spec, workdir, token=token)
    record, events = run_engine(cluster, workdir, name,
                                {'state': 'SUBMITTING', 'submit_token': token})
    assert events[0] == 'reattached'
    assert record['job_id'] == first.job_id and record['state'] == 'COMPLETED'
    assert jobs_named(ssh, name, 1, accounting) == [first.job_id]


def test_restart_before_submission_submits_once(ssh, workdir, accounting):
    name = f'never-{uuid.uuid4().hex[:6]}'
    cluster = Cluster('bed', ssh.inner, SlurmScheduler(), monitor_period=1)
    record, events = run_engine(cluster, workdir, name,
                                {'state': 'SUBMITTING', 'submit_token': 'neversubmitted0'})
    assert events[0] == 'resubmitting'
    assert record['state'] == 'COMPLETED'
    assert jobs_named(ssh, name, 1, accounting) == [record['job_id']]
