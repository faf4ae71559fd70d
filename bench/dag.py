"""DAG wall time and SSH connections of whole blueprint runs (issue 9, items 1 and 2).

For a 4-job DAG (first -> 2 in parallel -> last) and a 22-job DAG
(first -> 20 in parallel -> last), side by side in one run:

- floor: the same DAG submitted by hand with ``sbatch --dependency=afterok:...``
  over ONE persistent paramiko connection, then one ``squeue`` per period until
  every job ended (time from the first sbatch to the poll that saw the end);
- Croupier: ``install``, ``run_jobs`` (timed), ``uninstall`` on the embedded
  engine, with the same monitor_period; the SSH server's log gives the
  connections accepted, exec sessions (commands) and SFTP sessions of the
  whole blueprint run.

    .venv/bin/python bench/dag.py [--quick] [--period 1] [--repeat 5]
"""

import argparse
import os
import shlex
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def floor_run(raw, middle, period, command):
    wd = common.bench_dir(raw, f'floor{middle + 2}')
    try:
        wrap = shlex.quote(command)
        sb = f'cd {shlex.quote(wd)} && sbatch --parsable -J bench_floor --time=5'
        t0 = time.monotonic()
        first = raw.run(f'{sb} --wrap {wrap}').strip()
        mids = [raw.run(f'{sb} --dependency=afterok:{first} --wrap {wrap}').strip()
                for _ in range(middle)]
        last = raw.run(f'{sb} --dependency=afterok:{":".join(mids)} --wrap {wrap}').strip()
        ids = [first] + mids + [last]
        states, polls = common.wait_all_ended(raw, ids, period)
        elapsed = time.monotonic() - t0
        bad = {i: s for i, s in states.items() if s not in ('COMPLETED', 'GONE')}
        if bad:
            raise RuntimeError(f'floor DAG jobs did not complete: {bad}')
        return elapsed, polls
    finally:
        raw.run("scancel --name=bench_floor 2>/dev/null || true", check=False)
        common.rm_dir(raw, wd)


def croupier_run(raw, blueprint, middle, period, command, log, index):
    from croupier_plugin import runner
    from croupier_plugin.core.transport import ssh
    ssh.close_all()             # the run must open (and count) its own connection
    mark = log.mark()
    env = runner.init_env(blueprint, common.bed_inputs(monitor_period=period, command=command),
                          name=f'bench-dag{middle + 2}-{index}')
    t0 = time.monotonic()
    runner.execute(env, 'install')
    t1 = time.monotonic()
    try:
        runner.execute(env, 'run_jobs')
        t2 = time.monotonic()
    finally:
        props = common.node_props(env)
        common.cancel_jobs_of(raw, props)
        runner.execute(env, 'uninstall')
    t3 = time.monotonic()
    counts = log.since(mark)
    states = {n: p.get('state') for n, p in props.items() if n != 'hpc'}
    if set(states.values()) != {'COMPLETED'}:
        raise RuntimeError(f'Croupier DAG jobs did not complete: {states}')
    ssh.close_all()
    return dict(install=t1 - t0, run=t2 - t1, uninstall=t3 - t2,
                connections=counts.own('connections'),
                commands=counts.own('commands', exclude={raw.port}),
                sftp=counts.own('sftp'), foreign=counts.foreign())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='4-job and 12-job DAGs, once')
    p.add_argument('--period', type=float, default=1.0, help='monitor_period (s), both sides')
    p.add_argument('--repeat', type=int, default=5, help='runs per DAG and side (median kept)')
    p.add_argument('--command', default='sleep 1', help='what each job runs')
    args = p.parse_args(argv)
    sizes = (2, 10) if args.quick else (2, 20)
    repeat = 1 if args.quick else args.repeat
    common.quiet_engine()
    log = common.SshdLog()
    raw = common.RawSsh()
    results = []
    try:
        for middle in sizes:
            blueprint = common.dag_blueprint(middle)
            floors, runs = [], []
            for i in range(repeat):
                floors.append(floor_run(raw, middle, args.period, args.command)[0])
                runs.append(croupier_run(raw, blueprint, middle, args.period, args.command, log, i))
            results.append((middle + 2, floors, runs))
    finally:
        raw.run('scancel --name=bench_floor 2>/dev/null || true', check=False)
        raw.close()

    rows, conn_rows = [], []
    for jobs, floors, runs in results:
        target = 1.2 if jobs == 4 else 1.05
        floor = statistics.median(floors)
        run = statistics.median(r['run'] for r in runs)
        ratio = run / floor
        rows.append([f'{jobs}-job DAG', f'{floor:.2f}', f'{run:.2f}', f'{ratio:.2f}x',
                     f'<= {target}x', common.verdict(ratio <= target),
                     ' '.join(f'{f:.1f}' for f in floors),
                     ' '.join(f"{r['run']:.1f}" for r in runs)])
        each = lambda key: ' '.join(str(r[key]) for r in runs)   # noqa: E731
        conn_rows.append([f'{jobs}-job DAG', len(runs), each('connections'), each('commands'),
                          each('sftp'),
                          f"{statistics.median(r['install'] for r in runs):.1f}",
                          f"{statistics.median(r['uninstall'] for r in runs):.1f}",
                          sum(r['foreign'] for r in runs),
                          common.verdict(max(r['connections'] for r in runs) <= 2)])
    print(f'monitor_period = {args.period:g} s on both sides; jobs run {args.command!r}; '
          f'median of {repeat} run(s) per side\n')
    common.table(['DAG', 'floor s', 'run_jobs s', 'ratio', 'target', 'status', 'floor runs',
                  'run_jobs runs'], rows,
                 title='1. DAG wall time: run_jobs vs sbatch --dependency + squeue over one '
                       'connection')
    print()
    common.table(['DAG', 'runs', 'SSH connections (each run)', 'commands (each run)',
                  'SFTP sessions (each run)', 'install s', 'uninstall s', 'other clients',
                  'target <= 2'], conn_rows,
                 title='2. Whole blueprint run (install + run_jobs + uninstall), counted in '
                       "sshd's log")
    print('(sshd lines are attributed to this process by client port; "other clients" are '
          'connections other processes opened to the bed meanwhile)')


if __name__ == '__main__':
    main()
