"""The portal's REST API against a real running `croupier serve`: the token, the
applications, instances on a local SHELL interface and on the bed's SLURM, and the
same named deployments as the `croupier` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from portal_bed import Portal, zip_folder  # noqa: E402


def croupier(portal: Portal, *args: str) -> subprocess.CompletedProcess:
    """The `croupier` command on the portal's store."""
    return subprocess.run([sys.executable, '-m', 'croupier_plugin.cli', *args],
                          capture_output=True, text=True, env=portal.env, timeout=120)


def everything_stored(home: str) -> str:
    """Every file written for the portal's pages (metadata, worker output, and the
    deployments' recorded logs and events)."""
    texts = []
    paths = [os.path.join(base, f) for base, _, files in os.walk(os.path.join(home, 'portal'))
             for f in files]
    deployments = os.path.join(home, 'deployments', 'deployments')
    paths += [os.path.join(deployments, name, 'events.jsonl')
              for name in (os.listdir(deployments) if os.path.isdir(deployments) else [])]
    for path in paths:
        if os.path.exists(path):
            with open(path, encoding='utf-8', errors='replace') as fh:
                texts.append(fh.read())
    return '\n'.join(texts)


def with_shell_app(portal: Portal) -> str:
    """The shell-app's blueprint in the portal's catalogue (uploaded once a portal)."""
    if not os.path.isdir(os.path.join(portal.catalogue, 'shell-app')):
        assert portal.upload('shell-app').status_code == 201
    return os.path.join(portal.catalogue, 'shell-app', 'blueprint.yaml')


# ------------------------------------------------------------------ access


def test_every_call_needs_the_token(shared_portal):
    portal = shared_portal
    assert portal.url.startswith('http://127.0.0.1:')
    for path in ('/api/v1/applications', '/api/v1/instances', '/api/v1/openapi.json'):
        assert portal.get(path, token=None).status_code == 401
        assert portal.get(path, token='x' * 43).status_code == 401
        assert portal.get(path).status_code == 200
    page = requests.get(portal.url + '/', timeout=10)
    assert page.status_code == 401 and 'access token' in page.text
    assert portal.token not in page.text
    # a first visit with ?token= sets a cookie and drops the token from the address
    session = requests.Session()
    first = session.get(f'{portal.url}/applications?token={portal.token}', timeout=10,
                        allow_redirects=False)
    assert first.status_code == 303 and first.headers['location'] == '/applications'
    assert 'httponly' in first.headers['set-cookie'].lower()
    assert session.get(portal.url + '/applications', timeout=10).status_code == 200
    assert session.get(portal.url + '/static/portal.js', timeout=10).status_code == 200
    assert requests.get(portal.url + '/static/portal.js', timeout=10).status_code == 401


def test_listening_beyond_loopback_needs_an_explicit_option(tmp_path):
    refused = subprocess.run([sys.executable, '-m', 'croupier_plugin.cli', 'serve',
                              '--host', '0.0.0.0', '--port', '0'], capture_output=True,
                             text=True, timeout=60,
                             env=dict(os.environ, CROUPIER_HOME=str(tmp_path)))
    assert refused.returncode == 2
    assert '--host 0.0.0.0' in refused.stderr and '--allow-remote' in refused.stderr
    assert 'Traceback' not in refused.stderr
    allowed = Portal(str(tmp_path)).start('--host', '0.0.0.0', '--allow-remote')
    try:
        assert 'WARNING: listening on 0.0.0.0' in allowed.output()
        assert allowed.get('/api/v1/applications').status_code == 200
    finally:
        allowed.stop()


