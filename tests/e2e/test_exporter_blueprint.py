"""A blueprint with an HPCExporter and interface_monitored_by, on the bed: the
interface and its job are registered (install, run_jobs), their metrics served,
and forgotten at uninstall; every byte the plugin sent to the exporter is
recorded on the wire and holds none of the interface's secrets."""

import json
import os
import sys

import pytest
import requests

from croupier_plugin import runner
from croupier_plugin.core.exporter import ExporterClient, ExporterConfig, ExporterService

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from exporter_bed import TOKEN, RecordingProxy, exporter_config  # noqa: E402

pytestmark = pytest.mark.bed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def exporter(bed):
    service = ExporterService(ExporterConfig.from_mapping(exporter_config(bed))).start()
    proxy = RecordingProxy('127.0.0.1', service.httpd.server_address[1])
    yield service, proxy
    proxy.close()
    service.stop()


def test_interface_and_jobs_registered_without_secrets_and_forgotten_at_uninstall(
        bed, exporter, monkeypatch):
    service, proxy = exporter
    # the plugin's token, as a manager's environment gives it
    monkeypatch.setenv('CROUPIER_EXPORTER_TOKEN', TOKEN)
    with open(bed['keys']['ed25519']) as fh:
        private_key = fh.read()
    inputs = {'exporter_address': f'127.0.0.1:{proxy.port}', 'hpc_host': bed['host'],
              'hpc_port': bed['port'], 'hpc_user': bed['user'],
              'hpc_password': bed['password'], 'hpc_private_key': private_key,
              'hpc_known_hosts': bed['known_hosts']}
    env = runner.init_env(os.path.join(ROOT, 'tests', 'blueprints', 'slurm-exporter.yaml'),
                          inputs, name='monitored')
    runner.execute(env, 'install')
    client = ExporterClient(service.address, token=TOKEN)
    [reg] = client.registrations()
    assert (reg['deployment'], reg['interface'], reg['user'], reg['hpc_label']) == \
        ('monitored', 'hpc', bed['user'], 'bed')
    try:
        runner.execute(env, 'run_jobs')
        # the token is never kept in runtime properties
        assert not any(TOKEN in json.dumps(i.runtime_properties, default=str)
                       for i in env.storage.get_node_instances())
        job = next(i for i in env.storage.get_node_instances() if i.node_id == 'job')
        job_id = job.runtime_properties['job_id']
        [reg] = client.registrations()
        assert reg['jobs'] == {job.id: job_id}
        metrics = requests.get(service.address + '/metrics', timeout=30).text
        assert (f'croupier_job_state{{deployment="monitored",infrastructure="bed",'
                f'interface="hpc",job_id="{job_id}",job_name="{job.id}",'
                f'raw_state="COMPLETED",state="COMPLETED"}} 1.0') in metrics
    finally:
        runner.execute(env, 'uninstall')
    assert client.registrations() == []

    wire = proxy.text()
    # the recording is of the real requests: registration, jobs and removal
    assert 'PUT /api/v1/registrations/monitored/hpc' in wire
    assert f'"job_id": "{job_id}"' in wire
    assert 'DELETE /api/v1/registrations/monitored/hpc' in wire
    assert bed['password'] not in wire
    key_lines = [line for line in private_key.splitlines()[1:-1] if len(line) > 20]
    assert key_lines and not any(line in wire for line in key_lines)
    assert 'password' not in wire and 'private_key' not in wire
    # the token travels in the Authorization header only, on each registration call
    assert wire.count(TOKEN) == wire.count(f'Authorization: Bearer {TOKEN}\r\n') >= 3
    assert bed['password'] not in metrics
