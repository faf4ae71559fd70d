"""Detection latency: from a job's end to Croupier seeing it (issue 9, item 5).

A generated blueprint of independent jobs whose durations are staggered
(1.0, 1.7, 2.4, ... s) so that their ends fall at every phase of the monitor's
cycle, run through ``run_jobs`` on the embedded engine with monitor_period 1 s
and 5 s. For each job:

    latency = ended_at - End

``ended_at`` is the wall-clock time (time.time) at which the engine applied
the terminal state (stored in the job's runtime properties); ``End`` is
``sacct``'s end time, which SLURM keeps to the second (truncated), so each
figure over-states the true latency by 0 to 1 s: it is an upper bound.

    .venv/bin/python bench/latency.py [--quick] [--periods 1 5]
"""

import argparse
import os
import shlex
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def blueprint(durations):
    os.makedirs(common.GENERATED, exist_ok=True)
    text = common.HEADER.format(description='independent jobs with staggered durations')
    for i, d in enumerate(durations):
        text += (f'  job{i:02d}:\n'
                 f'    type: croupier.nodes.Job\n'
                 f'    properties:\n'
                 f"      job_options: {{commands: ['sleep {d:.2f}', 'date +%s.%N'], "
                 f"max_time: '00:05:00'}}\n"
                 f'    relationships:\n'
                 f'      - {{type: task_managed_by_interface, target: hpc}}\n')
    path = os.path.join(common.GENERATED, f'latency{len(durations)}.yaml')
    with open(path, 'w') as fh:
        fh.write(text)
    return path


def run_once(raw, path, period):
    from croupier_plugin import runner
    env = runner.init_env(path, common.bed_inputs(raw.facts, monitor_period=period),
                          name=f'bench-latency-{period:g}')
    runner.execute(env, 'install')
    try:
        runner.execute(env, 'run_jobs')
        props = common.node_props(env)
        # the job's own clock at the end of its work (sub-second), before uninstall
        work_end = {p['job_id']: float(raw.run(f"cat {shlex.quote(p['stdout'])}").split()[-1])
                    for n, p in props.items() if n != 'hpc'}
    finally:
        props = common.node_props(env)
        common.cancel_jobs_of(raw, props)
        runner.execute(env, 'uninstall')
    jobs = {p['job_id']: p for n, p in props.items() if n != 'hpc'}
    if {p.get('state') for p in jobs.values()} != {'COMPLETED'}:
        raise RuntimeError(f'jobs did not complete: {jobs}')
    for _ in range(20):         # slurmdbd may lag a moment behind slurmctld
        rows = common.sacct_rows(raw, list(jobs))
        if len(rows) == len(jobs) and all(r[2] not in ('Unknown', '') for r in rows.values()):
            break
        time.sleep(0.5)
    return ([jobs[j]['ended_at'] - common.slurm_epoch(rows[j][2]) for j in jobs],
            [jobs[j]['ended_at'] - work_end[j] for j in jobs],
            [common.slurm_epoch(rows[j][2]) - work_end[j] for j in jobs])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='4 jobs per period')
    p.add_argument('--periods', type=float, nargs='+', default=[1.0, 5.0])
    p.add_argument('--jobs', type=int, default=8)
    args = p.parse_args(argv)
    count = 4 if args.quick else args.jobs
    durations = [1.0 + 0.7 * k for k in range(count)]
    path = blueprint(durations)

    common.quiet_engine()
    raw = common.RawSsh()
    rows = []
    try:
        for period in args.periods:
            lat, from_work, slurm_lag = run_once(raw, path, period)
            target = period + 1
            rows.append([f'{period:g}', len(lat), f'{min(lat):.2f}', f'{statistics.mean(lat):.2f}',
                         f'{max(lat):.2f}', f'<= {target:g}', common.verdict(max(lat) <= target),
                         f'{statistics.mean(from_work):.2f} / {max(from_work):.2f}',
                         f'{min(slurm_lag):+.2f}..{max(slurm_lag):+.2f}'])
    finally:
        raw.close()
    print(f'jobs sleep {", ".join(f"{d:.1f}" for d in durations)} s; latency = ended_at - sacct '
          f'End (End is truncated to the second: each figure is an upper bound, up to 1 s '
          f'above the true latency); "work end" is the job\'s own clock (date +%s.%N) after '
          f'its sleep, sub-second, before SLURM completes the job\n')
    common.table(['monitor_period s', 'jobs', 'min s', 'mean s', 'max s', 'target s', 'status',
                  'from work end mean/max s', 'End - work end s'],
                 rows, title='5. Detection latency (job end -> run_jobs records it terminal)')


if __name__ == '__main__':
    main()
