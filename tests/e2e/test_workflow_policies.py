"""Workflow policies end to end on the bed: job factories as one array submission
each, labels in `croupier status`, retries, rerun of what failed, time in queue."""

import os
import re
import shlex
import subprocess
import time
import sys

import pytest

from croupier_plugin import runner

pytestmark = pytest.mark.bed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def croupier(env, *args):
    return subprocess.run([sys.executable, '-m', 'croupier_plugin.cli', *args],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def cli_env(tmp_path):
    return dict(os.environ, CROUPIER_HOME=str(tmp_path / 'home'))


def bed_args(bed, **more):
    args = [f"-ihpc_host={bed['host']}", f"-ihpc_port={bed['port']}", f"-ihpc_user={bed['user']}",
            f"-ihpc_private_key_file={bed['keys']['ed25519']}",
            f"-ihpc_known_hosts={bed['known_hosts']}", '-imonitor_period=1']
    return args + [f'-i{k}={v}' for k, v in more.items()]


def stored(name, home):
    os.environ['CROUPIER_HOME'] = home
    try:
        env = runner.load_named(name)
        return {i.node_id: dict(i.runtime_properties) for i in env.storage.get_node_instances()}
    finally:
        del os.environ['CROUPIER_HOME']


def test_factories_are_one_array_each_and_labels_filter_the_status(bed, ssh, cli_env,
                                                                   accounting):
    bp = os.path.join(ROOT, 'blueprints', 'parameter-sweep', 'blueprint.yaml')
    for args in (['install', bp, 'sweep', *bed_args(bed)], ['execute', 'sweep']):
        result = croupier(cli_env, *args)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    props = stored('sweep', cli_env['CROUPIER_HOME'])
    workdir = props['hpc']['workdir']
    try:
        ids = {name: props[name]['job_id'] for name in ('render', 'calibrate', 'warm_up', 'merge')}
        assert all(props[n]['state'] == 'COMPLETED' for n in ids)
        # one submission per factory: SLURM's accounting has one array job with an
        # element per row, each with its own values
        elements = {}
        for name in ('render', 'calibrate', 'warm_up'):
            want = {'render': 6, 'calibrate': 3, 'warm_up': 3}[name]
            out = accounting(ssh, f'-j {ids[name]} -o JobID,State',
                             lambda text, want=want: text.count('COMPLETED') >= want)
            rows = [line.split('|') for line in out.split()]
            elements[name] = sorted(r[0] for r in rows)
            assert all(r[0].startswith(f'{ids[name]}_') and r[1] == 'COMPLETED' for r in rows)
            assert len(rows) == want, out
        merged = ssh.run(f'cat {shlex.quote(workdir)}/merged.txt').stdout.splitlines()
        assert sorted(merged) == sorted(
            [f'frame={f} quality={q}' for f in (1, 2, 3) for q in ('0.5', '1')]
            + ['low=0 high=9', 'low=10 high=19', 'low=20 high=29']
            + ['round 0', 'round 1', 'round 2'])
        # merge started only when every element had ended
        times = accounting(ssh, f"-j {','.join(ids.values())} -o JobID,Start,End",
                           lambda text: text.count('|') >= 2 * 13)
        ends = [line.split('|')[2] for line in times.split() if '_' in line.split('|')[0]]
        merge_start = [line.split('|')[1] for line in times.split()
                       if line.split('|')[0] == ids['merge']][0]
        assert max(ends) <= merge_start
        # labels: shown, and a filter
        status = croupier(cli_env, 'status', 'sweep')
        assert 'stage=render' in status.stdout and 'stage=merge' in status.stdout
        only = croupier(cli_env, 'status', 'sweep', '--label', 'stage=render').stdout
        assert 'render' in only and 'merge' not in only and 'calibrate' not in only
        any_stage = croupier(cli_env, 'status', 'sweep', '-l', 'stage').stdout
        assert 'warm_up' not in any_stage and 'calibrate' in any_stage
    finally:
        assert croupier(cli_env, 'uninstall', 'sweep').returncode == 0


def status_rows(env, name):
    """The status table's cells by node name (an attempt's row as NODE#N)."""
    lines = croupier(env, 'status', name).stdout.splitlines()
    spans = [m.span() for m in re.finditer(r'-+', lines[1])]
    rows = {}
    for line in lines[2:]:
        cells = [line[a:b + 2].strip() for a, b in spans]
        rows[re.sub(r'_[a-z0-9]{6}(?=#|$)', '', cells[0])] = cells
    return rows


def test_retries_and_rerun_of_what_failed(bed, ssh, cli_env):
    bp = os.path.join(ROOT, 'blueprints', 'retries-and-rerun', 'blueprint.yaml')
    assert croupier(cli_env, 'install', bp, 'policies', *bed_args(bed)).returncode == 0
    workdir = stored('policies', cli_env['CROUPIER_HOME'])['hpc']['workdir']
    try:
        first = croupier(cli_env, 'execute', 'policies')
        assert first.returncode != 0
        assert "job 'check'" in first.stdout or 'check' in first.stdout
        rows = status_rows(cli_env, 'policies')
        # flaky: attempt 1 failed with exit code 3, attempt 2 completed
        assert rows['flaky#1'][3:5] == ['FAILED', '3'] and rows['flaky#2'][3] == 'COMPLETED'
        assert rows['flaky#1'][2] != rows['flaky#2'][2]
        assert rows['prepare'][3] == 'COMPLETED' and rows['check'][3] == 'FAILED'
        assert rows['report'][3] == 'SKIPPED'
        kept = {n: rows[n][2] for n in ('prepare', 'flaky#2')}

        ssh.run(f'touch {shlex.quote(workdir)}/ready', check=True)
        again = croupier(cli_env, 'rerun', 'policies')
        assert again.returncode == 0, again.stdout[-3000:]
        rows = status_rows(cli_env, 'policies')
        # what completed was kept (same scheduler ids); check ran again, report ran
        assert rows['prepare'][2] == kept['prepare'] and rows['flaky#2'][2] == kept['flaky#2']
        assert rows['check#1'][3] == 'FAILED' and rows['check#2'][3] == 'COMPLETED'
        assert rows['report'][3] == 'COMPLETED'
        assert ssh.run(f'cat {shlex.quote(workdir)}/report.txt').exit_code == 0

        # a plain run_jobs on an ended run starts over: every job is submitted anew
        fresh = croupier(cli_env, 'execute', 'policies')
        assert fresh.returncode == 0, fresh.stdout[-3000:]
        rows = status_rows(cli_env, 'policies')
        assert rows['prepare'][2] != kept['prepare'] and rows['prepare'][3] == 'COMPLETED'
        assert 'check#1' not in rows and rows['check'][3] == 'COMPLETED'
    finally:
        assert croupier(cli_env, 'uninstall', 'policies').returncode == 0


ONE_JOB = """tosca_definitions_version: cloudify_dsl_1_5
imports:
  - http://cloudify.co/spec/cloudify/7.0.5/types.yaml
  - plugin:croupier
inputs:
  hpc_host: {type: string}
  hpc_port: {type: integer}
  hpc_user: {type: string}
  hpc_private_key_file: {type: string}
  hpc_known_hosts: {type: string}
  monitor_period: {type: integer}
node_templates:
  hpc:
    type: croupier.nodes.InfrastructureInterface
    properties:
      config: {infrastructure_interface: SLURM}
      credentials:
        host: { get_input: hpc_host }
        port: { get_input: hpc_port }
        user: { get_input: hpc_user }
        private_key_file: { get_input: hpc_private_key_file }
        known_hosts: { get_input: hpc_known_hosts }
      monitoring_options: {monitor_period: { get_input: monitor_period }}
  job:
    type: croupier.nodes.Job
    properties:
%s
    relationships:
      - {type: task_managed_by_interface, target: hpc}
"""


def one_job(tmp_path, properties):
    path = tmp_path / 'blueprint.yaml'
    path.write_text(ONE_JOB % properties)
    return str(path)


def test_retry_on_limits_the_states_that_are_retried(bed, cli_env, tmp_path):
    bp = one_job(tmp_path, "      job_options: {commands: ['exit 5']}\n"
                           "      max_retries: 3\n      retry_on: [TIMEOUT, NODE_FAIL]")
    assert croupier(cli_env, 'install', bp, 'picky', *bed_args(bed)).returncode == 0
    try:
        result = croupier(cli_env, 'execute', 'picky')
        assert result.returncode != 0
        rows = status_rows(cli_env, 'picky')
        assert list(rows) == ['job'] and rows['job'][3:5] == ['FAILED', '5']
    finally:
        croupier(cli_env, 'uninstall', 'picky')


def test_a_job_pending_too_long_is_cancelled_and_failed(bed, ssh, cli_env, tmp_path):
    bp = one_job(tmp_path, "      job_options: {commands: ['true'],\n"
                           "                    extra_directives: ['--begin=now+600']}\n"
                           "      max_time_in_queue: '00:00:03'")
    assert croupier(cli_env, 'install', bp, 'late', *bed_args(bed)).returncode == 0
    try:
        started = time.monotonic()
        result = croupier(cli_env, 'execute', 'late')
        assert result.returncode != 0
        assert time.monotonic() - started < 60
        props = stored('late', cli_env['CROUPIER_HOME'])['job']
        assert props['state'] == 'FAILED' and props['raw_state'] == 'QUEUE_TIMEOUT'
        assert 'max_time_in_queue' in props['reason']
        assert 'max_time_in_queue' in result.stdout
        waited = props['ended_at'] - props['submitted_at']
        assert 3 <= waited < 3 + 2 + 5, waited      # limit + one poll period + a cycle
        # cancelled in SLURM, not left in the queue
        queue = ssh.run(f"squeue -h -j {props['job_id']} -o %T 2>/dev/null").stdout.strip()
        assert queue in ('', 'CANCELLED'), queue
    finally:
        croupier(cli_env, 'uninstall', 'late')


def placement_inputs(bed, **more):
    key = bed['keys']['ed25519']
    return dict(first_host=bed['host'], first_port=bed['port'], first_user=bed['user'],
                first_private_key_file=key, second_host=bed['host'], second_port=bed['port'],
                second_user=bed['user'], second_private_key_file=key,
                known_hosts=bed['known_hosts'], monitor_period=1, **more)


@pytest.fixture
def held_jobs(ssh):
    """held_jobs(partition, n): n jobs held (pending) in a partition, cancelled after."""
    ids = []

    def hold(partition, count):
        for _ in range(count):
            ids.append(ssh.run(f'sbatch --parsable --hold -p {partition} -o /dev/null '
                               f'--wrap true', check=True).stdout.strip())
    yield hold
    if ids:
        ssh.run(f"scancel {' '.join(ids)}")


def test_a_job_goes_where_fewer_jobs_wait_and_says_why(bed, ssh, held_jobs, accounting):
    held_jobs('debug', 3)
    inputs = placement_inputs(bed, first_partition='debug', second_partition='second')
    env = runner.init_env(os.path.join(ROOT, 'blueprints', 'placement', 'blueprint.yaml'),
                          inputs, name='placement')
    runner.execute(env, 'install')
    try:
        runner.execute(env, 'run_jobs')
        props = {i.node_id: i.runtime_properties for i in env.storage.get_node_instances()}
        sim = props['simulate']
        assert sim['state'] == 'COMPLETED' and sim['cluster'] == 'second_hpc'
        placement = sim['placement']
        assert placement['chosen'] == 'second_hpc'
        assert 'partition debug' in placement['figures']['first_hpc']
        # the three held jobs (at least: other users' jobs count too)
        waiting = re.search(r'(\d+) jobs pending', placement['figures']['first_hpc'])
        assert waiting and int(waiting.group(1)) >= 3, placement['figures']
        assert 'partition second' in placement['figures']['second_hpc']
        assert placement['reason'].startswith('second_hpc is expected to start it first')
        part = accounting(ssh, f"-j {sim['job_id']} -o Partition", lambda t: t.strip())
        assert part.strip() == 'second'
        # the dependant (a single interface) ran where it is declared
        assert props['summarise']['cluster'] == 'first_hpc'
    finally:
        runner.execute(env, 'uninstall')


def test_a_job_stuck_in_a_queue_moves_to_the_other_system(bed, ssh, cli_env):
    # the 'second' partition takes the job but its one-minute limit keeps it pending
    assert subprocess.run(['scontrol', 'update', 'PartitionName=second', 'MaxTime=1']
                          ).returncode == 0
    try:
        inputs = placement_inputs(bed, first_partition='second', second_partition='debug',
                                  max_time_in_queue='00:00:03')
        args = [f'-i{k}={v}' for k, v in inputs.items()]
        bp = os.path.join(ROOT, 'blueprints', 'placement', 'blueprint.yaml')
        assert croupier(cli_env, 'install', bp, 'moving', *args).returncode == 0
        try:
            result = croupier(cli_env, 'execute', 'moving')
            assert result.returncode == 0, result.stdout[-3000:]
            assert 'moved' in result.stdout
            rows = status_rows(cli_env, 'moving')
            assert rows['simulate#1'][1:2] == ['first_hpc'] and rows['simulate#1'][3] == 'MOVED'
            assert rows['simulate#2'][1] == 'second_hpc'
            assert rows['simulate#2'][3] == 'COMPLETED'
            first_id = rows['simulate#1'][2]
            queue = ssh.run(f'squeue -h -j {first_id} -o %T 2>/dev/null').stdout.strip()
            assert queue in ('', 'CANCELLED'), queue
            props = stored('moving', cli_env['CROUPIER_HOME'])['simulate']
            assert props['tried'] == ['first_hpc']
            assert props['attempts'][0]['raw_state'] == 'QUEUE_TIMEOUT'
        finally:
            croupier(cli_env, 'uninstall', 'moving')
    finally:
        subprocess.run(['scontrol', 'update', 'PartitionName=second', 'MaxTime=INFINITE'])
