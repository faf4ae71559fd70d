"""run_jobs end to end: blueprints on the embedded engine against the bed's SLURM."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from cloudify.workflows import workflow_api

from croupier_plugin import runner

import shlex

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'tests'))
from dag_checks import assert_held_by_the_scheduler, count_status_asks  # noqa: E402


def blueprint(*parts):
    return os.path.join(ROOT, *parts)


def instances(env):
    return {i.node_id: i for i in env.storage.get_node_instances()}


def squeue_ids(ssh, job_ids):
    ids = ','.join(job_ids)
    out = ssh.run(f'squeue --noheader --states=PENDING,RUNNING,COMPLETING '
                  f'--jobs={shlex.quote(ids)} -o %i 2>/dev/null').stdout
    return out.split()

pytestmark = pytest.mark.bed


def sacct_times(ssh, job_ids, accounting):
    job_ids = list(job_ids)
    out = accounting(ssh, f"-j {','.join(job_ids)} -o JobID,Start,End,State",
                     lambda text: len(text.split()) >= len(job_ids)
                     and 'Unknown' not in text)
    rows = {}
    for line in out.splitlines():
        job_id, start, end, state = line.split('|')
        rows[job_id] = (start, end, state)
    return rows


def test_slurm_dag_runs_in_dependency_order(bed_inputs, ssh, accounting):
    env = runner.init_env(blueprint('blueprints', 'slurm-dag', 'blueprint.yaml'),
                          dict(bed_inputs, monitor_period=1, work_seconds=2), name='dag')
    runner.execute(env, 'install')
    workdir = instances(env)['hpc'].runtime_properties['workdir']
    assert ssh.run(f'test -d {workdir}').exit_code == 0
    runner.execute(env, 'run_jobs')
    props = {n: i.runtime_properties for n, i in instances(env).items() if n != 'hpc'}
    assert {p['state'] for p in props.values()} == {'COMPLETED'}
    ids = {n: p['job_id'] for n, p in props.items()}
    assert len(set(ids.values())) == 4
    for p in props.values():
        assert p['stdout'].startswith(workdir + '/') and p['stderr'].endswith('.err')
    assert ssh.read_file(props['report']['stdout']).decode() == 'sum=5050 count=100\n'
    # SLURM's own record: each job started only after its parents ended
    times = sacct_times(ssh, ids.values(), accounting)
    for child, parents in (('simulate', ['prepare']), ('analyse', ['prepare']),
                           ('report', ['simulate', 'analyse'])):
        for parent in parents:
            assert times[ids[child]][0] >= times[ids[parent]][1], (child, parent, times)
    # the two middle jobs were submitted together, not one after the other
    assert abs(props['simulate']['submitted_at'] - props['analyse']['submitted_at']) < 1.0
    runner.execute(env, 'uninstall')
    assert ssh.run(f'test -e {workdir}').exit_code == 1


def test_failing_job_fails_the_run_and_cancels_the_rest(bed_inputs, ssh):
    env = runner.init_env(blueprint('tests', 'blueprints', 'slurm-failing.yaml'), bed_inputs,
                          name='failing')
    runner.execute(env, 'install')
    with pytest.raises(Exception) as err:
        runner.execute(env, 'run_jobs')
    message = str(err.value)
    by_node = instances(env)
    broken = by_node['broken'].runtime_properties
    assert broken['state'] == 'FAILED' and broken['exit_code'] == 3
    assert f"job '{by_node['broken'].id}'" in message
    assert 'FAILED' in message and 'exit code 3' in message
    assert 'input deck is corrupt' in message          # the tail of its stderr
    long_job = by_node['long'].runtime_properties
    assert long_job['state'] == 'CANCELLED'
    after = by_node['after_broken'].runtime_properties
    assert after['state'] == 'SKIPPED' and 'job_id' not in after
    submitted = [p.runtime_properties['job_id'] for n, p in by_node.items()
                 if n != 'hpc' and 'job_id' in p.runtime_properties]
    time.sleep(1)
    assert squeue_ids(ssh, submitted) == []
    runner.execute(env, 'uninstall')


def test_cancelled_execution_cancels_its_jobs(bed_inputs, ssh):
    env = runner.init_env(blueprint('tests', 'blueprints', 'slurm-failing.yaml'),
                          dict(bed_inputs, long_seconds=300), name='cancelled')
    runner.execute(env, 'install')

    def cancel_when_long_runs():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            props = instances(env)['long'].runtime_properties
            if props.get('state') == 'RUNNING':
                workflow_api.set_cancel_request()
                return
            time.sleep(0.2)
    canceller = threading.Thread(target=cancel_when_long_runs)
    canceller.start()
    # the local engine reports a cancelled execution by its result
    assert runner.execute(env, 'run_jobs') == workflow_api.EXECUTION_CANCELLED_RESULT
    canceller.join()
    workflow_api.cancel_request = False
    ids = [i.runtime_properties['job_id'] for i in instances(env).values()
           if i.runtime_properties.get('job_id')]
    assert ids
    time.sleep(1)
    assert squeue_ids(ssh, ids) == []
    assert instances(env)['long'].runtime_properties['state'] == 'CANCELLED'
    runner.execute(env, 'uninstall')


def croupier(*args, env_vars=None, **kw):
    return subprocess.run([sys.executable, '-m', 'croupier_plugin.cli', *args],
                          capture_output=True, text=True, env=env_vars, **kw)


def stored_job_ids(home, name: str) -> dict:
    """{job instance: scheduler id} of the named deployment's submitted jobs, read from
    the store's node-instance files under CROUPIER_HOME ``home``."""
    folder = os.path.join(home, 'deployments', 'deployments', name, 'node-instances')
    ids = {}
    for file_name in os.listdir(folder) if os.path.isdir(folder) else []:
        with open(os.path.join(folder, file_name)) as fh:
            instance = json.load(fh)
        job_id = (instance.get('runtime_properties') or {}).get('job_id')
        if job_id:
            ids[instance['id']] = job_id
    return ids


