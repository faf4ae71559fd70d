"""Record the raw output of Croupier's SLURM status command on the bed.

Submits jobs in every state the bed can produce, then saves the stdout of
SlurmScheduler.status_command at three moments: while they run (squeue rows,
some already ended), after every job ended (squeue rows of ended jobs plus
sacct), and after slurmctld purged them (sacct only). The job ids and the
states expected of each are saved beside them in status_jobs.json.

Run on the bed as root:  .venv/bin/python tests/bed/record-status-fixtures.py
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from croupier_plugin.core.cluster import Cluster  # noqa: E402
from croupier_plugin.core.model import JobSpec  # noqa: E402
from croupier_plugin.core.schedulers import SlurmScheduler  # noqa: E402
from croupier_plugin.core.transport import SshSettings, SshTransport  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   'fixtures', 'slurm')

bed = json.load(open('/var/lib/croupier-bed/bed.json'))
ssh = SshTransport(SshSettings(host=bed['host'], port=bed['port'], user=bed['user'],
                               private_key_file=bed['keys']['ed25519'],
                               known_hosts=bed['known_hosts']))
cluster = Cluster('bed', ssh, SlurmScheduler())
wd = f"{bed['home']}/croupier-fixtures"
ssh.makedirs(wd)

jobs = {
    'timeout': {'commands': ['sleep 300'], 'max_time': '1'},
    'running': {'commands': ['sleep 25']},
    'pending_begin': {'commands': ['true'], 'extra_directives': ['--begin=now+1hour']},
    'completed': {'commands': ['echo ok']},
    'failed': {'commands': ['echo failing >&2', 'exit 3']},
    'cancelled': {'commands': ['sleep 300']},
    'array': {'commands': ['sleep 8', 'exit $SLURM_ARRAY_TASK_ID'], 'scale': 3},
    'array_ok': {'commands': ['sleep 2'], 'scale': 2},
}
ids = {}
for name, options in jobs.items():
    ids[name] = cluster.submit(JobSpec.from_options(f'fx_{name}', options), wd).job_id
print('submitted', ids, flush=True)
time.sleep(5)
ssh.run(f"scancel {ids['cancelled']}", check=True)
time.sleep(3)

order = list(ids.values())


def record(label):
    command = cluster.scheduler.status_command(order)
    result = ssh.run(command)
    with open(os.path.join(OUT, f'status_{label}.txt'), 'w') as fh:
        fh.write(result.stdout)
    print(label, 'exit', result.exit_code, 'stderr', result.stderr.strip()[:200], flush=True)
    print(result.stdout, flush=True)


record('mixed')
deadline = time.time() + 150
while time.time() < deadline:
    states = cluster.statuses([ids['timeout']])
    if states[ids['timeout']].terminal:
        break
    time.sleep(5)
record('ended')
ssh.run(f"scancel {ids['pending_begin']}")
# slurmctld purges ended jobs MinJobAge (10 s on the bed) after they end, on a 60 s cycle
time.sleep(75)
record('purged')
with open(os.path.join(OUT, 'status_jobs.json'), 'w') as fh:
    json.dump({'ids': ids, 'order': order, 'slurm': ssh.run('sinfo --version').stdout.strip(),
               'recorded': time.strftime('%Y-%m-%d %H:%M:%S %Z')}, fh, indent=1)
ssh.run(f'rm -rf -- {wd}')
