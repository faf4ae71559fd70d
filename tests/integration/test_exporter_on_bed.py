"""The exporter against the bed's SLURM over SSH, scraped by a real Prometheus
server (Debian's package) on loopback."""

import os
import re
import shlex
import socket
import sys
import time

import pytest
import requests

from croupier_plugin.core.exporter import (ExporterClient, ExporterConfig, ExporterError,
                                           ExporterService)
from croupier_plugin.core.transport import SshTransport

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from exporter_bed import (PROMETHEUS, TOKEN, ExporterProcess,  # noqa: E402
                          FreezableRelay, PrometheusServer, exporter_config, free_port,
                          known_hosts_for_port)

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
    client = ExporterClient(exporter_process.address, token=TOKEN)
    client.register('promtest', 'hpc', payload(bed, label='bed'))
    client.add_jobs('promtest', 'hpc', {'failing': failing, 'held': held})

    # the job's state, as a PromQL query returns it
    result = prometheus.wait_for(
        'croupier_job_state{deployment="promtest",job_name="failing"} == 1',
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
        client = ExporterClient(service.address, token=TOKEN)
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
    client = ExporterClient(exporter_process.address, token=TOKEN)
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
        'listen': '127.0.0.1', 'port': 0, 'cache_seconds': 0, 'token': TOKEN,
        'vault': {'address': vault_bed.address, 'user': user, 'jwt_file': str(jwt_file),
                  'known_hosts': bed['known_hosts']}})
    service = ExporterService(config).start()
    try:
        client = ExporterClient(service.address, token=TOKEN)
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
        client = ExporterClient(service.address, token=TOKEN)
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


def metric(text, name, infrastructure):
    """The value of ``name`` for ``infrastructure`` in a /metrics text, or None."""
    m = re.search(rf'^{name}{{infrastructure="{re.escape(infrastructure)}"[^}}]*}} (\S+)$',
                  text, re.M)
    return float(m.group(1)) if m else None


def timed_scrape(address):
    start = time.monotonic()
    text = requests.get(address + '/metrics', timeout=60).text
    return text, time.monotonic() - start


def test_an_unreachable_front_end_does_not_hold_up_the_others(bed, ssh, cancel_after):
    [held] = submit(ssh, '--hold', '--wrap', 'true')
    cancel_after.append(held)
    # a front-end that takes the TCP connection and never says a word (its
    # backlog accepts), and one whose port is closed
    blackhole = socket.create_server(('127.0.0.1', 0))
    closed = free_port()
    key = {'user': bed['user'], 'private_key_file': bed['keys']['ed25519'],
           'known_hosts': bed['known_hosts']}
    hosts = exporter_config(bed)['hosts'] + [
        dict(key, host='127.0.0.1', port=blackhole.getsockname()[1]),
        dict(key, host='127.0.0.1', port=closed)]
    config = ExporterConfig.from_mapping(exporter_config(bed, hosts=hosts, scrape_timeout=2))
    service = ExporterService(config).start()
    try:
        client = ExporterClient(service.address, token=TOKEN)
        client.register('fast', 'hpc', payload(bed, label='bed'))
        client.add_jobs('fast', 'hpc', {'held': held})
        client.register('dead', 'hole', dict(payload(bed, label='hole'),
                                             port=blackhole.getsockname()[1]))
        client.register('dead', 'closed', dict(payload(bed, label='closed'), port=closed))
        for i in range(4):
            text, seconds = timed_scrape(service.address)
            # Prometheus gives up after 10 s by default; the first scrape waits for
            # the dead ones up to scrape_timeout (2 s), the next ones no more
            assert seconds < (3.5 if i == 0 else 1.9), (i, seconds)
            assert f'job_id="{held}",job_name="held",raw_state="PENDING",state="PENDING"' \
                in text
            assert metric(text, 'croupier_exporter_up', 'bed') == 1.0
            assert metric(text, 'croupier_exporter_up', 'hole') == 0.0
            assert metric(text, 'croupier_exporter_up', 'closed') == 0.0
            assert metric(text, 'croupier_partition_cores', 'bed') is not None
        # the failing ones are asked again only after a backoff, not at every scrape
        assert metric(text, 'croupier_exporter_remote_commands_total', 'bed') == 4.0
        assert metric(text, 'croupier_exporter_remote_commands_total', 'closed') <= 3.0
    finally:
        service.stop()
        blackhole.close()


def test_a_front_end_that_stops_answering_is_served_from_its_last_view(bed, ssh, tmp_path,
                                                                       cancel_after):
    [held] = submit(ssh, '--hold', '--wrap', 'true')
    cancel_after.append(held)
    relay = FreezableRelay(bed['host'], bed['port'])
    entry = {'host': bed['host'], 'port': relay.port, 'user': bed['user'],
             'private_key_file': bed['keys']['ed25519'],
             'known_hosts': known_hosts_for_port(bed, relay.port, str(tmp_path))}
    config = ExporterConfig.from_mapping(exporter_config(bed, hosts=[entry], scrape_timeout=2,
                                                         command_timeout=5))
    service = ExporterService(config).start()
    try:
        client = ExporterClient(service.address, token=TOKEN)
        client.register('frozen', 'hpc', dict(payload(bed, label='relayed'), port=relay.port))
        client.add_jobs('frozen', 'hpc', {'held': held})
        text, _ = timed_scrape(service.address)
        assert metric(text, 'croupier_exporter_up', 'relayed') == 1.0
        assert metric(text, 'croupier_exporter_data_age_seconds', 'relayed') < 2
        relay.freeze()
        time.sleep(1)
        text, seconds = timed_scrape(service.address)
        assert seconds < 3.5, seconds
        assert metric(text, 'croupier_exporter_up', 'relayed') == 0.0
        # the last view, with its age
        assert f'job_id="{held}",job_name="held",raw_state="PENDING",state="PENDING"' in text
        assert metric(text, 'croupier_partition_cores', 'relayed') is not None
        assert metric(text, 'croupier_exporter_data_age_seconds', 'relayed') >= 1
    finally:
        service.stop()
        relay.close()


