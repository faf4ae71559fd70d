"""The exporter's pure parts: the SLURM scrape command and its parsing (on an
output recorded on the bed), registrations, configuration and the payload the
plugin sends (which must hold no secret)."""

import json
import os
import re
import time

import pytest

from croupier_plugin.core.errors import ConfigError
from croupier_plugin.core.exporter import ExporterConfig, exporter_address, registration_payload
from croupier_plugin.core.exporter.registry import (Registry, RegistrationError, parse_jobs,
                                                    parse_registration)
from croupier_plugin.core.infrastructure import InfrastructureSettings
from croupier_plugin.core.model import JobState
from croupier_plugin.core.schedulers.slurm import SlurmScheduler, slurm_duration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, 'tests', 'fixtures', 'slurm')
KEY_FILE = os.path.join(ROOT, 'tests', 'fixtures', 'keys', 'ed25519_example')
# the ids of exporter_mixed.txt, in the order they were asked (see the README there)
HELD, RUNNING, FAILED, ARRAY, NEVER = '14578', '14579', '14580', '14581', '999999'
# the registration API's token in these tests
TOKEN = 'unit-test-token-6f1d2c9e'


def recorded():
    with open(os.path.join(FIXTURES, 'exporter_mixed.txt')) as fh:
        return fh.read()


def test_scrape_output_gives_partitions_states_times_and_exit_codes():
    ids = [HELD, RUNNING, FAILED, ARRAY, NEVER]
    partitions, statuses, times = SlurmScheduler().parse_exporter_output(recorded(), ids)
    by_name = {p.name: p for p in partitions}
    assert sorted(by_name) == ['debug', 'second']
    debug = by_name['debug']
    assert (debug.nodes_total, debug.nodes_allocated, debug.nodes_idle) == (1, 1, 0)
    assert (debug.cores_total, debug.cores_allocated, debug.cores_idle) == (16, 1, 15)
    assert (debug.jobs_pending, debug.jobs_running) == (1, 1)
    assert (by_name['second'].jobs_pending, by_name['second'].jobs_running) == (0, 0)
    assert debug.available and debug.default and not by_name['second'].default
    assert statuses[HELD].state is JobState.PENDING
    assert statuses[RUNNING].state is JobState.RUNNING
    assert (statuses[FAILED].state, statuses[FAILED].exit_code) == (JobState.FAILED, 3)
    assert statuses[ARRAY].state is JobState.COMPLETED
    assert statuses[NEVER].state is JobState.UNKNOWN
    # held: submitted at 1795373729, still pending at the cluster's 1795373733
    assert times[HELD].queued == 4 and times[HELD].walltime == 0
    assert times[RUNNING].walltime == 4 and times[RUNNING].queued == 0
    assert NEVER not in times


def test_scrape_command_is_one_string_with_the_status_command_inside():
    scheduler = SlurmScheduler()
    ids = [str(i) for i in range(1000, 2000)]
    command = scheduler.exporter_command(ids)
    assert command.count('sinfo ') == 1 and command.count('squeue ') == 2
    assert 'SLURM_TIME_FORMAT=%s' in command and '--me' in command
    # the monitor's own command is unchanged by the exporter's option
    assert 'SLURM_TIME_FORMAT' not in scheduler.status_command(ids)
    assert 'TimeUsed' not in scheduler.status_command(ids)
    # no job yet: partitions only
    assert 'squeue --noheader --states=all' not in scheduler.exporter_command([])


def test_scrape_command_refuses_what_is_not_a_job_id():
    with pytest.raises(ValueError, match='not a job id'):
        SlurmScheduler().exporter_command(['12; rm -rf ~'])


@pytest.mark.parametrize('text,seconds', [('0:00', 0), ('0:04', 4), ('12:03', 723),
                                          ('1:02:03', 3723), ('2-01:00:00', 176400),
                                          ('N/A', None), ('', None), ('1-x', None)])
def test_squeue_time_used(text, seconds):
    assert slurm_duration(text) == seconds


