"""CKAN catalogues without a catalogue: reading CKAN_dataset and CKAN_resource
properties, the token kept out of every text, and which transfers CKANAPI runs
(the transfers themselves run against the bed's CKAN in tests/integration)."""

import pytest

from croupier_plugin.core.ckan import CkanCatalogue, CkanResource
from croupier_plugin.core.data import DataInfrastructure, DataSource, Transfer
from croupier_plugin.core.errors import ConfigError
from croupier_plugin.core.transport import SshSettings

TOKEN = 'tok-9f8e7d6c5b4a'


def catalogue(**props):
    base = {'endpoint': 'https://ckan.example.org/', 'credentials': {'auth-header': TOKEN},
            'dataset_info': {'name': 'results'}}
    base.update(props)
    return CkanCatalogue.from_catalogue_properties('cat', base)


def store():
    ssh = SshSettings(host='h.example.org', user='u', password='pw')
    return DataInfrastructure('store', 'h.example.org', ssh=ssh)


def test_the_token_stays_out_of_repr_and_out_of_errors():
    cat = catalogue()
    assert cat.api_key == TOKEN
    assert TOKEN not in repr(cat)
    assert cat.hide(f'server said: bad key {TOKEN}') == 'server said: bad key <hidden>'
    with pytest.raises(ConfigError) as err:
        catalogue(credentials={'auth-header': TOKEN + ' trailing words'})
    assert TOKEN not in str(err.value)
    assert "node 'cat', property 'credentials.auth-header' = '<hidden>'" in str(err.value)


def test_the_dataset_is_named_by_its_id_first_and_empty_fields_are_left_out():
    cat = catalogue(dataset_info={'name': 'results', 'package_id': 'abc-123', 'title': '',
                                  'tags': [], 'private': True})
    assert cat.dataset_id == 'abc-123'
    assert cat.dataset == {'name': 'results', 'package_id': 'abc-123', 'private': True}
    assert cat.endpoint == 'https://ckan.example.org'


@pytest.mark.parametrize('url, same', [
    ('https://ckan.example.org/dataset/x/resource/y/download/a.csv', True),
    ('https://CKAN.example.org:443/a.csv', False),       # an explicit port is another origin
    ('http://ckan.example.org/a.csv', False),
    ('https://ckan.example.org.evil.net/a.csv', False),
    ('https://data.example.org/a.csv', False),
])
def test_the_token_goes_to_the_catalogue_origin_only(url, same):
    assert catalogue().same_origin(url) is same


@pytest.mark.parametrize('field, value, expected', [
    ('dataset_info', {'name': 'x', 'colour': 'red'}, "'dataset_info.colour' = 'red'"),
    ('dataset_info', {'name': 'ok', 'private': 'yes'}, "'dataset_info.private' = 'yes'"),
    ('dataset_info', {'name': 'ok', 'tags': 'a,b'}, "'dataset_info.tags' = 'a,b'"),
    ('dataset_info', 'results', "'dataset_info' = 'results'"),
    ('supported_protocols', ['HTTP'], "'supported_protocols' = ['HTTP']"),
    ('credentials', {'private_key': 'KEY'}, "'credentials.private_key' = '<hidden>'"),
    ('endpoint', 'https://user:secret@ckan.example.org', "'endpoint' = 'https://<hidden>@"),
])
def test_bad_catalogue_properties_are_named(field, value, expected):
    with pytest.raises(ConfigError) as err:
        catalogue(**{field: value})
    assert f"node 'cat', property {expected}" in str(err.value)
    assert 'secret' not in str(err.value) and 'KEY' not in str(err.value)


def test_a_resource_is_named_by_its_name_else_its_address():
    cat = catalogue()
    named = CkanResource.from_resource_properties(
        'res', {'resource': {'name': 'a.csv', 'url': '', 'format': 'CSV'}}, cat)
    assert (named.kind, named.path, named.fields) == ('ckan', 'a.csv',
                                                      {'name': 'a.csv', 'format': 'CSV'})
    linked = CkanResource.from_resource_properties(
        'res', {'resource': {'url': 'https://data.example.org/a.csv'}}, cat)
    assert linked.path == 'https://data.example.org/a.csv'
    with pytest.raises(ConfigError, match=r"node 'res', property 'resource.size' = 3"):
        CkanResource.from_resource_properties('res', {'resource': {'name': 'a', 'size': 3}},
                                              cat)


def transfer(protocol, source, target):
    return Transfer('move', protocol, source, target)


def test_ckanapi_moves_between_a_resource_and_a_file_on_an_ssh_host():
    cat = catalogue()
    res = CkanResource.from_resource_properties('res', {'resource': {'name': 'a.csv'}}, cat)
    file = DataSource('file', 'file', 'a.csv', store())
    transfer('CKANAPI', res, file).check()
    transfer('CKANAPI', file, res).check()
    web = DataSource('web', 'web', 'a.csv', DataInfrastructure('web', 'http://w.example.org'))
    cases = [
        (transfer('HTTP', res, file), "property 'from_source' = 'res': a CKAN_resource is "
                                      "moved with CKANAPI only (not HTTP)"),
        (transfer('SFTP', file, res), "property 'to_target' = 'res': a CKAN_resource is "
                                      "moved with CKANAPI only"),
        (transfer('CKANAPI', file, file), "CKANAPI moves data between a CKAN_resource and a "
                                          "FileDataSource"),
        (transfer('CKANAPI', res, web), "property 'to_target' = 'web': CKANAPI moves"),
        (transfer('CKANAPI', file, CkanResource.from_resource_properties(
            'linked', {'resource': {'url': 'https://d.example.org/a'}}, cat)),
         "a published resource needs resource.name"),
    ]
    for move, expected in cases:
        with pytest.raises(ConfigError) as err:
            move.check()
        assert "node 'move'" in str(err.value) and expected in str(err.value), move.protocol


def test_publishing_needs_the_token_and_fetching_does_not():
    public = CkanCatalogue.from_catalogue_properties(
        'cat', {'endpoint': 'http://ckan.example.org', 'dataset_info': {'name': 'open'}})
    res = CkanResource.from_resource_properties('res', {'resource': {'name': 'a.csv'}}, public)
    file = DataSource('file', 'file', 'a.csv', store())
    transfer('CKANAPI', res, file).check()
    with pytest.raises(ConfigError, match="publishing to catalogue 'cat' needs its API token"):
        transfer('CKANAPI', file, res).check()
