"""CKANAPI transfers against the bed's real CKAN (2.11, tests/bed/bed.sh start-ckan):
a job's file published as a resource of a dataset, and a resource fetched into a
file on the bed's SSH host, through CKAN's Action API."""

import hashlib
import io
import shlex
import uuid

import ckanapi
import pytest
import requests

from croupier_plugin.core.ckan import CkanCatalogue, CkanResource
from croupier_plugin.core.data import DataInfrastructure, DataSource, Transfer, TransferError
from croupier_plugin.core.transport import SshSettings

pytestmark = pytest.mark.bed


@pytest.fixture
def store(bed):
    """The bed's SSH host as a file store."""
    ssh = SshSettings(host=bed['host'], port=bed['port'], user=bed['user'],
                      private_key_file=bed['keys']['ed25519'], known_hosts=bed['known_hosts'],
                      reconnect_timeout=20)
    return DataInfrastructure('store', bed['host'], ssh=ssh)


@pytest.fixture
def dataset_name():
    """A dataset name no other test uses."""
    return f'croupier-{uuid.uuid4().hex[:10]}'


def catalogue(ckan_bed, name, token='use-the-bed', **info):
    """The bed's CKAN as a CKAN_dataset node would give it."""
    props = {'endpoint': ckan_bed.url, 'dataset_info': {'name': name, **info}}
    if token:
        key = ckan_bed.token if token == 'use-the-bed' else token
        props['credentials'] = {'auth-header': key}
    return CkanCatalogue.from_catalogue_properties('cat', props)


def resource(cat, **fields):
    return CkanResource.from_resource_properties('res', {'resource': fields}, cat)


def remote_sha(ssh, path):
    return ssh.run(f'sha256sum -- {shlex.quote(path)}').stdout.split()[0]


def test_publish_then_fetch_round_trip(ckan_bed, store, ssh, workdir, dataset_name):
    """A file published to a new dataset (created from dataset_info), published again
    (the resource replaced, not doubled), then fetched back byte for byte."""
    ssh.run(f'head -c 300000 /dev/urandom > {workdir}/out.bin')
    first_sha = remote_sha(ssh, f'{workdir}/out.bin')
    cat = catalogue(ckan_bed, dataset_name, title='Croupier test', tags=['croupier', 'bed'])
    res = resource(cat, name='out.bin', format='BIN', description='a job output')
    out = DataSource('out', 'file', f'{workdir}/out.bin', store)
    publish = Transfer('publish', 'CKANAPI', out, res)
    publish.check()
    done = publish.run()
    assert 'created' in done and dataset_name in done

    admin = ckanapi.RemoteCKAN(ckan_bed.url, apikey=ckan_bed.token)
    dataset = admin.action.package_show(id=dataset_name)
    assert dataset['title'] == 'Croupier test'
    assert sorted(t['name'] for t in dataset['tags']) == ['bed', 'croupier']
    [record] = dataset['resources']
    assert (record['name'], record['format'], record['size']) == ('out.bin', 'BIN', 300000)
    served = requests.get(record['url'], headers={'Authorization': ckan_bed.token}, timeout=30)
    assert hashlib.sha256(served.content).hexdigest() == first_sha

    # a second run publishes the new output over the old one
    ssh.run(f'head -c 1000 /dev/urandom > {workdir}/out.bin')
    second_sha = remote_sha(ssh, f'{workdir}/out.bin')
    publish.forget()
    assert 'replaced' in publish.run()
    [record] = admin.action.package_show(id=dataset_name)['resources']
    assert record['size'] == 1000

    # fetched into a folder: the file takes the resource's file name
    back = DataSource('back', 'file', f'{workdir}/fetched/', store)
    fetch = Transfer('fetch', 'CKANAPI', resource(cat, name='out.bin'), back)
    fetch.check()
    assert '1000 bytes' in fetch.run()
    assert remote_sha(ssh, f'{workdir}/fetched/out.bin') == second_sha


