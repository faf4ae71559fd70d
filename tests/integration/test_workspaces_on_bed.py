"""HPC workspaces of HPCDataSource nodes on the bed: made with the hpc-workspace
stand-ins (tests/bed/stand-ins/ws_*, on the PATH of the test users' login shells) when
the login sees them, else as a folder; found again at run time; released only when
Croupier made them."""

import os
import shlex
import time
import uuid

import pytest

from croupier_plugin.core.data import DataInfrastructure, DataSource, Transfer
from croupier_plugin.core.data_workspace import (Workspace, WorkspaceError, WorkspaceState,
                                                 prepare, release)
from croupier_plugin.core.transport import SshSettings

pytestmark = pytest.mark.bed

WS_ROOT = '/var/tmp/croupier-bed-ws'


def infra(bed, login_shell, basepath=None, name='hpc'):
    """crtest's login as a data access infrastructure; ``login_shell`` decides
    whether it sees the hpc-workspace tools."""
    ssh = SshSettings(host=bed['host'], port=bed['port'], user=bed['user'],
                      private_key_file=bed['keys']['ed25519'], known_hosts=bed['known_hosts'],
                      login_shell=login_shell, reconnect_timeout=20)
    return DataInfrastructure(name, bed['host'], ssh=ssh, workspace_basepath=basepath)


@pytest.fixture
def name(ssh):
    """A workspace name of this test; whatever is left of it is removed afterwards."""
    ws = f'cr-{uuid.uuid4().hex[:8]}'
    yield ws
    ssh.run(f"bash -l -c {shlex.quote(f'ws_release {ws}')} >/dev/null 2>&1; "
            f"rm -rf -- ~/croupier-workspaces/{ws}")


@pytest.fixture(autouse=True)
def data_tools_installed():
    if not os.path.exists('/opt/croupier-bed/hpc-workspace/bin/ws_allocate'):
        pytest.fail('the hpc-workspace stand-ins are not installed: run '
                    'tests/bed/bed.sh setup-data-tools (bed.sh start does it)')


def test_workspace_is_allocated_found_and_released_with_the_tools(bed, ssh, name):
    started = time.monotonic()
    hpc = infra(bed, login_shell=True)
    state = prepare(hpc, Workspace(name, create=True, lifetime=3))
    assert state == WorkspaceState(name, f"{WS_ROOT}/{bed['user']}-{name}", True,
                                   'hpc-workspace')
    # the stand-in's record: 3 days from now
    expiry = int(ssh.run(f"cat {WS_ROOT}/.db/{bed['user']}-{name}").stdout)
    assert abs(expiry - (time.time() + 3 * 86400)) < 120
    # a second install finds it: not Croupier's to release then
    again = prepare(infra(bed, login_shell=True), Workspace(name, create=True, lifetime=3))
    assert again.path == state.path and not again.created
    # the run time lookup (ws_find) gives the same folder, and data lands in it
    ssh.run(f'mkdir -p {name}-src && echo payload > {name}-src/in.txt', check=True)
    try:
        source = DataSource('src', 'file', f'{name}-src/in.txt', infra(bed, False, name='here'))
        target = DataSource('data', 'file', 'inputs/', infra(bed, login_shell=True),
                            workspace=Workspace(name))
        Transfer('stage', 'SFTP', source, target).run()
    finally:
        ssh.run(f'rm -rf -- {name}-src')
    assert ssh.run(f'cat {state.path}/inputs/in.txt').stdout == 'payload\n'
    release(hpc, state)
    found = ssh.run(f"bash -l -c {shlex.quote(f'ws_find {name}')}")
    assert found.exit_code != 0 and found.stdout == ''
    assert ssh.run(f'test -e {state.path}').exit_code != 0
    # as the real tool, released data is moved aside, not deleted at once
    assert ssh.run(f"ls {WS_ROOT}/.removed | grep -c -- '^{bed['user']}-{name}-'"
                   ).stdout.strip() == '1'
    assert time.monotonic() - started < 20


def test_a_missing_workspace_that_may_not_be_created_is_an_error(bed, ssh, name):
    for login_shell, how in ((True, 'looked up with ws_find'), (False, 'looked up as a folder')):
        with pytest.raises(WorkspaceError) as err:
            prepare(infra(bed, login_shell), Workspace(name, create=False))
        assert str(err.value) == (f"workspace '{name}' does not exist on {bed['host']} ({how}) "
                                  f"and create is false: create it first, or set "
                                  f"workspace.create: true")
    assert ssh.run(f'ls -d {WS_ROOT}/*{name}* ~/croupier-workspaces/{name} 2>/dev/null'
                   ).stdout == ''


def test_an_existing_workspace_is_used_and_kept(bed, ssh, name):
    made = ssh.run(f"bash -l -c {shlex.quote(f'ws_allocate {name} 2')}", check=True)
    path = made.stdout.strip()
    state = prepare(infra(bed, login_shell=True), Workspace(name, create=False))
    assert (state.path, state.created, state.tool) == (path, False, 'hpc-workspace')


def test_without_the_tools_the_workspace_is_a_private_folder_in_the_home(bed, ssh, name):
    hpc = infra(bed, login_shell=False)
    state = prepare(hpc, Workspace(name, create=True, lifetime=5))
    assert state == WorkspaceState(name, f"{bed['home']}/croupier-workspaces/{name}", True,
                                   'folder')
    assert ssh.run(f'stat -c %a {state.path}').stdout.strip() == '700'
    ssh.run(f'touch {state.path}/result.dat', check=True)
    assert hpc.workspace_path(Workspace(name)) == state.path
    release(hpc, state)
    assert ssh.run(f'test -e {state.path}').exit_code != 0
    # the folder holding workspaces stays
    assert ssh.run('test -d ~/croupier-workspaces').exit_code == 0


def test_a_fallback_folder_under_workspace_basepath(bed, ssh, name):
    base = f"{bed['home']}/croupier-tests/ws-{name}"
    try:
        hpc = infra(bed, login_shell=False, basepath=base)
        state = prepare(hpc, Workspace(name, create=True))
        assert state.path == f'{base}/{name}' and state.created
        # a folder recorded by an install that is not this workspace's is never removed
        wrong = WorkspaceState(name, f"{bed['home']}", True, 'folder')
        with pytest.raises(WorkspaceError, match='is not the workspace folder'):
            release(hpc, wrong)
        assert ssh.run(f'test -d {state.path}').exit_code == 0
        release(hpc, state)
        assert ssh.run(f'test -e {state.path}').exit_code != 0
    finally:
        ssh.run(f'rm -rf -- {shlex.quote(base)}')
