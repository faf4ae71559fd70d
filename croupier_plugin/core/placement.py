"""Placement: which of a job's infrastructures should run it.

A job related to several InfrastructureInterfaces goes to the one where it is
expected to start soonest, judged from live queue figures of the partition it
would use there: whether the partition is up, whether enough cores are idle,
how many jobs wait ahead of it. The figures come from one command per
infrastructure (SLURM: sinfo and squeue; PBS and Torque: qstat -Q -f, pbsnodes
-a and qstat -B -f, in JSON on PBS Pro), shared by every placement made within a
monitor period.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import CroupierError
from .model import JobSpec, PartitionFigures
from .schedulers.pycompss import PycompssJob

if TYPE_CHECKING:
    from .cluster import Cluster

#: {partition name: its figures} of one infrastructure, None when it reports no queues
QueueFigures = Mapping[str, PartitionFigures] | None


def describe(figures: PartitionFigures) -> str:
    """A partition's figures in words, for the placement's reason."""
    state = '' if figures.available else 'not available, '
    return f'partition {figures.name}: {state}{figures.cores_idle} of {figures.cores_total} ' \
           f'cores idle, {figures.jobs_pending} jobs pending, {figures.jobs_running} running'


@dataclass
class Candidate:
    """The job as it would run on one infrastructure."""
    cluster: Cluster
    workdir: str
    spec: JobSpec | PycompssJob
    # the bytes of the blueprint file spec.local_script names, uploaded at submission
    script_data: bytes | None = None

    @property
    def name(self) -> str:
        """The infrastructure's name (its interface's node id)."""
        return self.cluster.name


def cores_needed(spec: JobSpec | PycompssJob) -> int:
    """The cores ``spec`` asks for in all: its tasks (or nodes times tasks per
    node) times the cores of each task, at least one; a PyCOMPSs job's nodes
    times its cores per node (compss_args num_nodes, cpus_per_node)."""
    if isinstance(spec, PycompssJob):
        nodes = int(spec.compss_args.get('num_nodes') or 1)
        return max(1, nodes) * max(1, int(spec.compss_args.get('cpus_per_node') or 1))
    tasks = spec.tasks or ((spec.nodes or 1) * (spec.tasks_per_node or 1))
    return max(1, tasks) * (spec.cpus_per_task or 1)


def expected_wait(figures: PartitionFigures | None, needed: int) -> tuple[int, int, int]:
    """A sortable estimate (lower starts sooner): a partition that is down or
    unknown last; then one with enough idle cores and nobody waiting; then by
    the jobs waiting ahead, and the idle cores."""
    if figures is None:
        return (3, 0, 0)
    if not figures.available:
        return (4, 0, 0)
    idle = figures.cores_idle
    if idle >= needed and figures.jobs_pending == 0:
        return (0, 0, -idle)
    return (1, figures.jobs_pending, -idle)


def partition_of(spec: JobSpec | PycompssJob, figures: QueueFigures
                 ) -> PartitionFigures | None:
    """The figures of the partition ``spec`` would go to (its own, a PyCOMPSs
    job's compss_args queue, or the default one), or None when they are not known."""
    if figures is None:
        return None
    named = spec.compss_args.get('queue') if isinstance(spec, PycompssJob) else spec.partition
    if named:
        return figures.get(str(named))
    defaults = [f for f in figures.values() if f.default]
    return defaults[0] if defaults else (next(iter(figures.values())) if figures else None)


def choose(candidates: Iterable[Candidate], figures_of: Callable[[Cluster], QueueFigures],
           exclude: Collection[str] = ()) -> tuple[Candidate, str, dict[str, str]]:
    """(candidate, reason, {name: description}) for the candidate expected to
    start soonest; ties go to the first declared."""
    table: dict[str, str] = {}
    ranked: list[tuple[tuple[int, int, int], int, Candidate]] = []
    for order, candidate in enumerate(candidates):
        if candidate.name in exclude:
            continue
        try:
            figures = partition_of(candidate.spec, figures_of(candidate.cluster))
            table[candidate.name] = describe(figures) if figures else 'no queue figures'
        except CroupierError as exc:
            figures = None
            table[candidate.name] = f'queue figures unavailable: {exc}'
        ranked.append((expected_wait(figures, cores_needed(candidate.spec)), order, candidate))
    if not ranked:
        raise CroupierError('no infrastructure left to place the job on')
    ranked.sort(key=lambda item: (item[0], item[1]))
    chosen = ranked[0][2]
    others = '; '.join(f'{n}: {d}' for n, d in table.items() if n != chosen.name)
    reason = f'{chosen.name} is expected to start it first ({table[chosen.name]})'
    if others:
        reason += f'; {others}'
    return chosen, reason, table


@dataclass
class FiguresCache:
    """Queue figures per infrastructure, asked at most once per ``max_age``."""
    max_age: float = 5.0
    clock: Callable[[], float] = time.monotonic
    _cache: dict[str, tuple[float, QueueFigures]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, cluster: Cluster) -> QueueFigures:
        """The queue figures of ``cluster``, from the cache while younger than
        ``max_age`` (and its monitor period), else asked anew."""
        with self._lock:
            entry = self._cache.get(cluster.name)
            if entry and self.clock() - entry[0] < min(self.max_age, cluster.monitor_period):
                return entry[1]
        figures = cluster.queue_figures()
        with self._lock:
            self._cache[cluster.name] = (self.clock(), figures)
        return figures
