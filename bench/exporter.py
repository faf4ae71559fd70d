"""One exporter scrape covering 1,000 jobs (issue 7, item 4).

Submits 1,000 tiny held jobs (``sbatch --hold --wrap true``, all from ONE remote
command over a raw connection), starts Croupier's exporter in this process on a
loopback port (credentials from its own configuration, the bed's key), registers
the jobs through the HTTP API as the plugin does, then scrapes ``/metrics`` over
HTTP a few times with ``cache_seconds`` 0 (each scrape gathers anew). Per scrape:

- remote commands: counted on the SSH server's side ("Starting session:
  command" lines of the exporter connection's client port in sshd's log), and
  by the exporter's own ``croupier_exporter_remote_commands_total``;
- wall time of the HTTP GET of ``/metrics`` (the command's round trip, parsing,
  and rendering the metrics of every job) and the size of the answer;
- every job must be reported PENDING, and the partitions present.

Every held job is cancelled at the end with ONE scancel.

    .venv/bin/python bench/exporter.py [--quick] [--jobs 1000] [--scrapes 5]
"""

import argparse
import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from poll import submit_held  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='100 jobs, 3 scrapes')
    p.add_argument('--jobs', type=int, default=1000)
    p.add_argument('--scrapes', type=int, default=5)
    args = p.parse_args(argv)
    jobs = 100 if args.quick else args.jobs
    scrapes = 3 if args.quick else args.scrapes

    import requests

    from croupier_plugin.core.exporter import ExporterClient, ExporterConfig, ExporterService

    facts = common.bed()
    log = common.SshdLog()
    raw = common.RawSsh(facts)
    workdir = common.bench_dir(raw, 'exporter')
    ids = []
    service = None
    try:
        t0 = time.monotonic()
        ids = submit_held(raw, workdir, jobs)
        submit_s = time.monotonic() - t0
        config = ExporterConfig.from_mapping({
            'listen': '127.0.0.1', 'port': 0, 'cache_seconds': 0, 'token': 'bench-token-' * 2,
            'hosts': [{'host': facts['host'], 'port': facts['port'], 'user': facts['user'],
                       'private_key_file': facts['keys']['ed25519'],
                       'known_hosts': facts['known_hosts']}]})
        service = ExporterService(config).start()
        client = ExporterClient(service.address, token=config.current_token())
        client.register('bench', 'hpc', {'scheduler': 'SLURM', 'host': facts['host'],
                                         'port': facts['port'], 'user': facts['user'],
                                         'hpc_label': 'bed'})
        t0 = time.monotonic()
        client.add_jobs('bench', 'hpc', {f'held{i:04d}': j for i, j in enumerate(ids)})
        register_s = time.monotonic() - t0
        url = service.address + '/metrics'
        requests.get(url, timeout=60)               # opens the SSH connection, not timed
        # the exporter's own connection to the front-end (not the process-wide pool)
        [state] = service.collector._states.values()
        port = state.transport.connection.client().get_transport().sock.getsockname()[1]

        def counter(text):
            m = re.search(r'^croupier_exporter_remote_commands_total\{[^}]*\} (\S+)$', text,
                          re.M)
            return float(m.group(1))
        times, sizes = [], []
        before = counter(requests.get(url, timeout=60).text)
        mark = log.mark()
        for _ in range(scrapes):
            t = time.perf_counter()
            text = requests.get(url, timeout=60).text
            times.append(time.perf_counter() - t)
            sizes.append(len(text.encode()))
        counts = log.since(mark)
        # the last scrape counts itself: its counter is read after its command ran
        client_cmds = (counter(text) - before) / scrapes
        pending = text.count(',state="PENDING"}')
        if pending != jobs:
            raise RuntimeError(f'{pending} of {jobs} held jobs reported PENDING')
        if 'croupier_partition_cores{' not in text:
            raise RuntimeError('no partition figures in the metrics')
        server_cmds = counts.commands_on(port) / scrapes
    finally:
        if service is not None:
            service.stop()
        if ids:
            raw.run('scancel ' + ' '.join(ids), check=False)
        common.rm_dir(raw, workdir)
        raw.close()
        from croupier_plugin.core.transport import ssh as ssh_module
        ssh_module.close_all()

    median = statistics.median(times)
    ok = server_cmds == 1 and median < 1.0
    print(f'{jobs} held jobs submitted in {submit_s:.1f} s (one remote loop of sbatch); '
          f'registered with the exporter in {register_s * 1000:.0f} ms (one POST); '
          f'{scrapes} scrapes of /metrics over HTTP, cache_seconds 0\n')
    common.table(['jobs', 'cmds/scrape (sshd)', 'cmds/scrape (exporter)', 'scrape ms (median)',
                  'scrape ms (max)', 'metrics bytes', 'jobs PENDING', 'target'],
                 [[jobs, f'{server_cmds:g}', f'{client_cmds:g}', f'{median * 1000:.0f}',
                   f'{max(times) * 1000:.0f}', f'{statistics.mean(sizes):.0f}', pending,
                   common.verdict(ok)]],
                 title='7. One exporter scrape (target: 1 remote command and under 1 s)')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