def settings_with_secrets():
    with open(KEY_FILE) as fh:
        key = fh.read()
    return InfrastructureSettings.from_properties('hpc', {
        'config': {'infrastructure_interface': 'SLURM'},
        'credentials': {'host': 'login.example.org', 'user': 'alice', 'port': 2200,
                        'password': 'Pw-Only-Here-91c2', 'private_key': key,
                        'private_key_password': 'Pass-Only-Here-5d7e'},
        'monitoring_options': {'hpc_label': 'example cluster'}}), key


def test_registration_payload_holds_no_secret():
    settings, key = settings_with_secrets()
    payload = registration_payload(settings)
    assert payload == {'scheduler': 'SLURM', 'host': 'login.example.org', 'port': 2200,
                       'user': 'alice', 'hpc_label': 'example cluster',
                       'deployment_label': '', 'only_jobs': False}
    text = json.dumps(payload)
    for secret in ('Pw-Only-Here-91c2', 'Pass-Only-Here-5d7e'):
        assert secret not in text
    for line in key.splitlines()[1:-1]:
        assert line not in text
    # and the exporter accepts it as it is
    reg = parse_registration('dep', 'hpc', payload)
    assert reg.infrastructure == 'example cluster'


def test_pycompss_interfaces_register_the_scheduler_that_follows_their_jobs():
    settings = InfrastructureSettings.from_properties('hpc', {
        'config': {'infrastructure_interface': 'PYCOMPSS'},
        'credentials': {'host': 'h', 'user': 'u', 'password': 'p'},
        'monitoring_options': {'monitor_interface': 'TORQUE'}})
    assert registration_payload(settings)['scheduler'] == 'TORQUE'


def test_a_local_interface_cannot_be_monitored_by_an_exporter():
    settings = InfrastructureSettings.from_properties('here', {
        'config': {'infrastructure_interface': 'SHELL', 'transport': 'local'}})
    with pytest.raises(ConfigError, match="node 'here', property 'config.transport' = 'local'"):
        registration_payload(settings)


@pytest.mark.parametrize('field', ['password', 'private_key', 'ssh_password', 'ssh_pkey',
                                   'jwt', 'token', 'private_key_password', 'api_key'])
def test_a_registration_carrying_a_secret_is_refused_without_echoing_it(field):
    body = {'scheduler': 'SLURM', 'host': 'h', 'user': 'u', field: 'S3cret-Value'}
    with pytest.raises(RegistrationError) as err:
        parse_registration('dep', 'hpc', body)
    assert f"'{field}'" in str(err.value) and 'never accepted over HTTP' in str(err.value)
    assert 'S3cret-Value' not in str(err.value)


@pytest.mark.parametrize('body,named', [
    ({'scheduler': 'LSF', 'host': 'h', 'user': 'u'}, "'scheduler' = 'LSF'"),
    ({'scheduler': 'SLURM', 'host': 'h; reboot', 'user': 'u'}, "'host' = 'h; reboot'"),
    ({'scheduler': 'SLURM', 'host': 'h', 'user': 'u', 'port': 70000}, "'port' = 70000"),
    ({'scheduler': 'SLURM', 'host': 'h', 'user': '$(id)'}, "'user' = '$(id)'"),
    ({'scheduler': 'SLURM', 'host': 'h', 'user': 'u', 'colour': 'red'}, "'colour' = 'red'"),
])
def test_bad_registrations_name_the_field_and_the_value(body, named):
    with pytest.raises(RegistrationError, match=named.replace('$', r'\$').replace('(', r'\(')
                       .replace(')', r'\)')):
        parse_registration('dep', 'hpc', body)


def test_job_lists_are_checked():
    assert parse_jobs({'jobs': [{'name': 'a', 'job_id': '12'}, {'name': 'b', 'job_id': 13}]}) \
        == {'a': '12', 'b': '13'}
    with pytest.raises(RegistrationError, match="jobs\\[0\\].job_id = '1 2'"):
        parse_jobs({'jobs': [{'name': 'a', 'job_id': '1 2'}]})
    with pytest.raises(RegistrationError, match="non-empty list"):
        parse_jobs({'jobs': []})


