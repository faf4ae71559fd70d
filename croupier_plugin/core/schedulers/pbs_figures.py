"""PBS Pro and Torque figures, beside their scheduler: queue figures for
placement (qstat -Q -f, pbsnodes -a, qstat -B -f), the exporter's scrape and
the accounting figures of ended jobs (qstat -f). ``PbsFigures`` is mixed into
the PBS schedulers, which provide the status parsing it builds on."""

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Protocol

from ..accounting import JobFigures, clock_seconds, combined, whole_number
from ..model import JobState, JobStatus, JobTimes, PartitionFigures
from .base import check_job_ids
from .qstat import (QSTAT_TIME, Attrs, Block, _array_base, _ATTRIBUTE, _flattened, _qstat_time,
                    _sequence, parse_qstat_full, seconds)

NOW_MARK = '@@croupier-now='
# the queue figures' sections: queues, nodes, the server (its default queue)
QUEUES_MARK = '@@croupier-queues@@'
NODES_MARK = '@@croupier-nodes@@'
SERVER_MARK = '@@croupier-server@@'
JOBS_MARK = '@@croupier-jobs@@'
# _index's result in the scheduler: ({id: attributes}, {sequence number: [attributes]})
Index = tuple[dict[str, Attrs], dict[str, list[Attrs]]]

_RECORD_HEAD = re.compile(r'(?:Queue|Server):\s*(\S+)\s*')
# node states in which a node starts no job (pbsnodes(8B); Torque's pbsnodes)
_NODE_UNUSABLE = {'down', 'offline', 'unknown', 'state-unknown', 'stale', 'unresolvable',
                  'provisioning', 'wait-provisioning', 'maintenance', 'sleep'}
_TRUE = ('true', 'yes', '1')


def _records(text: str, key: str) -> dict[str, Attrs]:
    """{name: {attribute (lower case): value}} of ``qstat -Q -f``, ``qstat -B
    -f`` or ``pbsnodes -a`` output, in either form: JSON (PBS Pro's ``-F
    json``, its objects under ``key``) or text (a record's name at the start
    of a line, ``Queue: name`` or ``Server: name`` for qstat, then indented
    ``name = value`` lines)."""
    stripped = text.strip()
    if not stripped.startswith('{'):
        return _text_records(text)
    try:
        data = json.loads(stripped)
    except ValueError:
        return {}
    return {name: _flattened(attrs) for name, attrs in (data.get(key) or {}).items()
            if isinstance(attrs, dict)}


def _text_records(text: str) -> dict[str, Attrs]:
    """_records of the text form."""
    records: dict[str, Attrs] = {}
    attrs: Attrs | None = None
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0] not in ' \t':
            m = _RECORD_HEAD.fullmatch(line)
            attrs, last = {}, None
            records[m[1] if m else line.strip()] = attrs
        elif attrs is not None:
            last = _record_attribute(attrs, last, line)
    return records


def _record_attribute(attrs: Attrs, last: str | None, line: str) -> str | None:
    """Add ``line`` (``name = value``, or more of attribute ``last``'s value)
    to ``attrs``; the name of the attribute read last."""
    m = _ATTRIBUTE.fullmatch(line)
    if m:
        last = m[1].lower()
        attrs[last] = m[2].strip()
    elif last is not None:
        attrs[last] += line.strip()
    return last


def _state_counts(text: str | None) -> dict[str, int]:
    """'Transit:0 Queued:1 Held:0 Running:2' -> {'transit': 0, 'queued': 1, ...}."""
    counts: dict[str, int] = {}
    for part in (text or '').split():
        name, _, value = part.partition(':')
        if value.isdigit():
            counts[name.lower()] = int(value)
    return counts


def _number(text: str | None) -> int:
    """An integer attribute ('8'), 0 when absent or unreadable."""
    text = str(text or '').strip()
    return int(text) if text.isdigit() else 0


