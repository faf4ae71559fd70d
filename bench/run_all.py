"""Run every bench script once, one after the other, and write their tables
with the date and the exact commands to a Markdown file.

    .venv/bin/python bench/run_all.py [--quick] [--out /tmp/bench-results.md]
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# monitor10k first (CPU-bound, no bed); exporter.py and poll.py last: their 1,000 held
# jobs and their cancellation keep slurmctld busy for a while
SCRIPTS = ('monitor10k.py', 'dag.py', 'submit.py', 'latency.py', 'exporter.py', 'poll.py')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true')
    p.add_argument('--out', default='/tmp/bench-results.md')
    p.add_argument('--only', nargs='*', help='a subset of ' + ', '.join(SCRIPTS))
    args = p.parse_args(argv)
    python = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(ROOT) \
        else sys.executable
    parts = ['# Croupier bench results\n',
             f'Started {time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())} on '
             f'{os.uname().nodename} ({os.cpu_count()} CPUs), from `{ROOT}`.\n']
    t_all = time.monotonic()
    failed = False
    for script in args.only or SCRIPTS:
        command = [python, f'bench/{script}'] + (['--quick'] if args.quick else [])
        shown = ' '.join(command)
        print(f'== {shown}', flush=True)
        load = ' '.join(f'{x:.2f}' for x in os.getloadavg())
        t0 = time.monotonic()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        elapsed = time.monotonic() - t0
        print(done.stdout, end='', flush=True)
        if done.returncode:
            failed = True
            print(done.stderr[-3000:], file=sys.stderr)
        parts.append(f'## `{shown}`\n\n'
                     f'{time.strftime("%H:%M:%S UTC", time.gmtime())}, took {elapsed:.0f} s, '
                     f'load average before: {load}, '
                     f'exit code {done.returncode}\n\n```\n{done.stdout.rstrip()}\n```\n')
        if done.returncode:
            parts.append(f'stderr (tail):\n\n```\n{done.stderr[-3000:].rstrip()}\n```\n')
    parts.append(f'Whole run: {time.monotonic() - t_all:.0f} s.\n')
    with open(args.out, 'w') as fh:
        fh.write('\n'.join(parts))
    print(f'written to {args.out}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
