"""Local transport: commands run on this machine with subprocess."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

from ..errors import TransportError
from ..files import replace_file
from .base import CommandResult, Transport


class LocalTransport(Transport):
    """Runs commands with ``bash -c`` on the orchestrator's machine."""

    def __init__(self, login_shell: bool = False,
                 env: Mapping[str, str] | None = None) -> None:
        self.login_shell = login_shell
        self.env = env

    def __repr__(self) -> str:
        return 'LocalTransport()'

    def run(self, command: str, timeout: float | None = None, idempotent: bool = True,
            check: bool = False) -> CommandResult:
        """As Transport.run: ``bash -c`` (or ``bash -l -c``) here, stdin closed."""
        args = ['bash', '-l', '-c', command] if self.login_shell else ['bash', '-c', command]
        try:
            proc = subprocess.run(args, capture_output=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL, env=self.env)
        except subprocess.TimeoutExpired as exc:
            raise TransportError(f'command timed out after {timeout} s: {command[:200]}') from exc
        except OSError as exc:
            raise TransportError(f'cannot run bash: {exc}') from exc
        result = CommandResult(proc.returncode,
                               proc.stdout.decode('utf-8', 'replace'),
                               proc.stderr.decode('utf-8', 'replace'))
        return self.checked(command, result) if check else result

    def write_file(self, path: str, data: bytes | str, mode: int = 0o600) -> None:
        """As Transport.write_file, on this machine (``~`` and ``$HOME/`` expanded)."""
        if isinstance(data, str):
            data = data.encode('utf-8')
        path = local_path(path)
        try:
            replace_file(path, data, mode)
        except OSError as exc:
            raise TransportError(f'cannot write {path}: {exc.strerror}') from None

    def read_file(self, path: str) -> bytes:
        """As Transport.read_file; FileNotFoundError passes through as it is."""
        try:
            with open(local_path(path), 'rb') as fh:
                return fh.read()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise TransportError(f'cannot read {path}: {exc.strerror}') from None

    def makedirs(self, path: str) -> None:
        """As Transport.makedirs, with os.makedirs instead of a shell."""
        try:
            os.makedirs(local_path(path), exist_ok=True)
        except OSError as exc:
            raise TransportError(f'cannot make the folder {path}: {exc.strerror}') from None

    def home(self) -> str:
        """As Transport.home: this user's home directory."""
        return os.path.expanduser('~')


def local_path(path: str) -> str:
    """``path`` on this machine, with ``~``, ``~/`` and ``$HOME/`` meaning the
    user's home, as the SSH transport reads them on the remote host."""
    if path.startswith('$HOME/'):
        path = '~/' + path[len('$HOME/'):]
    return os.path.expanduser(path)