@pytest.mark.parametrize('options, said', [
    (['--port', '99999'], '--port 99999: a port number from 0 to 65535'),
    (['--port', '-1'], '--port -1: a port number'),
    (['--catalogue', '/etc/hostname'], '--catalogue /etc/hostname: not a folder'),
    (['--host', 'nosuch.invalid', '--allow-remote'], '--host nosuch.invalid --port 8080: '
                                                     'cannot listen there'),
])
def test_bad_serve_options_are_refused_clearly(tmp_path, options, said):
    refused = subprocess.run([sys.executable, '-m', 'croupier_plugin.cli', 'serve', *options],
                             capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, CROUPIER_HOME=str(tmp_path)))
    assert refused.returncode == 2 and said in refused.stderr
    assert 'Traceback' not in refused.stderr and 'open http' not in refused.stdout


def test_openapi_documents_the_api(shared_portal):
    portal = shared_portal
    spec = portal.get('/api/v1/openapi.json').json()
    paths = spec['paths']
    for path, method in (('/api/v1/applications', 'get'), ('/api/v1/applications', 'post'),
                         ('/api/v1/instances', 'post'), ('/api/v1/instances/{name}', 'get'),
                         ('/api/v1/instances/{name}', 'delete'),
                         ('/api/v1/instances/{name}/executions', 'post'),
                         ('/api/v1/executions/{execution_id}/cancel', 'post'),
                         ('/api/v1/instances/{name}/logs', 'get')):
        assert method in paths[path], (path, method)


# ------------------------------------------------------------------ applications


def test_upload_validates_the_package(portal):
    assert portal.upload('shell-app').status_code == 201
    listed = portal.get('/api/v1/applications').json()
    assert [a['name'] for a in listed] == ['shell-app']
    app = listed[0]
    assert 'greeting' in app['description']
    assert {'name': 'api_token', 'secret': True, 'required': True} .items() <= \
        next(i for i in app['inputs'] if i['name'] == 'api_token').items()
    assert app['graph']['edges'] == [['greet', 'count']]
    # a second upload under the same name is refused
    again = portal.upload('shell-app')
    assert again.status_code == 409 and 'exists' in again.json()['error']
    # a zip holding the folder itself (as zipping a folder usually gives)
    nested = portal.post('/api/v1/applications', data={'name': 'nested'},
                         files={'package': ('x.zip', zip_folder('shell-app', 'shell-app'))})
    assert nested.status_code == 201, nested.text
    # not a zip; a path out of the folder; a blueprint the DSL parser refuses
    bad = portal.post('/api/v1/applications', files={'package': ('junk.zip', b'no zip')})
    assert bad.status_code == 400 and 'not a zip file' in bad.json()['error']
    import io
    import zipfile
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as archive:
        archive.writestr('../escape.yaml', 'x: 1')
    escaping = portal.post('/api/v1/applications',
                           files={'package': ('escape.zip', buffer.getvalue())})
    assert escaping.status_code == 400 and 'outside' in escaping.json()['error']
    assert not os.path.exists(os.path.join(portal.catalogue, '..', 'escape.yaml'))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as archive:
        archive.writestr('blueprint.yaml', 'tosca_definitions_version: cloudify_dsl_1_4\n'
                         'node_templates:\n  n:\n    type: no.such.Type\n')
    broken = portal.post('/api/v1/applications',
                         files={'package': ('broken.zip', buffer.getvalue())})
    assert broken.status_code == 400
    assert 'no.such.Type' in broken.json()['error'] and 'line' in broken.json()['error']
    assert sorted(os.listdir(portal.catalogue)) == ['nested', 'shell-app']


# ------------------------------------------------------------------ a SHELL instance


