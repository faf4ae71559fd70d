"""Local transport: commands run on this machine with subprocess."""

import os
import shutil
import subprocess
import tempfile

from ..errors import TransportError
from .base import CommandResult, Transport


class LocalTransport(Transport):
    """Runs commands with ``bash -c`` on the orchestrator's machine."""

    def __init__(self, login_shell=False, env=None):
        self.login_shell = login_shell
        self.env = env

    def __repr__(self):
        return 'LocalTransport()'

    def run(self, command, timeout=None, idempotent=True, check=False):
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

    def write_file(self, path, data, mode=0o600):
        if isinstance(data, str):
            data = data.encode('utf-8')
        path = os.path.expanduser(path)
        directory = os.path.dirname(path) or '.'
        fd, tmp = tempfile.mkstemp(dir=directory, prefix='.croupier-')
        try:
            with os.fdopen(fd, 'wb') as fh:
                fh.write(data)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def read_file(self, path):
        with open(os.path.expanduser(path), 'rb') as fh:
            return fh.read()

    def put(self, local_path, remote_path, mode=None):
        shutil.copyfile(local_path, os.path.expanduser(remote_path))
        if mode is not None:
            os.chmod(os.path.expanduser(remote_path), mode)

    def get(self, remote_path, local_path):
        shutil.copyfile(os.path.expanduser(remote_path), local_path)

    def makedirs(self, path):
        os.makedirs(os.path.expanduser(path), exist_ok=True)

    def home(self):
        return os.path.expanduser('~')
