"""Bad Vault node properties: each is refused by `croupier validate` with a message
naming node, property and value (a password in the address is never echoed), and the
same parsing serves the install, so nothing reaches hvac or requests unchecked."""

import logging
import math
import os
import subprocess
import sys

import pytest

from croupier_plugin.cli import main
from croupier_plugin.core.errors import ConfigError
from croupier_plugin.core.vault import VaultSettings

BLUEPRINT = """tosca_definitions_version: cloudify_dsl_1_5
imports:
  - http://cloudify.co/spec/cloudify/7.0.5/types.yaml
  - plugin:croupier
inputs:
  given: {{default: 0}}
node_templates:
  vault:
    type: croupier.nodes.Vault
    properties:
      jwt: a.b.c
      user: alice
{props}
  hpc:
    type: croupier.nodes.InfrastructureInterface
    properties:
      config: {{infrastructure_interface: SLURM}}
      credentials: {{host: h.example.org}}
    relationships:
      - {{type: retrieve_credentials_from_vault, target: vault}}
  job1:
    type: croupier.nodes.Job
    properties:
      job_options: {{commands: [run]}}
    relationships:
      - {{type: task_managed_by_interface, target: hpc}}
"""


def vault_blueprint(**props):
    """The blueprint with the Vault node's other properties given as YAML texts."""
    props.setdefault('address', "'https://vault.example.org:8200'")
    return BLUEPRINT.format(props='\n'.join(f'      {k}: {v}' for k, v in props.items()))


def validate(tmp_path, capsys, text, *inputs):
    """`croupier validate` on ``text`` with ``inputs`` (NAME=VALUE): (exit code, stderr)."""
    path = tmp_path / 'blueprint.yaml'
    path.write_text(text)
    code = main(['validate', str(path), *[arg for item in inputs for arg in ('-i', item)]])
    return code, capsys.readouterr().err


CASES = [
    ('password in the address', {'address': "'https://bob:S3cret-pw@vault.example.org:8200'"},
     "node 'vault', property 'address' = 'https://<hidden>@vault.example.org:8200': "
     "must not hold a user name or password"),
    ('user name in the address', {'address': "'https://bob@vault.example.org'"},
     "node 'vault', property 'address' = 'https://<hidden>@vault.example.org'"),
    ('password in a schemeless address', {'address': "'bob:S3cret-pw@vault.example.org'"},
     "node 'vault', property 'address' = 'https://<hidden>@vault.example.org'"),
    ('port not a number', {'address': "'https://vault.example.org:notaport'"},
     "node 'vault', property 'address' = 'https://vault.example.org:notaport': "
     "the port must be a number from 1 to 65535"),
    ('port out of range', {'address': "'https://vault.example.org:99999'"},
     "node 'vault', property 'address' = 'https://vault.example.org:99999': the port"),
    ('port zero', {'address': "'https://vault.example.org:0'"},
     "node 'vault', property 'address' = 'https://vault.example.org:0': the port"),
    ('other scheme', {'address': "'ftp://vault.example.org'"},
     "node 'vault', property 'address' = 'ftp://vault.example.org': must be an http:// or "
     "https:// address"),
    ('no host', {'address': "'https://:8200'"},
     "node 'vault', property 'address' = 'https://:8200': names no host"),
    ('query in the address', {'address': "'https://vault.example.org/?x=1'"},
     "node 'vault', property 'address' = 'https://vault.example.org/?x=1'"),
    ('address not text', {'address': '[1]'}, "node 'vault', property 'address' = [1]"),
    ('positional field in path_template', {'path_template': "'{host}/{0}'"},
     "node 'vault', property 'path_template' = '{host}/{0}': may use only {user} and {host}"),
    ('unknown field in path_template', {'path_template': "'{nope}/{host}'"},
     "node 'vault', property 'path_template' = '{nope}/{host}': may use only {user} and {host}"),
    ('attribute in path_template', {'path_template': "'{host.__class__}'"},
     "node 'vault', property 'path_template' = '{host.__class__}'"),
    ('format spec in path_template', {'path_template': "'{host:>40}'"},
     "node 'vault', property 'path_template' = '{host:>40}'"),
    ('unbalanced brace in path_template', {'path_template': "'{host'"},
     "node 'vault', property 'path_template' = '{host'"),
    ('path_template without host', {'path_template': "'croupier/{user}'"},
     "node 'vault', property 'path_template' = 'croupier/{user}': must contain {host}"),
    ('negative timeout', {'timeout': '-5'},
     "node 'vault', property 'timeout' = -5: must be a finite number of seconds above 0"),
    ('zero timeout', {'timeout': '0'}, "node 'vault', property 'timeout' = 0: must be"),
    ('text timeout', {'timeout': "'abc'"}, "node 'vault', property 'timeout' = 'abc': must be"),
    ('list timeout', {'timeout': '[1]'}, "node 'vault', property 'timeout' = [1]: must be"),
    ('NaN timeout', {'timeout': '.nan'}, "node 'vault', property 'timeout' = nan: must be"),
    ('infinite timeout', {'timeout': '.inf'}, "node 'vault', property 'timeout' = inf: must be"),
    ('boolean timeout', {'timeout': 'true'}, "node 'vault', property 'timeout' = True: must be"),
    ('boolean kv_version', {'kv_version': 'true'},
     "node 'vault', property 'kv_version' = True: must be 1 or 2"),
    ('kv_version 3', {'kv_version': '3'}, "node 'vault', property 'kv_version' = 3: must be"),
    ('kv_version as text', {'kv_version': "'2'"},
     "node 'vault', property 'kv_version' = '2': must be"),
    ('kv_version as a fraction', {'kv_version': '2.0'},
     "node 'vault', property 'kv_version' = 2.0: must be"),
    ('verify as the word no', {'verify': "'no'"},
     "node 'vault', property 'verify' = 'no': must be true, false or the path of a CA bundle"),
    ('verify a missing CA bundle', {'verify': "'/nonexistent/ca.pem'"},
     "node 'vault', property 'verify' = '/nonexistent/ca.pem': must be true, false or"),
    ('verify a number', {'verify': '0'}, "node 'vault', property 'verify' = 0: must be"),
]