def test_shell_instance_from_creation_to_uninstall(portal):
    secret = 'tok-' + uuid.uuid4().hex
    assert portal.upload('shell-app').status_code == 201
    # refused before anything is created: the field at fault is named
    bad = portal.post('/api/v1/instances', json={'application': 'shell-app', 'name': 'one',
                                                 'inputs': {'pause': 900,
                                                            'api_token': secret}})
    assert bad.status_code == 400
    assert 'pause' in bad.json()['fields'] and secret not in bad.text
    missing = portal.post('/api/v1/instances', json={'application': 'shell-app',
                                                     'name': 'one', 'inputs': {}})
    assert missing.status_code == 400 and 'api_token' in missing.json()['fields']
    badname = portal.post('/api/v1/instances', json={'application': 'shell-app',
                                                     'name': '../x', 'inputs': {}})
    assert badname.status_code == 400 and 'name' in badname.json()['fields']
    assert portal.get('/api/v1/instances').json() == []

    created = portal.post('/api/v1/instances', json={
        'application': 'shell-app', 'name': 'one',
        'inputs': {'api_token': secret, 'greeting': 'three little words'}})
    assert created.status_code == 202, created.text
    view = portal.wait_idle('one')
    assert view['executions'][0]['workflow'] == 'install'
    assert view['executions'][0]['status'] == 'completed'
    assert view['inputs'] == {'api_token': '<hidden>', 'greeting': 'three little words',
                             'pause': 1}

    started = portal.post('/api/v1/instances/one/executions', json={'workflow': 'run_jobs'})
    assert started.status_code == 202, started.text
    execution = started.json()['id']
    view = portal.wait_idle('one')
    assert view['executions'][0]['id'] == execution
    assert view['executions'][0]['status'] == 'completed'
    jobs = {j['node']: j for j in view['jobs']}
    assert {j['state'] for j in jobs.values()} == {'COMPLETED'}
    assert jobs['count']['submitted_at'] >= jobs['greet']['ended_at']
    assert jobs['count']['running_seconds'] >= 1.0       # its pause
    assert jobs['greet']['exit_code'] == 0 and jobs['greet']['attempts'] == 1

    # the job's output: the secret it printed is hidden
    out = portal.get(f"/api/v1/instances/one/jobs/{jobs['greet']['name']}/output",
                     params={'stream': 'stdout'}).json()['text']
    assert 'three little words' in out and 'token given: <hidden>' in out
    assert secret not in out
    count = portal.get(f"/api/v1/instances/one/jobs/{jobs['count']['name']}/output").json()
    assert count['text'].strip() == '3'

    # seen by the croupier command too: the same named deployment
    status = croupier(portal, 'status', 'one')
    assert status.returncode == 0 and status.stdout.count('COMPLETED') == 2

    # logs: paged, filtered by level and event type
    logs = portal.get('/api/v1/instances/one/logs', params={'limit': 5}).json()
    assert logs['total'] > 5 and len(logs['items']) == 5
    assert 'workflow_started' in logs['event_types']
    started_events = portal.get('/api/v1/instances/one/logs',
                                params={'event_type': 'workflow_started'}).json()
    assert {i['workflow'] for i in started_events['items']} == {'install', 'run_jobs'}
    page2 = portal.get('/api/v1/instances/one/logs', params={'limit': 5, 'offset': 5}).json()
    assert page2['items'] and page2['items'][0] != logs['items'][0]
    assert all(i['level'] == 'info' for i in portal.get(
        '/api/v1/instances/one/logs', params={'level': 'info', 'limit': 500}).json()['items'])

    dashboard = portal.get('/api/v1/instances').json()
    assert [(r['name'], r['application'], r['state']) for r in dashboard] == \
        [('one', 'shell-app', 'completed')]

    # no secret in any answer, page or stored portal file
    for path in ('/api/v1/instances/one', '/api/v1/instances', '/instances/one', '/',
                 '/api/v1/instances/one/logs?limit=500', '/applications/shell-app'):
        assert secret not in portal.get(path).text, path
    stored = everything_stored(portal.home)
    assert 'workflow_started' in stored and secret not in stored

    gone = portal.request('DELETE', '/api/v1/instances/one')
    assert gone.status_code == 202
    deadline = time.monotonic() + 60
    while portal.get('/api/v1/instances/one').status_code != 404:
        assert time.monotonic() < deadline, portal.get('/api/v1/instances/one').text
        time.sleep(0.3)
    assert croupier(portal, 'status', 'one').returncode == 2


