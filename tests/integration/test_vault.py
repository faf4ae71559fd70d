"""Credentials from the bed's real OpenBao server (Vault API), with JWT login."""

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
