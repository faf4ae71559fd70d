"""Data: where it lives (data access infrastructures), what it is (file and web
data sources) and how it moves (HTTP, SFTP and RSYNC transfers).

Pure Python, no Cloudify. The workflow builds these objects from the
blueprint and the engine runs a job's input transfers before submitting it
and its output transfers after it completed.

How each protocol moves data:

- GRIDFTP (a file source to a file source): ``globus-url-copy`` runs where
  rsync would, reaching the other host over ``sshftp://`` (GridFTP over the
  SSH login, served by the host's ``sshftp`` entry): see data_gridftp.
- HTTP (a web source to a file source): fetched by the target host itself
  (curl, else wget) when its infrastructure has internet access, otherwise
  fetched here and streamed to the target over SFTP, never through a local
  file.
- SFTP (a file source to a file source): streamed through the orchestrator,
  file by file, from one SFTP session to the other; directories recursively.
- RSYNC (a file source to a file source): ``rsync`` runs on the source host
  (pushing) when it has internet access, else on the target host (pulling);
  the hop between the hosts logs in with the other host's key, lent through
  SSH agent forwarding from this process's memory: no key is written on
  either host and no password is put on a command line. The hop verifies the
  other host's key with the key this process verified. When neither host has
  internet access the data is relayed through the orchestrator as with SFTP.

Paths may start with ``~/`` or ``$HOME/`` (the login user's home) and may hold
``${workdir}``, the deployment's working directory on that host. An
HPCDataSource with a workspace has its path inside the workspace (see
data_workspace).
"""

from __future__ import annotations

import logging
import os
import posixpath
import secrets
import shlex
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

import paramiko
import requests

from .data_workspace import (Workspace, WorkspaceError, find_command, join,
                             relative_path_problem)
from .errors import ConfigError, CroupierError
from .files import replace_file_with
from .legacy import credential_refusal
from .transport import LocalTransport, SshSettings, SshTransport
from .transport.agent import Loan

log = logging.getLogger('croupier.data')

PROTOCOLS = ('HTTP', 'RSYNC', 'SFTP', 'GRIDFTP', 'CKANAPI')
WORKDIR_PLACEHOLDER = '${workdir}'
DAI_PROPERTIES = ('endpoint', 'internet_access', 'supported_protocols', 'credentials',
                  'ssh_endpoint', 'workspace_basepath')
CHUNK = 1 << 20


class TransferError(CroupierError):
    """A transfer ran and failed; the message says which and why."""


def protocol(prop: str, value: Any) -> str:
    """The protocol's canonical name (any case, with or without - and _)."""
    if not isinstance(value, str) or any(c.isspace() for c in value):
        raise ConfigError(prop, value, f'must be one of {", ".join(PROTOCOLS)}')
    name = value.upper().replace('-', '').replace('_', '')
    if name in PROTOCOLS:
        return name
    raise ConfigError(prop, value, f'must be one of {", ".join(PROTOCOLS)}')