def test_a_refused_token_fails_the_transfer_and_is_never_shown(ckan_bed, store, ssh, workdir,
                                                                 dataset_name):
    ssh.run(f'echo data > {workdir}/a.txt')
    wrong = 'not-a-real-token-' + uuid.uuid4().hex
    cat = catalogue(ckan_bed, dataset_name, token=wrong)
    assert wrong not in repr(cat)
    publish = Transfer('publish', 'CKANAPI', DataSource('a', 'file', f'{workdir}/a.txt', store),
                       resource(cat, name='a.txt'))
    with pytest.raises(TransferError) as failure:
        publish.run()
    message = str(failure.value)
    assert "CKANAPI transfer 'publish'" in message
    assert 'refused access' in message
    assert wrong not in message
    # nothing was created
    with pytest.raises(ckanapi.NotFound):
        ckanapi.RemoteCKAN(ckan_bed.url, apikey=ckan_bed.token).action.package_show(
            id=dataset_name)


def test_fetching_a_missing_resource_names_the_ones_there(ckan_bed, store, workdir,
                                                           dataset_name):
    admin = ckanapi.RemoteCKAN(ckan_bed.url, apikey=ckan_bed.token)
    dataset = admin.action.package_create(name=dataset_name)
    admin.action.resource_create(package_id=dataset['id'], name='present.csv',
                                 url='http://127.0.0.1:9/present.csv')
    cat = catalogue(ckan_bed, dataset_name, token='')
    fetch = Transfer('fetch', 'CKANAPI', resource(cat, name='absent.csv'),
                     DataSource('in', 'file', f'{workdir}/in.csv', store))
    with pytest.raises(TransferError, match=r"has no resource 'absent.csv' \(it has: "
                                            r"'present.csv'\)"):
        fetch.run()


@pytest.fixture
def other_server():
    """A real HTTP server on loopback, apart from CKAN, serving one text file and
    recording the headers of every request."""
    import http.server
    import threading
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(dict(self.headers))
            body = b'linked data\n'
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}', seen
    httpd.shutdown()
    httpd.server_close()


def test_a_linked_resource_elsewhere_is_fetched_without_the_token(ckan_bed, store, ssh, workdir,
                                                                    dataset_name, other_server):
    """A resource whose address is on another server is downloaded from there, and the
    catalogue's token is not sent to that server."""
    url, seen = other_server
    admin = ckanapi.RemoteCKAN(ckan_bed.url, apikey=ckan_bed.token)
    dataset = admin.action.package_create(name=dataset_name)
    admin.action.resource_create(package_id=dataset['id'], name='linked',
                                 url=f'{url}/linked.txt')
    cat = catalogue(ckan_bed, dataset_name)
    fetch = Transfer('fetch', 'CKANAPI', resource(cat, name='linked'),
                     DataSource('in', 'file', f'{workdir}/linked.txt', store))
    fetch.run()
    assert ssh.run(f'cat {workdir}/linked.txt').stdout == 'linked data\n'
    assert len(seen) == 1
    assert not any(key.lower() in ('authorization', 'x-ckan-api-key') for key in seen[0])
    assert ckan_bed.token not in str(seen[0])


def test_a_private_dataset_is_read_with_the_token_only(ckan_bed, store, ssh, workdir,
                                                       dataset_name):
    """A private dataset's resource is fetched with the token (sent to the catalogue's
    download address too); without one the transfer says the dataset is private."""
    admin = ckanapi.RemoteCKAN(ckan_bed.url, apikey=ckan_bed.token)
    # (CKAN needs an organization for a private dataset. organization_create stores it,
    # then fails building its answer, which counts its datasets through the search index
    # the bed's CKAN has not got: the organization is there all the same)
    with pytest.raises(ckanapi.CKANAPIError, match='Search Connection Error'):
        admin.action.organization_create(name=f'org-{dataset_name}')
    dataset = admin.action.package_create(name=dataset_name, owner_org=f'org-{dataset_name}',
                                          private=True)
    assert dataset['private'] is True
    admin.call_action('resource_create', {'package_id': dataset['id'], 'name': 'secret.txt'},
                      files={'upload': ('secret.txt', io.BytesIO(b'private numbers\n'))})
    target = DataSource('in', 'file', f'{workdir}/secret.txt', store)
    with_token = catalogue(ckan_bed, dataset_name)
    Transfer('fetch', 'CKANAPI', resource(with_token, name='secret.txt'), target).run()
    assert ssh.run(f'cat {workdir}/secret.txt').stdout == 'private numbers\n'

    anonymous = catalogue(ckan_bed, dataset_name, token='')
    fetch = Transfer('fetch', 'CKANAPI', resource(anonymous, name='secret.txt'),
                     DataSource('in', 'file', f'{workdir}/again.txt', store))
    with pytest.raises(TransferError, match='the dataset is private and no API token is given'):
        fetch.run()
