"""The exporter against the bed's SLURM over SSH, scraped by a real Prometheus
server (Debian's package) on loopback."""

import os
import shlex
import sys
import time

import pytest
import requests

from croupier_plugin.core.exporter import (ExporterClient, ExporterConfig, ExporterError,
                                           ExporterService)
from croupier_plugin.core.transport import SshTransport

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from exporter_bed import (PROMETHEUS, ExporterProcess, PrometheusServer,  # noqa: E402
                          exporter_config)

pytestmark = pytest.mark.bed

IN_CI = os.environ.get('CI', '').lower() in ('1', 'true', 'yes')


def submit(ssh, *args, count=1):
    """Job ids of ``count`` tiny jobs submitted with one remote command."""
    sbatch = 'sbatch --parsable -J croupier_exporter_test -o /dev/null ' + \
        ' '.join(shlex.quote(a) for a in args)
    out = ssh.run(f'cd ~ && for i in $(seq {count}); do {sbatch} || exit 1; done',
                  check=True).stdout
    return [line.split(';')[0] for line in out.split()]


def payload(bed, label=''):
    return {'scheduler': 'SLURM', 'host': bed['host'], 'port': bed['port'],
            'user': bed['user'], 'hpc_label': label}


@pytest.fixture
def cancel_after(ssh):
    ids = []
    yield ids
    if ids:
        ssh.run('scancel ' + ' '.join(shlex.quote(i) for i in ids))


@pytest.fixture
def exporter_process(bed, tmp_path):
    proc = ExporterProcess(exporter_config(bed), str(tmp_path))
    yield proc
    proc.stop()


@pytest.fixture
def prometheus(exporter_process, tmp_path):
    if not os.path.exists(PROMETHEUS):
        message = f'{PROMETHEUS} is missing: tests/bed/install.sh installs Debian\'s prometheus'
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    server = PrometheusServer([exporter_process.address.split('//')[1]], str(tmp_path))
    yield server
    server.stop()


def test_prometheus_sees_job_states_exit_codes_and_partitions(bed, ssh, exporter_process,
                                                              prometheus, cancel_after):
    [failing] = submit(ssh, '--wrap', 'exit 3')
    [held] = submit(ssh, '--hold', '--wrap', 'true')
    cancel_after.extend([failing, held])
    client = ExporterClient(exporter_process.address)
    client.register('promtest', 'hpc', payload(bed, label='bed'))
    client.add_jobs('promtest', 'hpc', {'failing': failing, 'held': held})

    # the job's state, as a PromQL query returns it
    result = prometheus.wait_for(
        f'croupier_job_state{{deployment="promtest",job_name="failing"}} == 1',
        lambda r: r and r[0]['metric']['state'] == 'FAILED')
    metric = result[0]['metric']
    assert (metric['job_id'], metric['infrastructure'], metric['interface']) == \
        (failing, 'bed', 'hpc')
    [code] = prometheus.query(f'croupier_job_exit_code{{job_id="{failing}"}}')
    assert code['value'][1] == '3'
    [state] = prometheus.query(f'croupier_job_state{{job_id="{held}"}} == 1')
    assert state['metric']['state'] == 'PENDING'
    prometheus.wait_for(f'croupier_job_queued_seconds{{job_id="{held}"}} > 0', bool)

    # the partitions, as sinfo tells them
    total = ssh.run("sinfo --noheader -p debug -o '%C'").stdout.strip().split('/')[3]
    [cores] = prometheus.query('croupier_partition_cores{partition="debug",state="total"}')
    assert cores['value'][1] == total and cores['metric']['infrastructure'] == 'bed'
    [pending] = prometheus.query('croupier_partition_jobs{partition="debug",state="pending"}')
    assert int(pending['value'][1]) >= 1                  # the held job at least
    [up] = prometheus.query('croupier_exporter_up')
    assert up['value'][1] == '1'

    # uninstall: the exporter forgets the deployment's jobs
    client.unregister('promtest', 'hpc')
    metrics = requests.get(exporter_process.address + '/metrics', timeout=10).text
    assert f'job_id="{held}"' not in metrics
    assert 'croupier_partition_cores{' not in metrics
    assert client.registrations() == []


def counted_service(bed, counting, **extra):
    config = ExporterConfig.from_mapping(exporter_config(bed, **extra))
    transports = []

    def factory(target):
        transport = counting(SshTransport(
            config.credentials_for(target.host, target.port, target.user)))
        transports.append(transport)
        return transport
    return ExporterService(config, transport_factory=factory).start(), transports


