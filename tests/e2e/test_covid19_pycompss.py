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


def test_the_documentations_covid19_example_as_written(bed, vault_bed, ssh, install_stand_in,
                                                       web_server, tmp_path, monkeypatch):
    """blueprints/covid19-pycompss/documentation.yaml: the Vault node gives only jwt and
    user, the HPCExporter no address, the interface's credentials only the host. Vault's
    address comes from VAULT_ADDR, the exporter's and the known_hosts file from the site
    configuration file; the rest of the login from Vault."""
    import sys
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from exporter_bed import TOKEN, exporter_config

    from croupier_plugin.core.exporter import ExporterClient, ExporterConfig, ExporterService
    install_stand_in('enqueue_compss')
    with open(bed['keys']['ed25519']) as fh:
        vault_bed.put(bed['host'], {'user': bed['user'], 'port': bed['port'],
                                    'private_key': fh.read()})
    clear_cache()
    data = web_server.root / 'PerMedCoE/covid-19-workflow/main/Resources/data/small'
    data.mkdir(parents=True)
    (data / 'metadata_small.tsv').write_text('patient\tage\nP1\t40\n')
    exporter = ExporterService(ExporterConfig.from_mapping(exporter_config(bed))).start()
    config = tmp_path / 'config.yaml'
    config.write_text(f"exporter_address: {exporter.address}\n"
                      f"known_hosts: {bed['known_hosts']}\n")
    monkeypatch.setenv('CROUPIER_CONFIG', str(config))
    monkeypatch.setenv('VAULT_ADDR', vault_bed.address)
    # the exporter's token, as a manager's environment gives it (the node names none)
    monkeypatch.setenv('CROUPIER_EXPORTER_TOKEN', TOKEN)
    monkeypatch.setenv('HOME', str(tmp_path))     # no known_hosts but the site's
    dataset = '~/permedcoe_apps/covid19/covid-19-workflow-main/Resources/data/small'
    inputs = {
        'iam_jwt': vault_bed.token(), 'iam_user': 'alice', 'hpc_host': bed['host'],
        'hpc_scheduler': 'PYCOMPSS', 'hpc_scheduler_modules': [], 'monitor_scheduler': 'SLURM',
        'hpc_dai_host': bed['host'], 'hpc_dai_internet_access': True,
        'github_dai_host': web_server.url, 'github_dai_internet_access': True,
        'job_pre_script': ['export PATH="$HOME/bin:$PATH"'],
        'covid19_args': {'metadata': 'metadata_small.tsv', 'outputs': 'results',
                         'ko_file': 'ko_file.txt', 'replicates': 2, 'model': 'epithelial'},
        'pycompss_args': {'num_nodes': 1, 'exec_time': 5, 'log_level': 'off'},
    }
    ssh.inner.run(f'rm -rf {dataset}')
    env = runner.init_env(os.path.join(ROOT, 'blueprints', 'covid19-pycompss',
                                       'documentation.yaml'), inputs, name='covid19-doc')
    try:
        runner.execute(env, 'install')
        by_node = {i.node_id: i for i in env.storage.get_node_instances()}
        workdir = by_node['hpc'].runtime_properties['workdir']
        [registration] = ExporterClient(exporter.address, token=TOKEN).registrations()
        assert (registration['interface'], registration['user']) == ('hpc', bed['user'])
        runner.execute(env, 'run_jobs')
        job = {i.node_id: i for i in env.storage.get_node_instances()}['covid19']
        props = job.runtime_properties
        assert props['state'] == 'COMPLETED', props
        assert props['job_id'].isdigit()
        out = ssh.inner.read_file(props['stdout']).decode()
        assert out == ('covid19 analysis of /home/crtest/permedcoe_apps/covid19/'
                       'covid-19-workflow-main/Resources/data with metadata_small.tsv '
                       'results ko_file.txt 2 epithelial\n')
        fetched = ssh.run(f'cat {dataset}/metadata_small.tsv')
        assert fetched.stdout == 'patient\tage\nP1\t40\n'
        runner.execute(env, 'uninstall')
        assert ExporterClient(exporter.address, token=TOKEN).registrations() == []
        # skip_cleanup: true, as in the documentation
        assert ssh.run(f'test -d {workdir}').exit_code == 0
        ssh.run(f'rm -rf {workdir}')
    finally:
        exporter.stop()
