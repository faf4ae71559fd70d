"""DAG wall time at the monitor periods users run, against the floor (issues 9 and 17).

For a 4-job DAG (first -> 2 in parallel -> last) and a 22-job DAG
(first -> 20 in parallel -> last), at each monitor_period given (1 s and 15 s
by default), side by side in one run:

- floor: the same DAG submitted by hand with ``sbatch --dependency=afterok:...``
  over ONE persistent paramiko connection, then one ``squeue`` every 0.5 s
  until every job ended (time from the first sbatch to the poll that saw the
  end), whatever the period;
- Croupier: ``install``, ``run_jobs`` (timed), ``uninstall`` on the embedded
  engine at that monitor_period.

For both, the gap between a parent's end and its child's start is read from
``sacct`` (SLURM's own record, one-second resolution). For Croupier, the
status commands (squeue/sacct) and exit-code marker checks its infrastructure
was sent are counted in this process, and the SSH server's log gives the
connections accepted, exec sessions (login-node commands) and SFTP sessions of
the whole blueprint run.

With ``--scheduler torque`` the same runs go through the bed's Torque
wrappers (qsub/qstat/qdel over SLURM): Croupier's infrastructure is TORQUE,
and the floor submits with ``qsub -W depend=afterok:...`` over one connection
and asks ``qstat`` every 0.5 s; sacct still gives the gaps (the wrappers' jobs
are SLURM's).

    .venv/bin/python bench/dag.py [--quick] [--periods 1 15] [--repeat 3]
                                  [--scheduler slurm|torque] [--dags 4 22]
"""

import argparse
import os
import shlex
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

FLOOR_POLL = 0.5


class Counted:
    """Counts the status commands and marker checks Croupier's clusters send
    (wrapping Cluster's two methods in this process: the engine is unchanged)."""

    def __init__(self):
        from croupier_plugin.core.cluster import Cluster
        self.statuses = self.markers = 0
        self._lock = threading.Lock()
        statuses, markers = Cluster.statuses, Cluster.markers
        counted = self

        def counted_statuses(cluster, job_ids):
            with counted._lock:
                counted.statuses += 1
            return statuses(cluster, job_ids)

        def counted_markers(cluster, job_ids, spent=(), started=()):
            with counted._lock:
                counted.markers += 1
            return markers(cluster, job_ids, spent, started)
        Cluster.statuses, Cluster.markers = counted_statuses, counted_markers

    def take(self):
        """(status commands, marker checks) since the last take."""
        with self._lock:
            out = (self.statuses, self.markers)
            self.statuses = self.markers = 0
        return out


def gaps(raw, edges):
    """Child start - parent end (s) for each (parent id, child id), from sacct;
    waits for slurmdbd to have them all."""
    ids = sorted({i for edge in edges for i in edge})
    deadline = time.monotonic() + 30
    while True:
        rows = common.sacct_rows(raw, ids, 'JobID,State,Start,End')
        if all(i in rows and 'Unknown' not in rows[i][1:] for i in ids) or \
                time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return [common.slurm_epoch(rows[c][1]) - common.slurm_epoch(rows[p][2])
            for p, c in edges]


def floor_run(raw, middle, command):
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
        states, polls = common.wait_all_ended(raw, ids, FLOOR_POLL)
        elapsed = time.monotonic() - t0
        bad = {i: s for i, s in states.items() if s not in ('COMPLETED', 'GONE')}
        if bad:
            raise RuntimeError(f'floor DAG jobs did not complete: {bad}')
        edges = [(first, m) for m in mids] + [(m, last) for m in mids]
        return dict(run=elapsed, gaps=gaps(raw, edges))
    finally:
        raw.run("scancel --name=bench_floor 2>/dev/null || true", check=False)
        common.rm_dir(raw, wd)


def qstat_ended(raw, ids: list) -> tuple:
    """(whether every job in ``ids`` ended, {id: job_state}) from one qstat
    through the wrappers; a job qstat no longer knows has ended."""
    out = raw.run(f"qstat -f -1 {' '.join(ids)} 2>/dev/null || true", check=False)
    states = {i: 'GONE' for i in ids}
    current = None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith('Job Id:'):
            current = line.split(':', 1)[1].strip()
        elif line.startswith('job_state =') and current in states:
            states[current] = line.split('=', 1)[1].strip()
    return all(s in ('C', 'GONE') for s in states.values()), states


