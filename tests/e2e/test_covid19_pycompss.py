"""The documentation-shaped COVID-19 PyCOMPSs blueprint on the bed: Vault
credentials, bootstrap, enqueue_compss (the stand-in, submitting to SLURM),
monitoring with SLURM, revert at uninstall."""

import os

import pytest

from croupier_plugin import runner
from croupier_plugin.core.vault import clear_cache

pytestmark = pytest.mark.bed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_covid19_shaped_blueprint(bed, vault_bed, ssh, install_stand_in):
    install_stand_in('enqueue_compss')
    with open(bed['keys']['ed25519']) as fh:
        vault_bed.put(bed['host'], {'user': bed['user'], 'port': bed['port'],
                                    'private_key': fh.read()})
    clear_cache()
    inputs = {
        'iam_jwt': vault_bed.token(), 'iam_user': 'alice', 'vault_address': vault_bed.address,
        'hpc_host': bed['host'], 'hpc_known_hosts': bed['known_hosts'],
        'job_pre_script': ['export PATH="$HOME/bin:$PATH"'],
        'covid19_args': {'metadata': 'metadata_small.tsv', 'outputs': 'results',
                         'ko_file': 'ko_file.txt', 'replicates': 2, 'model': 'epithelial'},
        'pycompss_args': {'num_nodes': 1, 'exec_time': 5, 'log_level': 'off',
                          'graph': True, 'tracing': 'false', 'python_interpreter': 'python3',
                          'qos': 'normal'},
    }
    env = runner.init_env(os.path.join(ROOT, 'blueprints', 'covid19-pycompss', 'blueprint.yaml'),
                          inputs, name='covid19')
    runner.execute(env, 'install')
    by_node = {i.node_id: i for i in env.storage.get_node_instances()}
    workdir = by_node['hpc'].runtime_properties['workdir']
    assert ssh.run(f'test -f {workdir}/covid19/src/covid19.py').exit_code == 0
    runner.execute(env, 'run_jobs')
    job = {i.node_id: i for i in env.storage.get_node_instances()}['covid19'].runtime_properties
    assert job['state'] == 'COMPLETED', job
    assert job['job_id'].isdigit()
    out = ssh.inner.read_file(job['stdout']).decode()
    assert out == ('covid19 analysis of /home/crtest/permedcoe_apps/covid19/Resources/data '
                   'with metadata_small.tsv results ko_file.txt 2 epithelial\n')
    argv = ssh.inner.read_file(f'{workdir}/covid19/src/enqueue_compss.argv').decode().split('\n')
    for flag in ('--num_nodes=1', '--exec_time=5', '--log_level=off', '--graph=true',
                 '--tracing=false', '--python_interpreter=python3', '--qos=normal',
                 f'--job_name=croupier{by_node["covid19"].id}'):
        assert flag in argv, (flag, argv)
    runner.execute(env, 'uninstall')
    assert ssh.run(f'test -e {workdir}').exit_code == 1
