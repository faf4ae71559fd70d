"""Poll cost per monitor cycle with 1, 10, 100 and 1,000 tracked jobs (issue 9, item 3).

Submits 1,000 tiny held jobs (``sbatch --hold --wrap true``, all from ONE remote
command over a raw connection), then lets Croupier's own ``Monitor`` track the
first N of them through a real ``Cluster`` (SshTransport, SlurmScheduler) and
runs monitor cycles one ``monitor_period`` apart. Per cycle:

- remote commands: counted on the SSH server's side ("Starting session:
  command" lines that sshd logs at LogLevel VERBOSE for the monitor
  connection's client port), divided by the number of cycles;
- bytes: the status command's length and its stdout's length (client side,
  by wrapping the transport's ``run``);
- wall time of ``Monitor.poll`` (command round trip + parsing + applying).

Every held job is cancelled at the end with ONE scancel.

    .venv/bin/python bench/poll.py [--quick] [--cycles 5] [--period 1]
"""

import argparse
import os
import shlex
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def submit_held(raw, workdir, count):
    out = raw.run(f'cd {shlex.quote(workdir)} && for i in $(seq {int(count)}); do '
                  f'sbatch --parsable --hold -J bench_hold -o /dev/null --wrap true || exit 1; '
                  f'done')
    ids = [line.split(';')[0] for line in out.split()]
    if len(ids) != count or not all(i.isdigit() for i in ids):
        raise RuntimeError(f'expected {count} job ids, got {len(ids)}')
    return ids


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='1, 10 and 100 jobs, 3 cycles each')
    p.add_argument('--cycles', type=int, default=5)
    p.add_argument('--period', type=float, default=1.0, help='seconds between cycles')
    args = p.parse_args(argv)
    sizes = (1, 10, 100) if args.quick else (1, 10, 100, 1000)
    cycles = 3 if args.quick else args.cycles

    from croupier_plugin.core.infrastructure import InfrastructureSettings
    from croupier_plugin.core.model import JobState
    from croupier_plugin.core.monitor import Monitor

    facts = common.bed()
    log = common.SshdLog()
    raw = common.RawSsh(facts)
    workdir = common.bench_dir(raw, 'poll')
    ids = []
    rows = []
    try:
        t0 = time.monotonic()
        ids = submit_held(raw, workdir, max(sizes))
        submit_s = time.monotonic() - t0

        inputs = common.bed_inputs(facts)
        settings = InfrastructureSettings.from_properties('hpc', {
            'config': {'infrastructure_interface': 'SLURM'},
            'credentials': {'host': inputs['hpc_host'], 'port': inputs['hpc_port'],
                            'user': inputs['hpc_user'],
                            'private_key_file': inputs['hpc_private_key_file'],
                            'known_hosts': inputs['hpc_known_hosts']},
            'monitoring_options': {'monitor_period': args.period}})
        cluster = settings.cluster()
        transport = cluster.transport
        calls = []
        inner_run = transport.run

        def counting_run(command, **kw):
            result = inner_run(command, **kw)
            calls.append((len(command.encode()), len(result.stdout.encode())))
            return result
        transport.run = counting_run
        transport.connect()
        port = transport.connection.client().get_transport().sock.getsockname()[1]

        for n in sizes:
            monitor = Monitor()
            for job_id in ids[:n]:
                monitor.track(cluster, job_id, f'held-{job_id}')
            monitor.poll(force=True)            # first sight of every job, not timed
            del calls[:]
            times = []
            mark = log.mark()
            for _ in range(cycles):
                time.sleep(args.period)
                t = time.perf_counter()
                monitor.poll(force=True)
                times.append(time.perf_counter() - t)
            counts = log.since(mark)
            seen = [j.status for j in monitor.jobs()]
            wrong = [s for s in seen if s.state is not JobState.PENDING]
            if wrong:
                raise RuntimeError(f'{len(wrong)} held jobs not seen PENDING: {wrong[:3]}')
            rows.append(dict(n=n, server_cmds=counts.commands_on(port) / cycles,
                             client_cmds=len(calls) / cycles,
                             cmd_bytes=statistics.mean(c[0] for c in calls),
                             out_bytes=statistics.mean(c[1] for c in calls),
                             median=statistics.median(times), max=max(times),
                             connections=counts.own('connections'),
                             foreign=counts.foreign()))
    finally:
        if ids:
            # ONE scancel for every job submitted here
            raw.run('scancel ' + ' '.join(ids), check=False)
        common.rm_dir(raw, workdir)
        raw.close()
        from croupier_plugin.core.transport import ssh
        ssh.close_all()

    base = rows[0]['median']
    out = []
    for r in rows:
        ratio = r['median'] / base
        ok = r['server_cmds'] == 1 and (r['n'] < 1000 or ratio <= 2)
        out.append([r['n'], f"{r['server_cmds']:g}", f"{r['client_cmds']:g}",
                    f"{r['cmd_bytes']:.0f}", f"{r['out_bytes']:.0f}",
                    f"{r['median'] * 1000:.0f}", f"{r['max'] * 1000:.0f}", f'{ratio:.2f}x',
                    r['connections'], r['foreign'], common.verdict(ok)])
    print(f'{max(sizes)} held jobs submitted in {submit_s:.1f} s (one remote loop of sbatch); '
          f'{cycles} cycles per size, {args.period:g} s apart\n')
    common.table(['tracked jobs', 'cmds/cycle (sshd)', 'cmds/cycle (client)', 'cmd bytes',
                  'stdout bytes', 'cycle ms (median)', 'cycle ms (max)', 'vs 1 job',
                  'new conns', 'other clients', 'target'], out,
                 title='3. Poll cost per monitor cycle (target: 1 command; time at 1,000 '
                       '<= 2x time at 1)')


if __name__ == '__main__':
    main()