def test_a_run_started_by_the_command_is_seen_in_the_portal(shared_portal):
    portal = shared_portal
    blueprint = with_shell_app(portal)
    assert croupier(portal, 'install', blueprint, 'cli', '-i', 'api_token=abcdefgh',
                    '-i', 'pause=0').returncode == 0
    view = portal.instance('cli')
    assert view['inputs']['api_token'] == '<hidden>' and view['application'] is None
    run = subprocess.Popen([sys.executable, '-m', 'croupier_plugin.cli', 'execute', 'cli'],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=portal.env)
    try:
        # while the command runs, the portal shows it running and refuses a second run
        portal.wait_for('cli', lambda v: v['running_execution'], 30, 'running')
        second = portal.post('/api/v1/instances/cli/executions', json={})
        assert second.status_code == 409
    finally:
        assert run.wait(60) == 0
    view = portal.wait_idle('cli')
    assert [j['state'] for j in view['jobs']] == ['COMPLETED', 'COMPLETED']
    assert view['executions'][0]['status'] == 'completed'
    install, run_jobs = view['executions'][1]['id'], view['executions'][0]['id']
    # the command's runs recorded their logs and events where the portal reads them:
    # paged, and filtered by event type, level and execution, as a portal run's are
    logs = portal.get('/api/v1/instances/cli/logs', params={'limit': 4}).json()
    assert logs['total'] > 8 and len(logs['items']) == 4
    assert {'log', 'workflow_started', 'task_succeeded'} <= set(logs['event_types'])
    page2 = portal.get('/api/v1/instances/cli/logs', params={'limit': 4, 'offset': 4}).json()
    assert page2['items'] and page2['items'][0] != logs['items'][0]
    started = portal.get('/api/v1/instances/cli/logs',
                         params={'event_type': 'workflow_started'}).json()['items']
    assert [(i['workflow'], i['execution_id']) for i in started] == \
        [('install', install), ('run_jobs', run_jobs)]
    mine = portal.get('/api/v1/instances/cli/logs',
                      params={'execution': run_jobs, 'level': 'info', 'limit': 500}).json()
    assert mine['items'] and all(i['execution_id'] == run_jobs and i['level'] == 'info'
                                 for i in mine['items'])
    assert any('run_jobs: all 2 jobs completed' in i['text'] for i in mine['items'])
    everything = portal.get('/api/v1/instances/cli/logs', params={'limit': 500}).text
    assert 'abcdefgh' not in everything
    # and the instance page lists them
    page = portal.get('/instances/cli', params={'event_type': 'workflow_started'}).text
    assert page.count('workflow_started') >= 2


def test_a_cancel_from_the_command_shows_cancelled_in_the_portal(shared_portal):
    portal = shared_portal
    blueprint = with_shell_app(portal)
    assert croupier(portal, 'install', blueprint, 'clistop', '-i', 'api_token=abcdefgh',
                    '-i', 'pause=300').returncode == 0
    run = subprocess.Popen([sys.executable, '-m', 'croupier_plugin.cli', 'execute', 'clistop'],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=portal.env)
    try:
        portal.wait_for('clistop', lambda v: any(j['node'] == 'count' and j['state'] ==
                                                 'RUNNING' for j in v['jobs']), 60, 'running')
        cancel = croupier(portal, 'cancel', 'clistop')
        assert cancel.returncode == 0, cancel.stderr
    finally:
        out, _ = run.communicate(timeout=60)
    assert run.returncode == 1 and 'run_jobs CANCELLED' in out
    view = portal.wait_idle('clistop', 30)
    execution = view['executions'][0]
    assert (execution['workflow'], execution['status']) == ('run_jobs', 'cancelled')
    assert view['state'] == 'cancelled'
    # the command reports the same status, and the same jobs in the same states
    status = croupier(portal, 'status', 'clistop', '--executions')
    assert status.returncode == 0, status.stderr
    jobs_table, executions_table = status.stdout.split('\n\n')
    rows = {line.split()[0]: line.split()[1:] for line in executions_table.splitlines()[2:]}
    assert rows[execution['id']][:2] == ['run_jobs', 'cancelled']
    assert rows[view['executions'][1]['id']][:2] == ['install', 'completed']
    states = {line.split()[0]: line.split()[3] for line in jobs_table.splitlines()[2:]}
    assert states == {j['name']: j['state'] for j in view['jobs']}
    assert set(states.values()) == {'COMPLETED', 'CANCELLED'}
    cancelled = portal.get('/api/v1/instances/clistop/logs',
                           params={'event_type': 'workflow_cancelled'}).json()['items']
    assert [i['execution_id'] for i in cancelled] == [execution['id']]
    dashboard = {r['name']: r for r in portal.get('/api/v1/instances').json()}
    assert dashboard['clistop']['state'] == 'cancelled'