def _flag(prop: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(prop, value, 'must be true or false')
    return value


@dataclass
class DataInfrastructure:
    """A host that holds data: reachable over HTTP (an http(s) endpoint) and/or
    over SSH (credentials)."""
    name: str
    endpoint: str
    internet_access: bool = False
    protocols: tuple[str, ...] = ()
    ssh: SshSettings | None = None
    workdir: str | None = None       # the deployment's working directory there
    secrets_pending: bool = False       # credentials will come from Vault (not read yet)
    # where workspaces are folders when the host has no hpc-workspace tools
    workspace_basepath: str | None = None
    _workspace_paths: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    _workspace_lock: threading.Lock = field(default_factory=threading.Lock, repr=False,
                                            compare=False)

    @classmethod
    def from_properties(cls, name: str, props: Mapping[str, Any]) -> DataInfrastructure:
        """The infrastructure of node ``name``; ConfigError naming the node, property
        and value."""
        try:
            return cls._from_properties(name, props)
        except ConfigError as exc:
            raise exc.for_node(name) from None

    @classmethod
    def _from_properties(cls, name: str, props: Mapping[str, Any]) -> DataInfrastructure:
        for key in props:
            if key not in DAI_PROPERTIES:
                raise ConfigError(key, props[key], f'is not a property of a data access '
                                                   f'infrastructure ({", ".join(DAI_PROPERTIES)})')
        endpoint = props.get('endpoint')
        if isinstance(endpoint, str):
            # before any message that would show the endpoint as given
            refuse_userinfo('endpoint', endpoint.strip())
        # any white space, a line break at the end too, would reach a command line
        if not isinstance(endpoint, str) or not endpoint.strip() or \
                any(c.isspace() for c in endpoint):
            raise ConfigError('endpoint', endpoint, 'is required: an http(s)://host[:port] '
                                                    'address or a host name')
        endpoint = endpoint.strip()
        host = endpoint_host(endpoint)
        if not host:
            raise ConfigError('endpoint', endpoint, 'names no host')
        ssh_host, ssh_port = _ssh_endpoint(props.get('ssh_endpoint'))
        basepath = props.get('workspace_basepath') or None
        if basepath is not None and (not isinstance(basepath, str) or
                                     not basepath.startswith('/') or '\n' in basepath or
                                     '\0' in basepath):
            raise ConfigError('workspace_basepath', basepath, 'must be an absolute path')
        listed = props.get('supported_protocols') or []
        if isinstance(listed, str):
            listed = [listed]
        if not isinstance(listed, list):
            raise ConfigError('supported_protocols', listed, 'must be a list of protocols')
        protocols = tuple(protocol(f'supported_protocols[{i}]', p)
                          for i, p in enumerate(listed))
        internet = _flag('internet_access', props.get('internet_access', False))
        credentials = dict(props.get('credentials') or {})
        for key in ('cert', 'cert_password'):
            # a GridFTP infrastructure's certificate: the same refusal as validation's
            if credentials.pop(key, None) not in (None, ''):
                raise ConfigError(f'credentials.{key}', '<hidden>',
                                  credential_refusal(key) or 'is not supported')
        ssh = None
        secret_given = any(credentials.get(k) for k in ('password', 'private_key',
                                                          'private_key_file'))
        if secret_given or credentials.get('user'):
            if not credentials.get('host'):
                credentials['host'] = ssh_host or host
            if ssh_port is not None and credentials.get('port') in (None, '', 22) and \
                    credentials.get('ssh_port') in (None, '', 22):
                # the types' default port (22) gives way to ssh_endpoint's
                credentials.pop('ssh_port', None)
                credentials['port'] = ssh_port
            ssh = SshSettings.from_credentials(credentials)
        return cls(name=name, endpoint=endpoint, internet_access=internet,
                   protocols=protocols, ssh=ssh, workspace_basepath=basepath)

    @property
    def web_base(self) -> str | None:
        """The http(s) address, or None for an infrastructure reached only over SSH."""
        scheme = urllib.parse.urlsplit(self.endpoint).scheme.lower()
        return self.endpoint.rstrip('/') if scheme in ('http', 'https') else None

    @property
    def host(self) -> str:
        """The host name: the SSH login's, else the endpoint's."""
        return self.ssh.host if self.ssh else endpoint_host(self.endpoint)

    def supports(self, name: str) -> bool:
        """Whether protocol ``name`` may be used here (any, when none are listed)."""
        return not self.protocols or name in self.protocols

    def transport(self) -> SshTransport:
        """The SSH transport to the host; ConfigError when it has no SSH credentials."""
        if self.ssh is None:
            raise ConfigError('credentials', None, f"data access infrastructure "
                                                   f"'{self.name}' has no SSH credentials")
        return SshTransport(self.ssh)

    def workspace_path(self, workspace: Workspace) -> str:
        """The absolute path of ``workspace`` on this host (ws_find, or the
        fallback folder), looked up once. WorkspaceError when it does not
        exist: install makes it."""
        with self._workspace_lock:
            if workspace.name not in self._workspace_paths:
                result = self.transport().run(find_command(workspace, self.workspace_basepath))
                lines = result.stdout.strip().splitlines()
                path = lines[-1].strip() if result.ok and lines else ''
                if not path.startswith('/'):
                    said = result.stderr.strip()[-300:]
                    raise WorkspaceError(f"workspace '{workspace.name}' is not on {self.host} "
                                         f"(exit code {result.exit_code}"
                                         f"{': ' + said if said else ''}): install makes it")
                self._workspace_paths[workspace.name] = path
            return self._workspace_paths[workspace.name]

    def resolve(self, path: str) -> str:
        """``path`` with ${workdir} replaced by the deployment's working directory here."""
        if WORKDIR_PLACEHOLDER not in path:
            return path
        if not self.workdir:
            raise ConfigError('filepath', path, f"uses {WORKDIR_PLACEHOLDER}, but no "
                                                f"InfrastructureInterface on host "
                                                f"'{self.host}' has a working directory")
        return path.replace(WORKDIR_PLACEHOLDER, self.workdir)


def endpoint_host(endpoint: str) -> str:
    """The host name in an endpoint (a URL, host or host:port); '' when none."""
    if '://' in endpoint:
        return urllib.parse.urlsplit(endpoint).hostname or ''
    host = endpoint.split('/')[0]
    name, colon, port = host.rpartition(':')
    # host:port, as GridFTP endpoints are written (gridftp.example.org:2811)
    return name if colon and port.isdigit() and ':' not in name else host


def _ssh_endpoint(value: Any) -> tuple[str | None, int | None]:
    """(host, port or None) of a GridFTP infrastructure's ``ssh_endpoint``
    (host or host:port); (None, None) when not given."""
    if value in (None, ''):
        return None, None
    if not isinstance(value, str) or any(c.isspace() for c in value) or '@' in value:
        raise ConfigError('ssh_endpoint', value, 'must be host or host:port (the user goes in '
                                                 'credentials)')
    text = value.split('://', 1)[1] if '://' in value else value
    text = text.split('/')[0]
    name, colon, port = text.rpartition(':')
    if colon and ':' not in name:
        if not port.isdigit() or not 0 < int(port) < 65536 or not name:
            raise ConfigError('ssh_endpoint', value, 'must be host or host:port')
        return name, int(port)
    if not text:
        raise ConfigError('ssh_endpoint', value, 'names no host')
    return text, None


def refuse_userinfo(prop: str, value: str) -> None:
    """ConfigError when the address ``value`` holds a ``user[:password]@``
    part. Such a password would reach the data host's command line, the job's
    reason and the logs; the message shows the address with that part hidden."""
    after_scheme = value.split('://', 1)[1] if '://' in value else value
    authority = after_scheme.split('/', 1)[0]
    if '@' not in authority:
        return
    hidden = value[:len(value) - len(after_scheme)] + '<hidden>@' + \
        after_scheme[authority.rindex('@') + 1:]
    raise ConfigError(prop, hidden, 'must not hold a user or password: give the user in '
                                    'credentials, and passwords through credentials or Vault')


@dataclass
class DataSource:
    """A file or folder (``kind`` 'file', at ``path`` on the host) or a web
    resource (``kind`` 'web', at ``path`` under the endpoint)."""
    name: str
    kind: str
    path: str
    data_infrastructure: DataInfrastructure
    workspace: Workspace | None = None    # an HPCDataSource's: path is inside it

    @classmethod
    def from_properties(cls, name: str, kind: str, props: Mapping[str, Any],
                        data_infrastructure: DataInfrastructure) -> DataSource:
        """The source of node ``name`` (``kind`` 'file' or 'web') on ``data_infrastructure``;
        ConfigError naming the node, property and value."""
        key = 'filepath' if kind == 'file' else 'resource'
        value = props.get(key)
        if not isinstance(value, str) or not value.strip() or '\n' in value or '\0' in value:
            raise ConfigError(key, value, 'is required: a single-line path').for_node(name)
        if kind == 'web' and '://' in value:
            try:
                refuse_userinfo(key, value.strip())
            except ConfigError as exc:
                raise exc.for_node(name) from None
        workspace = None
        if kind == 'file' and 'workspace' in props:
            try:
                workspace = _workspace_of(props, value.strip(), data_infrastructure)
            except ConfigError as exc:
                raise exc.for_node(name) from None
        return cls(name=name, kind=kind, path=value.strip(),
                   data_infrastructure=data_infrastructure, workspace=workspace)

    def location(self) -> str:
        """The path on the host: inside the workspace, or with ${workdir} resolved."""
        if self.workspace is not None:
            return join(self.data_infrastructure.workspace_path(self.workspace), self.path)
        return self.data_infrastructure.resolve(self.path)

    def url(self) -> str | None:
        """The http(s) address of the source, or None when its host has no web endpoint."""
        base = self.data_infrastructure.web_base
        if base is None:
            return None
        return base + '/' + urllib.parse.quote(self.location().lstrip('/'),
                                               safe="/~:@!$&'()*+,;=%?")

    def __str__(self) -> str:
        where = self.data_infrastructure.name
        if self.workspace is not None:
            return f"'{self.name}' ({where}:workspace {self.workspace.name}/{self.path})"
        return f"'{self.name}' ({where}:{self.path})"


def _workspace_of(props: Mapping[str, Any], path: str,
                  data_infrastructure: DataInfrastructure) -> Workspace | None:
    """An HPCDataSource's workspace, its filepath checked against it; None
    when it names none."""
    workspace = Workspace.from_property(props.get('workspace'))
    if workspace is None:
        return None
    problem = relative_path_problem(path)
    if problem:
        raise ConfigError('filepath', path, f"{problem} (workspace '{workspace.name}')")
    if data_infrastructure.ssh is None and not data_infrastructure.secrets_pending:
        raise ConfigError('workspace', dict(props['workspace']),
                          f"its infrastructure '{data_infrastructure.name}' has no SSH "
                          f"credentials to make or find the workspace with")
    return workspace


@dataclass
class Transfer:
    """Moves ``source`` to ``target`` with ``protocol``; run once per run even
    when several jobs wait for it."""
    name: str
    protocol: str
    source: DataSource
    target: DataSource
    timeout: float = 6 * 3600
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _outcome: tuple[str, str] | None = field(default=None, repr=False)

    def check(self) -> None:
        """ConfigError when the protocol cannot move this source to this target."""
        src, dst = self.source, self.target
        if self.protocol == 'CKANAPI' or 'ckan' in (src.kind, dst.kind):
            from .ckan import check_transfer    # ckan builds on this module
            check_transfer(self)
            return
        if dst.kind != 'file':
            raise ConfigError('to_target', dst.name, f'{self.protocol} transfers write to a '
                                                     f'FileDataSource').for_node(self.name)
        if dst.data_infrastructure.ssh is None:
            raise ConfigError('to_target', dst.name,
                              f"its infrastructure '{dst.data_infrastructure.name}' has no SSH "
                              f"credentials to write with").for_node(self.name)
        if self.protocol == 'HTTP':
            if src.url() is None:
                raise ConfigError('from_source', src.name,
                                  f"HTTP needs an http(s) endpoint on its infrastructure "
                                  f"'{src.data_infrastructure.name}' (it is "
                                  f"{src.data_infrastructure.endpoint!r})"
                                  ).for_node(self.name)
            if dst.path.endswith('/'):
                try:
                    web_file_name(src)
                except ConfigError as exc:
                    raise ConfigError('from_source', src.name, f'its resource {src.path!r}: '
                                                               f'{exc.problem}'
                                      ).for_node(self.name) from None
            hosts = [src.data_infrastructure]
        else:
            if src.kind != 'file' or src.data_infrastructure.ssh is None:
                raise ConfigError('from_source', src.name,
                                  f'{self.protocol} reads a FileDataSource on an '
                                  f'infrastructure with SSH credentials').for_node(self.name)
            hosts = [src.data_infrastructure, dst.data_infrastructure]
            # (the peer is src's or dst's data infrastructure, whose ssh is checked
            # above: mypy cannot follow that through _peer)
            if self.protocol in ('RSYNC', 'GRIDFTP') and _rsync_runner(self) is not None and \
                    src.data_infrastructure.ssh.login != dst.data_infrastructure.ssh.login and \
                    not _peer(self).secrets_pending and \
                    _peer(self).ssh.pkey() is None:  # type: ignore[union-attr]
                peer = _peer(self)
                raise ConfigError('transfer_protocol', self.protocol,
                                  f"{self.protocol} between '{src.data_infrastructure.name}' "
                                  f"and '{dst.data_infrastructure.name}' logs in to "
                                  f"'{peer.name}' with its private key, lent through agent "
                                  f"forwarding; its credentials have none (use SFTP with a "
                                  f"password)"
                                  ).for_node(self.name)
        for data_infrastructure in hosts:
            if not data_infrastructure.supports(self.protocol):
                raise ConfigError('transfer_protocol', self.protocol,
                                  f"'{data_infrastructure.name}' supports only "
                                  f"{', '.join(data_infrastructure.protocols)}").for_node(self.name)

    def run(self) -> str:
        """Move the data (once: later calls give the first call's outcome)."""
        with self._lock:
            if self._outcome is None:
                started = time.monotonic()
                try:
                    how = MOVERS[self.protocol](self)
                    self._outcome = ('ok', f'{how} in {time.monotonic() - started:.1f} s')
                except TransferError as exc:
                    self._outcome = ('failed', str(exc))
                except CroupierError as exc:
                    self._outcome = ('failed', self._failure(str(exc)))
                except OSError as exc:
                    self._outcome = ('failed', self._failure(str(exc)))
            kind, text = self._outcome
        if kind == 'failed':
            raise TransferError(text)
        return text

    def _failure(self, why: str) -> str:
        return f"{self.protocol} transfer '{self.name}' from {self.source} to " \
               f"{self.target} failed: {why}"

    def forget(self) -> None:
        """Run again at the next call (a new run)."""
        with self._lock:
            self._outcome = None


def run_all(transfers: Iterable[Transfer], max_parallel: int = 8) -> list[str]:
    """Run independent transfers concurrently; TransferError naming every one
    that failed. Returns what each did."""
    transfers = list(transfers)
    if not transfers:
        return []
    if len(transfers) == 1:
        return [transfers[0].run()]
    with ThreadPoolExecutor(max_workers=min(max_parallel, len(transfers)),
                            thread_name_prefix='croupier-transfer') as pool:
        futures = [pool.submit(t.run) for t in transfers]
    done, failed = [], []
    for future in futures:
        try:
            done.append(future.result())
        except TransferError as exc:
            failed.append(str(exc))
    if failed:
        raise TransferError('\n'.join(failed))
    return done


# -- paths ------------------------------------------------------------------

_HOME_PREFIXES = ('~/', '$HOME/', '${HOME}/')


def home_relative(path: str) -> str:
    """A path for SFTP and rsync's remote side: relative to the login
    directory when it starts at the home."""
    if path in ('~', '$HOME', '${HOME}'):
        return '.'
    for prefix in _HOME_PREFIXES:
        if path.startswith(prefix):
            return path[len(prefix):] or '.'
    return path


def shell_path(path: str) -> str:
    """``path`` quoted for a POSIX shell, with a leading home reference expanded."""
    rel = home_relative(path)
    if rel == path:
        return shlex.quote(path)
    return '"$HOME"' if rel == '.' else '"$HOME"/' + shlex.quote(rel)


# rsync -a keeps modes: without this, it would carry the bits copies never carry
RSYNC_NO_SPECIAL_BITS = '--chmod=a-st'


def rsync_local_path(path: str) -> str:
    """``path`` quoted for rsync's own side: a relative one starts with './',
    since rsync takes a ':' before the first '/' (``run_12:30.log``) for a
    remote host."""
    if not path.startswith('/') and home_relative(path) == path:
        path = './' + path
    return shell_path(path)


def _target_file(target_path: str, source_name: str) -> str:
    """A target ending in '/' is a folder that receives the file under its name."""
    if target_path.endswith('/'):
        if not source_name:
            raise ConfigError('filepath', target_path, 'is a folder, and the source names no '
                                                       'file to put in it')
        return target_path + source_name
    return target_path


# -- files on either side (SFTP sessions or this machine) --------------------

# setuid, setgid and sticky: a copy never carries them (a job's setuid output
# published by an orchestrator running as root would become a root setuid file)
SPECIAL_BITS = 0o7000


class Readable(Protocol):
    """What a copy reads from: an open SFTP or local file, or an HTTP response's body."""

    def read(self, size: int, /) -> bytes:
        """Up to ``size`` bytes; b'' at the end."""
        ...


class Writable(Protocol):
    """What a copy writes to: an open SFTP or local file."""

    def write(self, data: bytes, /) -> object:
        """Write ``data`` whole."""
        ...


def send_response(response: requests.Response, transport: SshTransport, dest: str) -> int:
    """Stream an HTTP answer's body, as it arrives, into ``dest`` on the host of
    ``transport`` over SFTP (its folder made first, the file replaced whole, 0644);
    the number of bytes sent."""
    response.raw.decode_content = True
    files = RemoteFiles(transport)
    try:
        parent = posixpath.dirname(dest)
        if parent:
            files.makedirs(parent)
        return files.write(dest, response.raw, 0o644)
    finally:
        files.close()


class RemoteFiles:
    """File operations over one SFTP session of its own."""

    # permission bits a written file may keep
    file_bits = 0o777 & ~SPECIAL_BITS

    def __init__(self, transport: SshTransport) -> None:
        self.where = f'{transport.settings.user}@{transport.settings.host}'
        self.sftp: paramiko.SFTPClient = transport.connection.open_sftp()

    def close(self) -> None:
        """End the SFTP session."""
        self.sftp.close()

    def mode(self, path: str) -> int:
        """st_mode of ``path`` (links followed)."""
        # (paramiko types st_mode Optional: None only from a server that sends no
        # permissions, which OpenSSH always sends; the same below)
        return self.sftp.stat(home_relative(path)).st_mode  # type: ignore[return-value]

    def link_mode(self, path: str) -> int:
        """st_mode of ``path`` itself (a link is not followed)."""
        return self.sftp.lstat(home_relative(path)).st_mode  # type: ignore[return-value]

    def real(self, path: str) -> str:
        """The absolute path of ``path`` with every link resolved (by the server)."""
        return self.sftp.normalize(home_relative(path))

    def entries(self, path: str) -> list[tuple[str, int]]:
        """[(name, st_mode)] of a folder, from one request (links not followed)."""
        return sorted((a.filename, a.st_mode)  # type: ignore[misc]
                      for a in self.sftp.listdir_attr(home_relative(path)))

    def mkdir(self, path: str) -> None:
        """A folder whose parent exists (an existing one is kept)."""
        try:
            self.sftp.mkdir(home_relative(path))
        except OSError:
            if not stat.S_ISDIR(self.mode(path)):
                raise

    def open_read(self, path: str) -> paramiko.SFTPFile:
        """The file at ``path``, open for reading (with read-ahead)."""
        fh = self.sftp.open(home_relative(path), 'rb')
        fh.prefetch()
        return fh

    def makedirs(self, path: str) -> None:
        """A folder and its missing parents (mkdir -p)."""
        path = home_relative(path)
        parts = [p for p in path.split('/') if p]
        current = '/' if path.startswith('/') else ''
        for part in parts:
            current = posixpath.join(current, part) if current else part
            try:
                self.sftp.stat(current)
            except FileNotFoundError:
                self.sftp.mkdir(current)

    def write(self, path: str, reader: Readable, mode: int) -> int:
        """``reader``'s bytes into ``path`` (replaced whole, never half
        written) with ``mode``'s permission bits that this side allows."""
        path = home_relative(path)
        tmp = posixpath.join(posixpath.dirname(path), f'.croupier-{secrets.token_hex(6)}.part')
        try:
            with self.sftp.open(tmp, 'wb') as out:
                out.set_pipelined(True)
                size = _pump(reader, out)
            self.sftp.chmod(tmp, stat.S_IMODE(mode) & self.file_bits)
            self.sftp.posix_rename(tmp, path)
        except BaseException:
            try:
                self.sftp.remove(tmp)
            except OSError:
                pass
            raise
        return size


def private_folder(path: str) -> None:
    """``path`` as a folder only its owner may enter (0700), with any missing
    parent made the same way. Existing parents keep their mode: the results
    folder may sit in a shared one such as /tmp."""
    missing = []
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise TransferError(f'{folder} exists and is not a folder') from None
    os.chmod(path, 0o700)


class LocalFiles:
    """The same operations on this machine's file system. ``private``: what
    is written is for the orchestrator's user only (folders 0700, files never
    group or world writable), as a results folder must be."""
    where = 'the orchestrator'

    def __init__(self, private: bool = False) -> None:
        self.private = private
        self.file_bits = (0o755 if private else 0o777) & ~SPECIAL_BITS

    def close(self) -> None:
        """As RemoteFiles.close; nothing to release here."""
        pass

    @staticmethod
    def _p(path: str) -> str:
        return os.path.expanduser(path)

    def mode(self, path: str) -> int:
        """st_mode of ``path`` (links followed)."""
        return os.stat(self._p(path)).st_mode

    def link_mode(self, path: str) -> int:
        """st_mode of ``path`` itself (a link is not followed)."""
        return os.lstat(self._p(path)).st_mode

    def real(self, path: str) -> str:
        """The absolute path of ``path`` with every link resolved."""
        return os.path.realpath(self._p(path))

    def entries(self, path: str) -> list[tuple[str, int]]:
        """[(name, st_mode)] of a folder (links not followed)."""
        with os.scandir(self._p(path)) as found:
            return sorted((e.name, e.stat(follow_symlinks=False).st_mode) for e in found)

    def mkdir(self, path: str) -> None:
        """A folder (and its missing parents); an existing one is kept."""
        if self.private:
            private_folder(self._p(path))
        else:
            os.makedirs(self._p(path), exist_ok=True)

    def open_read(self, path: str) -> BinaryIO:
        """The file at ``path``, open for reading."""
        return open(self._p(path), 'rb')

    makedirs = mkdir

    def write(self, path: str, reader: Readable, mode: int) -> int:
        """``reader``'s bytes into ``path`` (replaced whole, never half
        written) with ``mode``'s permission bits that this side allows."""
        return replace_file_with(self._p(path), lambda out: _pump(reader, out),
                                 stat.S_IMODE(mode) & self.file_bits)


# either side of a copy
Files = RemoteFiles | LocalFiles


def _pump(reader: Readable, out: Writable) -> int:
    size = 0
    while True:
        chunk = reader.read(CHUNK)
        if not chunk:
            return size
        out.write(chunk)
        size += len(chunk)


def copy_tree(src: Files, src_path: str, dst: Files, dst_path: str, follow_links: bool = True,
              skipped: list[str] | None = None) -> tuple[int, int]:
    """Copy a file or a folder (recursively) from one side to the other; a
    folder's contents land in ``dst_path``. Returns (files, bytes).

    ``follow_links``: links are copied as what they point at, except a link
    to a folder the copy is inside (a loop), which fails the copy. Otherwise
    no link is followed: ``src_path`` being one fails the copy, and links in
    folders are left out, listed in ``skipped``."""
    copy = _TreeCopy(src, dst, follow_links)
    try:
        mode = src.mode(src_path) if follow_links else src.link_mode(src_path)
    except FileNotFoundError:
        raise TransferError(f'{src_path} does not exist on {src.where}') from None
    if stat.S_ISLNK(mode):
        raise TransferError(f'{src_path} on {src.where} is a symbolic link, and links are '
                            f'not followed here')
    if stat.S_ISDIR(mode):
        dst.makedirs(dst_path)
        real = src.real(src_path) if follow_links else src_path
        copy.folder(src_path, dst_path.rstrip('/') or '/', real, frozenset([real]))
    else:
        dst_file = _target_file(dst_path, posixpath.basename(src_path.rstrip('/')))
        parent = posixpath.dirname(dst_file)
        if parent:
            dst.makedirs(parent)
        copy.file(src_path, dst_file, mode)
    if skipped is not None:
        skipped.extend(copy.skipped)
    return copy.files, copy.size


class _TreeCopy:
    """One copy_tree: its counts and the links it left out."""

    def __init__(self, src: Files, dst: Files, follow_links: bool) -> None:
        self.src, self.dst, self.follow_links = src, dst, follow_links
        self.files = self.size = 0
        self.skipped: list[str] = []

    def folder(self, src_path: str, dst_path: str, real: str,
               ancestors: frozenset[str]) -> None:
        """The contents of a folder into an existing one: one listing per
        folder, no request per file beyond the copy itself. ``real``: the
        folder's resolved path; ``ancestors``: those of the folders above it."""
        for name, mode in self.src.entries(src_path):
            source, target = posixpath.join(src_path, name), posixpath.join(dst_path, name)
            child_real = posixpath.join(real, name)
            if stat.S_ISLNK(mode):
                if not self.follow_links:
                    log.warning('%s on %s is a symbolic link: not followed, left out',
                                source, self.src.where)
                    self.skipped.append(source)
                    continue
                mode = self.src.mode(source)         # what the link points at
                if stat.S_ISDIR(mode):
                    # resolved only for links, so a folder without any costs nothing
                    child_real = self.src.real(source)
                    if child_real in ancestors:
                        raise TransferError(f'{source} on {self.src.where} links to '
                                            f'{child_real}, a folder it is in: a loop, not '
                                            f'followed')
            if stat.S_ISDIR(mode):
                self.dst.mkdir(target)
                self.folder(source, target, child_real, ancestors | {child_real})
            else:
                self.file(source, target, mode)

    def file(self, src_path: str, dst_path: str, mode: int) -> None:
        """One file, with its permission bits less those never copied."""
        with self.src.open_read(src_path) as reader:
            self.size += self.dst.write(dst_path, reader, stat.S_IMODE(mode) & ~SPECIAL_BITS)
        self.files += 1


# -- movers -------------------------------------------------------------------

def _sftp_relay(transfer: Transfer) -> str:
    src_files = RemoteFiles(transfer.source.data_infrastructure.transport())
    try:
        dst_files = RemoteFiles(transfer.target.data_infrastructure.transport())
        try:
            files, size = copy_tree(src_files, transfer.source.location(), dst_files,
                                    transfer.target.location())
        finally:
            dst_files.close()
    except TransferError as exc:
        raise TransferError(transfer._failure(str(exc))) from None
    finally:
        src_files.close()
    return f'{files} file(s), {size} bytes relayed over SFTP through the orchestrator'


def _run_remote(transfer: Transfer, transport: SshTransport, command: str, what: str,
                lend: Loan | None = None) -> None:
    """Run a transfer's command on a host (lending keys: ``lend`` is a Loan); TransferError
    with the command's exit code and stderr when it fails."""
    if lend:
        result = transport.run_lending_keys(command, lend, timeout=transfer.timeout)
    else:
        result = transport.run(command, timeout=transfer.timeout)
    if not result.ok:
        raise TransferError(transfer._failure(
            f'{what} ended with exit code {result.exit_code}: '
            f'{result.stderr.strip()[-500:]}'))


def _http(transfer: Transfer) -> str:
    url = transfer.source.url()
    assert url is not None      # check() refuses an HTTP source without an http(s) endpoint
    target = transfer.target
    dest = target.location()
    if dest.endswith('/'):
        dest += web_file_name(transfer.source)
    transport = target.data_infrastructure.transport()
    if target.data_infrastructure.internet_access:
        part = f'{dest}.croupier-part'
        q_dest, q_part, q_url = shell_path(dest), shell_path(part), shlex.quote(url)
        command = (
            f'mkdir -p -- "$(dirname -- {q_dest})" && '
            f'if command -v curl >/dev/null 2>&1; then '
            f'curl -fsSL --retry 2 -o {q_part} -- {q_url}; '
            f'elif command -v wget >/dev/null 2>&1; then wget -nv -O {q_part} -- {q_url}; '
            f'else echo "neither curl nor wget is installed" >&2; exit 127; fi; '
            f'rc=$?; if [ "$rc" = 0 ]; then mv -f -- {q_part} {q_dest}; '
            f'else rm -f -- {q_part}; exit "$rc"; fi')
        _run_remote(transfer, transport, command, f'GET {url} on {target.data_infrastructure.host}')
        return f'GET {url} on {target.data_infrastructure.host}'
    try:
        response = requests.get(url, stream=True, timeout=(10, 300))
    except requests.RequestException as exc:
        raise TransferError(transfer._failure(f'GET {url}: {exc}')) from None
    with response:
        if response.status_code >= 400:
            raise TransferError(transfer._failure(
                f'GET {url} answered {response.status_code} {response.reason}'))
        size = send_response(response, transport, dest)
    return f'GET {url} here, {size} bytes sent to {target.data_infrastructure.host} over SFTP'


def web_file_name(source: DataSource) -> str:
    """The name a web resource takes in a target folder: the last segment of
    its URL, decoded. ConfigError when, decoded, it is no plain file name: a
    ``%2F`` or ``..`` there would put the file outside the folder."""
    url = source.url()
    assert url is not None      # called for HTTP sources, which check() gave an endpoint
    segment = posixpath.basename(urllib.parse.urlsplit(url).path.rstrip('/'))
    name = urllib.parse.unquote(segment)
    if name in ('', '.', '..') or '/' in name or '\0' in name:
        raise ConfigError('resource', source.path,
                          f'its last part decodes to {name!r}, which is not a file name to '
                          f'save into a folder (no "/", NUL, "." or "..")'
                          ).for_node(source.name)
    return name


def _rsync_runner(transfer: Transfer) -> str | None:
    """'source' or 'target': the host rsync runs on; None: relay through here."""
    src, dst = transfer.source.data_infrastructure, transfer.target.data_infrastructure
    assert src.ssh is not None and dst.ssh is not None     # check() refuses them without
    if src.ssh.login == dst.ssh.login or src.internet_access:
        return 'source'
    if dst.internet_access:
        return 'target'
    return None


def _peer(transfer: Transfer) -> DataInfrastructure:
    return transfer.target.data_infrastructure if _rsync_runner(transfer) == 'source' \
        else transfer.source.data_infrastructure


def _rsync(transfer: Transfer) -> str:
    runner = _rsync_runner(transfer)
    if runner is None:
        how = _sftp_relay(transfer)
        return f'{how} (neither host has internet access, so rsync cannot run on either)'
    src, dst = transfer.source, transfer.target
    src_path, dst_path = src.location(), dst.location()
    here = src.data_infrastructure if runner == 'source' else dst.data_infrastructure
    transport = here.transport()
    # (as _rsync_runner)
    assert src.data_infrastructure.ssh is not None and dst.data_infrastructure.ssh is not None
    if src.data_infrastructure.ssh.login == dst.data_infrastructure.ssh.login:
        parent = posixpath.dirname(dst_path.rstrip('/'))
        command = (f'mkdir -p -- {shell_path(parent or ".")} && '
                   f'rsync -a {RSYNC_NO_SPECIAL_BITS} -- {rsync_local_path(src_path)} '
                   f'{rsync_local_path(dst_path)}')
        _run_remote(transfer, transport, command, f'rsync on {here.host}')
        return f'rsync on {here.host}'
    peer = _peer(transfer)
    assert peer.ssh is not None
    peer_key = peer.ssh.pkey()
    host_key = SshTransport(peer.ssh).connection.server_key()
    known = f'{peer.ssh.known_hosts_name} {host_key.get_name()} {host_key.get_base64()}\n'
    known_file = f'.croupier-known-hosts-{secrets.token_hex(6)}'
    remote_shell = ' '.join([
        'ssh', '-p', str(peer.ssh.port), '-o', 'BatchMode=yes',
        '-o', 'StrictHostKeyChecking=yes', '-o', f'UserKnownHostsFile={known_file}',
        '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'PasswordAuthentication=no',
        '-o', f'ConnectTimeout={int(peer.ssh.connect_timeout)}'])
    peer_spec = f'{peer.ssh.user}@{peer.ssh.host}:'
    if runner == 'source':
        parent = posixpath.dirname(home_relative(dst_path).rstrip('/'))
        mkdir = f'mkdir -p -- {shlex.quote(parent)} && rsync' if parent else 'rsync'
        paths = f'{rsync_local_path(src_path)} ' \
                f'{shlex.quote(peer_spec + home_relative(dst_path))}'
        extra = f'--rsync-path={shlex.quote(mkdir)} '
        prepare = ''
    else:
        parent = posixpath.dirname(dst_path.rstrip('/'))
        paths = f'{shlex.quote(peer_spec + home_relative(src_path))} ' \
                f'{rsync_local_path(dst_path)}'
        extra = ''
        prepare = f'mkdir -p -- {shell_path(parent)} && ' if parent else ''
    command = (f"trap 'rm -f -- {known_file}' EXIT; cd && {prepare}"
               f'rsync -a {RSYNC_NO_SPECIAL_BITS} --protect-args -e {shlex.quote(remote_shell)} '
               f'{extra}-- {paths}')
    try:
        transport.write_file(known_file, known, mode=0o600)
        _run_remote(transfer, transport, command, f'rsync on {here.host}',
                    lend=Loan((peer_key,), host_key, peer.ssh.user))
    finally:
        transport.run(f'rm -f -- {known_file}')
    side = 'pushed from' if runner == 'source' else 'pulled by'
    return f'rsync {side} {here.host}, logging in to {peer.ssh.user}@{peer.ssh.host} ' \
           f'with a lent key'


def _ckan(transfer: Transfer) -> str:
    """A CKANAPI transfer: see croupier_plugin.core.ckan."""
    from .ckan import move      # ckan builds on this module
    return move(transfer)


MOVERS: dict[str, Callable[[Transfer], str]] = {'HTTP': _http, 'SFTP': _sftp_relay,
                                                'RSYNC': _rsync, 'CKANAPI': _ckan}


# -- a job's outputs into a local folder -------------------------------------

def publish_path_problem(path: str) -> str | None:
    """Why ``path`` cannot be a ``publish`` entry, or None: it must name a
    file or folder whose copy lands inside the job's results folder (no '..',
    and not ending in '.')."""
    parts = path.strip().rstrip('/').split('/')
    if '..' in parts:
        return "holds '..': a published path stays where it is named"
    if parts[-1] in ('', '.'):
        return 'names no file or folder to publish'
    return None


@dataclass
class Publication:
    """A completed job's files (relative to its working directory, or
    absolute), copied into ``folder`` on the orchestrator. ``locate()`` gives
    the (transport, working directory) where the job ran.

    No link is followed: a published path that is a link, or that passes
    through one below the working directory, fails the publication; links
    inside a published folder are left out with a warning. The folder is
    private to the orchestrator's user, and no file keeps setuid, setgid or
    sticky bits, nor group or world write permission."""
    job: str
    locate: Callable[[], tuple[LocalTransport | SshTransport, str]]
    paths: list[str]
    folder: str

    def run(self) -> str:
        """Copy the paths; what was done. TransferError naming the job and
        why, also for a local failure (a full disk, a results folder that is
        a file), so that it fails the job and not the run."""
        try:
            return self._publish()
        except TransferError as exc:
            raise TransferError(f"publishing the outputs of job '{self.job}' failed: "
                                f"{exc}") from None
        except OSError as exc:
            raise TransferError(f"publishing the outputs of job '{self.job}' into "
                                f"{self.folder} failed: {exc}") from None

    def _publish(self) -> str:
        transport, workdir = self.locate()
        for path in self.paths:
            problem = publish_path_problem(path)
            if problem:
                raise TransferError(f'publish path {path!r} {problem}')
        private_folder(self.folder)
        local = LocalFiles(private=True)
        remote = LocalFiles() if isinstance(transport, LocalTransport) \
            else RemoteFiles(transport)
        files = size = 0
        skipped: list[str] = []
        try:
            for path in self.paths:
                if path.startswith('/') or home_relative(path) != path:
                    full = path
                else:
                    full = posixpath.join(workdir, path)
                    _refuse_links_below(remote, workdir, path)
                dest = os.path.join(self.folder, posixpath.basename(path.rstrip('/')))
                n, s = copy_tree(remote, full, local, dest, follow_links=False,
                                 skipped=skipped)
                files += n
                size += s
        finally:
            remote.close()
        done = f'{files} file(s), {size} bytes published to {self.folder}'
        if skipped:
            done += f'; {len(skipped)} symbolic link(s) left out: {", ".join(skipped[:5])}' + \
                (' ...' if len(skipped) > 5 else '')
        return done


def _refuse_links_below(files: Files, workdir: str, path: str) -> None:
    """TransferError when a folder on the way from ``workdir`` to its
    relative ``path`` is a link (it could lead anywhere on the host)."""
    current = workdir
    for part in [p for p in path.rstrip('/').split('/') if p not in ('', '.')][:-1]:
        current = posixpath.join(current, part)
        try:
            mode = files.link_mode(current)
        except FileNotFoundError:
            return          # copy_tree names what is missing
        if stat.S_ISLNK(mode):
            raise TransferError(f'{current} on {files.where} is a symbolic link, and links '
                                f'are not followed while publishing')


# at the end: the GridFTP mover uses this module's helpers
from .data_gridftp import gridftp as _gridftp  # noqa: E402

MOVERS['GRIDFTP'] = _gridftp
