"""GridFTP transfers (``transfer_protocol: GRIDFTP``) with ``globus-url-copy``.

Where it runs: like rsync, on the source host (pushing) when it has internet
access, else on the target host (pulling); with neither, the data is relayed
through the orchestrator over SFTP. The other host is reached with
``sshftp://user@host:port/path``: GridFTP over that host's SSH login, whose
server side is the host's ``sshftp`` entry (``~/.globus/sshftp`` or
``/etc/grid-security/sshftp``, made by ``globus-gridftp-server-enable-sshftp``).
No X.509 certificate is involved.

globus-url-copy opens the SSH hop with the client script
``~/.globus/gridftp-ssh`` of the login that runs it (else the system's, which
would trust whatever ``~/.ssh/known_hosts`` says and could ask for a
password). Croupier installs its own there (only where there is none, or an
earlier Croupier one): with ``CROUPIER_SSHFTP_KNOWN_HOSTS`` set it trusts only
the host key in that file, in batch mode; without it, it behaves as the
system's. The hop logs in with the other host's private key, lent through SSH
agent forwarding from this process's memory (as for rsync): no key is written
on either host and no password is put on a command line.

Pure Python, no Cloudify.
"""

from __future__ import annotations

import posixpath
import secrets
import shlex
import stat
import urllib.parse

from .data import (Transfer, TransferError, _peer, _rsync_runner, _run_remote, _sftp_relay,
                   _target_file, home_relative, RemoteFiles)
from .transport import SshTransport
from .transport.agent import Loan

CLIENT_SCRIPT = '.globus/gridftp-ssh'
CLIENT_MARKER = '# croupier-sshftp-client 1'
KNOWN_HOSTS_ENV = 'CROUPIER_SSHFTP_KNOWN_HOSTS'

# what globus-url-copy runs for each sshftp:// connection: gridftp-ssh URL HOST PORT USER
CLIENT_SCRIPT_TEXT = f"""#!/bin/sh
{CLIENT_MARKER}
# globus-url-copy's SSH hop for sshftp:// addresses, installed by Croupier.
# With {KNOWN_HOSTS_ENV} set (by Croupier's GridFTP transfers), ssh trusts
# only the host key in that file and never asks for a password; without it,
# it does what the system's gridftp-ssh does.
login="$2"
if [ -n "$4" ]; then login="$4@$2"; fi
remote='( test -f .globus/sshftp && .globus/sshftp ) ||
 ( test -f /etc/grid-security/sshftp && /etc/grid-security/sshftp ) ||
 echo "500 Server is not configured for SSHFTP connections."'
if [ -n "${{{KNOWN_HOSTS_ENV}:-}}" ]; then
    exec ssh ${{3:+-p "$3"}} -o BatchMode=yes -o StrictHostKeyChecking=yes \\
        -o "UserKnownHostsFile=${KNOWN_HOSTS_ENV}" -o GlobalKnownHostsFile=/dev/null \\
        -o PasswordAuthentication=no -o ConnectTimeout=20 -- "$login" "$remote"
fi
exec ssh ${{3:+-p "$3"}} -- "$login" "$remote"
"""


def file_url(path: str) -> str:
    """A ``file://`` address of an absolute path, percent-encoded."""
    return 'file://' + urllib.parse.quote(path, safe='/')


def sshftp_url(user: str, host: str, port: int, path: str) -> str:
    """An ``sshftp://`` address of ``path`` on the peer; a path relative to
    the login's home (or ~/…) becomes ``/~/…``, which the GridFTP server
    reads from the home."""
    rel = home_relative(path)
    if not rel.startswith('/'):
        if rel.startswith('./'):
            rel = rel[2:]
        rel = '/~/' + ('' if rel == '.' else rel)
    netloc = f'[{host}]' if ':' in host else host
    return (f'sshftp://{urllib.parse.quote(user, safe="")}@{netloc}:{int(port)}'
            + urllib.parse.quote(rel, safe='/~'))


def _absolute(path: str, home: str) -> str:
    """``path`` on the host whose login's home is ``home``, made absolute."""
    rel = home_relative(path)
    if rel.startswith('/'):
        return rel
    return posixpath.join(home, '' if rel == '.' else rel)


def _install_client(transport: SshTransport) -> None:
    """Croupier's ~/.globus/gridftp-ssh on the host that runs globus-url-copy:
    written when missing or an older Croupier one; a script of the user's own is
    kept, and the transfer refused (it could not pin the peer's host key)."""
    try:
        current = transport.read_file(CLIENT_SCRIPT).decode('utf-8', 'replace')
    except FileNotFoundError:
        current = None
    if current == CLIENT_SCRIPT_TEXT:
        return
    if current is not None and CLIENT_MARKER not in current:
        raise TransferError(f'~/{CLIENT_SCRIPT} on {transport.settings.host} is not '
                            f"Croupier's: globus-url-copy would open its SSH hop with it, "
                            f'and Croupier could not pin the other host\'s key there (move '
                            f'it away to let Croupier install its own)')
    transport.run('mkdir -p -m 700 -- .globus', check=True)
    transport.write_file(CLIENT_SCRIPT, CLIENT_SCRIPT_TEXT, mode=0o700)