def test_resumed_run_reattaches_jobs_and_never_submits_twice(bed_inputs, ssh, tmp_path,
                                                             accounting):
    env_vars = dict(os.environ, CROUPIER_HOME=str(tmp_path))
    inputs = [f'-i{k}={v}' for k, v in dict(bed_inputs, monitor_period=1,
                                           work_seconds=6).items()]
    bp = blueprint('blueprints', 'slurm-dag', 'blueprint.yaml')
    done = croupier('install', bp, 'resume', *inputs, env_vars=env_vars)
    assert done.returncode == 0, done.stdout + done.stderr
    proc = subprocess.Popen([sys.executable, '-m', 'croupier_plugin.cli', 'execute', 'resume'],
                            env=env_vars, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    # kill the orchestrating process once the middle jobs were submitted, before the
    # last one is: the middle jobs wait in SLURM while the first one runs, and the
    # last is submitted only once they run. The store is read directly (its files are
    # replaced whole), a look of milliseconds: `croupier status` takes seconds on a
    # loaded machine, longer than that window may last.
    first_ids: dict = {}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        first_ids = stored_job_ids(tmp_path, 'resume')
        if sorted(name.split('_')[0] for name in first_ids) == ['analyse', 'prepare',
                                                                 'simulate']:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    status = croupier('status', 'resume', env_vars=env_vars).stdout
    assert len(first_ids) == 3, (first_ids, status)
    resumed = croupier('execute', 'resume', env_vars=env_vars, timeout=180)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert 're-attached' in resumed.stdout
    final = croupier('status', 'resume', env_vars=env_vars).stdout
    rows = {r[0]: r for r in (line.split() for line in final.splitlines()[2:])}
    for name, job_id in first_ids.items():
        assert rows[name][2] == job_id          # the same SLURM job, not a new one
    assert {r[3] for r in rows.values()} == {'COMPLETED'}
    # SLURM saw each job exactly once
    names = accounting(ssh, '-S now-10minutes -o JobName,JobID --name='
                       + ','.join(f'dag_{n}' for n in rows),
                       lambda text: len(text.split()) >= len(rows)).split()
    per_name = {}
    for line in names:
        name, job_id = line.split('|')
        per_name.setdefault(name, set()).add(job_id)
    assert all(len(v) == 1 for v in per_name.values()), per_name
    assert croupier('uninstall', 'resume', env_vars=env_vars).returncode == 0


def test_demo_runs_with_the_croupier_command(tmp_path):
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'croupier'), 'run',
                             os.path.join(ROOT, 'blueprints', 'hello', 'blueprint.yaml'),
                             '-i', 'greeting=hi from the test'],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(' COMPLETED ' in line and 'job_d' in line for line in lines)
    assert sum('COMPLETED  0' in line for line in lines) == 4
    assert 'removed /tmp/croupier-demo/hello_' in result.stdout


def test_two_systems_example_on_two_interfaces(bed, ssh, accounting):
    key = bed['keys']['ed25519']
    inputs = {'first_host': bed['host'], 'first_port': bed['port'], 'first_user': bed['user'],
              'first_private_key_file': key, 'second_host': bed['host'],
              'second_port': bed['port'], 'second_user': bed['user'],
              'second_private_key_file': key, 'second_partition': 'second',
              'known_hosts': bed['known_hosts'], 'monitor_period': 1}
    env = runner.init_env(blueprint('blueprints', 'two-systems', 'blueprint.yaml'), inputs,
                          name='two')
    runner.execute(env, 'install')
    by_node = instances(env)
    first, second = (by_node[n].runtime_properties['workdir'] for n in ('first_hpc',
                                                                         'second_hpc'))
    assert first != second
    runner.execute(env, 'run_jobs')
    props = {n: i.runtime_properties for n, i in instances(env).items()}
    assert [props[n]['state'] for n in ('pre', 'main', 'post')] == ['COMPLETED'] * 3
    assert props['main']['cluster'] == 'second_hpc' and props['post']['cluster'] == 'first_hpc'
    assert props['main']['stdout'].startswith(second + '/')
    assert props['post']['stdout'].startswith(first + '/')
    partition = accounting(ssh, f"-j {props['main']['job_id']} -o Partition",
                           lambda text: text.strip())
    assert partition.strip() == 'second'
    runner.execute(env, 'uninstall')


