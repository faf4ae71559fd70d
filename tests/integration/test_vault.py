"""Credentials from the bed's real OpenBao server (Vault API), with JWT login."""

import logging
import socket

import hvac
import pytest

from croupier_plugin.core.vault import (VaultError, VaultSettings, clear_cache,
                                        fetch_credentials, merge_credentials)

pytestmark = pytest.mark.bed


def settings(vault_bed, **kw):
    props = dict(address=vault_bed.address, user='alice', jwt=vault_bed.token())
    props.update(kw)
    return VaultSettings.from_properties(props)


@pytest.fixture(autouse=True)
def no_cache():
    clear_cache()
    yield
    clear_cache()


def test_reads_the_hosts_secret_and_revokes_the_token(vault_bed):
    vault_bed.put('hpc1.example.org', {'user': 'bob', 'password': 'pw-from-vault'})
    s = settings(vault_bed)
    client = s.login()
    assert s.read(client, 'hpc1.example.org') == {'user': 'bob', 'password': 'pw-from-vault'}
    client.auth.token.lookup_self()                 # the token works...
    s.logout(client)
    with pytest.raises(hvac.exceptions.Forbidden):  # ...and is revoked afterwards
        client.auth.token.lookup_self()
    assert fetch_credentials(s, 'hpc1.example.org')['user'] == 'bob'


def test_secret_path_convention(vault_bed):
    s = settings(vault_bed)
    assert s.secret_path('login.hpc.example.org') == 'croupier/alice/login.hpc.example.org'
    assert s.secret_path('https://h:2222') == 'croupier/alice/h_2222'


def test_wrong_audience_is_refused_clearly(vault_bed):
    token = vault_bed.token(aud='somebody-else')
    with pytest.raises(VaultError) as err:
        fetch_credentials(settings(vault_bed, jwt=token), 'h')
    assert 'refused the JWT login' in str(err.value)
    assert 'aud' in str(err.value)
    assert token not in str(err.value)


def test_expired_token_is_refused_clearly(vault_bed):
    token = vault_bed.token(lifetime=60, issued_ago=3600)
    with pytest.raises(VaultError) as err:
        fetch_credentials(settings(vault_bed, jwt=token), 'h')
    assert 'refused the JWT login' in str(err.value)
    assert 'expired' in str(err.value)
    assert token not in str(err.value)


def test_missing_secret_is_named(vault_bed):
    with pytest.raises(VaultError) as err:
        fetch_credentials(settings(vault_bed), 'no-such-host.example.org')
    assert 'no secret at secret/croupier/alice/no-such-host.example.org' in str(err.value)


def test_unreachable_vault(vault_bed):
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()          # nothing listens there now
    with pytest.raises(VaultError) as err:
        fetch_credentials(settings(vault_bed, address=f'http://127.0.0.1:{port}', timeout=2),
                          'h')
    assert 'unreachable' in str(err.value)


def test_bad_vault_properties_name_the_property():
    from croupier_plugin.core.errors import ConfigError
    with pytest.raises(ConfigError) as err:
        VaultSettings.from_properties({'address': 'v', 'user': 'a', 'jwt': 'not-a-jwt'})
    assert "'jwt' = '<hidden>'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        VaultSettings.from_properties({'address': '', 'user': 'a', 'jwt': 'a.b.c'})
    assert "'address'" in str(err.value)


def test_blueprint_values_win_over_vault():
    merged = merge_credentials({'host': 'h', 'user': '', 'port': 22},
                               {'user': 'bob', 'port': 2222, 'password': 'x'},
                               {'port': 22})
    assert merged == {'host': 'h', 'user': 'bob', 'port': 2222, 'password': 'x'}
    merged = merge_credentials({'user': 'carol'}, {'user': 'bob'})
    assert merged['user'] == 'carol'


# -- a secret never weakens host-key checking (the blueprint's trust settings win) --------

def _vault_node(vault_bed):
    """The Vault node ('vault', its properties) as a blueprint would give it."""
    return ('vault', {'address': vault_bed.address, 'user': 'alice', 'jwt': vault_bed.token()})


def _interface(bed, vault_bed, **credentials):
    """The interface's settings with its credentials completed from the bed's OpenBao;
    the credentials carry plugin.yaml's defaults, as Cloudify fills them in."""
    from croupier_plugin import edge
    from croupier_plugin.core.transport import SshSettings
    props = {'config': {'infrastructure_interface': 'SLURM'},
             'credentials': dict(SshSettings.PLUGIN_DEFAULTS, host=bed['host'], **credentials)}
    return edge.interface_settings('hpc', props, _vault_node(vault_bed)).ssh


def _login_secret(bed, **extra):
    with open(bed['keys']['ed25519']) as fh:
        return dict({'user': bed['user'], 'port': bed['port'], 'private_key': fh.read()},
                    **extra)


def _connect(ssh_settings):
    """Log in and ask who we are (raises HostKeyError when the key is not trusted)."""
    from croupier_plugin.core.transport.ssh import SshConnection
    conn = SshConnection(ssh_settings)
    try:
        return conn.run('whoami', 10, True).stdout.strip()
    finally:
        conn.close()


