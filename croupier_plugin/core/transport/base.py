"""The transport interface: run a command, move files. SSH and local implement it."""

from __future__ import annotations

import abc
import shlex
from dataclasses import dataclass

from ..errors import TransportError


@dataclass(frozen=True)
class CommandResult:
    """What a command left behind: its exit code and its decoded stdout and stderr."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """True if the command exited with code 0."""
        return self.exit_code == 0


class Transport(abc.ABC):
    """Where commands of one infrastructure run.

    ``run`` never raises for a non-zero exit code unless ``check`` is given;
    it raises ``TransportError`` when the command could not be run at all.
    """

    login_shell = False

    def wrap(self, command: str) -> str:
        """The command as sent: through a login shell when asked for, so that
        ``module`` and the site's profile are there."""
        if self.login_shell:
            return 'bash -l -c ' + shlex.quote(command)
        return command

    @abc.abstractmethod
    def run(self, command: str, timeout: float | None = None, idempotent: bool = True,
            check: bool = False) -> CommandResult:
        """Run ``command`` in a POSIX shell; return a CommandResult.

        ``idempotent=False`` marks a command that must not be run twice (a
        submission): if the connection breaks while it runs, the transport
        raises ``CommandInterrupted`` instead of running it again.
        """

    @abc.abstractmethod
    def write_file(self, path: str, data: bytes | str, mode: int = 0o600) -> None:
        """Write ``data`` (bytes or str) to ``path``, atomically (temp + rename)."""

    @abc.abstractmethod
    def read_file(self, path: str) -> bytes:
        """The bytes of the file at ``path``."""

    def put(self, local_path: str, remote_path: str, mode: int | None = None) -> None:
        """Copy a local file to ``remote_path`` (by write_file: atomically, mode
        0600 unless given)."""
        with open(local_path, 'rb') as fh:
            data = fh.read()
        self.write_file(remote_path, data, mode if mode is not None else 0o600)

    def get(self, remote_path: str, local_path: str) -> None:
        """Copy a remote file to ``local_path`` (by read_file)."""
        data = self.read_file(remote_path)
        with open(local_path, 'wb') as fh:
            fh.write(data)

    def makedirs(self, path: str) -> None:
        """Create the folder ``path`` and its parents (``mkdir -p``)."""
        self.run(f'mkdir -p -- {shlex.quote(path)}', check=True)

    def home(self) -> str:
        """The remote user's home directory."""
        return self.run('printf %s "$HOME"', check=True).stdout

    @staticmethod
    def checked(command: str, result: CommandResult) -> CommandResult:
        """``result`` itself, or a TransportError naming ``command`` and the tail of its
        stderr if it exited with a non-zero code."""
        if result.exit_code != 0:
            tail = result.stderr.strip()[-500:]
            raise TransportError(f'command failed with exit code {result.exit_code}: '
                                 f'{command[:200]}: {tail}')
        return result

    def close(self) -> None:  # noqa: B027 - an optional hook, a no-op by default
        """Release what this transport holds (a no-op for shared connections)."""