def test_one_remote_command_per_scrape_and_ended_jobs_are_not_asked_again(bed, ssh, counting,
                                                                         cancel_after):
    held = submit(ssh, '--hold', '--wrap', 'true', count=3)
    cancel_after.extend(held)
    service, transports = counted_service(bed, counting)
    try:
        client = ExporterClient(service.address)
        client.register('countdep', 'hpc', payload(bed))
        client.add_jobs('countdep', 'hpc', {f'j{i}': j for i, j in enumerate(held)})
        for _ in range(3):
            text = requests.get(service.address + '/metrics', timeout=30).text
            assert text.count(',state="PENDING"}') == 3
        [transport] = transports
        assert len(transport.commands) == 3
        assert all(c.count('sinfo ') == 1 and all(j in c for j in held)
                   for c in transport.commands)
        assert 'croupier_exporter_remote_commands_total{infrastructure="127.0.0.1:2222",' \
               'scheduler="SLURM"} 3.0' in text

        ssh.run('scancel ' + ' '.join(held))
        deadline = time.monotonic() + 20
        while text.count(',state="CANCELLED"}') < 3:
            assert time.monotonic() < deadline, text
            time.sleep(0.3)
            text = requests.get(service.address + '/metrics', timeout=30).text
        before = len(transport.commands)
        requests.get(service.address + '/metrics', timeout=30)
        # ended jobs keep their last state in the metrics but are not asked about again
        assert len(transport.commands) == before + 1
        assert not any(j in transport.commands[-1] for j in held)
    finally:
        service.stop()


def test_registrations_the_exporter_cannot_serve_are_refused_clearly(bed, exporter_process):
    client = ExporterClient(exporter_process.address)
    with pytest.raises(ExporterError, match='(422).*no credentials for nobody@127.0.0.1:2222'):
        client.register('dep', 'hpc', dict(payload(bed), user='nobody'))
    with pytest.raises(ExporterError, match="(400).*'password' = '<hidden>'"):
        client.register('dep', 'hpc', dict(payload(bed), password='Pw-Never-Sent-33aa'))
    with pytest.raises(ExporterError, match='(404).*not registered'):
        client.add_jobs('dep', 'hpc', {'a': '1'})
    assert client.registrations() == []


def test_credentials_from_vault(bed, ssh, vault_bed, tmp_path, cancel_after):
    # a Vault user of the exporter's own, apart from the other tests' alice
    user = 'croupier-exporter'
    vault_bed.root.sys.create_or_update_policy(f'croupier-{user}', (
        f'path "secret/data/croupier/{user}/*" {{ capabilities = ["read"] }}'))
    vault_bed.root.auth.jwt.create_role(user, role_type='jwt', user_claim='sub',
                                        bound_audiences=['croupier'],
                                        token_policies=[f'croupier-{user}'], token_ttl='10m',
                                        allowed_redirect_uris=[], path='jwt')
    with open(bed['keys']['ed25519']) as fh:
        vault_bed.put(bed['host'], {'user': bed['user'], 'private_key': fh.read()}, user=user)
    jwt_file = tmp_path / 'jwt'
    jwt_file.write_text(vault_bed.token(sub=user))
    [held] = submit(ssh, '--hold', '--wrap', 'true')
    cancel_after.append(held)
    config = ExporterConfig.from_mapping({
        'listen': '127.0.0.1', 'port': 0, 'cache_seconds': 0,
        'vault': {'address': vault_bed.address, 'user': user, 'jwt_file': str(jwt_file),
                  'known_hosts': bed['known_hosts']}})
    service = ExporterService(config).start()
    try:
        client = ExporterClient(service.address)
        client.register('vaultdep', 'hpc', payload(bed))
        client.add_jobs('vaultdep', 'hpc', {'held': held})
        text = requests.get(service.address + '/metrics', timeout=30).text
        assert 'croupier_exporter_up{infrastructure="127.0.0.1:2222",scheduler="SLURM"} 1.0' \
            in text
        assert f'job_id="{held}",job_name="held",raw_state="PENDING",state="PENDING"' in text
    finally:
        service.stop()


def test_torque_jobs_through_the_bed_wrappers(bed, ssh, workdir, cancel_after):
    """A TORQUE interface (Debian's qsub/qstat wrappers in front of SLURM): the
    exporter reports the job's state and, from its exit-code file, its exit code."""
    from croupier_plugin.core.cluster import Cluster
    from croupier_plugin.core.model import JobSpec
    from croupier_plugin.core.schedulers.pbs import TorqueScheduler
    cluster = Cluster('bed-torque', ssh, TorqueScheduler())
    job = cluster.submit(JobSpec.from_options('exporter_pbs', {'commands': ['exit 3']}),
                         workdir)
    cancel_after.append(job.job_id)
    service = ExporterService(ExporterConfig.from_mapping(exporter_config(bed))).start()
    try:
        client = ExporterClient(service.address)
        client.register('pbsdep', 'hpc', dict(payload(bed), scheduler='TORQUE'))
        client.add_jobs('pbsdep', 'hpc', {'pbsjob': job.job_id})
        deadline = time.monotonic() + 30
        while True:
            text = requests.get(service.address + '/metrics', timeout=30).text
            if ',state="FAILED"}' in text:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.5)
        assert (f'croupier_job_exit_code{{deployment="pbsdep",infrastructure="127.0.0.1:2222",'
                f'interface="hpc",job_id="{job.job_id}",job_name="pbsjob"}} 3.0') in text
        assert 'scheduler="TORQUE"} 1.0' in text
        # the queues' figures, from the wrappers' qstat -Q -f and pbsnodes -a
        assert 'croupier_partition_cores{infrastructure="127.0.0.1:2222",partition="debug",' \
               'state="total"}' in text
    finally:
        service.stop()
        ssh.inner.run(f'rm -f -- "$HOME"/.croupier/pbs/{int(job.job_id)}.rc')
