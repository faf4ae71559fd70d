"""HPC workspaces and GridFTP end to end on the embedded engine
(tests/blueprints/workspace-gridftp.yaml): install makes the input workspace with the
hpc-workspace stand-ins, GRIDFTP moves the input into it before the SLURM job and the
result (in a workspace that existed before) out after it; uninstall releases the
workspace install made and keeps the other."""

import os
import shlex
import time
import uuid

import pytest

from croupier_plugin import runner

pytestmark = pytest.mark.bed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BLUEPRINT = os.path.join(ROOT, 'tests', 'blueprints', 'workspace-gridftp.yaml')
WS_ROOT = '/var/tmp/croupier-bed-ws'


def login(command: str) -> str:
    """``command`` run by a login shell (where the bed's hpc-workspace tools are)."""
    return f'bash -l -c {shlex.quote(command)}'


@pytest.fixture
def names(ssh, peer_ssh):
    """(input workspace, output workspace, folder in the peer's home); all removed after."""
    tag = uuid.uuid4().hex[:8]
    made = (f'in-{tag}', f'out-{tag}', f'wsg-{tag}')
    yield made
    ssh.run(login(f'ws_release {made[0]}; ws_release {made[1]}') + ' >/dev/null 2>&1')
    peer_ssh.run(f'rm -rf -- {made[2]}')


def test_gridftp_into_and_out_of_workspaces_around_a_slurm_job(bed, ssh, peer_ssh, names):
    started = time.monotonic()
    in_ws, out_ws, folder = names
    peer_ssh.run(f'mkdir -p {folder}/seed && seq 1 20 > {folder}/seed/numbers.txt',
                 check=True)
    # the output workspace is the user's own, made before the deployment
    out_path = ssh.run(login(f'ws_allocate {out_ws} 1'), check=True).stdout.strip()
    in_path = f"{WS_ROOT}/{bed['user']}-{in_ws}"
    with open(bed['peer']['key']) as fh:
        peer_key = fh.read()
    inputs = dict(hpc_host=bed['host'], hpc_port=bed['port'], hpc_user=bed['user'],
                  hpc_private_key_file=bed['keys']['ed25519'],
                  hpc_known_hosts=bed['known_hosts'], peer_user=bed['peer']['user'],
                  peer_private_key=peer_key, input_workspace=in_ws, output_workspace=out_ws,
                  seed_path=f'{folder}/seed/numbers.txt',
                  archive_path=f'{folder}/archive/',
                  job_command=f"awk '{{s += $1}} END {{print s}}' {in_path}/input/numbers.txt "
                              f"> {out_path}/result.txt")
    env = runner.init_env(BLUEPRINT, inputs, name='wsgrid')
    runner.execute(env, 'install')
    try:
        props = {i.node_id: i.runtime_properties for i in env.storage.get_node_instances()}
        assert (props['numbers']['workspace_path'], props['numbers']['workspace_created'],
                props['numbers']['workspace_tool']) == (in_path, True, 'hpc-workspace')
        assert (props['result']['workspace_path'], props['result']['workspace_created']) == \
            (out_path, False)
        summary = runner.execute(env, 'run_jobs')
        assert [row['state'] for row in summary] == ['COMPLETED']
        assert ssh.run(f'cat {in_path}/input/numbers.txt').stdout == \
            ''.join(f'{i}\n' for i in range(1, 21))
        assert peer_ssh.run(f'cat {folder}/archive/result.txt').stdout == '210\n'
    finally:
        runner.execute(env, 'uninstall')
    # released: the one install made; kept: the user's own
    assert ssh.run(login(f'ws_find {in_ws}')).exit_code != 0
    assert ssh.run(login(f'ws_find {out_ws}')).stdout.strip() == out_path
    assert ssh.run(f'cat {out_path}/result.txt').stdout == '210\n'
    print(f'workspace + GridFTP round trip took {time.monotonic() - started:.1f} s')
