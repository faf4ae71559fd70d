"""The private store of named deployments replaces its files whole: a reader (the
portal, `croupier status`) that opened a file before a write still reads the whole
earlier document, never one cut short, and every file stays its owner's only."""

from __future__ import annotations

import json
import os
import stat

import pytest

from croupier_plugin import runner
from croupier_plugin.core.files import TEMP_PREFIX


@pytest.fixture
def storage(tmp_path, monkeypatch):
    """A fresh store under tmp_path holding one deployment, 'demo'."""
    monkeypatch.setenv('CROUPIER_HOME', str(tmp_path))
    store = runner.file_storage()
    store.store_deployment('demo', {'id': 'demo', 'nodes': {}, 'inputs': {'password': 'pw'}})
    return store


def modes(root: str) -> dict:
    """Every file under ``root`` and its permission bits."""
    return {os.path.relpath(os.path.join(base, f), root):
            stat.S_IMODE(os.stat(os.path.join(base, f)).st_mode)
            for base, _, files in os.walk(root) for f in files}


def test_a_reader_never_meets_a_file_cut_short(storage):
    from cloudify_rest_client.node_instances import NodeInstance
    folder = os.path.join(runner.store_root(), 'deployments', 'demo')
    big = [{'id': f'e{n}', 'status': 'pending', 'note': 'x' * 200} for n in range(300)]
    storage.store_executions('demo', big)
    instance = NodeInstance({'id': 'job_1', 'node_id': 'job', 'runtime_properties':
                             {'state': 'RUNNING', 'pad': 'y' * 5000}, 'version': 1})
    storage.store_instance('demo', instance)
    files = {'executions.json': lambda: storage.store_executions('demo', big[:1]),
             'deployment.json': lambda: storage.set_deployment_attributes('demo', nodes={'a': {}}),
             os.path.join('node-instances', 'job_1.json'): lambda: storage.store_instance(
                 'demo', NodeInstance(dict(instance, runtime_properties={'state': 'DONE'})))}
    for name, write in files.items():
        path = os.path.join(folder, name)
        with open(path) as reader:
            before = os.stat(path).st_ino
            write()
            # opened before the write: the earlier document, whole
            earlier = json.load(reader)
        assert os.stat(path).st_ino != before, name
        with open(path) as fh:
            later = json.load(fh)
        assert later != earlier, name
    assert [e['id'] for e in storage.get_executions('demo')] == ['e0']
    assert storage.get_deployment('demo')['nodes'] == {'a': {}}
    # no temporary file is left, none is taken for a node instance, all are private
    assert [i.id for i in storage.get_node_instances('demo')] == ['job_1']
    found = modes(runner.store_root())
    assert not [f for f in found if os.path.basename(f).startswith(TEMP_PREFIX)], found
    assert {f: m for f, m in found.items() if m & 0o077} == {}


def test_the_payload_is_replaced_whole_and_private(storage):
    with storage.payload() as data:
        data['key'] = 'value'
    path = os.path.join(runner.store_root(), 'payload')
    with open(path) as reader:
        with storage.payload() as data:
            data['key'] = 'other'
        assert json.load(reader) == {'key': 'value'}
    with storage.payload() as data:
        assert data == {'key': 'other'}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_the_portals_own_files_are_replaced_whole_and_private(tmp_path):
    from croupier_plugin.web import service
    path = str(tmp_path / 'meta.json')
    service.write_private(path, json.dumps({'application': 'first'}))
    with open(path) as reader:
        service.write_private(path, json.dumps({'application': 'second'}))
        assert json.load(reader) == {'application': 'first'}
    with open(path) as fh:
        assert json.load(fh) == {'application': 'second'}
    assert modes(str(tmp_path)) == {'meta.json': 0o600}