def test_registrations_survive_a_restart_through_the_state_file(tmp_path):
    path = str(tmp_path / 'state' / 'registrations.json')
    registry = Registry(path)
    registry.register(parse_registration('dep', 'hpc', {'scheduler': 'SLURM', 'host': 'h',
                                                        'user': 'u', 'port': 2222}))
    registry.add_jobs('dep', 'hpc', {'a': '12'})
    again = Registry(path)
    [reg] = again.registrations()
    assert (reg.deployment, reg.interface, reg.jobs, reg.target.port) == \
        ('dep', 'hpc', {'a': '12'}, 2222)
    assert again.unregister('dep') == 1 and Registry(path).registrations() == []
    with pytest.raises(RegistrationError, match="'hpc' of deployment 'dep' is not registered"):
        again.add_jobs('dep', 'hpc', {'a': '1'})


@pytest.mark.parametrize('data,named', [
    ({'port': 'ninety', 'hosts': []}, "'port' = 'ninety'"),
    ({'colour': 1}, "'colour' = 1"),
    ({'hosts': []}, "'hosts' = \\[\\]: the exporter needs credentials"),
    ({'hosts': [{'host': 'h', 'password': 'x'}]}, "'hosts\\[0\\].user' = None"),
    ({'hosts': [{'host': 'h', 'user': 'u'}]}, "'hosts\\[0\\]' = '<hidden>'"),
    ({'vault': {'address': 'http://v:8200', 'user': 'alice', 'jwt_file': '/nonexistent/jwt'}},
     "'vault.jwt_file' = '/nonexistent/jwt': cannot be read"),
    ({'vault': {'address': 'http://v:8200', 'user': 'alice', 'jwt': 'a.b.c', 'tokn': 1}},
     "'vault.tokn' = 1"),
    ({'cache_seconds': -1, 'hosts': [{'host': 'h', 'user': 'u', 'password': 'p'}]},
     "'cache_seconds' = -1"),
])
def test_bad_exporter_configuration_names_the_setting_and_the_value(data, named):
    with pytest.raises(ConfigError, match=named):
        ExporterConfig.from_mapping(data)


def test_exporter_configuration_file(tmp_path):
    path = tmp_path / 'exporter.yaml'
    path.write_text(f'listen: 127.0.0.1\nport: 9999\ntoken: {TOKEN}\nhosts:\n'
                    f'  - {{host: h, user: u, port: 2222, private_key_file: {KEY_FILE}}}\n')
    config = ExporterConfig.load(str(path))
    assert (config.listen, config.port) == ('127.0.0.1', 9999)
    assert config.credentials_for('h', 2222, 'u').private_key_file == KEY_FILE
    with pytest.raises(Exception, match='no credentials for u@h:22'):
        config.credentials_for('h', 22, 'u')
    with pytest.raises(ConfigError, match='cannot be read'):
        ExporterConfig.load(str(tmp_path / 'missing.yaml'))


@pytest.mark.parametrize('props,address', [
    ({'address': 'http://127.0.0.1:9110/'}, 'http://127.0.0.1:9110'),
    ({'hpc_exporter_address': '127.0.0.1:9110'}, 'http://127.0.0.1:9110'),
    ({'address': 'http://a:1', 'hpc_exporter_address': 'http://a:1/'}, 'http://a:1'),
])
def test_exporter_address_spellings(props, address):
    assert exporter_address(props) == address


@pytest.mark.parametrize('props,named', [
    ({}, "'address' = None: is required"),
    ({'address': 'http://a:1', 'hpc_exporter_address': 'http://b:2'},
     "'hpc_exporter_address' = 'http://b:2': conflicts"),
    ({'address': 'http://user:pw@a:1'}, "'address' = 'http://<hidden>@a:1'"),
    ({'address': 'ftp://a'}, "'address' = 'ftp://a'"),
])
def test_bad_exporter_addresses_name_node_property_and_value(props, named):
    with pytest.raises(ConfigError, match=f"node 'exp', property {named}"):
        exporter_address(props, 'exp')


