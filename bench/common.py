"""Shared by the bench scripts: the bed's facts, the sshd log as a counter,
a raw paramiko connection (the floor), generated blueprints, plain tables.

Nothing here changes Croupier: the scripts drive it as a user would (the
embedded engine through ``croupier_plugin.runner``) and measure from outside.
"""

import json
import logging
import os
import re
import shlex
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

BED_JSON = '/var/lib/croupier-bed/bed.json'
GENERATED = os.path.join(ROOT, 'bench', 'blueprints', 'generated')


def bed():
    with open(BED_JSON) as fh:
        return json.load(fh)


def bed_inputs(facts=None, **extra):
    facts = facts or bed()
    inputs = {'hpc_host': facts['host'], 'hpc_port': facts['port'], 'hpc_user': facts['user'],
              'hpc_private_key_file': facts['keys']['ed25519'],
              'hpc_known_hosts': facts['known_hosts']}
    inputs.update(extra)
    return inputs


# -- the SSH server's own log ---------------------------------------------------

_ACCEPTED = re.compile(r'^Accepted publickey for (\S+) from \S+ port (\d+)')
_COMMAND = re.compile(r'^Starting session: command for (\S+) from \S+ port (\d+)')
_SFTP = re.compile(r"^Starting session: subsystem 'sftp' for (\S+) from \S+ port (\d+)")


class SshdLog:
    """What sshd logged (LogLevel VERBOSE) between two marks: connections
    accepted, exec sessions (one per remote command) and SFTP sessions, by
    client port. The log has no timestamps: marks are file offsets."""

    def __init__(self, path=None, user=None):
        facts = bed()
        self.path = path or facts['sshd_log']
        self.user = user or facts['user']

    def mark(self):
        return os.path.getsize(self.path)

    def since(self, offset, settle=0.3):
        time.sleep(settle)      # sshd writes a session's line right after the request
        with open(self.path, 'rb') as fh:
            fh.seek(offset)
            text = fh.read().decode('utf-8', 'replace')
        return SshdCounts(text, self.user)


class SshdCounts:
    def __init__(self, text, user):
        self.connections, self.commands, self.sftp = [], [], []
        for line in text.splitlines():
            for regex, bucket in ((_ACCEPTED, self.connections), (_COMMAND, self.commands),
                                  (_SFTP, self.sftp)):
                m = regex.match(line)
                if m and m.group(1) == user:
                    bucket.append(int(m.group(2)))

    # The bed may be shared (another test run logging in as the same user):
    # the server's lines are attributed to this process by client port.
    def own(self, bucket, exclude=()):
        return sum(1 for p in getattr(self, bucket) if p in OWN_PORTS and p not in exclude)

    def foreign(self, bucket='connections'):
        return sum(1 for p in getattr(self, bucket) if p not in OWN_PORTS)

    def commands_on(self, port):
        return sum(1 for p in self.commands if p == port)


# client ports of every TCP connection this process opened (see track_own_ports)
OWN_PORTS = set()


def track_own_ports():
    """Record the local port of every socket this process connects, so that
    sshd's lines (which name the client port) can be told apart from other
    clients of the same bed. It counts nothing itself."""
    import socket
    if getattr(socket.socket, '_bench_tracked', False):
        return
    connect = socket.socket.connect

    def tracked_connect(self, address):
        result = connect(self, address)
        try:
            OWN_PORTS.add(self.getsockname()[1])
        except (OSError, IndexError, TypeError):
            pass
        return result
    socket.socket.connect = tracked_connect
    socket.socket._bench_tracked = True


track_own_ports()


# -- the floor: one persistent paramiko connection -----------------------------

class RawSsh:
    """One paramiko connection, as a person at a terminal would keep open."""

    def __init__(self, facts=None):
        import paramiko
        facts = facts or bed()
        self.facts = facts
        self.client = paramiko.SSHClient()
        self.client.load_host_keys(facts['known_hosts'])
        self.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        self.client.connect(facts['host'], port=facts['port'], username=facts['user'],
                            key_filename=facts['keys']['ed25519'], allow_agent=False,
                            look_for_keys=False, timeout=10)

    @property
    def port(self):
        return self.client.get_transport().sock.getsockname()[1]

    def run(self, command, check=True):
        _stdin, stdout, stderr = self.client.exec_command(command)
        out = stdout.read().decode()
        err = stderr.read().decode()
        rc = stdout.channel.recv_exit_status()
        if check and rc != 0:
            raise RuntimeError(f'{command[:200]!r} exited {rc}: {err.strip()[-300:]}')
        return out

    def close(self):
        self.client.close()


def one_shot(facts, command):
    """A NEW connection for one command, closed at once."""
    ssh = RawSsh(facts)
    try:
        return ssh.run(command)
    finally:
        ssh.close()


TERMINAL = {'COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'OUT_OF_MEMORY',
            'PREEMPTED', 'BOOT_FAIL', 'DEADLINE'}


def squeue_states(raw, ids):
    """{id: state} from one squeue; ids squeue no longer knows are 'GONE'."""
    out = raw.run(f"squeue --noheader --states=all --jobs={','.join(ids)} -o '%i|%T' "
                  f"2>/dev/null || true", check=False)
    states = {i: 'GONE' for i in ids}
    for line in out.split():
        job_id, _, state = line.partition('|')
        if job_id in states:
            states[job_id] = state
    return states


