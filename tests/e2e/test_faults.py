"""Faults survived (or refused cleanly) by a whole blueprint run on the bed."""

import os
import socket
import subprocess
import threading
import time

import pytest

from croupier_plugin import runner

pytestmark = pytest.mark.bed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BED = os.path.join(ROOT, 'tests', 'bed', 'bed.sh')
DAG = os.path.join(ROOT, 'blueprints', 'slurm-dag', 'blueprint.yaml')


def instances(env):
    return {i.node_id: i for i in env.storage.get_node_instances()}


def sacct_names(ssh, prefix, expected, accounting):
    """{job name: [ids]} of the last hour's jobs whose name starts with ``prefix``."""
    def names_of(text):
        names = {}
        for line in text.splitlines():
            name, job_id = line.split('|')
            if name.startswith(prefix):
                names.setdefault(name, []).append(job_id)
        return names
    return names_of(accounting(ssh, '-S now-1hours -o JobName,JobID',
                               lambda text: len(names_of(text)) >= expected))


def run_with_fault(env, fault, when):
    """Run run_jobs, calling ``fault()`` once ``when(env)`` holds."""
    errors = []

    def inject():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if when(env):
                fault()
                return
            time.sleep(0.2)
        errors.append('the fault was never injected')
    thread = threading.Thread(target=inject)
    thread.start()
    runner.execute(env, 'run_jobs')
    thread.join()
    assert errors == []


def middle_jobs_running(env):
    props = instances(env)
    return all(props[n].runtime_properties.get('state') == 'RUNNING'
               for n in ('simulate', 'analyse'))


def dag_env(bed_inputs, name):
    # a distinct job prefix per test keeps the accounting check to this run
    text = open(DAG).read().replace('job_prefix: dag_', f'job_prefix: {name}_')
    path = os.path.join(os.path.dirname(DAG), f'.{name}.yaml')
    with open(path, 'w') as fh:
        fh.write(text)
    try:
        return runner.init_env(path, dict(bed_inputs, monitor_period=1, work_seconds=6),
                               name=name)
    finally:
        os.unlink(path)


def check_dag_done_once(env, ssh, name, accounting):
    props = {n: i.runtime_properties for n, i in instances(env).items() if n != 'hpc'}
    assert {p['state'] for p in props.values()} == {'COMPLETED'}
    names = sacct_names(ssh, f'{name}_', 4, accounting)
    assert len(names) == 4 and all(len(ids) == 1 for ids in names.values()), names
    assert sorted(ids[0] for ids in names.values()) == sorted(p['job_id']
                                                              for p in props.values())


def test_ssh_server_killed_mid_run_and_back_10s_later(bed_inputs, ssh, bed, accounting):
    name = f'sshkill{int(time.time()) % 100000}'
    env = dag_env(bed_inputs, name)
    runner.execute(env, 'install')

    def kill_sshd_for_10s():
        subprocess.run(['bash', BED, 'stop-sshd'], check=True, capture_output=True)
        # the connection's own server process too: the link is really gone
        subprocess.run(['pkill', '-f', f"sshd: {bed['user']}"], check=False)
        time.sleep(10)
        subprocess.run(['bash', BED, 'start-sshd'], check=True, capture_output=True)

    run_with_fault(env, kill_sshd_for_10s, middle_jobs_running)
    check_dag_done_once(env, ssh, name, accounting)
    runner.execute(env, 'uninstall')


def test_slurmctld_restarted_mid_run(bed_inputs, ssh, accounting):
    name = f'ctld{int(time.time()) % 100000}'
    env = dag_env(bed_inputs, name)
    runner.execute(env, 'install')

    def restart():
        subprocess.run(['bash', BED, 'restart-slurmctld'], check=True, capture_output=True)

    run_with_fault(env, restart, middle_jobs_running)
    check_dag_done_once(env, ssh, name, accounting)
    runner.execute(env, 'uninstall')


def test_unreachable_cluster_at_install_fails_in_bounded_time(tmp_path, capsys, bed):
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()            # nothing listens there
    text = open(DAG).read().replace(
        '        known_hosts: { get_input: hpc_known_hosts }',
        '        known_hosts: { get_input: hpc_known_hosts }\n'
        '        connect_timeout: 1\n        reconnect_timeout: 4')
    path = tmp_path / 'blueprint.yaml'
    path.write_text(text)
    env = runner.init_env(str(path), {'hpc_host': '127.0.0.1', 'hpc_port': port,
                                      'hpc_user': bed['user'],
                                      'hpc_private_key_file': bed['keys']['ed25519'],
                                      'hpc_known_hosts': bed['known_hosts']}, name='down')
    start = time.monotonic()
    with pytest.raises(Exception):
        runner.execute(env, 'install')
    elapsed = time.monotonic() - start
    assert 4 <= elapsed < 15
    out = capsys.readouterr().out
    assert f'cannot connect to 127.0.0.1:{port}' in out and 'gave up after' in out
    assert 'workdir' not in instances(env)['hpc'].runtime_properties