def _is_folder(transfer: Transfer, path: str) -> bool:
    """Whether the source is a folder (its contents are copied), asked over SFTP."""
    if path.endswith('/'):
        return True
    files = RemoteFiles(transfer.source.data_infrastructure.transport())
    try:
        return stat.S_ISDIR(files.mode(path))
    except FileNotFoundError:
        raise TransferError(transfer._failure(
            f'{path} does not exist on {transfer.source.data_infrastructure.host}')) from None
    finally:
        files.close()


def command(transfer: Transfer, runner: str, src_path: str, dst_path: str, folder: bool,
            home: str, known_file: str) -> str:
    """The shell command run on the ``runner`` ('source' or 'target') host:
    globus-url-copy between its own file and the peer's, over sshftp."""
    source, target = transfer.source.data_infrastructure, transfer.target.data_infrastructure
    here = source if runner == 'source' else target
    # check() refuses a GRIDFTP transfer whose ends lack SSH credentials
    assert source.ssh is not None and target.ssh is not None
    peer = _peer(transfer) if source.ssh.login != target.ssh.login else None
    if folder:
        src_path, dst_path = src_path.rstrip('/') + '/', dst_path.rstrip('/') + '/'
    else:
        dst_path = _target_file(dst_path, posixpath.basename(src_path.rstrip('/')))

    def url(path: str, local: bool) -> str:
        if local:
            full = _absolute(path, home)
            return file_url(full + '/' if folder and not full.endswith('/') else full)
        assert peer is not None and peer.ssh is not None    # not local: there is a peer
        return sshftp_url(peer.ssh.user, peer.ssh.host, peer.ssh.port, path)

    src_url = url(src_path, peer is None or runner == 'source')
    dst_url = url(dst_path, peer is None or runner == 'target')
    flags = '-cd -r' if folder else '-cd'
    check = (f'command -v globus-url-copy >/dev/null 2>&1 || {{ echo "globus-url-copy is '
             f'not installed on {here.host}" >&2; exit 127; }}; ')
    if peer is None:
        return f'{check}globus-url-copy {flags} {shlex.quote(src_url)} {shlex.quote(dst_url)}'
    return (f"{check}trap 'rm -f -- \"$HOME\"/{known_file}' EXIT; "
            f'{KNOWN_HOSTS_ENV}="$HOME"/{known_file} globus-url-copy {flags} '
            f'{shlex.quote(src_url)} {shlex.quote(dst_url)}')


def gridftp(transfer: Transfer) -> str:
    """Move the data with globus-url-copy; what was done."""
    runner = _rsync_runner(transfer)
    if runner is None:
        how = _sftp_relay(transfer)
        return (f'{how} (neither host has internet access, so globus-url-copy cannot run on '
                f'either)')
    src, dst = transfer.source, transfer.target
    src_path, dst_path = src.location(), dst.location()
    here = src.data_infrastructure if runner == 'source' else dst.data_infrastructure
    transport = here.transport()
    folder = _is_folder(transfer, src_path)
    home = transport.home()
    known_file = f'.croupier-known-hosts-{secrets.token_hex(6)}'
    line = command(transfer, runner, src_path, dst_path, folder, home, known_file)
    # (as in command())
    assert src.data_infrastructure.ssh is not None and dst.data_infrastructure.ssh is not None
    if src.data_infrastructure.ssh.login == dst.data_infrastructure.ssh.login:
        _run_remote(transfer, transport, line, f'globus-url-copy on {here.host}')
        return f'globus-url-copy on {here.host}'
    peer = _peer(transfer)
    assert peer.ssh is not None
    host_key = SshTransport(peer.ssh).connection.server_key()
    known = f'{peer.ssh.known_hosts_name} {host_key.get_name()} {host_key.get_base64()}\n'
    _install_client(transport)
    try:
        transport.write_file(known_file, known, mode=0o600)
        _run_remote(transfer, transport, line, f'globus-url-copy on {here.host}',
                    lend=Loan((peer.ssh.pkey(),), host_key, peer.ssh.user))
    finally:
        transport.run(f'rm -f -- {known_file}')
    side = 'pushed from' if runner == 'source' else 'pulled by'
    return (f'globus-url-copy {side} {here.host} over sshftp://{peer.ssh.user}@'
            f'{peer.ssh.host}:{peer.ssh.port}, logging in with a lent key')