def torque_floor_run(raw, middle: int, command: str) -> dict:
    """The DAG submitted by hand with ``qsub -W depend=afterok`` over one
    connection, then one qstat every FLOOR_POLL seconds until every job ended."""
    wd = common.bench_dir(raw, f'tfloor{middle + 2}')
    try:
        raw.run(f'cd {shlex.quote(wd)} && printf "%s\\n" "#!/bin/bash" '
                f'{shlex.quote(command)} > floor.sh')
        qs = f'cd {shlex.quote(wd)} && qsub -N bench_floor -l walltime=00:05:00'
        t0 = time.monotonic()
        first = raw.run(f'{qs} floor.sh').strip()
        mids = [raw.run(f'{qs} -W depend=afterok:{first} floor.sh').strip()
                for _ in range(middle)]
        last = raw.run(f'{qs} -W depend=afterok:{":".join(mids)} floor.sh').strip()
        ids = [first] + mids + [last]
        deadline = time.monotonic() + 600
        while True:
            ended, states = qstat_ended(raw, ids)
            if ended:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f'floor DAG jobs did not end: {states}')
            time.sleep(FLOOR_POLL)
        elapsed = time.monotonic() - t0
        rows = common.sacct_rows(raw, ids, 'JobID,State')
        bad = {i: r[0] for i, r in rows.items() if r and r[0] != 'COMPLETED'}
        if bad:
            raise RuntimeError(f'floor DAG jobs did not complete: {bad}')
        edges = [(first, m) for m in mids] + [(m, last) for m in mids]
        return dict(run=elapsed, gaps=gaps(raw, edges))
    finally:
        raw.run("scancel --name=bench_floor 2>/dev/null || true", check=False)
        common.rm_dir(raw, wd)


def torque_blueprint(middle: int) -> str:
    """The DAG blueprint on a TORQUE infrastructure (the bed's wrappers)."""
    path = common.dag_blueprint(middle)
    with open(path) as fh:
        text = fh.read()
    text = text.replace('infrastructure_interface: SLURM', 'infrastructure_interface: TORQUE')
    torque = path.replace('.yaml', '-torque.yaml')
    with open(torque, 'w') as fh:
        fh.write(text)
    return torque