def _torque_busy_cpus(jobs: str | None) -> int:
    """CPUs in use from Torque's ``jobs`` node attribute ('0/20.srv, 1-3/21.srv')."""
    busy = 0
    for item in (jobs or '').split(','):
        cpus = item.strip().split('/', 1)[0]
        low, _, high = cpus.partition('-')
        if low.isdigit():
            busy += int(high) - int(low) + 1 if high.isdigit() else 1
    return busy


def _queue_figures(name: str, attrs: Mapping[str, str], nodes: Mapping[str, Attrs],
                   default: bool) -> PartitionFigures:
    """A queue's figures: its jobs from ``state_count``; its cores and nodes
    from the nodes that serve it (those whose ``queue`` names it, else every
    node tied to no queue)."""
    counts = _state_counts(attrs.get('state_count'))
    mine = [n for n in nodes.values() if n.get('queue') == name] or \
        [n for n in nodes.values() if not n.get('queue')]
    cores_total, cores_allocated, cores_idle, nodes_allocated, nodes_idle = _node_use(mine)
    available = all(attrs.get(flag, 'true').lower() in _TRUE for flag in ('enabled', 'started'))
    return PartitionFigures(
        name, available, len(mine), nodes_allocated, nodes_idle, cores_total,
        cores_allocated, cores_idle,
        jobs_pending=sum(counts.get(k, 0) for k in ('queued', 'held', 'waiting', 'transit')),
        jobs_running=sum(counts.get(k, 0) for k in ('running', 'exiting', 'begun')),
        default=default)


def _node_use(nodes: list[Attrs]) -> tuple[int, int, int, int, int]:
    """(cores total, allocated, idle, nodes allocated, idle) of ``nodes``;
    an unusable node's free cores are not idle."""
    cores_total = cores_allocated = cores_idle = nodes_allocated = nodes_idle = 0
    for node in nodes:
        cpus, used = _node_cpus(node)
        usable = not {s.strip() for s in node.get('state', '').split(',')} & _NODE_UNUSABLE
        cores_total += cpus
        cores_allocated += used
        if used:
            nodes_allocated += 1
        if usable:
            cores_idle += max(0, cpus - used)
            if not used:
                nodes_idle += 1
    return cores_total, cores_allocated, cores_idle, nodes_allocated, nodes_idle


def _node_cpus(node: Attrs) -> tuple[int, int]:
    """(CPUs, CPUs in use) of one node, PBS Pro's attributes or Torque's."""
    cpus = _number(node.get('resources_available.ncpus') or node.get('np'))
    if 'resources_assigned.ncpus' in node:
        used = _number(node['resources_assigned.ncpus'])
    else:
        used = _torque_busy_cpus(node.get('jobs'))
    return cpus, min(used, cpus) if cpus else used


def _exporter_sections(stdout: str) -> tuple[float | None, list[str], list[str]]:
    """(the server's clock, the queue figures' lines, the status command's
    lines) of exporter_command's output."""
    now: float | None = None
    head: list[str] = []
    rest: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith(NOW_MARK) and now is None:
            now = _qstat_time(line[len(NOW_MARK):])
        elif rest is None and line.strip() == JOBS_MARK:
            rest = []
        elif rest is None:
            head.append(line)
        else:
            rest.append(line)
    if rest is None:        # no figures part: all of it is the status command's
        head, rest = [], head
    return now, head, rest


def _job_times(job_id: str, attrs: Mapping[str, str], status: JobStatus,
               now: float | None) -> JobTimes:
    """One job's JobTimes from its qstat block: queued from qtime to its
    start (a pending job's: to ``now``), the walltime used."""
    submit = _qstat_time(attrs.get('qtime'))
    # PBS Pro says stime, Torque start_time
    start = _qstat_time(attrs.get('stime') or attrs.get('start_time'))
    queued: float | None = None
    if submit is not None:
        if start is not None:
            queued = max(0.0, start - submit)
        elif status.state is JobState.PENDING and now is not None:
            queued = max(0.0, now - submit)
    return JobTimes(str(job_id), queued, seconds(attrs.get('resources_used.walltime')))


