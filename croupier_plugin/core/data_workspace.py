"""HPC workspaces of HPCDataSource nodes (``croupier.datatypes.dm.HPCWorkspace``).

A workspace is a folder with a lifetime that a cluster hands out through the
hpc-workspace tools: ``ws_allocate NAME DAYS`` makes it (or reuses the one of
that name) and prints its path on stdout, ``ws_find NAME`` prints the path of
an existing one, ``ws_release NAME`` gives it back. On a host without these
tools (none on the login's PATH), the workspace is a folder
``<base>/NAME``: ``base`` is the data access infrastructure's
``workspace_basepath`` when it gives one, else ``croupier-workspaces`` in the
login's home; such a folder has no lifetime.

When: the workspace is made at install (the HPCDataSource's configure
operation), so before any job that reads or writes it. At uninstall it is
released only when that install created it: a workspace that existed before
(``create: false``, or one of that name already there) is the user's and is
kept.

Pure Python, no Cloudify.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, CroupierError

if TYPE_CHECKING:                   # data imports this module
    from .data import DataInfrastructure

# the names hpc-workspace accepts: ASCII letters and digits, '-', '.' and '_'
# (starting with a letter or digit, so that no name reads as an option)
_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,99}')
# hpc-workspace sites cap lifetimes far below this; more is a typo, not a wish
MAX_LIFETIME_DAYS = 3650
FALLBACK_FOLDER = 'croupier-workspaces'
TOOL = 'hpc-workspace'
FOLDER = 'folder'
WORKSPACE_KEYS = ('name', 'create', 'lifetime')


class WorkspaceError(CroupierError):
    """A workspace could not be made, found or released; the message says which and why."""


@dataclass(frozen=True)
class Workspace:
    """An HPCDataSource's workspace: its ``name``, whether Croupier may
    ``create`` it, and the ``lifetime`` in days it is asked for."""
    name: str
    create: bool = False
    lifetime: int = 1

    @classmethod
    def from_property(cls, value: Any) -> Workspace | None:
        """The workspace of an HPCDataSource's ``workspace`` property; None when
        it gives none (absent, or only the type's defaults). ConfigError naming
        the sub-property and value otherwise."""
        if value in (None, {}, ''):
            return None
        if not isinstance(value, Mapping):
            raise ConfigError('workspace', value, 'must be a mapping with name, create and '
                                                  'lifetime')
        for key in value:
            if key not in WORKSPACE_KEYS:
                raise ConfigError(f'workspace.{key}', value[key],
                                  f'is not a workspace property ({", ".join(WORKSPACE_KEYS)})')
        create = value.get('create', False)
        if create is None:
            create = False
        if not isinstance(create, bool):
            raise ConfigError('workspace.create', create, 'must be true or false')
        lifetime = value.get('lifetime', 1)
        if lifetime is None:
            lifetime = 1
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or \
                not 1 <= lifetime <= MAX_LIFETIME_DAYS:
            raise ConfigError('workspace.lifetime', lifetime,
                              f'must be a whole number of days from 1 to {MAX_LIFETIME_DAYS}')
        name = value.get('name')
        if name in (None, ''):
            if not create and lifetime == 1:
                return None             # the data type's defaults alone: no workspace
            raise ConfigError('workspace.name', name, 'is required: the workspace\'s name')
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError('workspace.name', name,
                              'must be 1 to 100 ASCII letters, digits, ".", "_" or "-", '
                              'starting with a letter or digit (what ws_allocate accepts)')
        return cls(name=name, create=create, lifetime=lifetime)


@dataclass(frozen=True)
class WorkspaceState:
    """What install did: the workspace's absolute ``path``, whether it
    ``created`` it, and how (``tool``: 'hpc-workspace' or 'folder')."""
    name: str
    path: str
    created: bool
    tool: str

    def to_properties(self) -> dict:
        """The runtime properties that keep it until uninstall."""
        return {'workspace_name': self.name, 'workspace_path': self.path,
                'workspace_created': self.created, 'workspace_tool': self.tool}

    @classmethod
    def from_properties(cls, props: Mapping[str, Any]) -> WorkspaceState | None:
        """The state install stored, or None when it stored none."""
        if not props.get('workspace_path') or not props.get('workspace_name'):
            return None
        return cls(name=props['workspace_name'], path=props['workspace_path'],
                   created=bool(props.get('workspace_created')),
                   tool=props.get('workspace_tool') or FOLDER)


def fallback_base(basepath: str | None) -> str:
    """The folder that holds fallback workspaces, quoted for a POSIX shell:
    ``basepath`` when given, else croupier-workspaces in the login's home."""
    if basepath:
        return shlex.quote(basepath.rstrip('/') or '/')
    return '"$HOME"/' + FALLBACK_FOLDER


def _has_tools() -> str:
    """A shell test: the hpc-workspace tools are on the login's PATH."""
    return ('command -v ws_allocate >/dev/null 2>&1 && command -v ws_find >/dev/null 2>&1 '
            '&& command -v ws_release >/dev/null 2>&1')


def prepare_command(workspace: Workspace, basepath: str | None = None) -> str:
    """The shell command that finds the workspace, or makes it when allowed.
    It prints ``tool=…``, ``existing=0|1`` and ``path=…`` lines; exit code 3
    (and ``missing``) when it does not exist and may not be created."""
    name = shlex.quote(workspace.name)
    base = fallback_base(basepath)
    # ws_allocate prints the path last on stdout (its notes go to stderr)
    make_tool = (f'p=$(ws_allocate {name} {int(workspace.lifetime)}) || exit $?; '
                 f'p=$(printf "%s\\n" "$p" | tail -n 1); '
                 if workspace.create else 'echo missing; exit 3; ')
    make_folder = ('mkdir -p -- "$b" && mkdir -m 700 -- "$d" || exit $?; '
                   if workspace.create else 'echo missing; exit 3; ')
    return (f'if {_has_tools()}; then echo tool={TOOL}; '
            f'if p=$(ws_find {name} 2>/dev/null) && [ -n "$p" ]; then echo existing=1; '
            f'else {make_tool}echo existing=0; fi; '
            f'else echo tool={FOLDER}; b={base}; d="$b"/{name}; '
            f'if [ -d "$d" ]; then echo existing=1; else {make_folder}echo existing=0; fi; '
            f'p=$(cd -- "$d" && pwd -P) || exit $?; fi; '
            f'printf "path=%s\\n" "$p"')


def parse_prepare(workspace: Workspace, host: str, exit_code: int, stdout: str,
                  stderr: str) -> WorkspaceState:
    """The WorkspaceState from prepare_command's output; WorkspaceError naming
    the workspace, the host and why when it failed."""
    fields: dict[str, str] = {}
    for line in stdout.splitlines():
        key, _, value = line.partition('=')
        if key in ('tool', 'existing', 'path'):
            fields[key] = value
    if exit_code == 3 and 'missing' in stdout.split():
        where = 'with ws_find' if fields.get('tool') == TOOL else 'as a folder'
        raise WorkspaceError(f"workspace '{workspace.name}' does not exist on {host} "
                             f"(looked up {where}) and create is false: create it first, or "
                             f"set workspace.create: true")
    path = fields.get('path', '').strip()
    if exit_code != 0 or not path.startswith('/'):
        how = 'ws_allocate' if fields.get('tool') == TOOL else 'mkdir'
        raise WorkspaceError(f"workspace '{workspace.name}' could not be made on {host} "
                             f"({how} ended with exit code {exit_code}): "
                             f"{stderr.strip()[-500:] or stdout.strip()[-500:]}")
    return WorkspaceState(name=workspace.name, path=path,
                          created=fields.get('existing') == '0',
                          tool=fields.get('tool') or FOLDER)


def find_command(workspace: Workspace, basepath: str | None = None) -> str:
    """The shell command that prints the workspace's absolute path (exit
    code 3 when there is none)."""
    name = shlex.quote(workspace.name)
    return (f'if {_has_tools()}; then ws_find {name} || exit 3; '
            f'else d={fallback_base(basepath)}/{name}; '
            f'[ -d "$d" ] || exit 3; cd -- "$d" && pwd -P; fi')


def release_command(state: WorkspaceState, basepath: str | None = None) -> str:
    """The shell command that gives back a workspace install created: with
    ws_release, or by removing the fallback folder, which must be exactly the
    folder of that name (install recorded it; nothing else is removed)."""
    name = shlex.quote(state.name)
    if state.tool == TOOL:
        return f'ws_release {name}'
    path = shlex.quote(state.path)
    return (f'd=$(cd -- {fallback_base(basepath)}/{name} 2>/dev/null && pwd -P) || exit 0; '
            f'if [ "$d" = {path} ]; then rm -rf -- "$d"; '
            f'else echo "{state.path} is not the workspace folder (found $d): left" >&2; '
            f'exit 4; fi')


def join(workspace_path: str, path: str) -> str:
    """``path`` (relative to the workspace; '.' for the workspace itself)
    inside the workspace at ``workspace_path``."""
    folder = path.endswith('/')
    inside = path.strip('/')
    if inside in ('', '.'):
        return workspace_path.rstrip('/') + ('/' if folder else '')
    return posixpath.join(workspace_path, inside) + ('/' if folder else '')


def relative_path_problem(path: str) -> str | None:
    """Why ``path`` cannot be a filepath inside a workspace, or None."""
    if path.startswith(('/', '~', '$HOME', '${HOME}')):
        return 'is relative to the workspace: no absolute or home path'
    if '${workdir}' in path:
        return 'is relative to the workspace: ${workdir} does not apply'
    if '..' in path.split('/'):
        return "holds '..': a path in a workspace stays inside it"
    return None


def prepare(data_infrastructure: DataInfrastructure, workspace: Workspace) -> WorkspaceState:
    """Find or make ``workspace`` on the data access infrastructure ``data_infrastructure``
    (over its SSH login). WorkspaceError when it cannot."""
    command = prepare_command(workspace, data_infrastructure.workspace_basepath)
    result = data_infrastructure.transport().run(command, idempotent=True)
    return parse_prepare(workspace, data_infrastructure.host, result.exit_code, result.stdout,
                         result.stderr)


def release(data_infrastructure: DataInfrastructure, state: WorkspaceState) -> None:
    """Give back a workspace that install created. WorkspaceError when the
    release command fails."""
    command = release_command(state, data_infrastructure.workspace_basepath)
    result = data_infrastructure.transport().run(command)
    if not result.ok:
        how = 'ws_release' if state.tool == TOOL else 'removing the folder'
        raise WorkspaceError(f"workspace '{state.name}' on {data_infrastructure.host}: {how} "
                             f"ended with exit code {result.exit_code}: "
                             f"{result.stderr.strip()[-500:]}")