def test_executions_survive_a_restart_of_the_server(tmp_path):
    first = Portal(str(tmp_path)).start()
    try:
        assert first.upload('shell-app').status_code == 201
        assert first.post('/api/v1/instances', json={
            'application': 'shell-app', 'name': 'long',
            'inputs': {'api_token': 'abcdefgh', 'pause': 300}}).status_code == 202
        first.wait_idle('long')
        execution = first.post('/api/v1/instances/long/executions', json={}).json()['id']
        first.wait_for('long', lambda v: any(j['node'] == 'count' and j['state'] == 'RUNNING'
                                             for j in v['jobs']), 30, 'running')
    finally:
        first.stop()
    assert first.proc.returncode is not None
    second = Portal(str(tmp_path)).start()
    try:
        # the worker kept going without the server that started it
        view = second.instance('long')
        assert view['running_execution'] == execution
        count = next(j for j in view['jobs'] if j['node'] == 'count')
        assert count['state'] == 'RUNNING'
        assert view['executions'][0]['status'] == 'started'
        # and the restarted server can still cancel it
        assert second.post(f'/api/v1/executions/{execution}/cancel').status_code == 202
        view = second.wait_idle('long', 60)
        assert view['executions'][0]['id'] == execution
        assert view['executions'][0]['status'] == 'cancelled'
        assert next(j for j in view['jobs'] if j['node'] == 'count')['state'] == 'CANCELLED'
    finally:
        second.stop()


def test_cancel_an_execution_and_rerun_what_failed(shared_portal):
    portal = shared_portal
    with_shell_app(portal)
    assert portal.post('/api/v1/instances', json={
        'application': 'shell-app', 'name': 'stop',
        'inputs': {'api_token': 'abcdefgh', 'pause': 300}}).status_code == 202
    portal.wait_idle('stop')
    execution = portal.post('/api/v1/instances/stop/executions', json={}).json()['id']
    portal.wait_for('stop', lambda v: any(j['node'] == 'count' and j['state'] == 'RUNNING'
                                          for j in v['jobs']), 30, 'running count')
    cancelled = portal.post(f'/api/v1/executions/{execution}/cancel')
    assert cancelled.status_code == 202, cancelled.text
    view = portal.wait_idle('stop', 30)
    assert view['executions'][0]['status'] == 'cancelled'
    jobs = {j['node']: j for j in view['jobs']}
    assert jobs['count']['state'] == 'CANCELLED' and jobs['greet']['state'] == 'COMPLETED'
    # its run ended when it was cancelled: the time shown no longer grows
    assert jobs['count']['ended_at'] is not None
    assert jobs['count']['running_seconds'] < time.time() - jobs['count']['started_at'] + 1
    assert portal.post(f'/api/v1/executions/{execution}/cancel').status_code == 409
    assert portal.post('/api/v1/executions/nope/cancel').status_code == 404
    # rerun only what failed: greet is not submitted again
    greet_id = jobs['greet']['job_id']
    rerun = portal.post('/api/v1/instances/stop/executions',
                        json={'workflow': 'run_jobs', 'parameters': {'rerun_failed': True}})
    assert rerun.status_code == 202, rerun.text
    portal.wait_for('stop', lambda v: any(j['node'] == 'count' and j['state'] == 'RUNNING'
                                          for j in v['jobs']), 30, 'running count again')
    view = portal.instance('stop')
    jobs = {j['node']: j for j in view['jobs']}
    assert jobs['greet']['job_id'] == greet_id and jobs['count']['attempts'] == 2
    assert portal.post(f"/api/v1/executions/{view['running_execution']}/cancel"
                       ).status_code == 202
    portal.wait_idle('stop', 30)
    unknown = portal.post('/api/v1/instances/stop/executions', json={'workflow': 'nope'})
    assert unknown.status_code == 400 and 'run_jobs' in unknown.json()['error']


