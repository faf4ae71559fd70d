"""Workflow policies end to end on the bed: job factories as one array submission
each, labels in `croupier status`, retries, rerun of what failed, time in queue."""

import os
import shlex
import subprocess
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