def test_croupier_exporter_refuses_a_bad_configuration_by_name(tmp_path, capsys):
    from croupier_plugin.cli import main
    path = tmp_path / 'exporter.yaml'
    path.write_text('port: 99999\nhosts: [{host: h, user: u, password: pw}]\n')
    assert main(['exporter', '--config', str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: property 'port' = 99999" in err


def test_listening_beyond_loopback_is_warned_about(caplog):
    from croupier_plugin.core.exporter import ExporterService
    config = ExporterConfig.from_mapping({'listen': '0.0.0.0', 'port': 0, 'token': TOKEN,
                                          'hosts': [{'host': 'h', 'user': 'u',
                                                     'password': 'pw'}]})
    with caplog.at_level('WARNING', logger='croupier.exporter'):
        service = ExporterService(config)
    service.httpd.server_close()
    assert 'the token crosses the network in clear' in caplog.text
    caplog.clear()
    config.listen = '127.0.0.1'
    with caplog.at_level('WARNING', logger='croupier.exporter'):
        ExporterService(config).httpd.server_close()
    assert caplog.text == ''


PBS_FIXTURES = os.path.join(ROOT, 'tests', 'fixtures', 'pbs')


def pbs_scrape(name, now):
    """A scrape's output around a qstat -f fixture: the server's clock first,
    then qstat's blocks, its rc mark and the (empty) files section."""
    from croupier_plugin.core.schedulers.pbs import FILES_MARK, NOW_MARK, QSTAT_RC_MARK
    with open(os.path.join(PBS_FIXTURES, name)) as fh:
        text = fh.read()
    return f'{NOW_MARK}{now}\n{text}\n{QSTAT_RC_MARK}0\n\n{FILES_MARK}\n'


@pytest.mark.parametrize('flavour,name,job_id,state,queued,walltime', [
    ('TORQUE', 'torque_qstat_running.txt', '103.napali', JobState.RUNNING, 1, 7),
    ('TORQUE', 'torque_qstat_queued.txt', '102.napali', JobState.PENDING, 65, None),
    ('TORQUE', 'torque_qstat_completed.txt', '105.napali', JobState.COMPLETED, 1, 7),
    ('PBS', 'pbspro_qstat_running.txt', '1236.pbsserver', JobState.RUNNING, 0, 6),
    ('PBS', 'pbspro_qstat_walltime.txt', '1241.pbsserver', JobState.TIMEOUT, 0, 152),
])
def test_pbs_scrape_gives_states_and_times_from_qstat(flavour, name, job_id, state, queued,
                                                      walltime):
    from croupier_plugin.core.schedulers import get_scheduler
    scheduler = get_scheduler(flavour)
    command = scheduler.exporter_command([job_id])
    # one status qstat (PBS Pro: JSON, and the text form only if JSON is refused)
    assert command.count('"$@" 2>&1') == (2 if flavour == 'PBS' else 1)
    assert 'LC_ALL=C date' in command and 'pbsnodes -a' in command
    # the queued job: qtime 14:55:55, the server's clock a minute later
    output = pbs_scrape(name, 'Fri Aug 29 14:57:00 2008')
    partitions, statuses, times = scheduler.parse_exporter_output(output, [job_id])
    assert partitions == [] and statuses[job_id].state is state
    assert (times[job_id].queued, times[job_id].walltime) == (queued, walltime)


# -- the service on loopback: lengths, idle sockets, connections, token --------------

HOSTS = [{'host': 'h', 'user': 'u', 'password': 'pw'}]


def start_service(**extra):
    """A real ExporterService on a free loopback port (no front-end is asked)."""
    from croupier_plugin.core.exporter import ExporterService
    config = dict({'listen': '127.0.0.1', 'port': 0, 'token': TOKEN, 'hosts': HOSTS}, **extra)
    return ExporterService(ExporterConfig.from_mapping(config)).start()


@pytest.fixture
def service():
    svc = start_service()
    yield svc
    svc.stop()


def raw_request(service, head, body=b'', wait=5.0):
    """Send ``head`` (and ``body``) without closing our side; the status line
    of the answer, or None when none came within ``wait`` seconds."""
    import socket
    port = service.httpd.server_address[1]
    with socket.create_connection(('127.0.0.1', port), timeout=wait) as sock:
        sock.sendall(head.encode() + b'\r\n' + body)
        try:
            answer = sock.recv(65536)
        except TimeoutError:
            return None
    return answer.split(b'\r\n', 1)[0].decode()


def put_head(length_header, token=TOKEN):
    return (f'PUT /api/v1/registrations/dep/hpc HTTP/1.1\r\nHost: x\r\n'
            f'Authorization: Bearer {token}\r\nContent-Type: application/json\r\n'
            f'{length_header}')


@pytest.mark.parametrize('length_header,status', [
    ('Content-Length: -1\r\n', '400'),
    ('Content-Length: abc\r\n', '400'),
    ('Content-Length: 1e3\r\n', '400'),
    (f'Content-Length: {2 << 20}\r\n', '413'),
    ('', '411'),
    ('Transfer-Encoding: chunked\r\n', '411'),
])
def test_bad_content_lengths_are_refused_at_once(service, length_header, status):
    # the client keeps its side open: a server reading "to the end" would wait for ever
    line = raw_request(service, put_head(length_header))
    assert line is not None and line.split()[1] == status, line


def test_a_body_shorter_than_announced_is_refused(service):
    import socket
    port = service.httpd.server_address[1]
    with socket.create_connection(('127.0.0.1', port), timeout=5) as sock:
        sock.sendall(put_head('Content-Length: 100\r\n').encode() + b'\r\n{"a": 1}')
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(65536).split(b'\r\n', 1)[0].split()[1] == b'400'


def test_idle_and_trickling_connections_are_closed(monkeypatch):
    import socket
    import time
    from croupier_plugin.core.exporter import server
    monkeypatch.setattr(server._Handler, 'timeout', 1.0)
    monkeypatch.setattr(server, 'REQUEST_READ_SECONDS', 2.5)
    svc = start_service()
    try:
        port = svc.httpd.server_address[1]
        idle = socket.create_connection(('127.0.0.1', port), timeout=10)
        start = time.monotonic()
        assert idle.recv(100) == b''               # closed by the server
        assert time.monotonic() - start < 3
        # a byte every 0.5 s never idles 1 s, yet the whole request must come in 2.5 s
        trickle = socket.create_connection(('127.0.0.1', port), timeout=10)
        start = time.monotonic()
        closed = False
        for char in 'GET /metrics HTTP/1.1\r\nX-Slow: ' + 'a' * 40:
            try:
                trickle.sendall(char.encode())
                time.sleep(0.5)
                trickle.setblocking(False)
                try:
                    if trickle.recv(100) == b'':
                        closed = True
                        break
                except BlockingIOError:
                    pass
                finally:
                    trickle.setblocking(True)
            except OSError:
                closed = True
                break
        assert closed and time.monotonic() - start < 5
        idle.close()
        trickle.close()
    finally:
        svc.stop()


def test_connections_beyond_the_bound_are_answered_503_without_a_thread(monkeypatch):
    import socket
    import threading
    import requests
    from croupier_plugin.core.exporter import server
    monkeypatch.setattr(server, 'MAX_CONNECTIONS', 4)
    svc = start_service()
    port = svc.httpd.server_address[1]
    before = threading.active_count()
    held = []
    try:
        for _ in range(50):
            held.append(socket.create_connection(('127.0.0.1', port), timeout=5))
        time.sleep(0.5)
        # each served connection costs its thread and its request watchdog
        assert threading.active_count() - before <= 4 * 2
        answer = requests.get(f'http://127.0.0.1:{port}/healthz', timeout=5)
        assert answer.status_code == 503
        assert held[-1].recv(100).startswith(b'HTTP/1.0 503')
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 5
    while requests.get(f'http://127.0.0.1:{port}/healthz', timeout=5).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    svc.stop()


def test_the_registration_api_asks_for_the_token(service, caplog):
    import requests
    from croupier_plugin.core.exporter import ExporterClient, ExporterError
    body = {'scheduler': 'SLURM', 'host': 'h', 'user': 'u', 'port': 22}
    owner = ExporterClient(service.address, token=TOKEN)
    owner.register('dep', 'hpc', body)
    url = service.address + '/api/v1/registrations'
    with caplog.at_level('INFO', logger='croupier.exporter'):
        for headers in ({}, {'Authorization': 'Bearer wrong-token-wrong-token'},
                        {'Authorization': f'Basic {TOKEN}'}):
            assert requests.delete(url + '/dep', headers=headers, timeout=5).status_code == 401
            assert requests.put(url + '/dep/other', json=body, headers=headers,
                                timeout=5).status_code == 401
            assert requests.post(url + '/dep/hpc/jobs', headers=headers, timeout=5,
                                 json={'jobs': [{'name': 'a', 'job_id': '1'}]}).status_code == 401
            assert requests.get(url, headers=headers, timeout=5).status_code == 401
    assert [r['interface'] for r in owner.registrations()] == ['hpc']
    assert [r.jobs for r in service.registry.registrations()] == [{}]
    assert TOKEN not in caplog.text and 'refused, no valid token' in caplog.text
    # Prometheus needs no token
    assert requests.get(service.address + '/metrics', timeout=10).status_code == 200
    assert requests.get(service.address + '/healthz', timeout=5).status_code == 200
    with pytest.raises(ExporterError, match=r'\(401\).*the plugin sent no token: give the '
                                            r'HPCExporter a token or token_file, or set '
                                            r'CROUPIER_EXPORTER_TOKEN'):
        ExporterClient(service.address).unregister('dep')
    with pytest.raises(ExporterError, match="is not the exporter's") as info:
        ExporterClient(service.address, token='x' * 20).check()
    assert 'x' * 20 not in str(info.value)
    assert owner.unregister('dep') == {'unregistered': 1}


def test_a_rotated_token_file_is_read_again(tmp_path):
    from croupier_plugin.core.exporter import ExporterClient, ExporterError
    path = tmp_path / 'token'
    path.write_text(TOKEN + '\n')
    svc = start_service(token=None, token_file=str(path))
    try:
        ExporterClient(svc.address, token=TOKEN).registrations()
        path.write_text('a-new-token-after-rotation\n')
        with pytest.raises(ExporterError, match=r'\(401\)'):
            ExporterClient(svc.address, token=TOKEN).registrations()
        assert ExporterClient(svc.address, token='a-new-token-after-rotation')\
            .registrations() == []
        # a token file gone bad refuses every request, and the service goes on
        path.write_text('short\n')
        with pytest.raises(ExporterError, match=r'\(401\)'):
            ExporterClient(svc.address, token='a-new-token-after-rotation').registrations()
        path.write_text('a-third-token-after-repair\n')
        assert ExporterClient(svc.address, token='a-third-token-after-repair')\
            .registrations() == []
    finally:
        svc.stop()


def test_the_plugin_takes_the_token_from_the_node_its_file_or_the_environment(tmp_path,
                                                                            monkeypatch):
    from croupier_plugin.core.exporter import client_from_properties
    monkeypatch.delenv('CROUPIER_EXPORTER_TOKEN', raising=False)
    address = {'address': 'http://127.0.0.1:9110'}
    assert client_from_properties(address)._token is None
    monkeypatch.setenv('CROUPIER_EXPORTER_TOKEN', 'from-the-environment')
    assert client_from_properties(address)._token == 'from-the-environment'
    path = tmp_path / 'token'
    path.write_text('from-the-file\n')
    assert client_from_properties(dict(address, token_file=str(path)))._token == 'from-the-file'
    client = client_from_properties(dict(address, token='from-the-node', token_file=str(path)))
    assert client._token == 'from-the-node' and 'from-the-node' not in repr(client)
    with pytest.raises(ConfigError, match=f"node 'exp', property 'token_file' = "
                                          f"'{tmp_path}/missing': cannot be read"):
        client_from_properties(dict(address, token_file=str(tmp_path / 'missing')), 'exp')


@pytest.mark.parametrize('timeout', [float('nan'), float('inf'), -1, 0, 1e9, '10', True])
def test_hpc_exporter_timeout_must_be_a_finite_number_of_seconds(timeout):
    from croupier_plugin.core.exporter import client_from_properties
    with pytest.raises(ConfigError, match=f"node 'exp', property 'timeout' = "
                                          f"{re.escape(repr(timeout))}: must be a finite"):
        client_from_properties({'address': 'http://127.0.0.1:9110', 'timeout': timeout}, 'exp')


@pytest.mark.parametrize('data,named', [
    ({'cache_seconds': float('nan')}, "'cache_seconds' = nan: must be a finite number"),
    ({'command_timeout': float('inf')}, "'command_timeout' = inf: must be a finite number"),
    ({'command_timeout': 0}, "'command_timeout' = 0: must be a finite number"),
    ({'scrape_timeout': float('nan')}, "'scrape_timeout' = nan"),
    ({'scrape_timeout': 1000}, "'scrape_timeout' = 1000"),
    ({'hosts': [dict(HOSTS[0], connect_timeout=float('nan'))]},
     r"'hosts\[0\].connect_timeout' = nan"),
    ({'hosts': [dict(HOSTS[0], reconnect_timeout=float('inf'))]},
     r"'hosts\[0\].reconnect_timeout' = inf"),
    ({'vault': {'address': 'http://v:8200', 'user': 'alice', 'jwt': 'a.b.c',
                'timeout': float('nan')}}, "'vault.timeout' = nan"),
    ({'token': None}, "'token' = None: is required"),
    ({'token': 'short'}, "'token' = '<hidden>': must be at least 16"),
    ({'token': TOKEN, 'token_file': '/etc/t'}, "'token_file' = '/etc/t': give token or"),
    ({'token': None, 'token_file': '/nonexistent/t'}, "'token_file' = '/nonexistent/t': "
                                                      "cannot be read"),
])
def test_exporter_numbers_and_token_are_checked_by_name(data, named):
    config = dict({'hosts': HOSTS, 'token': TOKEN}, **data)
    with pytest.raises(ConfigError, match=named) as info:
        ExporterConfig.from_mapping(config)
    assert TOKEN not in str(info.value) and 'short' not in str(info.value)


def test_a_nan_timeout_in_the_configuration_file_is_refused_by_name(tmp_path, capsys):
    from croupier_plugin.cli import main
    path = tmp_path / 'exporter.yaml'
    path.write_text(f'token: {TOKEN}\ncommand_timeout: .nan\nhosts: [{{host: h, user: u, '
                    f'password: pw}}]\n')
    assert main(['exporter', '--config', str(path)]) == 2
    err = capsys.readouterr().err
    assert "property 'command_timeout' = nan: must be a finite number" in err
    assert 'Traceback' not in err


@pytest.mark.parametrize('content,problem', [
    ('{"not": "a list"', 'not JSON'),
    ('{"not": "a list"}', 'not a JSON list'),
    ('[{"interface": "hpc", "scheduler": "SLURM", "host": "h", "user": "u"}]',
     "entry 0: field 'deployment' is missing"),
    ('[{"deployment": "d", "interface": "hpc", "scheduler": "SLURM", "host": "h", '
     '"user": "u", "jobs": {"a": "1; rm -rf ~"}}]', 'entry 0: not a job id'),
    ('[7]', 'entry 0: not a JSON object'),
])
def test_a_corrupted_state_file_is_refused_by_name(tmp_path, capsys, content, problem):
    from croupier_plugin.cli import main
    state = tmp_path / 'registrations.json'
    state.write_text(content)
    path = tmp_path / 'exporter.yaml'
    path.write_text(f'token: {TOKEN}\nport: 0\nstate_file: {state}\n'
                    f'hosts: [{{host: h, user: u, password: pw}}]\n')
    assert main(['exporter', '--config', str(path)]) == 2
    err = capsys.readouterr().err
    assert f"property 'state_file' = '{state}': " in err and problem in err, err
    assert 'Traceback' not in err


def test_a_state_file_that_is_a_folder_is_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match=f"'state_file' = '{tmp_path}': is a directory"):
        ExporterConfig.from_mapping({'token': TOKEN, 'hosts': HOSTS,
                                     'state_file': str(tmp_path)})


def test_listen_on_ipv6_loopback_and_bad_listen_settings_are_named():
    import requests
    from croupier_plugin.core.exporter import ExporterService
    svc = start_service(listen='::1')
    try:
        assert svc.address.startswith('http://[::1]:')
        assert requests.get(svc.address + '/healthz', timeout=5).text == 'ok\n'
    finally:
        svc.stop()
    config = ExporterConfig.from_mapping({'token': TOKEN, 'hosts': HOSTS,
                                          'listen': 'no-such-host.invalid', 'port': 0})
    with pytest.raises(ConfigError, match="'listen' = 'no-such-host.invalid': is not an "
                                          "address of this host"):
        ExporterService(config)
    config.listen = '192.0.2.1'          # an address this host does not have
    with pytest.raises(ConfigError, match="'listen' = '192.0.2.1': cannot be listened on"):
        ExporterService(config)
    busy = start_service()
    try:
        config.listen, config.port = '127.0.0.1', busy.httpd.server_address[1]
        with pytest.raises(ConfigError, match=f"'port' = {config.port}: cannot be listened on"):
            ExporterService(config)
    finally:
        busy.stop()


def test_a_changed_secret_file_is_read_again_and_a_bad_one_refused(tmp_path):
    from croupier_plugin.core.exporter.config import SecretFile, _check_jwt
    path = tmp_path / 'jwt'
    path.write_text('a.b.c\n')
    secret = SecretFile('vault.jwt_file', str(path), check=_check_jwt)
    assert secret.value() == 'a.b.c' and 'a.b.c' not in repr(secret)
    path.write_text('d.ee.f\n')
    assert secret.value() == 'd.ee.f'
    path.write_text('no-jwt-here\n')
    with pytest.raises(ConfigError, match="'vault.jwt_file' = '<hidden>': must hold a JSON"):
        secret.value()


def test_the_originals_monitoring_options_are_registered_and_checked():
    """monitoring_options.deployment_label and only_jobs go into the registration; the
    exporter refuses a label or a switch of the wrong shape, naming the field."""
    settings = InfrastructureSettings.from_properties('hpc', {
        'config': {'infrastructure_interface': 'SLURM'},
        'credentials': {'host': 'login.example.org', 'user': 'alice', 'password': 'pw'},
        'monitoring_options': {'deployment_label': 'covid19', 'only_jobs': True}})
    payload = registration_payload(settings)
    assert (payload['deployment_label'], payload['only_jobs']) == ('covid19', True)
    reg = parse_registration('dep', 'hpc', payload)
    assert (reg.deployment_name, reg.only_jobs) == ('covid19', True)
    assert parse_registration('dep', 'hpc', dict(payload, deployment_label='')) \
        .deployment_name == 'dep'
    with pytest.raises(RegistrationError, match="field 'deployment_label' = 'a\"b'"):
        parse_registration('dep', 'hpc', dict(payload, deployment_label='a"b'))
    with pytest.raises(RegistrationError, match="field 'only_jobs' = 'yes'"):
        parse_registration('dep', 'hpc', dict(payload, only_jobs='yes'))
