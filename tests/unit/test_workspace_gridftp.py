"""HPC workspaces and GridFTP without a host: property checks, the commands and
addresses Croupier builds, every value quoted."""

import shlex
import subprocess

import pytest

from croupier_plugin.core.data import DataInfrastructure, DataSource, endpoint_host
from croupier_plugin.core.data_gridftp import CLIENT_SCRIPT_TEXT, file_url, sshftp_url
from croupier_plugin.core.data_workspace import (Workspace, WorkspaceError, WorkspaceState,
                                                 join, parse_prepare, prepare_command,
                                                 release_command)
from croupier_plugin.core.errors import ConfigError


@pytest.mark.parametrize('value, expected', [
    (None, None), ({}, None), ({'create': False, 'lifetime': 1}, None),
    ({'name': 'run-1'}, Workspace('run-1')),
    ({'name': 'a.b_c', 'create': True, 'lifetime': 30}, Workspace('a.b_c', True, 30)),
])
def test_workspace_property(value, expected):
    assert Workspace.from_property(value) == expected


@pytest.mark.parametrize('value, prop', [
    ({'name': 'a b'}, 'workspace.name'), ({'name': '-rf'}, 'workspace.name'),
    ({'name': 'a;b'}, 'workspace.name'), ({'name': '$(id)'}, 'workspace.name'),
    ({'name': 5}, 'workspace.name'), ({'create': True}, 'workspace.name'),
    ({'name': 'w', 'create': 'yes'}, 'workspace.create'),
    ({'name': 'w', 'lifetime': True}, 'workspace.lifetime'),
    ({'name': 'w', 'lifetime': 0}, 'workspace.lifetime'),
    ({'name': 'w', 'lifetime': 1.5}, 'workspace.lifetime'),
    ({'name': 'w', 'size': 5}, 'workspace.size'), ('w', 'workspace'),
])
def test_bad_workspace_values_are_refused_by_name(value, prop):
    with pytest.raises(ConfigError) as err:
        Workspace.from_property(value)
    assert err.value.prop == prop


def hpc(basepath=None):
    return DataInfrastructure.from_properties('hpc', {
        'endpoint': 'h.example.org', 'credentials': {'user': 'u', 'password': 'pw'},
        **({'workspace_basepath': basepath} if basepath else {})})


@pytest.mark.parametrize('path, problem', [
    ('/scratch/a', 'no absolute or home path'), ('~/a', 'no absolute or home path'),
    ('$HOME/a', 'no absolute or home path'), ('a/../../b', "holds '..'"),
    ('${workdir}/a', '${workdir} does not apply'),
])
def test_a_workspace_filepath_stays_inside_it(path, problem):
    with pytest.raises(ConfigError) as err:
        DataSource.from_properties('d', 'file', {'filepath': path,
                                                 'workspace': {'name': 'w'}}, hpc())
    assert str(err.value).startswith(f"node 'd', property 'filepath' = {path!r}: ")
    assert problem in str(err.value)


def test_a_workspace_needs_ssh_credentials():
    web = DataInfrastructure.from_properties('web', {'endpoint': 'http://w.example.org'})
    with pytest.raises(ConfigError, match="'web' has no SSH credentials"):
        DataSource.from_properties('d', 'file', {'filepath': 'a', 'workspace': {'name': 'w'}},
                                   web)


@pytest.mark.parametrize('path, expected', [
    ('a.txt', '/ws/w/a.txt'), ('in/', '/ws/w/in/'), ('.', '/ws/w'), ('./', '/ws/w/'),
    ('sub/x', '/ws/w/sub/x'),
])
def test_paths_join_the_workspace(path, expected):
    assert join('/ws/w', path) == expected


def run_sh(command, tmp_path, path_dirs=''):
    """``command`` in a POSIX shell with HOME at tmp_path and only the system's
    PATH (plus ``path_dirs``): no hpc-workspace tools unless given."""
    env = {'HOME': str(tmp_path), 'PATH': f'{path_dirs}/usr/bin:/bin'}
    return subprocess.run(['sh', '-c', command], capture_output=True, text=True, env=env,
                          timeout=20)


def test_the_fallback_folder_commands_run_in_a_plain_shell(tmp_path):
    """prepare/find/release as a host without the tools runs them (here: sh in a
    temporary home), with a name that would break an unquoted command."""
    ws = Workspace('w.1-x', create=True)
    done = run_sh(prepare_command(ws), tmp_path)
    state = parse_prepare(ws, 'h', done.returncode, done.stdout, done.stderr)
    assert state == WorkspaceState('w.1-x', f'{tmp_path}/croupier-workspaces/w.1-x', True,
                                   'folder')
    again = run_sh(prepare_command(ws), tmp_path)
    assert not parse_prepare(ws, 'h', again.returncode, again.stdout, again.stderr).created
    assert run_sh(release_command(state), tmp_path).returncode == 0
    assert not (tmp_path / 'croupier-workspaces' / 'w.1-x').exists()
    missing = run_sh(prepare_command(Workspace('other')), tmp_path)
    with pytest.raises(WorkspaceError, match='does not exist on h'):
        parse_prepare(Workspace('other'), 'h', missing.returncode, missing.stdout,
                      missing.stderr)