@pytest.mark.parametrize('case, props, expected', CASES, ids=[c[0] for c in CASES])
def test_bad_vault_property_is_refused_at_validate(tmp_path, capsys, case, props, expected):
    code, err = validate(tmp_path, capsys, vault_blueprint(**props))
    assert code == 1, err
    assert expected in err
    assert 'Traceback' not in err
    assert 'S3cret' not in err and 'bob' not in err


@pytest.mark.parametrize('prop, value, expected', [
    ('verify', "'no'", "node 'vault', property 'verify' = 'no': must be true, false or"),
    ('timeout', 'abc', "node 'vault', property 'timeout' = 'abc': must be"),
    ('timeout', '-5', "node 'vault', property 'timeout' = -5: must be"),
    ('kv_version', 'true', "node 'vault', property 'kv_version' = True: must be 1 or 2"),
    ('address', "'https://bob:S3cret-pw@vault.example.org'",
     "node 'vault', property 'address' = 'https://<hidden>@vault.example.org'"),
], ids=['verify no', 'timeout abc', 'timeout -5', 'kv_version true', 'address password'])
def test_bad_vault_input_is_refused_at_validate(tmp_path, capsys, prop, value, expected):
    # through an input, the blueprint parser checks no type: Croupier's check is the one
    code, err = validate(tmp_path, capsys, vault_blueprint(**{prop: '{get_input: given}'}),
                         f'given={value}')
    assert code == 1, err
    assert expected in err
    assert 'Traceback' not in err and 'S3cret' not in err


@pytest.mark.parametrize('props', [
    {'timeout': '2.5', 'kv_version': '1'},
    {'verify': 'false'},
    {'verify': "'/etc/ssl/certs'"},
    {'address': "'vault.example.org:8200'", 'path_template': "'{user}/hosts/{host}'"},
    {'address': "'https://vault.example.org:8200/prefix'"},
], ids=['timeout and kv 1', 'verify off', 'CA directory', 'template', 'path'])
def test_good_vault_properties_pass_validate(tmp_path, capsys, props):
    code, err = validate(tmp_path, capsys, vault_blueprint(**props))
    assert code == 0, err