def croupier_run(raw, blueprint, middle, period, command, log, counted, index):
    from croupier_plugin import runner
    from croupier_plugin.core.transport import ssh
    ssh.close_all()             # the run must open (and count) its own connection
    mark = log.mark()
    env = runner.init_env(blueprint, common.bed_inputs(monitor_period=period, command=command),
                          name=f'bench-dag{middle + 2}-{period:g}-{index}')
    t0 = time.monotonic()
    runner.execute(env, 'install')
    t1 = time.monotonic()
    counted.take()
    run_mark = log.mark()
    try:
        runner.execute(env, 'run_jobs')
        t2 = time.monotonic()
        statuses, markers = counted.take()
        run_counts = log.since(run_mark)
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
    ids = {n: str(p['job_id']) for n, p in props.items() if n != 'hpc'}
    mids = [n for n in ids if n.startswith('mid')]
    first = next(n for n in ids if n.startswith('first'))
    last = next(n for n in ids if n.startswith('last'))
    edges = [(ids[first], ids[m]) for m in mids] + [(ids[m], ids[last]) for m in mids]
    run = t2 - t1
    return dict(install=t1 - t0, run=run, uninstall=t3 - t2,
                connections=counts.own('connections'),
                commands=counts.own('commands', exclude={raw.port}),
                run_commands=run_counts.own('commands', exclude={raw.port}),
                sftp=counts.own('sftp'), foreign=counts.foreign(),
                statuses=statuses, markers=markers, gaps=gaps(raw, edges))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='4-job and 12-job DAGs, once')
    p.add_argument('--periods', type=float, nargs='+', default=[1.0, 15.0],
                   help="Croupier's monitor_period (s); the floor polls every 0.5 s")
    p.add_argument('--repeat', type=int, default=3, help='runs per DAG, period and side '
                                                          '(median kept)')
    p.add_argument('--command', default='sleep 1', help='what each job runs')
    p.add_argument('--scheduler', choices=('slurm', 'torque'), default='slurm',
                   help="SLURM, or the bed's Torque wrappers (qsub -W depend on both sides)")
    p.add_argument('--dags', type=int, nargs='+', default=None,
                   help='DAG sizes in jobs (first, N-2 in parallel, last); default 4 22')
    args = p.parse_args(argv)
    sizes = (2, 10) if args.quick else (2, 20)
    if args.dags:
        sizes = tuple(n - 2 for n in args.dags if n >= 3)
    torque = args.scheduler == 'torque'
    floor_side = torque_floor_run if torque else floor_run
    make_blueprint = torque_blueprint if torque else common.dag_blueprint
    repeat = 1 if args.quick else args.repeat
    common.quiet_engine()
    log = common.SshdLog()
    raw = common.RawSsh()
    counted = Counted()
    results = []
    try:
        for middle in sizes:
            blueprint = make_blueprint(middle)
            for period in args.periods:
                floors, runs = [], []
                for i in range(repeat):
                    floors.append(floor_side(raw, middle, args.command))
                    runs.append(croupier_run(raw, blueprint, middle, period, args.command, log,
                                             counted, i))
                results.append((middle + 2, period, floors, runs))
    finally:
        raw.run('scancel --name=bench_floor 2>/dev/null || true', check=False)
        raw.close()

    med = statistics.median
    rows, gap_rows, load_rows = [], [], []
    for jobs, period, floors, runs in results:
        target = 1.2
        floor = med(f['run'] for f in floors)
        run = med(r['run'] for r in runs)
        ratio = run / floor
        rows.append([f'{jobs}-job DAG', f'{period:g} s', f'{floor:.2f}', f'{run:.2f}',
                     f'{ratio:.2f}x', f'<= {target}x', common.verdict(ratio <= target),
                     ' '.join(f"{f['run']:.1f}" for f in floors),
                     ' '.join(f"{r['run']:.1f}" for r in runs)])
        floor_gaps = [g for f in floors for g in f['gaps']]
        run_gaps = [g for r in runs for g in r['gaps']]
        gap_rows.append([f'{jobs}-job DAG', f'{period:g} s',
                         f'{med(floor_gaps):.0f} / {max(floor_gaps):.0f}',
                         f'{med(run_gaps):.0f} / {max(run_gaps):.0f}'])
        per_period = [r['statuses'] / max(1.0, r['run'] / period) for r in runs]
        load_rows.append([f'{jobs}-job DAG', f'{period:g} s',
                          ' '.join(str(r['statuses']) for r in runs),
                          f'{max(per_period):.2f}',
                          common.verdict(max(r['statuses'] - r['run'] / period
                                             for r in runs) <= 1),
                          ' '.join(str(r['markers']) for r in runs),
                          f"{med(r['run_commands'] / r['run'] for r in runs):.1f}",
                          ' '.join(str(r['connections']) for r in runs),
                          ' '.join(str(r['commands']) for r in runs),
                          ' '.join(str(r['sftp']) for r in runs),
                          sum(r['foreign'] for r in runs),
                          common.verdict(max(r['connections'] for r in runs) <= 1)])
    by_hand = ('qsub -W depend=afterok + qstat' if torque else
               'sbatch --dependency + squeue')
    print(f'{args.scheduler}: jobs run {args.command!r}; the floor polls every '
          f'{FLOOR_POLL:g} s; median of {repeat} run(s) per side\n')
    common.table(['DAG', 'monitor_period', 'floor s', 'run_jobs s', 'ratio', 'target',
                  'status', 'floor runs', 'run_jobs runs'], rows,
                 title=f'1. DAG wall time: run_jobs vs {by_hand} every '
                       '0.5 s over one connection')
    print()
    common.table(['DAG', 'monitor_period', 'floor gap s (median / max)',
                  'run_jobs gap s (median / max)'], gap_rows,
                 title="2. A parent's end to its child's start, from sacct (1 s resolution)")
    print()
    common.table(['DAG', 'monitor_period',
                  ('qstat' if torque else 'squeue/sacct') + ' commands (each run)',
                  'per period (max)', 'at most 1 per period', 'marker checks (each run)',
                  'login-node commands/s in run_jobs', 'SSH connections (each run)',
                  'commands, whole run', 'SFTP sessions', 'other clients',
                  'one connection'], load_rows,
                 title='3. What the cluster was asked (in-process counts; sshd log for '
                       'connections and commands)')
    print('(sshd lines are attributed to this process by client port; "other clients" are '
          'connections other processes opened to the bed meanwhile; "at most 1 per period": '
          'status commands <= run time / period + 1)')


if __name__ == '__main__':
    main()
