"""Trust in the SSH server against the bed's real sshd: connections are shared
only between identical trust and login settings, and known_hosts files with
OpenSSH markers (@cert-authority, @revoked) are read as OpenSSH means them."""

import logging
import subprocess

import pytest

from croupier_plugin.core.errors import AuthenticationError, HostKeyError
from croupier_plugin.core.transport import SshSettings, SshTransport

pytestmark = pytest.mark.bed


def settings(bed, **kw) -> SshSettings:
    """The bed's login with its ed25519 key and known_hosts, changed by ``kw``."""
    base = dict(host=bed['host'], port=bed['port'], user=bed['user'],
                private_key_file=bed['keys']['ed25519'], known_hosts=bed['known_hosts'],
                reconnect_timeout=5, connect_timeout=5)
    base.update(kw)
    return SshSettings(**base)


@pytest.fixture(scope='module')
def other_host_key(tmp_path_factory) -> str:
    """The public key line of a host key the bed's sshd does not have."""
    path = tmp_path_factory.mktemp('other') / 'key'
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(path)],
                   check=True)
    return (path.parent / 'key.pub').read_text().strip()


def host_name(bed) -> str:
    return f"[{bed['host']}]:{bed['port']}"


# -- item: one pooled connection per trust and login settings -----------------

def test_a_pinned_key_is_checked_even_after_an_unchecked_connection_to_the_same_login(
        bed, other_host_key):
    unchecked = SshTransport(settings(bed, known_hosts=None, host_key_check=False))
    assert unchecked.run('whoami').stdout.strip() == bed['user']
    wrong_pin = SshTransport(settings(bed, known_hosts=None, host_key=other_host_key))
    assert wrong_pin.connection is not unchecked.connection
    with pytest.raises(HostKeyError) as err:
        wrong_pin.run('whoami')
    assert 'does not match' in str(err.value) or 'is unknown' in str(err.value)


def test_a_known_hosts_file_is_checked_even_after_an_unchecked_connection(
        bed, other_host_key, tmp_path):
    unchecked = SshTransport(settings(bed, known_hosts=None, host_key_check=False))
    assert unchecked.run('true').exit_code == 0
    wrong = tmp_path / 'known_hosts'
    wrong.write_text(f'{host_name(bed)} {other_host_key}\n')
    with pytest.raises(HostKeyError):
        SshTransport(settings(bed, known_hosts=str(wrong))).run('true')
    right = SshTransport(settings(bed))
    assert right.run('true').exit_code == 0
    assert right.connection is not unchecked.connection


def test_other_credentials_for_the_same_login_log_in_on_their_own(bed):
    with_key = SshTransport(settings(bed))
    assert with_key.run('true').exit_code == 0
    wrong_password = SshTransport(settings(bed, private_key_file=None,
                                           password='not-the-password'))
    assert wrong_password.connection is not with_key.connection
    with pytest.raises(AuthenticationError):
        wrong_password.run('true')
    right_password = SshTransport(settings(bed, private_key_file=None,
                                           password=bed['password']))
    assert right_password.run('whoami').stdout.strip() == bed['user']
    assert right_password.connection is not with_key.connection


def test_timeouts_and_sessions_are_not_borrowed(bed):
    first = SshTransport(settings(bed, max_sessions=2, connect_timeout=5))
    assert SshTransport(settings(bed, max_sessions=3)).connection is not first.connection
    assert SshTransport(settings(bed, max_sessions=2, connect_timeout=7)).connection \
        is not first.connection
    # identical settings (login_shell aside) do share
    assert SshTransport(settings(bed, max_sessions=2, login_shell=True)).connection \
        is first.connection


def test_the_pool_key_holds_no_secret(bed):
    key = settings(bed, password=bed['password'], private_key_password='a-passphrase').pool_key
    assert bed['password'] not in repr(key) and 'a-passphrase' not in repr(key)


# -- item: known_hosts with @cert-authority and @revoked ----------------------

def test_cert_authority_lines_are_skipped_with_a_warning(bed, other_host_key, tmp_path,
                                                         caplog):
    known = tmp_path / 'known_hosts'
    known.write_text(f'@cert-authority *.example.org,{bed["host"]} {other_host_key}\n'
                     f'{host_name(bed)} {bed["host_public_key"]}\n')
    with caplog.at_level(logging.WARNING, logger='croupier.ssh'):
        transport = SshTransport(settings(bed, known_hosts=str(known)))
        assert transport.run('whoami').stdout.strip() == bed['user']
    assert f'{known}:1: @cert-authority line skipped' in caplog.text


def test_a_host_only_a_ca_vouches_for_is_refused_clearly(bed, other_host_key, tmp_path):
    known = tmp_path / 'known_hosts'
    known.write_text(f'@cert-authority * {other_host_key}\n')
    with pytest.raises(HostKeyError) as err:
        SshTransport(settings(bed, known_hosts=str(known))).run('true')
    assert 'is unknown' in str(err.value)


def test_a_revoked_key_is_refused_even_when_listed_plainly(bed, tmp_path):
    known = tmp_path / 'known_hosts'
    known.write_text(f'{host_name(bed)} {bed["host_public_key"]}\n'
                     f'@revoked * {bed["host_public_key"]}\n')
    with pytest.raises(HostKeyError) as err:
        SshTransport(settings(bed, known_hosts=str(known))).run('true')
    assert 'is marked @revoked' in str(err.value)


def test_a_revoked_key_next_to_another_key_of_its_type(bed, other_host_key, tmp_path):
    known = tmp_path / 'known_hosts'
    known.write_text(f'@revoked {host_name(bed)} {bed["host_public_key"]}\n'
                     f'{host_name(bed)} {other_host_key}\n')
    with pytest.raises(HostKeyError) as err:
        SshTransport(settings(bed, known_hosts=str(known))).run('true')
    assert 'is marked @revoked' in str(err.value)


def test_revoking_another_key_and_unreadable_lines_leave_the_host_usable(
        bed, other_host_key, tmp_path, caplog):
    known = tmp_path / 'known_hosts'
    known.write_text(f'@revoked * {other_host_key}\n'
                     f'garbage-line\n'
                     f'{host_name(bed)} ssh-ed25519 !!notbase64!!\n'
                     f'@mystery {host_name(bed)} {other_host_key}\n'
                     f'{host_name(bed)} {bed["host_public_key"]}\n')
    with caplog.at_level(logging.WARNING, logger='croupier.ssh'):
        assert SshTransport(settings(bed, known_hosts=str(known))).run('true').exit_code == 0
    assert f'{known}:3: not a known_hosts line' in caplog.text
    assert f'{known}:4: unknown marker' in caplog.text