def test_a_secret_cannot_turn_host_key_checking_off(bed, vault_bed, tmp_path, caplog):
    from croupier_plugin.core.errors import HostKeyError
    empty = tmp_path / 'known_hosts'
    empty.write_text('')            # the bed's host key is not trusted by this blueprint
    secret = _login_secret(bed, host_key_check=False)
    vault_bed.put(bed['host'], secret)
    with caplog.at_level(logging.WARNING, logger='croupier.vault'):
        ssh = _interface(bed, vault_bed, known_hosts=str(empty), host_key_check=True)
    assert ssh.host_key_check is True and ssh.user == bed['user']
    with pytest.raises(HostKeyError) as err:
        _connect(ssh)
    assert 'is unknown' in str(err.value)
    warnings = ' '.join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert (f"Vault secret secret/croupier/alice/{bed['host']}: host_key_check = False is "
            f"ignored") in warnings
    assert secret['private_key'].splitlines()[1] not in warnings


def test_a_secret_cannot_replace_the_blueprints_known_hosts(bed, vault_bed, tmp_path, caplog):
    from croupier_plugin.core.errors import HostKeyError
    empty = tmp_path / 'known_hosts'
    empty.write_text('')
    # the secret pins the right key and names a file that trusts it: both are another
    # trust anchor than the one the blueprint chose, so neither is taken
    vault_bed.put(bed['host'], _login_secret(bed, host_key=bed['host_public_key'],
                                             known_hosts=bed['known_hosts']))
    with caplog.at_level(logging.WARNING, logger='croupier.vault'):
        ssh = _interface(bed, vault_bed, known_hosts=str(empty))
    assert ssh.known_hosts == str(empty) and ssh.host_key is None
    with pytest.raises(HostKeyError):
        _connect(ssh)
    warnings = ' '.join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert 'host_key' in warnings and 'the blueprint names its own known_hosts' in warnings


def test_a_secret_may_pin_the_host_key_when_the_blueprint_names_none(bed, vault_bed):
    vault_bed.put(bed['host'], _login_secret(bed, host_key=bed['host_public_key']))
    ssh = _interface(bed, vault_bed)
    assert ssh.host_key == bed['host_public_key'] and ssh.host_key_check is True
    assert _connect(ssh) == bed['user']


def test_fetched_credentials_never_carry_host_key_check_off(bed, vault_bed, caplog):
    # what the exporter takes from Vault goes through here too
    vault_bed.put(bed['host'], _login_secret(bed, host_key_check=False))
    with caplog.at_level(logging.WARNING, logger='croupier.vault'):
        found = fetch_credentials(settings(vault_bed), bed['host'])
    assert 'host_key_check' not in sorted(found) and found['user'] == bed['user']
    assert any('host_key_check = False is ignored' in r.getMessage() for r in caplog.records)


def user_token(vault_bed, policies=('croupier-alice',)) -> str:
    """A Vault token of the kind a user would paste into a blueprint."""
    return vault_bed.root.auth.token.create(policies=list(policies), ttl='10m')['auth'][
        'client_token']


def test_a_token_is_used_as_it_is_and_left_alive(vault_bed):
    vault_bed.put('hpc-token.example.org', {'user': 'carol', 'password': 'pw-token'})
    token = user_token(vault_bed)
    s = VaultSettings.from_properties({'address': vault_bed.address, 'user': 'alice',
                                       'token': token})
    assert fetch_credentials(s, 'hpc-token.example.org') == {'user': 'carol',
                                                             'password': 'pw-token'}
    # the user's token is theirs: still valid after Croupier used it
    assert hvac.Client(url=vault_bed.address, token=token).auth.token.lookup_self()


def test_the_secret_is_read_from_the_tokens_cubbyhole(vault_bed):
    token = user_token(vault_bed, policies=('default',))      # no KV access at all
    owner = hvac.Client(url=vault_bed.address, token=token)
    owner.write_data('cubbyhole/hpc-cubby.example.org_2222',
                     data={'user': 'dave', 'password': 'pw-cubby'})
    s = VaultSettings.from_properties({'address': vault_bed.address, 'token': token,
                                       'cubbyhole': True})
    assert s.secret_path('hpc-cubby.example.org:2222') == 'cubbyhole/hpc-cubby.example.org_2222'
    assert fetch_credentials(s, 'hpc-cubby.example.org:2222') == {'user': 'dave',
                                                                  'password': 'pw-cubby'}
    with pytest.raises(VaultError) as err:
        fetch_credentials(s, 'elsewhere.example.org')
    assert 'has no secret at cubbyhole/elsewhere.example.org' in str(err.value)
    assert token not in str(err.value)


def test_a_bad_token_is_refused_clearly_without_showing_it(vault_bed):
    token = 'hvs.not-a-real-token-0123456789'
    s = VaultSettings.from_properties({'address': vault_bed.address, 'user': 'alice',
                                       'token': token})
    with pytest.raises(VaultError) as err:
        fetch_credentials(s, 'h')
    assert 'refused the token' in str(err.value)
    assert token not in str(err.value)