def test_a_rotated_jwt_file_and_rotated_vault_credentials_are_picked_up(bed, ssh, vault_bed,
                                                                       tmp_path, cancel_after):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    user = 'croupier-exporter-rotation'
    vault_bed.root.sys.create_or_update_policy(f'croupier-{user}', (
        f'path "secret/data/croupier/{user}/*" {{ capabilities = ["read"] }}'))
    vault_bed.root.auth.jwt.create_role(user, role_type='jwt', user_claim='sub',
                                        bound_audiences=['croupier'],
                                        token_policies=[f'croupier-{user}'], token_ttl='10m',
                                        allowed_redirect_uris=[], path='jwt')
    # a key the front-end does not know: the secret before its rotation
    stranger = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()).decode()
    vault_bed.put(bed['host'], {'user': bed['user'], 'private_key': stranger}, user=user)
    jwt_file = tmp_path / 'jwt'
    jwt_file.write_text(vault_bed.token(sub=user, issued_ago=1200))       # expired
    [held] = submit(ssh, '--hold', '--wrap', 'true')
    cancel_after.append(held)
    config = ExporterConfig.from_mapping({
        'listen': '127.0.0.1', 'port': 0, 'cache_seconds': 0, 'token': TOKEN,
        'scrape_timeout': 3,
        'vault': {'address': vault_bed.address, 'user': user, 'jwt_file': str(jwt_file),
                  'known_hosts': bed['known_hosts']}})
    service = ExporterService(config).start()
    try:
        client = ExporterClient(service.address, token=TOKEN)
        with pytest.raises(ExporterError, match='(422).*refused the JWT login'):
            client.register('rotdep', 'hpc', payload(bed, label='rotated'))
        # the JWT file renewed: read again, no restart
        jwt_file.write_text(vault_bed.token(sub=user))
        client.register('rotdep', 'hpc', payload(bed, label='rotated'))
        client.add_jobs('rotdep', 'hpc', {'held': held})
        text, _ = timed_scrape(service.address)
        assert metric(text, 'croupier_exporter_up', 'rotated') == 0.0     # the stranger key
        # the secret rotated in Vault: the next attempt (after the backoff) uses it
        with open(bed['keys']['ed25519']) as fh:
            vault_bed.put(bed['host'], {'user': bed['user'], 'private_key': fh.read()},
                          user=user)
        deadline = time.monotonic() + 20
        while metric(text, 'croupier_exporter_up', 'rotated') != 1.0:
            assert time.monotonic() < deadline, text
            time.sleep(0.5)
            text, _ = timed_scrape(service.address)
        assert f'job_id="{held}",job_name="held",raw_state="PENDING",state="PENDING"' in text
    finally:
        service.stop()


def test_deployment_label_and_only_jobs_reach_prometheus(bed, ssh, exporter_process,
                                                         prometheus, cancel_after):
    """An interface registered with the original's monitoring_options: its jobs carry
    deployment_label as their ``deployment`` label, and with only_jobs the exporter
    asks the front-end no partition figures (no sinfo), until an interface of the same
    front-end that wants them is registered."""
    [held] = submit(ssh, '--hold', '--wrap', 'true')
    cancel_after.append(held)
    client = ExporterClient(exporter_process.address, token=TOKEN)
    client.register('labeldep', 'hpc', dict(payload(bed, label='jobsonly'),
                                            deployment_label='covid19', only_jobs=True))
    client.add_jobs('labeldep', 'hpc', {'held': held})
    [state] = prometheus.wait_for(f'croupier_job_state{{job_id="{held}"}} == 1', bool)
    assert (state['metric']['deployment'], state['metric']['interface'],
            state['metric']['state']) == ('covid19', 'hpc', 'PENDING')
    assert prometheus.query('croupier_job_state{deployment="labeldep"}') == []
    # several scrapes later still no partition metric at all
    prometheus.wait_for('count_over_time(croupier_exporter_up[1m])',
                        lambda r: r and int(r[0]['value'][1]) >= 3)
    assert prometheus.query('croupier_partition_cores') == []
    metrics = requests.get(exporter_process.address + '/metrics', timeout=10).text
    assert 'croupier_partition_nodes{' not in metrics and f'job_id="{held}"' in metrics

    # a second interface on the same front-end without only_jobs: partitions come
    client.register('otherdep', 'hpc', payload(bed, label='jobsonly'))
    total = ssh.run("sinfo --noheader -p debug -o '%C'").stdout.strip().split('/')[3]
    [cores] = prometheus.wait_for(
        'croupier_partition_cores{partition="debug",state="total"}', bool)
    assert cores['value'][1] == total
    client.unregister('labeldep')
    client.unregister('otherdep')
