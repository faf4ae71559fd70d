"""The dataflow end to end on the embedded engine: a web resource fetched to the
HPC before the job that reads it, the job's result moved to another account and
published into the local results folder; a 404, a missing output and a GridFTP
transfer between hosts that do not serve it each give a clear error."""

import os
import shlex
import subprocess
import sys

import pytest
import yaml

from croupier_plugin import runner

pytestmark = pytest.mark.bed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BLUEPRINT = os.path.join(ROOT, 'tests', 'blueprints', 'dataflow.yaml')


@pytest.fixture
def flow_inputs(bed, web_server, peer_ssh, tmp_path):
    (web_server.root / 'data').mkdir()
    (web_server.root / 'data' / 'numbers.txt').write_text(''.join(f'{i}\n' for i in range(1, 11)))
    archive = f'archive-{tmp_path.name}'
    with open(bed['peer']['key']) as fh:
        peer_key = fh.read()
    yield dict(hpc_host=bed['host'], hpc_port=bed['port'], hpc_user=bed['user'],
               hpc_private_key_file=bed['keys']['ed25519'], hpc_known_hosts=bed['known_hosts'],
               peer_user=bed['peer']['user'], peer_private_key=peer_key,
               web_endpoint=web_server.url, archive_path=f'{archive}/result.txt')
    peer_ssh.run(f'rm -rf -- {shlex.quote(archive)}')


def instances(env):
    return {i.node_id: i for i in env.storage.get_node_instances()}


@pytest.mark.parametrize('internet, protocol', [(True, 'RSYNC'), (False, 'SFTP'),
                                                (False, 'RSYNC')])
def test_input_fetched_before_the_job_and_result_moved_and_published(
        flow_inputs, web_server, peer_ssh, tmp_path, internet, protocol):
    env = runner.init_env(BLUEPRINT, dict(flow_inputs, hpc_internet_access=internet,
                                          output_protocol=protocol), name='flow')
    results = tmp_path / 'results'
    runner.execute(env, 'install')
    try:
        summary = runner.execute(env, 'run_jobs', {'results_dir': str(results)})
        job = instances(env)['sum']
        props = job.runtime_properties
        assert [row['state'] for row in summary] == ['COMPLETED']
        assert props['outputs'] == 'DONE'
        # the web server was asked before the job was submitted, by the host itself
        # (curl) when it has internet access, else by the orchestrator
        (asked_at, path, agent), = web_server.requests
        assert path == '/data/numbers.txt'
        assert asked_at < props['submitted_at']
        assert agent.startswith('curl' if internet else 'python-requests'), agent
        # the job read it (1 + ... + 10), its result went to the other account and here
        archive = flow_inputs['archive_path']
        assert peer_ssh.run(f'cat {shlex.quote(archive)}').stdout == '55\n'
        assert (results / job.id / 'result.txt').read_text() == '55\n'
    finally:
        runner.execute(env, 'uninstall')


def failed_run(env, results_dir):
    runner.execute(env, 'install')
    try:
        with pytest.raises(Exception) as err:
            runner.execute(env, 'run_jobs', {'results_dir': results_dir})
        return err.value, instances(env)['sum'].runtime_properties
    finally:
        runner.execute(env, 'uninstall')


@pytest.mark.parametrize('internet', [True, False])
def test_a_404_fails_the_job_before_it_is_submitted(flow_inputs, tmp_path, internet):
    env = runner.init_env(BLUEPRINT, dict(flow_inputs, web_resource='data/missing.txt',
                                          hpc_internet_access=internet), name='flow404')
    error, props = failed_run(env, str(tmp_path / 'results'))
    assert props['state'] == 'FAILED' and props['raw_state'] == 'NOT_SUBMITTED'
    assert not props.get('job_id')
    reason = props['reason']
    assert "HTTP transfer 'fetch_numbers'" in reason and '404' in reason, reason
    assert 'data/missing.txt' in reason
    assert "HTTP transfer 'fetch_numbers'" in str(error)


def test_a_missing_output_fails_the_job_with_the_reason(flow_inputs, tmp_path):
    env = runner.init_env(BLUEPRINT, dict(flow_inputs, job_command='true',
                                          output_protocol='SFTP'), name='flowout')
    error, props = failed_run(env, str(tmp_path / 'results'))
    assert props['state'] == 'FAILED' and props['raw_state'] == 'OUTPUTS_FAILED'
    assert props['job_id'] and props['outputs'] == 'FAILED'
    reason = props['reason']
    assert reason.startswith('the job completed, but moving its outputs failed')
    assert "SFTP transfer 'archive_result'" in reason and 'result.txt does not exist' in reason
    assert 'archive_result' in str(error)


def test_gridftp_where_the_hosts_do_not_serve_it_is_refused_at_install_before_any_host_is_touched(
        flow_inputs, ssh, tmp_path):
    inputs = tmp_path / 'inputs.yaml'
    inputs.write_text(yaml.safe_dump(dict(flow_inputs, output_protocol='GridFTP')))
    before = ssh.run('ls -d ~/flowgrid_* 2>/dev/null || true').stdout
    result = subprocess.run([sys.executable, '-m', 'croupier_plugin.cli', 'install', BLUEPRINT,
                             'flowgrid', '-i', str(inputs)], capture_output=True, text=True,
                            env=dict(os.environ, CROUPIER_HOME=str(tmp_path / 'home')),
                            timeout=120)
    assert result.returncode != 0
    # both data infrastructures list their supported_protocols: RSync and SFTP only
    assert "node 'archive_result', property 'transfer_protocol' = 'GRIDFTP': 'hpc_data' " \
           "supports only RSYNC, SFTP" in result.stderr, result.stderr[-2000:]
    assert ssh.run('ls -d ~/flowgrid_* 2>/dev/null || true').stdout == before