def test_skip_cleanup_keeps_the_working_directory(tmp_path):
    text = open(blueprint('blueprints', 'hello', 'blueprint.yaml')).read()
    text = text.replace('base_dir: /tmp/croupier-demo', f'base_dir: {tmp_path}/base\n'
                        '      skip_cleanup: true')
    path = tmp_path / 'blueprint.yaml'
    path.write_text(text)
    env = runner.init_env(str(path), name='kept')
    runner.execute(env, 'install')
    workdir = instances(env)['this_machine'].runtime_properties['workdir']
    runner.execute(env, 'run_jobs')
    runner.execute(env, 'uninstall')
    assert open(f'{workdir}/d.txt').read().startswith('HELLO FROM CROUPIER\n')


def test_dependants_wait_in_the_scheduler_for_their_running_parents(bed_inputs, ssh,
                                                                     accounting):
    # each dependant is submitted while its parents run, with SLURM's dependency,
    # and SLURM starts it only after they ended: no poll stands in between (each
    # job works 6 s, three polls, so a poll late under load still sees it run)
    env = runner.init_env(blueprint('blueprints', 'slurm-dag', 'blueprint.yaml'),
                          dict(bed_inputs, monitor_period=2, work_seconds=6),
                          name='dag-scheduler')
    runner.execute(env, 'install')
    try:
        runner.execute(env, 'run_jobs')
        props = {n: i.runtime_properties for n, i in instances(env).items() if n != 'hpc'}
        assert {p['state'] for p in props.values()} == {'COMPLETED'}
        assert ssh.read_file(props['report']['stdout']).decode() == 'sum=5050 count=100\n'
        ids = {n: p['job_id'] for n, p in props.items()}
        # submitted before its parents ended, started after: SLURM held it; each
        # job submitted once
        assert_held_by_the_scheduler(
            ssh, accounting, ids, (('simulate', ['prepare']), ('analyse', ['prepare']),
                                   ('report', ['simulate', 'analyse'])),
            lambda text: len(text.split()) >= 4 and 'Unknown' not in text)
    finally:
        runner.execute(env, 'uninstall')


def test_at_a_long_period_ends_are_seen_from_exit_code_markers(bed_inputs, ssh, accounting,
                                                               monkeypatch):
    # one-second jobs at a 15 s period: the monitor learns each end from the
    # job's marker, and asks squeue/sacct at most once per period
    asked = count_status_asks(monkeypatch)
    env = runner.init_env(blueprint('blueprints', 'slurm-dag', 'blueprint.yaml'),
                          dict(bed_inputs, monitor_period=15, work_seconds=1),
                          name='dag-markers')
    runner.execute(env, 'install')
    try:
        started = time.monotonic()
        runner.execute(env, 'run_jobs')
        took = time.monotonic() - started
        props = {n: i.runtime_properties for n, i in instances(env).items() if n != 'hpc'}
        assert {p['state'] for p in props.values()} == {'COMPLETED'}
        assert {p['exit_code'] for p in props.values()} == {0}
        assert asked['markers'] > 0
        assert asked['statuses'] <= 1 + took // 15, (asked, took)
        ids = {n: p['job_id'] for n, p in props.items()}
        times = sacct_times(ssh, ids.values(), accounting)
        for child, parents in (('simulate', ['prepare']), ('analyse', ['prepare']),
                               ('report', ['simulate', 'analyse'])):
            for parent in parents:
                assert times[ids[child]][0] >= times[ids[parent]][1], (child, parent, times)
    finally:
        runner.execute(env, 'uninstall')


def test_a_failed_parent_drops_its_waiting_dependant_which_never_starts(bed_inputs, ssh,
                                                                        accounting):
    env = runner.init_env(blueprint('tests', 'blueprints', 'slurm-failing.yaml'),
                          dict(bed_inputs, long_seconds=1), name='failing-scheduler')
    runner.execute(env, 'install')
    try:
        with pytest.raises(Exception) as err:
            runner.execute(env, 'run_jobs')
        by_node = instances(env)
        broken_id = by_node['broken'].id
        assert f"job '{broken_id}'" in str(err.value) and 'exit code 3' in str(err.value)
        assert f"job '{by_node['after_broken'].id}'" not in str(err.value)
        after = by_node['after_broken'].runtime_properties
        assert after['state'] == 'SKIPPED' and 'job_id' not in after
        # it had been submitted to wait for broken (and long): SLURM never started it
        reason = after['reason']
        assert reason.startswith(f'a job it depends on failed ({broken_id}')
        dropped = re.search(r'its hpc job (\d+), waiting for it, was cancelled', reason)
        assert dropped, reason
        dropped = dropped.group(1)
        out = accounting(ssh, f'-j {dropped} -o JobID,State,NodeList',
                         lambda text: 'CANCELLED' in text)
        job_id, state, nodes = out.strip().split('|')
        assert job_id == dropped and state.startswith('CANCELLED') and \
            nodes == 'None assigned', out
        assert squeue_ids(ssh, [dropped]) == []
    finally:
        runner.execute(env, 'uninstall')
