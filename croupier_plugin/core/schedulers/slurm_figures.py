"""SLURM figures, beside its scheduler: partition figures for placement
(sinfo and squeue counts), the exporter's scrape (with job times) and the
accounting figures of ended jobs (sacct). ``SlurmFigures`` is mixed into
SlurmScheduler, which provides the status command and parsing it builds on."""

import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from ..accounting import JobFigures, clock_seconds, combined, whole_number
from ..model import JobState, JobStatus, JobTimes, PartitionFigures
from . import template
from .base import check_job_ids

# the status command's line between squeue's rows and sacct's
SACCT_MARK = '@@croupier-sacct@@'
NOW_MARK = '@@croupier-now='
SINFO_MARK = '@@croupier-sinfo@@'
QUEUE_MARK = '@@croupier-queue@@'
JOBS_MARK = '@@croupier-jobs@@'

# a times row: (submit, start, end, walltime used), epoch seconds or seconds
_TimesRow = tuple[int | None, int | None, int | None, int | None]


def slurm_duration(text: str | None) -> int | None:
    """squeue's TimeUsed ('5:03', '1:02:03', '2-01:02:03') in whole seconds, or None
    (read as every scheduler duration is, by accounting.clock_seconds)."""
    seconds = clock_seconds(text)
    return None if seconds is None else int(seconds)


def _epoch(text: str | None) -> int | None:
    text = (text or '').strip()
    return int(text) if text.isdigit() and text != '0' else None


def _count(text: str | None) -> int:
    text = (text or '').strip()
    return int(text) if text.isdigit() else 0


def _sections(stdout: str, marks: Iterable[str]) -> dict[str, list[str]]:
    """{mark: [the lines after it, up to the next of ``marks``]}."""
    out: dict[str, list[str]] = {m: [] for m in marks}
    section: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith(NOW_MARK):
            continue
        if line.strip() in out:
            section = out[line.strip()]
        elif section is not None:
            section.append(line)
    return out


def _job_counts(queue: Iterable[str]) -> dict[tuple[str, str], int]:
    """{(partition, state): job count} of squeue's (partition|state|count) lines."""
    counts: dict[tuple[str, str], int] = {}
    for line in queue:
        fields = line.strip().split('|')
        if len(fields) != 3:
            continue
        # a job queued to several partitions ("a,b") counts in each
        for name in fields[0].split(','):
            key = (name, fields[1])
            counts[key] = counts.get(key, 0) + _count(fields[2])
    return counts


def _partition_figures(fields: list[str], counts: Mapping[tuple[str, str], int],
                       out: Mapping[str, PartitionFigures]) -> PartitionFigures:
    """The figures of one sinfo line's partition (name|avail|nodes|node A/I/O/T|
    CPU A/I/O/T), added to those ``out`` holds of it already."""
    name, avail, _nodes, node_aiot, cpu_aiot = fields
    default = name.endswith('*')
    name = name.rstrip('*')
    figures = out.get(name)
    # a partition over several node sets has one line per set: add them up
    values = _node_cpu_counts(node_aiot, cpu_aiot)
    if figures is not None:
        values = [a + b for a, b in zip(values, figures[2:8], strict=False)]
    # values: exactly the six node and core counts, which mypy cannot tell of a list
    return PartitionFigures(name, avail.strip().lower() == 'up',  # type: ignore[misc]
                            *values,  # type: ignore[arg-type]
                            jobs_pending=counts.get((name, 'PENDING'), 0),
                            jobs_running=counts.get((name, 'RUNNING'), 0),
                            default=default or bool(figures and figures.default))


def _node_cpu_counts(node_aiot: str, cpu_aiot: str) -> list[int]:
    """[nodes total, allocated, idle, CPUs total, allocated, idle] of sinfo's
    A/I/O/T node and CPU fields."""
    nodes = (node_aiot.split('/') + ['0'] * 4)[:4]
    cpus = (cpu_aiot.split('/') + ['0'] * 4)[:4]
    return [_count(nodes[3]), _count(nodes[0]), _count(nodes[1]),
            _count(cpus[3]), _count(cpus[0]), _count(cpus[1])]


def _times_rows(lines: Iterable[str]) -> tuple[dict[str, list[_TimesRow]],
                                               dict[str, list[_TimesRow]]]:
    """({id: squeue times rows}, {id: sacct times rows}); an array element's
    row is filed under its own id and its array's."""
    queued_rows: dict[str, list[_TimesRow]] = {}
    accounted_rows: dict[str, list[_TimesRow]] = {}
    rows = queued_rows
    for line in lines:
        if line.strip() == SACCT_MARK:
            rows = accounted_rows
            continue
        if not line or line.startswith('@@'):
            continue
        fields = [f.strip() for f in line.split('|')]
        row = _times_row(fields, rows is queued_rows) if len(fields) >= 7 else None
        if row is None or '.' in fields[0]:
            continue
        _file_times(rows, fields[0], row)
    return queued_rows, accounted_rows