def wait_all_ended(raw, ids, period, deadline=600):
    """Poll like the floor would: one squeue per period until every job ended."""
    limit = time.monotonic() + deadline
    polls = 0
    while True:
        polls += 1
        states = squeue_states(raw, ids)
        if all(s in TERMINAL or s == 'GONE' for s in states.values()):
            return states, polls
        if time.monotonic() > limit:
            raise RuntimeError(f'jobs did not end: {states}')
        time.sleep(period)


def sacct_rows(raw, ids, fields='JobID,State,Start,End'):
    out = raw.run(f"sacct -n -X -P -j {','.join(ids)} -o {fields}", check=False)
    rows = {}
    for line in out.splitlines():
        parts = line.split('|')
        rows[parts[0]] = parts[1:]
    return rows


def slurm_epoch(text):
    """A SLURM timestamp (local time, second resolution) as epoch seconds."""
    return time.mktime(time.strptime(text, '%Y-%m-%dT%H:%M:%S'))


def bench_dir(raw, label):
    """A fresh work directory in the test user's home (remove with rm_dir)."""
    path = f"{raw.facts['home']}/bench_{label}_{int(time.time())}_{os.getpid()}"
    raw.run(f'mkdir -p -- {shlex.quote(path)}')
    return path


def rm_dir(raw, path):
    if path and '/bench_' in path:
        raw.run(f'rm -rf -- {shlex.quote(path)}', check=False)


# -- blueprints -----------------------------------------------------------------

HEADER = """tosca_definitions_version: cloudify_dsl_1_4
description: "{description}"
imports:
  - http://cloudify.co/spec/cloudify/7.0.5/types.yaml
  - plugin:croupier
inputs:
  hpc_host: {{type: string}}
  hpc_port: {{default: 22}}
  hpc_user: {{type: string}}
  hpc_private_key_file: {{type: string}}
  hpc_known_hosts: {{default: ~/.ssh/known_hosts}}
  monitor_period: {{default: 1}}
  command: {{default: sleep 1}}
node_templates:
  hpc:
    type: croupier.nodes.InfrastructureInterface
    properties:
      config: {{infrastructure_interface: SLURM}}
      credentials:
        host: {{get_input: hpc_host}}
        port: {{get_input: hpc_port}}
        user: {{get_input: hpc_user}}
        private_key_file: {{get_input: hpc_private_key_file}}
        known_hosts: {{get_input: hpc_known_hosts}}
      job_prefix: bench_
      workdir_prefix: bench
      monitoring_options: {{monitor_period: {{get_input: monitor_period}}}}
"""


def _job(name, parents=()):
    rels = ['      - {type: task_managed_by_interface, target: hpc}']
    rels += [f'      - {{type: job_depends_on, target: {p}}}' for p in parents]
    return (f'  {name}:\n'
            f'    type: croupier.nodes.Job\n'
            f'    properties:\n'
            f"      job_options: {{commands: [{{get_input: command}}], max_time: '00:05:00'}}\n"
            f'    relationships:\n' + '\n'.join(rels) + '\n')


def dag_blueprint(middle):
    """first -> ``middle`` jobs in parallel -> last; returns the file's path."""
    os.makedirs(GENERATED, exist_ok=True)
    names = [f'mid{i:02d}' for i in range(middle)]
    text = HEADER.format(description=f'{middle + 2}-job DAG: first, {middle} in parallel, last')
    text += _job('first') + ''.join(_job(n, ['first']) for n in names) + _job('last', names)
    path = os.path.join(GENERATED, f'dag{middle + 2}.yaml')
    with open(path, 'w') as fh:
        fh.write(text)
    return path


def independent_blueprint(count):
    os.makedirs(GENERATED, exist_ok=True)
    text = HEADER.format(description=f'{count} independent jobs')
    text += ''.join(_job(f'job{i:03d}') for i in range(count))
    path = os.path.join(GENERATED, f'independent{count}.yaml')
    with open(path, 'w') as fh:
        fh.write(text)
    return path


# -- the embedded engine, quietly -------------------------------------------------

def quiet_engine():
    from cloudify import logs
    logs.stdout_log_out = lambda *a, **k: None
    logs.stdout_event_out = lambda *a, **k: None
    logging.getLogger('ctx').propagate = False
    logging.basicConfig(level=logging.ERROR)


def node_props(env):
    return {i.node_id: dict(i.runtime_properties) for i in env.storage.get_node_instances()}


def cancel_jobs_of(raw, props):
    """scancel (once) every job a run recorded: a no-op for jobs that ended."""
    ids = [str(p['job_id']) for p in props.values() if p.get('job_id')]
    if ids:
        raw.run('scancel ' + ' '.join(ids), check=False)


# -- output ----------------------------------------------------------------------

def table(headers, rows, title=None):
    rows = [[('' if c is None else str(c)) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = []
    if title:
        lines.append(title)
    lines.append('  '.join(h.ljust(w) for h, w in zip(headers, widths)))
    lines.append('  '.join('-' * w for w in widths))
    for r in rows:
        lines.append('  '.join(c.ljust(w) for c, w in zip(r, widths)))
    text = '\n'.join(lines)
    print(text, flush=True)
    return text


def verdict(ok):
    return 'met' if ok else 'MISSED'