def test_the_tool_commands_use_ws_allocate_output_last_line(tmp_path):
    """With ws_* on the PATH (tiny fakes printing notes on stdout too), the path
    is ws_allocate's last stdout line and the lifetime is passed as days."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'ws_allocate').write_text(
        '#!/bin/sh\necho "note"\necho "$@" > "$HOME/args"\nmkdir -p "$HOME/$1"\n'
        'echo "$HOME/$1"\n')
    (bin_dir / 'ws_find').write_text('#!/bin/sh\n[ -d "$HOME/$1" ] && echo "$HOME/$1"\n')
    (bin_dir / 'ws_release').write_text('#!/bin/sh\nrm -r "$HOME/$1"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    ws = Workspace('w', create=True, lifetime=9)
    done = run_sh(prepare_command(ws), tmp_path, f'{bin_dir}:')
    state = parse_prepare(ws, 'h', done.returncode, done.stdout, done.stderr)
    assert state == WorkspaceState('w', f'{tmp_path}/w', True, 'hpc-workspace')
    assert (tmp_path / 'args').read_text() == 'w 9\n'
    assert release_command(state) == 'ws_release w'


def test_gridftp_addresses_are_percent_encoded_and_quoted():
    assert file_url('/home/u/a b/c%.txt') == 'file:///home/u/a%20b/c%25.txt'
    assert sshftp_url('u', 'h.example.org', 2222, '~/a b/') == \
        'sshftp://u@h.example.org:2222/~/a%20b/'
    assert sshftp_url('u', 'h', 22, 'rel/x') == 'sshftp://u@h:22/~/rel/x'
    assert sshftp_url('u', 'h', 22, '/abs/x;rm') == 'sshftp://u@h:22/abs/x%3Brm'
    assert sshftp_url('u', '::1', 22, '/x') == 'sshftp://u@[::1]:22/x'
    # the address reaches the shell as one word
    assert shlex.split(shlex.quote(file_url("/a'b $(id)"))) == ["file:///a%27b%20%24%28id%29"]


def test_the_client_script_pins_the_host_key_only_when_asked():
    assert 'StrictHostKeyChecking=yes' in CLIENT_SCRIPT_TEXT
    assert 'UserKnownHostsFile=$CROUPIER_SSHFTP_KNOWN_HOSTS' in CLIENT_SCRIPT_TEXT
    assert 'PasswordAuthentication=no' in CLIENT_SCRIPT_TEXT
    assert subprocess.run(['sh', '-n', '-c', CLIENT_SCRIPT_TEXT]).returncode == 0


@pytest.mark.parametrize('endpoint, host', [
    ('gridftp.example.org:2811', 'gridftp.example.org'),
    ('gsiftp://g.example.org:2811', 'g.example.org'),
    ('files.example.org', 'files.example.org'), ('http://w.example.org/x', 'w.example.org'),
])
def test_endpoint_hosts(endpoint, host):
    assert endpoint_host(endpoint) == host


def test_ssh_endpoint_gives_the_login_host_and_port():
    grid = DataInfrastructure.from_properties('g', {
        'endpoint': 'gridftp.example.org:2811', 'ssh_endpoint': 'login.example.org:2222',
        'credentials': {'user': 'u', 'password': 'pw', 'port': 22, 'ssh_port': 22}})
    assert (grid.ssh.host, grid.ssh.port) == ('login.example.org', 2222)
    plain = DataInfrastructure.from_properties('g', {
        'endpoint': 'gridftp.example.org:2811', 'credentials': {'user': 'u', 'password': 'pw'}})
    assert (plain.ssh.host, plain.ssh.port) == ('gridftp.example.org', 22)


@pytest.mark.parametrize('cert_key', ['cert', 'cert_password'])
def test_a_certificate_is_refused_without_showing_it(cert_key):
    with pytest.raises(ConfigError) as err:
        DataInfrastructure.from_properties('g', {
            'endpoint': 'g.example.org', 'credentials': {'user': 'u', 'password': 'pw',
                                                         cert_key: 'S3CRET'}})
    assert f"property 'credentials.{cert_key}' = '<hidden>': GridFTP X.509" in str(err.value)
    assert 'S3CRET' not in str(err.value)
