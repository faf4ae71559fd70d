"""Helpers for the exporter's tests: `croupier exporter` and a Prometheus server
(Debian's package) started on loopback with configurations of their own,
stopped by PID at the end."""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import requests
import yaml

PROMETHEUS = shutil.which('prometheus') or '/usr/bin/prometheus'


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# the registration API's token of the exporters these tests start
TOKEN = 'bed-test-token-5b0e7f3a91'


def exporter_config(bed, **extra):
    config = {'listen': '127.0.0.1', 'port': 0, 'cache_seconds': 0, 'token': TOKEN,
              'hosts': [{'host': bed['host'], 'port': bed['port'], 'user': bed['user'],
                         'private_key_file': bed['keys']['ed25519'],
                         'known_hosts': bed['known_hosts']}]}
    config.update(extra)
    return config


class ExporterProcess:
    """`croupier exporter --config FILE` as a child process."""

    def __init__(self, config, folder):
        path = os.path.join(folder, 'exporter.yaml')
        with open(path, 'w') as fh:
            yaml.safe_dump(config, fh)
        self.log_path = os.path.join(folder, 'exporter.log')
        self.log = open(self.log_path, 'w')
        self.proc = subprocess.Popen([sys.executable, '-m', 'croupier_plugin.cli', 'exporter',
                                      '--config', path], stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        line = self.proc.stdout.readline()      # "croupier exporter: listening on URL ..."
        if 'listening on ' not in line:
            self.stop()
            raise RuntimeError(f'croupier exporter did not start: {line!r} '
                               f'{open(self.log_path).read()[-2000:]}')
        self.address = line.split('listening on ')[1].split()[0]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class PrometheusServer:
    """Prometheus scraping ``targets`` every second, on a free loopback port."""

    def __init__(self, targets, folder, interval='1s'):
        self.port = free_port()
        self.address = f'http://127.0.0.1:{self.port}'
        config = {'global': {'scrape_interval': interval, 'evaluation_interval': interval},
                  'scrape_configs': [{'job_name': 'croupier',
                                      'static_configs': [{'targets': list(targets)}]}]}
        path = os.path.join(folder, 'prometheus.yml')
        with open(path, 'w') as fh:
            yaml.safe_dump(config, fh)
        self.log_path = os.path.join(folder, 'prometheus.log')
        self.log = open(self.log_path, 'w')
        self.proc = subprocess.Popen(
            [PROMETHEUS, f'--config.file={path}',
             f'--storage.tsdb.path={os.path.join(folder, "tsdb")}',
             f'--web.listen-address=127.0.0.1:{self.port}'],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(self.address + '/-/ready', timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f'prometheus did not become ready: '
                                   f'{open(self.log_path).read()[-2000:]}')
            time.sleep(0.2)

    def query(self, promql):
        """The result vector of an instant query."""
        answer = requests.get(self.address + '/api/v1/query', params={'query': promql},
                              timeout=5).json()
        assert answer['status'] == 'success', answer
        return answer['data']['result']

    def wait_for(self, promql, ready, limit=30):
        """The query's result once ``ready(result)`` holds (AssertionError after ``limit`` s)."""
        deadline = time.monotonic() + limit
        while True:
            result = self.query(promql)
            if ready(result):
                return result
            assert time.monotonic() < deadline, f'{promql}: still {result}'
            time.sleep(0.5)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class RecordingProxy:
    """A TCP relay on loopback that keeps every byte sent through it, both ways:
    what the plugin really put on the wire to the exporter."""

    def __init__(self, upstream_host, upstream_port):
        self.upstream = (upstream_host, upstream_port)
        self.server = socket.create_server(('127.0.0.1', 0))
        self.port = self.server.getsockname()[1]
        self.sent = bytearray()
        self._lock = threading.Lock()
        self._open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self._open:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:
                    self.sent.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def text(self):
        with self._lock:
            return bytes(self.sent).decode('utf-8', 'replace')

    def close(self):
        self._open = False
        self.server.close()


class FreezableRelay:
    """A TCP relay on loopback to ``upstream`` that can stop passing bytes on
    (``freeze``): a front-end that stops answering, with its connections open."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.server = socket.create_server(('127.0.0.1', 0))
        self.port = self.server.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self._open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self.flowing.clear()

    def _accept(self) -> None:
        while self._open:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while not self.flowing.wait(0.5):
                    if not self._open:
                        return
                dst.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self._open = False
        self.flowing.set()
        self.server.close()


def known_hosts_for_port(bed, port: int, folder: str) -> str:
    """A known_hosts file naming the bed's sshd host keys at ``port`` too (a
    relay's port), so that host keys are still checked through the relay."""
    with open(bed['known_hosts']) as fh:
        lines = [line for line in fh.read().splitlines() if line.strip()]
    extra = []
    for line in lines:
        hosts, _, rest = line.partition(' ')
        if f'[{bed["host"]}]:{bed["port"]}' in hosts.split(','):
            extra.append(f'[{bed["host"]}]:{port} {rest}')
    assert extra, f'no entry for [{bed["host"]}]:{bed["port"]} in {bed["known_hosts"]}'
    path = os.path.join(folder, 'known_hosts')
    with open(path, 'w') as fh:
        fh.write('\n'.join(lines + extra) + '\n')
    return path
