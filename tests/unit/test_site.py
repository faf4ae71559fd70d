"""The site configuration: file and environment, what wins, errors naming the
file (or variable), the key and the value; and what `croupier config` shows."""

import os

import pytest

from croupier_plugin import edge
from croupier_plugin.cli import main
from croupier_plugin.core import site
from croupier_plugin.core.vault import VaultSettings

JWT = 'header.payload.signature'


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No site setting from the process's environment or the tester's home."""
    for variable in (site.CONFIG_ENV, *site.SETTINGS.values()):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    return monkeypatch


def config_file(tmp_path, text):
    path = tmp_path / 'config.yaml'
    path.write_text(text)
    return str(path)


def test_the_file_gives_the_settings_and_the_environment_wins(clean_env, tmp_path):
    known = tmp_path / 'known_hosts'
    known.write_text('')
    path = config_file(tmp_path, f'vault_address: https://vault.site:8200\n'
                                 f'exporter_address: http://127.0.0.1:9110\n'
                                 f'known_hosts: {known}\n')
    clean_env.setenv(site.CONFIG_ENV, path)
    config = site.load()
    assert config.file == path
    assert config.get('vault_address') == 'https://vault.site:8200'
    assert config.describe('vault_address') == f'file {path}'
    assert config.get('known_hosts') == str(known)
    clean_env.setenv('VAULT_ADDR', 'https://vault.env:8200')
    config = site.load()
    assert config.get('vault_address') == 'https://vault.env:8200'
    assert config.describe('vault_address') == 'environment VAULT_ADDR'
    assert config.describe('exporter_address') == f'file {path}'


def test_the_file_is_looked_for_in_home_then_etc(clean_env, tmp_path):
    home = tmp_path / 'home' / '.croupier'
    home.mkdir(parents=True)
    (home / 'config.yaml').write_text('exporter_address: http://exporter.home:9110\n')
    config = site.load()
    assert config.file == str(home / 'config.yaml')
    assert config.get('exporter_address') == 'http://exporter.home:9110'
    assert config.searched == (str(home / 'config.yaml'), '/etc/croupier/config.yaml')


@pytest.mark.parametrize('text, expected', [
    ('vault_adress: https://v:8200\n', "key 'vault_adress' = 'https://v:8200': is not a site "
                                       "setting"),
    ('vault_address: [a, b]\n', "key 'vault_address' = ['a', 'b']: must be a non-empty string"),
    ('exporter_address: "http://me:pw@x:9110"\n', "key 'exporter_address' = "
                                                  "'http://<hidden>@x:9110': must not hold"),
    ('exporter_address: "not a url"\n', "key 'exporter_address' = 'not a url': must be a URL"),
    ('known_hosts: /nonexistent/known_hosts\n', "key 'known_hosts' = '/nonexistent/known_hosts'"
                                                ": no such file"),
    ('- just\n- a list\n', "must be a mapping"),
    ('vault_address: [unclosed\n', 'is not valid YAML (line'),
])
def test_a_bad_file_is_refused_naming_file_key_and_value(clean_env, tmp_path, capsys, text,
                                                        expected):
    path = config_file(tmp_path, text)
    clean_env.setenv(site.CONFIG_ENV, path)
    with pytest.raises(site.SiteConfigError) as caught:
        site.load()
    assert str(caught.value).startswith(f'site configuration {path}, ')
    assert expected in str(caught.value)
    assert 'pw' not in str(caught.value)
    assert main(['config']) == 2
    err = capsys.readouterr().err
    assert expected in err and path in err and 'Traceback' not in err


def test_a_missing_named_file_is_refused(clean_env, tmp_path):
    clean_env.setenv(site.CONFIG_ENV, str(tmp_path / 'nothere.yaml'))
    with pytest.raises(site.SiteConfigError, match=r"CROUPIER_CONFIG.*no such file"):
        site.load()


def test_croupier_config_shows_each_value_and_its_source(clean_env, tmp_path, capsys):
    path = config_file(tmp_path, 'exporter_address: http://127.0.0.1:9110\n')
    clean_env.setenv(site.CONFIG_ENV, path)
    clean_env.setenv('VAULT_ADDR', 'https://vault.env:8200')
    assert main(['config']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f'site configuration file: {path}')
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in lines[1:]}
    assert rows['vault_address'] == ['https://vault.env:8200', 'environment VAULT_ADDR']
    assert rows['exporter_address'] == ['http://127.0.0.1:9110', f'file {path}']
    assert rows['known_hosts'] == ['-', 'not set']


def test_vault_address_comes_from_the_site_when_the_node_gives_none(clean_env):
    with pytest.raises(Exception) as caught:
        edge.vault_settings('vault', {'jwt': JWT, 'user': 'alice'})
    assert "node 'vault', property 'address' = None: is required" in str(caught.value)
    assert 'VAULT_ADDR' in str(caught.value) and JWT not in str(caught.value)
    clean_env.setenv('VAULT_ADDR', 'https://vault.site:8200')
    assert edge.vault_settings('vault', {'jwt': JWT, 'user': 'alice'}).address == \
        'https://vault.site:8200'
    # the node's own property wins
    own = VaultSettings.from_properties({'jwt': JWT, 'user': 'alice',
                                         'address': 'https://vault.node:8200'})
    assert own.address == 'https://vault.node:8200'


def test_exporter_address_comes_from_the_site_when_the_node_gives_none(clean_env):
    with pytest.raises(Exception) as caught:
        edge.exporter_client('hpc_exporter', {})
    assert "node 'hpc_exporter', property 'address' = '': is required" in str(caught.value)
    assert 'CROUPIER_EXPORTER_ADDRESS' in str(caught.value)
    clean_env.setenv('CROUPIER_EXPORTER_ADDRESS', 'http://127.0.0.1:9110')
    assert edge.exporter_client('hpc_exporter', {}).address == 'http://127.0.0.1:9110'
    assert edge.exporter_client('hpc_exporter', {'hpc_exporter_address': 'http://x:1'}
                                ).address == 'http://x:1'


def test_interfaces_get_the_site_known_hosts(clean_env, tmp_path):
    known = tmp_path / 'site_known_hosts'
    known.write_text('')
    props = {'config': {'infrastructure_interface': 'SLURM'},
             'credentials': {'host': 'h.example.org', 'user': 'u', 'password': 'pw-1'}}
    assert edge.interface_settings('hpc', props).ssh.site_known_hosts is None
    clean_env.setenv('CROUPIER_KNOWN_HOSTS', str(known))
    assert edge.interface_settings('hpc', props).ssh.site_known_hosts == str(known)
    assert os.path.isfile(edge.interface_settings('hpc', props).ssh.site_known_hosts)


def test_validate_refuses_a_vault_node_without_address_when_the_site_has_none(clean_env,
                                                                              tmp_path, capsys):
    """An error (not a warning) at `croupier validate`: such a deployment cannot
    install. With VAULT_ADDR set, the same blueprint is valid."""
    path = tmp_path / 'blueprint.yaml'
    path.write_text("""tosca_definitions_version: cloudify_dsl_1_5
imports:
  - http://cloudify.co/spec/cloudify/7.0.5/types.yaml
  - plugin:croupier
node_templates:
  vault:
    type: croupier.nodes.Vault
    properties: {jwt: header.payload.signature, user: alice}
  hpc:
    type: croupier.nodes.InfrastructureInterface
    properties:
      config: {infrastructure_interface: SLURM}
      credentials: {host: h.example.org}
    relationships:
      - {type: retrieve_credentials_from_vault, target: vault}
""")
    assert main(['validate', str(path)]) == 1
    err = capsys.readouterr().err
    assert "node 'vault', property 'address' = '': is required" in err
    assert 'VAULT_ADDR' in err and 'header.payload.signature' not in err
    clean_env.setenv('VAULT_ADDR', 'https://vault.site:8200')
    assert main(['validate', str(path)]) == 0
