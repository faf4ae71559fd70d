"""Dry runs (simulate: true) and accounting figures (accounting_options), on the bed.

A dry run must open no SSH connection at all: its interface logs in as a user
name made up for the test, so that any attempt, accepted or not, shows in
sshd's log under that name (other tests share the bed and its users).
"""

import os
import re
import shlex
import subprocess
import sys
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BLUEPRINT = os.path.join(ROOT, 'tests', 'blueprints', 'slurm-accounting.yaml')

pytestmark = pytest.mark.bed


def croupier(env, *args):
    """`croupier ARGS` in a process of its own, as a user runs it."""
    return subprocess.run([sys.executable, '-m', 'croupier_plugin.cli', *args],
                          capture_output=True, text=True, env=env, timeout=120)


def sshd_lines_naming(bed, user):
    """sshd's log lines naming ``user``: every connection attempt as that user
    (accepted, refused, invalid user) leaves one (LogLevel VERBOSE)."""
    with open(bed['sshd_log'], errors='replace') as fh:
        return [line for line in fh if user in line]


def table(text):
    """{job: {column: value}} from `croupier status`'s table (columns split on
    two or more spaces, as it pads them)."""
    lines = text.splitlines()
    headers = re.split(r'\s{2,}', lines[0].strip())
    rows = {}
    for line in lines[2:]:
        cells = re.split(r'\s{2,}', line.strip())
        rows[cells[0]] = dict(zip(headers, cells))
    return rows


def inputs(bed, user, **more):
    pairs = dict(hpc_host=bed['host'], hpc_port=bed['port'], hpc_user=user,
                 hpc_private_key_file=bed['keys']['ed25519'],
                 hpc_known_hosts=bed['known_hosts'], **more)
    return [arg for k, v in pairs.items() for arg in ('-i', f'{k}={v}')]


def test_dry_run_opens_no_ssh_connection(bed, tmp_path):
    user = f'crsim{uuid.uuid4().hex[:10]}'
    env = dict(os.environ, CROUPIER_HOME=str(tmp_path / 'home'))
    started = time.monotonic()
    done = croupier(env, 'install', BLUEPRINT, 'dry', *inputs(bed, user, simulate='true'))
    assert done.returncode == 0, done.stdout + done.stderr
    done = croupier(env, 'execute', 'dry')
    assert done.returncode == 0, done.stdout + done.stderr
    status = croupier(env, 'status', 'dry')
    assert status.returncode == 0, status.stderr
    rows = {name.rsplit('_', 1)[0]: row for name, row in table(status.stdout).items()}
    assert set(rows) == {'burn', 'after'}, status.stdout
    for row in rows.values():
        assert row['state'] == 'COMPLETED (simulated)', status.stdout
        assert row['scheduler id'].startswith('simulated-'), status.stdout
        assert row['exit code'] == '0'
    from croupier_plugin import runner
    os.environ['CROUPIER_HOME'] = env['CROUPIER_HOME']
    try:
        stored = {i.node_id: dict(i.runtime_properties)
                  for i in runner.load_named('dry').storage.get_node_instances()}
    finally:
        del os.environ['CROUPIER_HOME']
    burn, after = stored['burn'], stored['after']
    # the script it would have submitted, and nothing sent to make it so
    assert burn['simulated'] is True and burn['raw_state'] == 'SIMULATED'
    assert burn['rendered_script'].startswith('#!/bin/bash\n#SBATCH --job-name=acct_burn')
    assert '#SBATCH --partition=debug' in burn['rendered_script']
    assert 'echo burnt > burnt.txt' in burn['rendered_script']
    assert "export BURN_SECONDS=2" in burn['rendered_script']
    assert 'accounting' not in burn      # nothing ran, so there is nothing to account
    # the dependant was "submitted" only after its parent completed
    assert after['submitted_at'] >= burn['ended_at']
    workdir = stored['hpc']['workdir']
    assert stored['hpc']['simulated'] is True and workdir.startswith('$HOME/slurm-accounting_')
    done = croupier(env, 'uninstall', 'dry')
    assert done.returncode == 0, done.stdout + done.stderr
    assert sshd_lines_naming(bed, user) == []
    assert time.monotonic() - started < 60