# ------------------------------------------------------------------ on the bed's SLURM


def test_slurm_instance_runs_on_the_bed(shared_portal, bed_inputs):
    portal = shared_portal
    assert portal.upload('slurm-app').status_code == 201
    inputs = dict(bed_inputs, fail=True, work_seconds=1)
    created = portal.post('/api/v1/instances', json={'application': 'slurm-app',
                                                     'name': 'slurm', 'inputs': inputs})
    assert created.status_code == 202, created.text
    view = portal.wait_idle('slurm', 60)
    assert view['executions'][0]['status'] == 'completed', view
    execution = portal.post('/api/v1/instances/slurm/executions', json={}).json()['id']
    view = portal.wait_idle('slurm', 90)
    assert view['executions'][0]['id'] == execution
    assert view['executions'][0]['status'] == 'failed'
    error = view['executions'][0]['error']
    assert "job 'check_" in error and 'exit code 3' in error and 'input deck is corrupt' in error
    jobs = {j['node']: j for j in view['jobs']}
    assert jobs['hello']['state'] == 'COMPLETED' and jobs['check']['state'] == 'FAILED'
    assert jobs['hello']['job_id'].isdigit() and jobs['hello']['infrastructure'] == 'hpc'
    hello = portal.get(f"/api/v1/instances/slurm/jobs/{jobs['hello']['name']}/output").json()
    assert hello['text'].startswith('hello from ')
    stderr = portal.get(f"/api/v1/instances/slurm/jobs/{jobs['check']['name']}/output",
                        params={'stream': 'stderr'}).json()
    assert 'input deck is corrupt' in stderr['text']
    assert json.dumps(view).count(bed_inputs['hpc_private_key_file']) == 1   # a path, shown


def test_the_worker_announces_its_execution_or_why_it_did_not_start(shared_portal):
    portal = shared_portal
    blueprint = with_shell_app(portal)
    assert croupier(portal, 'install', blueprint, 'announce', '-i', 'api_token=abcdefgh',
                    '-i', 'pause=0').returncode == 0
    # a parameter run_jobs does not declare: the worker ends before any execution
    refused = portal.post('/api/v1/instances/announce/executions',
                          json={'workflow': 'run_jobs', 'parameters': {'no_such_thing': 1}})
    assert refused.status_code == 500 and 'no_such_thing' in refused.json()['error']
    assert 'did not start' in refused.json()['error']
    assert [e['workflow'] for e in portal.instance('announce')['executions']] == ['install']
    # a run that starts: the answer names the execution the worker stored
    started = portal.post('/api/v1/instances/announce/executions', json={})
    assert started.status_code == 202, started.text
    view = portal.wait_idle('announce')
    assert view['executions'][0]['id'] == started.json()['id']
    assert view['executions'][0]['status'] == 'completed'
