"""SSH settings parsing: numbers within bounds, key material never echoed."""

import subprocess

import pytest

from croupier_plugin.core.errors import ConfigError
from croupier_plugin.core.transport import SshSettings

BASE = {'host': 'h.example.org', 'user': 'u', 'password': 'pw'}


def refused(**changes) -> ConfigError:
    """The ConfigError that credentials BASE + ``changes`` are refused with."""
    with pytest.raises(ConfigError) as err:
        SshSettings.from_credentials(dict(BASE, **changes))
    return err.value


@pytest.mark.parametrize('prop', ['connect_timeout', 'reconnect_timeout'])
@pytest.mark.parametrize('value', [float('nan'), float('inf'), -float('inf'), 0, -1,
                                   86401, 1e12, True, '10'])
def test_timeouts_must_be_finite_positive_and_at_most_a_day(prop, value):
    err = refused(**{prop: value})
    assert err.prop == f'credentials.{prop}'
    assert repr(value) in str(err), str(err)


@pytest.mark.parametrize('prop', ['connect_timeout', 'reconnect_timeout'])
@pytest.mark.parametrize('value', [0.5, 1, 60, 86400])
def test_sane_timeouts_are_kept(prop, value):
    assert getattr(SshSettings.from_credentials(dict(BASE, **{prop: value})), prop) == value


@pytest.mark.parametrize('value', [0.5, 2.5, 2.0, 0, -3, True, False, 1025, float('nan'),
                                   'many'])
def test_max_sessions_must_be_a_whole_number_from_one(value):
    err = refused(max_sessions=value)
    assert err.prop == 'credentials.max_sessions'
    assert repr(value) in str(err), str(err)


@pytest.mark.parametrize('value,kept', [(1, 1), (8, 8), ('4', 4), (1024, 1024)])
def test_max_sessions_kept(value, kept):
    assert SshSettings.from_credentials(dict(BASE, max_sessions=value)).max_sessions == kept


@pytest.fixture(scope='module')
def key_text(tmp_path_factory) -> str:
    """A real OpenSSH private key's text."""
    path = tmp_path_factory.mktemp('k') / 'id'
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(path)],
                   check=True)
    return path.read_text()


def assert_no_key_material(message: str, key_text: str) -> None:
    """No line of the key's body (nor its armour) appears in ``message``."""
    assert 'PRIVATE KEY' not in message and 'BEGIN' not in message, message
    for line in key_text.strip().splitlines()[1:-1]:
        assert line[:20] not in message, message


def test_a_key_pasted_into_private_key_file_is_not_echoed(key_text):
    err = refused(password=None, private_key_file=key_text)
    assert err.prop == 'credentials.private_key_file'
    assert 'looks like the key itself' in str(err)
    assert_no_key_material(str(err), key_text)


def test_a_key_pasted_into_private_key_file_is_not_echoed_at_connect(key_text):
    # settings built without validation (as the edge may hold them) fail the same way
    settings = SshSettings(host='h', user='u', private_key_file=key_text)
    with pytest.raises(ConfigError) as err:
        settings.pkey()
    assert_no_key_material(str(err.value), key_text)


@pytest.mark.parametrize('field', ['host', 'user', 'host_key', 'port', 'known_hosts_bad',
                                   'host_key_check', 'max_sessions', 'connect_timeout',
                                   'unknown_field', 'ssh_port'])
def test_a_key_pasted_anywhere_is_not_echoed(key_text, field):
    changes = {field: key_text}
    if field == 'known_hosts_bad':
        changes = {'unknown': key_text}
    with pytest.raises(ConfigError) as err:
        SshSettings.from_credentials(dict(BASE, **changes))
    assert_no_key_material(str(err.value), key_text)


def test_a_key_in_a_conflicting_spelling_is_not_echoed(key_text):
    with pytest.raises(ConfigError) as err:
        SshSettings.from_credentials(dict(BASE, user='alice', username=key_text))
    assert_no_key_material(str(err.value), key_text)


def test_ordinary_values_are_still_shown():
    assert "'/nonexistent/key'" in str(refused(password=None,
                                               private_key_file='/nonexistent/key'))
    assert "'maybe'" in str(refused(host_key_check='maybe'))


@pytest.mark.parametrize('field', ['host', 'user'])
def test_a_key_body_on_one_line_is_refused_as_a_login_and_not_echoed(key_text, field):
    # one line with no space passes as a word; it would be logged with the login
    body = ''.join(key_text.strip().splitlines()[1:-1])
    err = refused(**{field: body})
    assert err.prop == f'credentials.{field}'
    assert_no_key_material(str(err), key_text)
