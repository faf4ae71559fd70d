"""A Vault node logs in with a JWT or uses a Vault token as it is (the original
Croupier's master branch), and reads a token's cubbyhole only with a token: each
wrong combination is refused by property, never showing the JWT or the token."""

import pytest

from croupier_plugin.core.errors import ConfigError
from croupier_plugin.core.vault import VaultSettings

ADDRESS = 'https://vault.example.org:8200'
JWT = 'eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl'
TOKEN = 'hvs.CAESIJ-s3cr3t-token'


@pytest.mark.parametrize('props,prop,problem', [
    ({'user': 'alice'}, 'jwt', 'needs jwt (a JWT login) or token'),
    ({'user': 'alice', 'jwt': JWT, 'token': TOKEN}, 'token', 'not both'),
    ({'user': 'alice', 'jwt': JWT, 'cubbyhole': True}, 'cubbyhole', 'needs token'),
    ({'user': 'alice', 'token': TOKEN, 'cubbyhole': 'yes'}, 'cubbyhole', 'true or false'),
    ({'user': 'alice', 'token': 'hvs.two words'}, 'token', 'one word'),
    ({'token': TOKEN}, 'user', 'Vault user name'),
], ids=['neither', 'both', 'cubbyhole with a jwt', 'cubbyhole not a bool', 'token with a space',
        'token without user or cubbyhole'])
def test_wrong_combinations_are_refused_by_property(props, prop, problem):
    with pytest.raises(ConfigError) as err:
        VaultSettings.from_properties(dict(props, address=ADDRESS), node='vault')
    message = str(err.value)
    assert message.startswith(f"node 'vault', property '{prop}' = ")
    assert problem in message
    assert TOKEN not in message and 's3cr3t' not in message and JWT not in message


def test_a_token_with_its_cubbyhole_needs_no_user():
    s = VaultSettings.from_properties({'address': ADDRESS, 'token': TOKEN, 'cubbyhole': True})
    assert s.secret_path('login.hpc.example.org') == 'cubbyhole/login.hpc.example.org'
    assert TOKEN not in repr(s)


def test_a_token_keeps_the_kv_convention_without_cubbyhole():
    s = VaultSettings.from_properties({'address': ADDRESS, 'user': 'alice', 'token': TOKEN})
    assert s.secret_path('login.hpc.example.org') == 'croupier/alice/login.hpc.example.org'
