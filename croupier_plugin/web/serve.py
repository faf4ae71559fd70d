"""`croupier serve`: the portal on uvicorn, on loopback unless told otherwise."""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import sys
from typing import Optional

from .. import runner


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is this machine's loopback only."""
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(host: str = '127.0.0.1', port: int = 8080, catalogue: Optional[str] = None,
        allow_remote: bool = False, token: Optional[str] = None) -> int:
    """Serve the portal until interrupted; prints the address with its access token.

    ``token`` defaults to CROUPIER_PORTAL_TOKEN, else a new random one (32 bytes).
    Any address other than loopback needs ``allow_remote``: the token would then
    cross the network in clear unless a TLS proxy stands in front.
    """
    import uvicorn

    from .app import create_app
    if not isinstance(port, int) or not 0 <= port <= 65535:
        print(f'error: --port {port}: a port number from 0 to 65535 (0 picks a free one)',
              file=sys.stderr)
        return 2
    if not is_loopback(host) and not allow_remote:
        print(f'error: --host {host}: not a loopback address; listening there needs '
              f'--allow-remote (the portal speaks plain HTTP)', file=sys.stderr)
        return 2
    token = token or os.environ.get('CROUPIER_PORTAL_TOKEN') or secrets.token_urlsafe(32)
    if len(token) < 16:
        print('error: CROUPIER_PORTAL_TOKEN: at least 16 characters', file=sys.stderr)
        return 2
    catalogue = os.path.abspath(catalogue or os.path.join(runner.home(), 'applications'))
    if os.path.exists(catalogue) and not os.path.isdir(catalogue):
        print(f'error: --catalogue {catalogue}: not a folder', file=sys.stderr)
        return 2
    try:
        os.makedirs(catalogue, exist_ok=True)
    except OSError as exc:
        print(f'error: --catalogue {catalogue}: {exc.strerror or exc}', file=sys.stderr)
        return 2
    app = create_app(token, catalogue)
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # connections made as soon as the address is printed wait in the backlog
        sock.listen(128)
    except OSError as exc:          # socket.gaierror too: a name that does not resolve
        sock.close()
        print(f'error: --host {host} --port {port}: cannot listen there: '
              f'{exc.strerror or exc}', file=sys.stderr)
        return 2
    bound_port = sock.getsockname()[1]
    shown = f'[{host}]' if ':' in host else host
    if not is_loopback(host):
        print(f'WARNING: listening on {host}, beyond this machine: the token and every '
              f'page cross the network in clear; put a TLS proxy in front', file=sys.stderr)
    print(f'croupier serve: applications in {catalogue}, deployments in '
          f'{runner.store_root()}', flush=True)
    print(f'croupier serve: open http://{shown}:{bound_port}/?token={token}', flush=True)
    config = uvicorn.Config(app, log_level='warning', timeout_graceful_shutdown=2,
                            access_log=False)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return 0
