"""run_jobs on the bed's Torque wrappers (issue 17 on PBS/Torque).

The wrappers are qsub/qstat/qdel over SLURM, so SLURM's accounting tells when
each job was submitted, started and ended: the order below is SLURM's record,
not Croupier's. The wrappers pass ``-W depend=afterok`` on to SLURM without
``--kill-on-invalid-dep``, so a dependant of a failed parent would wait for
ever (DependencyNeverSatisfied): Croupier deletes it when it sees the failure.
"""

import os
import re
import shlex
import sys
import time

import pytest

from croupier_plugin import runner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'tests'))
from dag_checks import assert_held_by_the_scheduler, count_status_asks  # noqa: E402

pytestmark = pytest.mark.bed

EDGES = (('simulate', ['prepare']), ('analyse', ['prepare']),
         ('report', ['simulate', 'analyse']))


def blueprint(name: str) -> str:
    """A test blueprint's path."""
    return os.path.join(ROOT, 'tests', 'blueprints', name)


def instances(env) -> dict:
    """{node id: node instance} of a local environment."""
    return {i.node_id: i for i in env.storage.get_node_instances()}


def test_a_torque_dag_runs_on_qsub_depend_and_markers_at_a_15_s_period(bed_inputs, ssh,
                                                                      accounting,
                                                                      monkeypatch):
    # each dependant is submitted while its parents run, with -W depend=afterok,
    # and starts when SLURM sees them end; ends are read from the markers, and
    # qstat is asked at most once per 15 s period
    asked = count_status_asks(monkeypatch)
    env = runner.init_env(blueprint('torque-dag.yaml'),
                          dict(bed_inputs, monitor_period=15, work_seconds=2),
                          name='torque-dag')
    runner.execute(env, 'install')
    try:
        began = time.monotonic()
        runner.execute(env, 'run_jobs')
        took = time.monotonic() - began
        props = {n: i.runtime_properties for n, i in instances(env).items() if n != 'hpc'}
        assert {p['state'] for p in props.values()} == {'COMPLETED'}
        assert {p['exit_code'] for p in props.values()} == {0}
        assert ssh.read_file(props['report']['stdout']).decode() == 'sum=5050 count=100\n'
        assert asked['markers'] > 0
        assert asked['statuses'] <= 1 + took // 15, (asked, took)
        ids = {n: p['job_id'] for n, p in props.items()}
        # submitted before its parents ended, started after: SLURM held it, not
        # Croupier; each job submitted once
        assert_held_by_the_scheduler(
            ssh, accounting, ids, EDGES,
            # slurmdbd may show a just-ended job as 'allocation' for a moment
            lambda text: text.count('|tdag_') >= 4 and 'Unknown' not in text)
        # the markers read were removed: none of these jobs is left in the listing
        left = ssh.run('ls "$HOME"/.croupier/pbs-markers').stdout.split()
        assert not {f.split('.')[0] for f in left} & set(ids.values()), left
    finally:
        runner.execute(env, 'uninstall')


def test_a_failed_torque_parent_deletes_its_waiting_dependant_which_never_starts(
        bed_inputs, ssh, accounting):
    env = runner.init_env(blueprint('torque-failing.yaml'), dict(bed_inputs, long_seconds=30),
                          name='torque-failing')
    runner.execute(env, 'install')
    try:
        with pytest.raises(Exception) as err:
            runner.execute(env, 'run_jobs')
        by_node = instances(env)
        broken_id = by_node['broken'].id
        assert f"job '{broken_id}'" in str(err.value) and 'exit code 3' in str(err.value)
        for other in ('after_broken', 'long', 'first'):
            assert f"job '{by_node[other].id}'" not in str(err.value)
        after = by_node['after_broken'].runtime_properties
        assert after['state'] == 'SKIPPED' and 'job_id' not in after
        # it had been submitted with -W depend=afterok on broken and long
        reason = after['reason']
        assert reason.startswith(f'a job it depends on failed ({broken_id}'), reason
        dropped = re.search(r'its hpc job (\d+), waiting for it, was cancelled', reason)
        assert dropped, reason
        dropped = dropped.group(1)
        out = accounting(ssh, f'-j {dropped} -o JobID,State,NodeList',
                         lambda text: 'CANCELLED' in text)
        job_id, state, nodes = out.strip().split('|')
        # SLURM's record: it was never given a node (its Start is the cancel time)
        assert (job_id, nodes) == (dropped, 'None assigned'), out
        assert state.startswith('CANCELLED'), out
        live = ssh.run(f'squeue --noheader --jobs={shlex.quote(dropped)} '
                       f'--states=PENDING,RUNNING -o %i 2>/dev/null').stdout.split()
        assert live == []
        assert by_node['long'].runtime_properties['state'] == 'CANCELLED'
    finally:
        runner.execute(env, 'uninstall')