def _file_times(rows: dict[str, list[_TimesRow]], job: str, row: _TimesRow) -> None:
    """File ``row`` under ``job``, and an array element's also under its array's id."""
    keys = [job]
    if '_' in job or '+' in job:
        keys.append(job.replace('+', '_').split('_')[0])
    for key in keys:
        rows.setdefault(key, []).append(row)


def _times_row(fields: list[str], queued: bool) -> _TimesRow | None:
    """The times of one squeue (``queued``) or sacct row of at least 7
    fields (None: a sacct row too short)."""
    if queued:
        submit, start = _epoch(fields[4]), _epoch(fields[5])
        pending = fields[1] in ('PENDING', 'PD')
        used = 0 if pending else slurm_duration(fields[6])
        end = None
    else:
        if len(fields) < 8:
            return None
        submit, start, end = _epoch(fields[4]), _epoch(fields[5]), _epoch(fields[6])
        used = _count(fields[7]) if fields[7].isdigit() else None
        pending = start is None
    return (submit, None if pending else start, end, used)


def _job_times(key: str, found: list[_TimesRow], now: int | None) -> JobTimes:
    """One job's JobTimes from its times rows: queued from the first submit to
    the first start (never started: to its end, or ``now``), the longest used."""
    submits = [r[0] for r in found if r[0] is not None]
    starts = [r[1] for r in found if r[1] is not None]
    used_list = [r[3] for r in found if r[3] is not None]
    submit = min(submits) if submits else None
    queued = None
    if submit is not None:
        if starts:
            queued = max(0, min(starts) - submit)
        elif now is not None:
            ends = [r[2] for r in found if r[2] is not None]
            # never started: waited until it was cancelled, or until now
            queued = max(0, (min(ends) if ends else now) - submit)
    return JobTimes(key, queued, max(used_list) if used_list else None)


def _ended(raw: str, states: Mapping[str, JobState]) -> bool:
    """Whether sacct's raw state ``raw`` is one of an ended job."""
    return states.get(raw.split(' ')[0].rstrip('+').upper(), JobState.UNKNOWN).terminal


def _batch_ended(lines: list[list[str]], states: Mapping[str, JobState]) -> set[str]:
    """The ids of the jobs whose batch step sacct shows ended."""
    return {fields[0][:-len('.batch')] for fields in lines
            if len(fields) == 6 and fields[0].endswith('.batch') and _ended(fields[1], states)}


def _accounting_rows(lines: list[list[str]], states: Mapping[str, JobState]
                     ) -> dict[str, list[tuple[bool, JobFigures]]]:
    """{id: [(ended, figures)]} of sacct's allocation rows (an array element's
    also under its array's id); a job that ran has ended once its batch step has."""
    batch_ended = _batch_ended(lines, states)
    rows: dict[str, list[tuple[bool, JobFigures]]] = {}
    for fields in lines:
        if len(fields) != 6 or not fields[0] or '.' in fields[0]:
            continue
        job, raw, elapsed, cpu, nodes, cpus = fields
        figures = JobFigures(whole_number(elapsed), clock_seconds(cpu), whole_number(nodes),
                             whole_number(cpus), 'sacct')
        key = job.replace('+', '_').split('_')[0]
        # a job that never ran (cancelled in the queue) has no batch step
        ended = _ended(raw, states) and (job in batch_ended or figures.elapsed == 0)
        rows.setdefault(key, []).append((ended, figures))
        if key != job:
            rows.setdefault(job, []).append((ended, figures))
    return rows


class _SlurmStatus(Protocol):
    """What the figures need of the scheduler they are mixed into."""

    STATES: dict[str, JobState]

    def status_command(self, job_ids: Sequence[str], times: bool = False) -> str: ...

    def parse_status_output(self, stdout: str,
                            job_ids: Sequence[str]) -> dict[str, JobStatus]: ...


