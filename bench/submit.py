"""Submission of 100 independent jobs (issue 9, item 4).

Side by side in one run:

- raw, persistent: 100 sequential ``sbatch --parsable --wrap true`` over ONE
  paramiko connection (the floor);
- raw, one NEW SSH connection per submission (connect, authenticate, sbatch,
  close: what a poller without connection reuse pays);
- Croupier: a generated blueprint with 100 ``croupier.nodes.Job`` nodes
  (``true``), ``run_jobs`` on the embedded engine. Its submission time is from
  the start of ``run_jobs`` to the moment the last job id was stored (the
  ``submitted_at`` runtime property); it includes the workflow start, one SFTP
  upload of each job's script and the sbatch.

    .venv/bin/python bench/submit.py [--quick] [--jobs 100]
"""

import argparse
import os
import shlex
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def drain(raw, name, limit=300):
    deadline = time.monotonic() + limit
    while raw.run(f'squeue -h -n {name} -o %i', check=False).strip():
        if time.monotonic() > deadline:
            raise RuntimeError(f'{name} jobs still queued after {limit} s')
        time.sleep(1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='20 jobs')
    p.add_argument('--jobs', type=int, default=100)
    p.add_argument('--period', type=float, default=1.0, help="Croupier's monitor_period")
    args = p.parse_args(argv)
    count = 20 if args.quick else args.jobs

    common.quiet_engine()
    from croupier_plugin import runner
    from croupier_plugin.core.transport import ssh

    facts = common.bed()
    log = common.SshdLog()
    raw = common.RawSsh(facts)
    raw_port = raw.port
    workdir = common.bench_dir(raw, 'submit')
    sbatch = f'cd {shlex.quote(workdir)} && sbatch --parsable -J bench_sub -o /dev/null --wrap true'
    try:
        t0 = time.monotonic()
        for _ in range(count):
            assert raw.run(sbatch).strip().isdigit()
        t_persistent = time.monotonic() - t0
        drain(raw, 'bench_sub')

        mark = log.mark()
        t0 = time.monotonic()
        for _ in range(count):
            assert common.one_shot(facts, sbatch).strip().isdigit()
        t_new = time.monotonic() - t0
        new_counts = log.since(mark)
        new_conns = new_counts.own('connections')
        foreign = new_counts.foreign()
        drain(raw, 'bench_sub')

        blueprint = common.independent_blueprint(count)
        ssh.close_all()
        mark = log.mark()
        env = runner.init_env(blueprint, common.bed_inputs(facts, monitor_period=args.period,
                                                            command='true'),
                              name=f'bench-submit{count}')
        runner.execute(env, 'install')
        try:
            start = time.time()
            t0 = time.monotonic()
            runner.execute(env, 'run_jobs')
            t_run = time.monotonic() - t0
        finally:
            props = common.node_props(env)
            common.cancel_jobs_of(raw, props)
            runner.execute(env, 'uninstall')
        counts = log.since(mark)
        jobs = [p for n, p in props.items() if n != 'hpc']
        states = {p.get('state') for p in jobs}
        if states != {'COMPLETED'} or len(jobs) != count:
            raise RuntimeError(f'Croupier jobs: {len(jobs)}, states {states}')
        submitted = sorted(p['submitted_at'] for p in jobs)
        t_croupier = submitted[-1] - start
        t_first_last = submitted[-1] - submitted[0]
    finally:
        raw.run('scancel --name=bench_sub 2>/dev/null || true', check=False)
        common.rm_dir(raw, workdir)
        raw.close()
        ssh.close_all()

    ratio = t_croupier / t_persistent
    rows = [
        ['raw sbatch, one persistent connection', f'{t_persistent:.2f}',
         f'{t_persistent / count * 1000:.0f}', '1.00x', '', 1],
        ['raw sbatch, new connection each', f'{t_new:.2f}', f'{t_new / count * 1000:.0f}',
         f'{t_new / t_persistent:.2f}x', '', new_conns],
        ['Croupier run_jobs (start -> last id stored)', f'{t_croupier:.2f}',
         f'{t_croupier / count * 1000:.0f}', f'{ratio:.2f}x',
         f'<= 1.5x: {common.verdict(ratio <= 1.5)}', counts.own('connections')],
    ]
    own_commands = counts.own('commands', exclude={raw_port})
    print(f'{count} independent jobs (true); Croupier: first->last sbatch {t_first_last:.2f} s, '
          f'whole run_jobs until all completed {t_run:.1f} s, {own_commands} commands and '
          f"{counts.own('sftp')} SFTP sessions for install + run_jobs + uninstall (sshd log); "
          f'other clients opened {foreign + counts.foreign()} connections to the bed meanwhile\n')
    common.table(['way', 'seconds', 'ms/job', 'vs raw persistent', 'target', 'SSH connections'],
                 rows, title=f'4. Submitting {count} independent jobs')
    print(f'Croupier vs one new connection per submission: {t_croupier / t_new:.2f}x')


if __name__ == '__main__':
    main()