def test_a_ca_bundle_path_is_kept_for_requests(tmp_path):
    bundle = tmp_path / 'ca.pem'
    bundle.write_text('not checked until a connection is made\n')
    settings = VaultSettings.from_properties({'address': 'https://v.example.org', 'user': 'a',
                                              'jwt': 'a.b.c', 'verify': str(bundle)})
    assert settings.verify == str(bundle)
    settings = VaultSettings.from_properties({'address': 'https://v.example.org', 'user': 'a',
                                              'jwt': 'a.b.c', 'verify': False})
    assert settings.verify is False


@pytest.mark.parametrize('timeout', [math.nan, math.inf, -math.inf, -1, 0, True, '10', None])
def test_settings_refuse_bad_timeouts_directly(timeout):
    # the exporter's configuration reaches the same parsing with its prefix
    with pytest.raises(ConfigError) as err:
        VaultSettings.from_properties({'address': 'https://v.example.org', 'user': 'a',
                                       'jwt': 'a.b.c', 'timeout': timeout}, prefix='vault.')
    assert f"property 'vault.timeout' = {timeout!r}" in str(err.value)


def test_plain_http_is_warned_about_unless_loopback(tmp_path, capsys, caplog):
    caplog.set_level(logging.WARNING, logger='croupier.vault')
    code, err = validate(tmp_path, capsys, vault_blueprint(
        address="'http://vault-plain.example.org:8200'"))
    assert code == 0, err
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("node 'vault', property 'address' = 'http://vault-plain.example.org:8200': "
               "plain http" in w for w in warnings), warnings
    for loopback in ('http://127.0.0.1:8200', 'http://localhost:8200', 'http://[::1]:8200',
                     'https://vault-tls.example.org'):
        caplog.clear()
        code, err = validate(tmp_path, capsys, vault_blueprint(address=f"'{loopback}'"))
        assert code == 0, err
        assert not [r for r in caplog.records if 'plain http' in r.getMessage()], loopback


def test_install_refuses_an_unused_vault_node_by_the_same_check(tmp_path):
    # no interface uses this Vault node, so validate leaves it to the install's
    # configure operation, which parses the same settings; the install runs in a
    # process of its own, as the engine's console hooks are process-wide
    env = dict(os.environ, CROUPIER_HOME=str(tmp_path / 'home'))
    path = tmp_path / 'blueprint.yaml'
    path.write_text("""tosca_definitions_version: cloudify_dsl_1_5
imports:
  - http://cloudify.co/spec/cloudify/7.0.5/types.yaml
  - plugin:croupier
node_templates:
  vault:
    type: croupier.nodes.Vault
    properties: {jwt: a.b.c, user: alice, address: 'https://vault.example.org', timeout: abc}
""")

    def croupier(*args):
        return subprocess.run([sys.executable, '-m', 'croupier_plugin.cli', *args],
                              capture_output=True, text=True, env=env, timeout=120)
    result = croupier('install', str(path), 'unusedvault')
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "node 'vault', property 'timeout' = 'abc': must be a finite number of seconds " \
           "above 0" in output, output[-2000:]
    assert 'Traceback' not in output
    # a failed install leaves the name free: nothing to uninstall
    left = croupier('uninstall', 'unusedvault')
    assert left.returncode == 2 and "no deployment named 'unusedvault'" in left.stderr


def test_exporter_vault_address_with_a_password_is_refused_hidden():
    from croupier_plugin.core.exporter.config import ExporterConfig
    with pytest.raises(ConfigError) as err:
        ExporterConfig.from_mapping({'vault': {'address': 'https://exp:S3cret-pw@v.example.org',
                                               'user': 'exporter', 'jwt': 'a.b.c'}})
    assert "property 'vault.address' = 'https://<hidden>@v.example.org'" in str(err.value)
    assert 'S3cret' not in str(err.value)