class _PbsStatus(Protocol):
    """What the figures need of the PBS scheduler they are mixed into."""

    json_refused: bool
    ENDED_STATES: tuple[str, ...]

    def qstat_command(self, arrays: bool) -> str: ...

    def status_command(self, job_ids: Sequence[str]) -> str: ...

    def figures_commands(self) -> list[str]: ...

    def parse_queue_output(self, stdout: str) -> dict[str, PartitionFigures]: ...

    def _statuses(self, stdout: str,
                  job_ids: Sequence[str]) -> tuple[dict[str, JobStatus], Index]: ...

    def _find(self, key: str, index: Index) -> Attrs | None: ...

    def _figures(self, attrs: Mapping[str, str]) -> JobFigures: ...


class PbsFigures:
    """Queue figures, exporter scrape and accounting of the PBS family."""

    #: the scheduler's: whether the server's qstat refused the JSON form
    json_refused: bool


    def accounting_command(self: _PbsStatus, job_ids: Sequence[str]) -> str:
        """ONE qstat -f (with the finished jobs, where the flavour keeps them)
        for the figures of every id in ``job_ids``; unknown ids only write to
        stderr, which is dropped."""
        ids = check_job_ids(job_ids)
        arrays = any('[' in job_id for job_id in ids)
        return f'{self.qstat_command(arrays)} -- ' + ' '.join(shlex.quote(j) for j in ids)

    def parse_accounting(self, stdout: str, job_ids: Sequence[str]) -> dict[str, JobFigures]:
        """{job_id: JobFigures} from accounting_command's output, for the jobs
        qstat shows finished: walltime and CPU time used (resources_used),
        nodes (Resource_List.nodect, else the hosts of exec_host) and CPUs
        (resources_used.ncpus, else Resource_List.ncpus, else exec_host's
        slots). An array's figures add up its subjobs'."""
        by_sequence = self._figures_by_sequence(parse_qstat_full(stdout))
        out: dict[str, JobFigures] = {}
        for job_id in job_ids:
            found = by_sequence.get(_sequence(job_id))
            if found:
                out[job_id] = found[0] if len(found) == 1 and '[]' not in str(job_id) \
                    else combined(found, 'qstat')
        return out

    def _figures_by_sequence(self, blocks: list[Block]) -> dict[str, list[JobFigures]]:
        """{sequence number: [figures]} of the finished jobs' blocks; a
        subjob's also under its array's ('N[]')."""
        by_sequence: dict[str, list[JobFigures]] = {}
        for block_id, attrs in blocks:
            if attrs.get('job_state', '') not in self.ENDED_STATES:
                continue
            figures = self._figures(attrs)
            seq = _sequence(block_id)
            base = _array_base(block_id)
            if base is not None and seq.endswith('[]'):
                continue        # the array's own block: its subjobs carry the use
            by_sequence.setdefault(seq, []).append(figures)
            if base is not None:
                by_sequence.setdefault(base + '[]', []).append(figures)
        return by_sequence

    #: job_state letters of a finished job in qstat -f (PBS Pro F, Torque C)
    ENDED_STATES = ('F', 'C')

    @staticmethod
    def _figures(attrs: Mapping[str, str]) -> JobFigures:
        """One finished job block's figures."""
        slots = [s for s in attrs.get('exec_host', '').split('+') if s]
        hosts = {s.split('/')[0] for s in slots}
        elapsed = clock_seconds(attrs.get('resources_used.walltime'))
        cpus = whole_number(attrs.get('resources_used.ncpus')) or \
            whole_number(attrs.get('resource_list.ncpus')) or (len(slots) or None)
        return JobFigures(None if elapsed is None else int(elapsed),
                          clock_seconds(attrs.get('resources_used.cput')),
                          whole_number(attrs.get('resource_list.nodect')) or
                          (len(hosts) or None), cpus, 'qstat')

    # -- queue figures ------------------------------------------------------

    def figures_commands(self) -> list[str]:
        """The shell parts printing the queues, the nodes and the server (for
        its default queue), each after its mark: the text forms here."""
        return self._figures_parts('qstat -Q -f', 'pbsnodes -a', 'qstat -B -f')

    @staticmethod
    def _figures_parts(queues: str, nodes: str, server: str) -> list[str]:
        """Each command after its mark; a command that fails leaves its section
        empty rather than failing the others or the command (as sinfo's does
        for SLURM): the wrappers' qstat exits 153 for -B, and a server that
        cannot tell its nodes still has queues to compare."""
        return [f'echo {shlex.quote(QUEUES_MARK)}', f'{{ {queues} || :; }} 2>/dev/null',
                f'echo {shlex.quote(NODES_MARK)}', f'{{ {nodes} || :; }} 2>/dev/null',
                f'echo {shlex.quote(SERVER_MARK)}', f'{{ {server} || :; }} 2>/dev/null']

    def queue_command(self) -> str:
        """ONE command for every queue's figures (placement)."""
        return '; '.join(self.figures_commands())

    def parse_queue_output(self, stdout: str) -> dict[str, PartitionFigures]:
        """{queue: PartitionFigures} from queue_command's output."""
        sections: dict[str, list[str]] = {QUEUES_MARK: [], NODES_MARK: [], SERVER_MARK: []}
        section: list[str] | None = None
        for line in stdout.splitlines():
            if line.strip() in sections:
                section = sections[line.strip()]
            elif line.strip() == JOBS_MARK:
                break
            elif section is not None:
                section.append(line)
        queues = _records('\n'.join(sections[QUEUES_MARK]), 'Queue')
        nodes = _records('\n'.join(sections[NODES_MARK]), 'nodes')
        servers = _records('\n'.join(sections[SERVER_MARK]), 'Server')
        defaults = {attrs.get('default_queue') for attrs in servers.values()}
        return {name: _queue_figures(name, attrs, nodes, name in defaults)
                for name, attrs in queues.items()}

    # -- exporter -------------------------------------------------------------

    reports_partitions = True

    def exporter_command(self: _PbsStatus, job_ids: Sequence[str], partitions: bool = True) -> str:
        """ONE command for a metrics scrape: the server's clock, the queue
        figures, then the status command of ``job_ids`` (qstat -f holds
        qtime, stime and resources_used). ``partitions=False`` leaves the
        queue figures out."""
        parts = [f'echo "{NOW_MARK}$(LC_ALL=C date {shlex.quote("+" + QSTAT_TIME)})"',
                 *(self.figures_commands() if partitions else []),
                 f'echo {shlex.quote(JOBS_MARK)}']
        if job_ids:
            parts.append(self.status_command(job_ids))
        return '; '.join(parts)

    def parse_exporter_output(
            self: _PbsStatus, stdout: str, job_ids: Sequence[str],
    ) -> tuple[list[PartitionFigures], dict[str, JobStatus], dict[str, JobTimes]]:
        """(queues, {id: JobStatus}, {id: JobTimes}) from exporter_command's output."""
        now, head, rest = _exporter_sections(stdout)
        partitions = list(self.parse_queue_output('\n'.join(head)).values())
        if not job_ids:
            return partitions, {}, {}
        statuses, index = self._statuses('\n'.join(rest or []), job_ids)
        times: dict[str, JobTimes] = {}
        for job_id in job_ids:
            attrs = self._find(str(job_id), index)
            if attrs is not None:
                times[job_id] = _job_times(job_id, attrs, statuses[job_id], now)
        return partitions, statuses, times


class PbsProFigures(PbsFigures):
    """PBS Pro's figures: the queue figures in its JSON form."""

    def figures_commands(self) -> list[str]:
        """The queue figures in JSON, unless this server's qstat refused it."""
        if self.json_refused:
            return super().figures_commands()
        return self._figures_parts('qstat -Q -f -F json', 'pbsnodes -a -F json',
                                   'qstat -B -f -F json')
