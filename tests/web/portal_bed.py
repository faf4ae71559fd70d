"""The portal's test helpers: a real `croupier serve` process, its token read from
what it prints, and blueprint packages zipped from tests/web/blueprints."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from typing import Callable, Optional

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
BLUEPRINTS = os.path.join(HERE, 'blueprints')


class Portal:
    """A `croupier serve` process on a free loopback port, with its own
    CROUPIER_HOME and catalogue."""

    def __init__(self, home: str, catalogue: Optional[str] = None) -> None:
        self.home = home
        self.catalogue = catalogue or os.path.join(home, 'applications')
        self.proc: Optional[subprocess.Popen] = None
        self.url = ''
        self.token = ''
        self.output_path = os.path.join(home, f'serve-{time.time_ns()}.log')

    @property
    def env(self) -> dict:
        """The environment the portal and the `croupier` commands of a test share."""
        return dict(os.environ, CROUPIER_HOME=self.home)

    def start(self, *extra: str, timeout: float = 30.0) -> 'Portal':
        """Start `croupier serve` and wait for the address it prints."""
        self.output_path = os.path.join(self.home, f'serve-{time.time_ns()}.log')
        out = open(self.output_path, 'wb')
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'croupier_plugin.cli', 'serve', '--port', '0',
             '--catalogue', self.catalogue, *extra],
            stdout=out, stderr=subprocess.STDOUT, env=self.env)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.output()
            found = re.search(r'open (http://\S+)/\?token=(\S+)', text)
            if found:
                self.url, self.token = found.group(1), found.group(2)
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f'croupier serve ended: {text}')
            time.sleep(0.1)
        raise AssertionError(f'croupier serve printed no address: {self.output()}')

    def output(self) -> str:
        """What the server printed so far."""
        with open(self.output_path, encoding='utf-8', errors='replace') as fh:
            return fh.read()

    def stop(self) -> None:
        """Stop the server (SIGTERM, as Ctrl-C would), by its pid."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def request(self, method: str, path: str, token: Optional[str] = '', **kw) -> requests.Response:
        """An API call with the token (``token=None``: without one)."""
        headers = kw.pop('headers', {})
        if token is not None:
            headers['Authorization'] = f'Bearer {token or self.token}'
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def get(self, path: str, **kw) -> requests.Response:
        return self.request('GET', path, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return self.request('POST', path, **kw)

    def upload(self, folder: str, name: Optional[str] = None) -> requests.Response:
        """Upload the blueprint folder ``folder`` (under tests/web/blueprints) zipped."""
        data = {'name': name} if name else {}
        return self.post('/api/v1/applications', data=data,
                         files={'package': (f'{folder}.zip', zip_folder(folder))})

    def instance(self, name: str) -> dict:
        answer = self.get(f'/api/v1/instances/{name}')
        assert answer.status_code == 200, answer.text
        return answer.json()

    def wait_for(self, name: str, ready: Callable[[dict], bool], limit: float = 60.0,
                 what: str = '') -> dict:
        """The instance once ``ready`` holds for it, polled through the API."""
        deadline = time.monotonic() + limit
        view = {}
        while time.monotonic() < deadline:
            answer = self.get(f'/api/v1/instances/{name}')
            if answer.status_code == 200:
                view = answer.json()
                if ready(view):
                    return view
            time.sleep(0.3)
        raise AssertionError(f'{name}: not {what or "ready"} after {limit}s: {view}')

    def wait_idle(self, name: str, limit: float = 60.0) -> dict:
        """The instance once no execution runs on it (its last one ended)."""
        return self.wait_for(name, lambda v: v['executions'] and not v['running_execution']
                             and v['executions'][0]['ended_at'], limit, 'idle')


def zip_folder(folder: str, top: Optional[str] = None) -> bytes:
    """The blueprint folder ``folder`` as a zip (its files at the top, or under
    ``top``)."""
    root = os.path.join(BLUEPRINTS, folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, 'w') as archive:
        for base, _, files in os.walk(root):
            for f in files:
                path = os.path.join(base, f)
                inside = os.path.relpath(path, root)
                archive.write(path, os.path.join(top, inside) if top else inside)
    return buffer.getvalue()