def test_the_login_check_sees_a_run_that_is_not_simulated(bed, tmp_path):
    """The control of the test above: the same interface, not simulated, tries
    to log in at install, and sshd's log names the made-up user."""
    user = f'crsim{uuid.uuid4().hex[:10]}'
    env = dict(os.environ, CROUPIER_HOME=str(tmp_path / 'home'))
    done = croupier(env, 'install', BLUEPRINT, 'wet', *inputs(bed, user, simulate='false'))
    assert done.returncode != 0
    deadline = time.monotonic() + 5
    while not sshd_lines_naming(bed, user) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sshd_lines_naming(bed, user)


def test_accounting_figures_of_real_slurm_jobs_in_status(bed, tmp_path, ssh):
    env = dict(os.environ, CROUPIER_HOME=str(tmp_path / 'home'))
    started = time.monotonic()
    done = croupier(env, 'install', BLUEPRINT, 'acct',
                    *inputs(bed, bed['user'], reporting_user='acc-team'))
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        done = croupier(env, 'execute', 'acct')
        assert done.returncode == 0, done.stdout + done.stderr
        status = croupier(env, 'status', 'acct')
        assert status.returncode == 0, status.stderr
        rows = {name.rsplit('_', 1)[0]: row for name, row in table(status.stdout).items()}
        burn = rows['burn']
        assert burn['state'] == 'COMPLETED'
        # SLURM's own accounting of the same job
        job_id = burn['scheduler id']
        # (the job's row adds up its steps' CPU time only when sacct lists the
        # steps too: not with -X)
        out = ssh.run(f'sacct -n -P -j {shlex.quote(job_id)} '
                      f'-o JobID,ElapsedRaw,TotalCPU,AllocNodes,AllocCPUS,State').stdout
        rows_of = {line.split('|')[0]: line.split('|')[1:] for line in out.split()}
        assert rows_of[f'{job_id}.batch'][-1] == 'COMPLETED', out
        elapsed, total_cpu, nodes, cpus, _ = rows_of[job_id]
        assert int(elapsed) >= 2
        minutes_seconds = total_cpu.split('-')[-1].split(':')
        hours, minutes, seconds = (['0'] + minutes_seconds)[-3:]
        cpu_seconds = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        # busy for 2 s of wall-clock time (a loaded machine gives it less CPU)
        assert cpu_seconds > 0.0, total_cpu
        assert burn['elapsed'] == f'0:00:{int(elapsed):02d}'
        whole, fraction = divmod(round(cpu_seconds * 100), 100)
        assert burn['cpu time'] == f'0:00:{whole:02d}' + (f'.{fraction:02d}' if fraction else '')
        assert (burn['nodes'], burn['cpus']) == (nodes, cpus)
        assert rows['after']['state'] == 'COMPLETED' and rows['after']['cpus'] != ''
        # the figures are in the job's runtime properties, with the reporting user
        from croupier_plugin import runner
        os.environ['CROUPIER_HOME'] = env['CROUPIER_HOME']
        try:
            stored = {i.node_id: dict(i.runtime_properties)
                      for i in runner.load_named('acct').storage.get_node_instances()}
        finally:
            del os.environ['CROUPIER_HOME']
        figures = stored['burn']['accounting']
        assert figures['elapsed'] == int(elapsed) and figures['nodes'] == int(nodes)
        assert figures['cpus'] == int(cpus) and figures['source'] == 'sacct'
        assert abs(figures['cpu_time'] - cpu_seconds) < 0.01
        assert figures['reporting_user'] == 'acc-team'
    finally:
        croupier(env, 'uninstall', 'acct')
    assert time.monotonic() - started < 60
