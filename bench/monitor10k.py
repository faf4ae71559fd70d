"""The monitor tracking 10,000 jobs (issue 9, item 6). No cluster needed.

Generates 10,000-line outputs of Croupier's SLURM status command, shaped like
the recorded ones (tests/fixtures/slurm/status_*.txt: squeue rows
``id|STATE|Reason|wait-status``, the squeue rc mark, the sacct mark, sacct
rows ``id|STATE|exit:signal|Reason``), and runs the real ``Monitor`` over a
stub cluster that answers each cycle from that text with the real
``SlurmScheduler`` (status command built for 10,000 ids, then
``parse_status_output``, then the monitor's ``_apply``):

- steady: the same answer every cycle (nothing changes: the common case);
- churn: every job's raw state changes at every cycle (PENDING, RUNNING,
  COMPLETING in turn: the worst case for change detection);
- end: one last cycle where every job ended, 8,000 still in squeue and 2,000
  only in sacct (purged from squeue).

CPU time per cycle is ``time.process_time``; RSS is the process's peak
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), interpreter included.

    .venv/bin/python bench/monitor10k.py [--quick] [--jobs 10000] [--cycles 20]
"""

import argparse
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from croupier_plugin.core.model import JobState  # noqa: E402
from croupier_plugin.core.monitor import Monitor  # noqa: E402
from croupier_plugin.core.schedulers.slurm import (SACCT_MARK, SQUEUE_RC_MARK,  # noqa: E402
                                                   SlurmScheduler)

FIXTURES = os.path.join(common.ROOT, 'tests', 'fixtures', 'slurm')
LIVE = [('PENDING', 'Priority', '0'), ('RUNNING', 'None', '0'), ('COMPLETING', 'None', '0')]


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def live_output(ids, shift):
    rows = [f'{j}|{"|".join(LIVE[(i + shift) % 3])}' for i, j in enumerate(ids)]
    return '\n'.join(rows + [f'{SQUEUE_RC_MARK}0', SACCT_MARK]) + '\n'


def ended_output(ids):
    in_squeue = ids[:len(ids) * 8 // 10]
    purged = ids[len(in_squeue):]
    rows = []
    for i, j in enumerate(in_squeue):
        rows.append(f'{j}|FAILED|NonZeroExitCode|768' if i % 50 == 0 else f'{j}|COMPLETED|None|0')
    rows += [f'{SQUEUE_RC_MARK}0', SACCT_MARK]
    for i, j in enumerate(purged):
        rows.append(f'{j}|CANCELLED by 1001|0:0|None' if i % 100 == 0 else f'{j}|COMPLETED|0:0|None')
    return '\n'.join(rows) + '\n'


class StubCluster:
    """Answers like a Cluster, from a text instead of a remote command."""

    name = 'bench-10k'
    monitor_period = 1.0
    accounting = False           # as Cluster's: no accounting figures collected

    def __init__(self):
        self.scheduler = SlurmScheduler()
        self.text = ''
        self.command_bytes = 0

    def statuses(self, job_ids):
        job_ids = list(job_ids)
        self.command_bytes = len(self.scheduler.status_command(job_ids))
        return self.scheduler.parse_status_output(self.text, job_ids)


def check_shape():
    """The generated lines parse like the recorded ones do."""
    with open(os.path.join(FIXTURES, 'status_mixed.txt')) as fh:
        recorded = fh.read()
    parsed = SlurmScheduler().parse_status_output(recorded, ['31', '35', '36', '37'])
    assert parsed['35'].state is JobState.FAILED and parsed['35'].exit_code == 3
    sample = SlurmScheduler().parse_status_output(ended_output(['1', '2', '3', '4', '5']),
                                                  ['1', '2', '5'])
    assert sample['1'].state is JobState.FAILED and sample['1'].exit_code == 3
    assert sample['5'].state is JobState.CANCELLED and sample['5'].source == 'sacct'


def reference_ms():
    """A fixed pure-Python workload: this VM's speed drifts (other guests on
    the host), so the figures are printed next to it."""
    best = None
    for _ in range(5):
        t = time.process_time()
        sum(i * i for i in range(1_000_000))
        spent = (time.process_time() - t) * 1000
        best = spent if best is None else min(best, spent)
    return best


def cycles(monitor, cluster, texts):
    cpu, wall = [], []
    for text in texts:
        cluster.text = text
        c0, w0 = time.process_time(), time.perf_counter()
        changes = monitor.poll(force=True)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return cpu, wall, len(changes)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='5 cycles per mode')
    p.add_argument('--jobs', type=int, default=10000)
    p.add_argument('--cycles', type=int, default=20)
    args = p.parse_args(argv)
    n_cycles = 5 if args.quick else args.cycles
    check_shape()
    ref_before = reference_ms()
    rss_start = rss_mb()

    ids = [str(1000000 + i) for i in range(args.jobs)]
    texts = [live_output(ids, s) for s in range(3)]
    end_text = ended_output(ids)
    lines = texts[0].count('\n') - 2
    cluster = StubCluster()
    monitor = Monitor(unknown_grace=180)
    for j in ids:
        monitor.track(cluster, j, f'job-{j}')
    cycles(monitor, cluster, [texts[0]])           # first sight, not counted

    rows = []
    cpu, wall, changed = cycles(monitor, cluster, [texts[0]] * n_cycles)
    rows.append(['steady (no change)', n_cycles, changed, cpu, wall])
    cpu, wall, changed = cycles(monitor, cluster, [texts[(k + 1) % 3] for k in range(n_cycles)])
    rows.append(['churn (every job changes)', n_cycles, changed, cpu, wall])
    cpu, wall, changed = cycles(monitor, cluster, [end_text])
    rows.append(['end (all terminal, 2,000 via sacct)', 1, changed, cpu, wall])
    assert not monitor.active(), 'every job should have ended'
    rss_end = rss_mb()
    ref_after = reference_ms()

    out = []
    for name, n, changed, cpu, wall in rows:
        median_cpu, max_cpu = statistics.median(cpu) * 1000, max(cpu) * 1000
        out.append([name, n, changed, f'{median_cpu:.1f}', f'{max_cpu:.1f}',
                    f'{statistics.median(wall) * 1000:.1f}', common.verdict(median_cpu <= 50)])
    print(f'{args.jobs} tracked jobs; status output {lines} lines, '
          f'{len(texts[0]) / 1024:.0f} KiB; status command for them {cluster.command_bytes} '
          f'bytes; Python {sys.version.split()[0]}; machine speed check (1M-step Python '
          f'loop, best of 5): {ref_before:.0f} ms before, {ref_after:.0f} ms after\n')
    common.table(['cycle kind', 'cycles', 'changes in last', 'CPU ms/cycle (median)',
                  'CPU ms/cycle (max)', 'wall ms (median)', 'CPU <= 50 ms'], out,
                 title='6. Monitor with 10,000 tracked jobs (parse + apply per cycle)')
    print()
    common.table(['peak RSS MB (after imports)', 'peak RSS MB (end)', 'added by 10k jobs',
                  'target <= 100 MB'],
                 [[f'{rss_start:.1f}', f'{rss_end:.1f}', f'{rss_end - rss_start:.1f}',
                   common.verdict(rss_end <= 100)]])


if __name__ == '__main__':
    main()