class SlurmFigures:
    """Partition figures, exporter scrape and accounting of SLURM."""

    @staticmethod
    def _figures_parts() -> list[str]:
        """Shell parts printing every partition's nodes and cores (sinfo; the
        default partition's name ends in '*'), then its pending and running
        jobs of all users, counted on the cluster (one line per partition and
        state)."""
        count = template.command('slurm_queue_counts.awk')
        return [f'echo {shlex.quote(SINFO_MARK)}',
                "sinfo --noheader -o '%P|%a|%D|%F|%C' 2>/dev/null",
                f'echo {shlex.quote(QUEUE_MARK)}',
                "squeue --noheader --states=PENDING,RUNNING -o '%P|%T' 2>/dev/null | "
                f'awk -F"|" {shlex.quote(count)}']

    def queue_command(self) -> str:
        """ONE command for the partitions' figures (placement)."""
        return '; '.join(SlurmFigures._figures_parts())

    def parse_queue_output(self, stdout: str) -> dict[str, PartitionFigures]:
        """{partition: PartitionFigures} from queue_command's output."""
        sections = _sections(stdout, (SINFO_MARK, QUEUE_MARK))
        return {p.name: p for p in SlurmFigures._partitions(sections[SINFO_MARK],
                                                      sections[QUEUE_MARK])}

    # -- exporter -------------------------------------------------------------

    reports_partitions = True

    def exporter_command(self: _SlurmStatus, job_ids: Sequence[str],
                         partitions: bool = True) -> str:
        """ONE command for a metrics scrape: the cluster's clock, every
        partition's nodes and cores (sinfo), its pending and running jobs
        counted on the cluster (squeue of all users, one line per partition
        and state), then the status command of ``job_ids`` with their times.
        ``partitions=False`` leaves sinfo and the squeue counts out."""
        parts = [f'echo "{NOW_MARK}$(date +%s)"',
                 *(SlurmFigures._figures_parts() if partitions else []),
                 f'echo {shlex.quote(JOBS_MARK)}']
        if job_ids:
            parts.append(self.status_command(job_ids, times=True))
        return '; '.join(parts)

    def parse_exporter_output(
            self: _SlurmStatus, stdout: str, job_ids: Sequence[str],
    ) -> tuple[list[PartitionFigures], dict[str, JobStatus], dict[str, JobTimes]]:
        """(partitions, {id: JobStatus}, {id: JobTimes}) from exporter_command's output."""
        now = None
        for line in stdout.splitlines():
            if line.startswith(NOW_MARK):
                now = _epoch(line[len(NOW_MARK):])
        sections = _sections(stdout, (SINFO_MARK, QUEUE_MARK, JOBS_MARK))
        jobs = sections[JOBS_MARK]
        partitions = SlurmFigures._partitions(sections[SINFO_MARK], sections[QUEUE_MARK])
        text = '\n'.join(jobs)
        statuses = self.parse_status_output(text, job_ids) if job_ids else {}
        times = SlurmFigures._times(jobs, job_ids, now)
        return partitions, statuses, times

    @staticmethod
    def _partitions(sinfo: Iterable[str], queue: Iterable[str]) -> list[PartitionFigures]:
        """PartitionFigures from sinfo's lines, with the pending and running
        job counts of squeue's (partition|state|count) lines."""
        counts = _job_counts(queue)
        out: dict[str, PartitionFigures] = {}
        for line in sinfo:
            fields = line.strip().split('|')
            if len(fields) == 5:
                figures = _partition_figures(fields, counts, out)
                out[figures.name] = figures
        return list(out.values())

    @staticmethod
    def _times(lines: Iterable[str], job_ids: Sequence[str],
               now: int | None) -> dict[str, JobTimes]:
        """JobTimes from the rows of a status command run with ``times``:
        squeue rows (id|state|reason|rc|submit|start|used) before the sacct
        mark, sacct rows (id|state|exit|reason|submit|start|end|elapsed) after."""
        queued_rows, accounted_rows = _times_rows(lines)
        out: dict[str, JobTimes] = {}
        for job_id in job_ids:
            key = str(job_id)
            found = queued_rows.get(key) or accounted_rows.get(key)
            if found:
                out[job_id] = _job_times(key, found, now)
        return out

    # -- accounting -------------------------------------------------------------

    ACCOUNTING_FIELDS = 'JobID,State,ElapsedRaw,TotalCPU,AllocNodes,AllocCPUS'

    def accounting_command(self, job_ids: Sequence[str]) -> str:
        """ONE sacct for the figures of every id in ``job_ids``: the job's row
        (which adds up its steps' CPU time) and its steps' rows (whose batch
        step tells when that CPU time is recorded)."""
        ids = ','.join(check_job_ids(job_ids))
        return (f'sacct --noheader --parsable2 --jobs={shlex.quote(ids)} '
                f'--format={SlurmFigures.ACCOUNTING_FIELDS}')

    def parse_accounting(self: _SlurmStatus, stdout: str,
                         job_ids: Sequence[str]) -> dict[str, JobFigures]:
        """{job_id: JobFigures} from accounting_command's output: elapsed
        (ElapsedRaw), CPU time used (TotalCPU), nodes and CPUs allocated. An
        array's figures add up its elements' (the longest elapsed). A job that
        sacct does not show yet, or shows unfinished, or that ran but whose
        batch step is not recorded as ended yet (slurmdbd records the job's
        end first, and its CPU time with the batch step's, a moment later), is
        left out."""
        lines = [[f.strip() for f in line.split('|')] for line in stdout.splitlines()]
        rows = _accounting_rows(lines, self.STATES)
        out: dict[str, JobFigures] = {}
        for job_id in job_ids:
            found = rows.get(str(job_id))
            if not found or not all(ended for ended, _ in found):
                continue
            parts = [figures for _, figures in found]
            out[job_id] = parts[0] if len(parts) == 1 else combined(parts, 'sacct')
        return out
