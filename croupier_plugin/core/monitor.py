"""The batched monitor: one status round trip per infrastructure per cycle.

Jobs on several infrastructures are tracked together; each infrastructure is
asked about all of its unfinished jobs in one command, at its own period, and
the infrastructures are asked concurrently. A job the scheduler no longer
knows (or reports in a state Croupier does not know) is UNKNOWN for at most
``unknown_grace`` seconds, then FAILED with the reason. Transport errors back
off exponentially; after ``outage_limit`` seconds without an answer the
monitor gives up on that infrastructure with ``InfrastructureUnreachable``.

Between two status commands, the jobs whose scripts leave markers (one when
they start, one with their exit code when they end) are looked for every
``marker_period`` seconds with one look at a directory per infrastructure (no
scheduler daemon asked): the start and the end of such a job are seen within
about that time, whatever the infrastructure's period.

On an infrastructure that keeps accounting figures (``cluster.accounting``),
each job that ended is also asked about in the scheduler's accounting, in the
same round trip as the next status command (one batch for all such jobs), and
its figures come back as a JobChange with ``figures``; collect_figures asks
about the last ones when the run ends.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Union

from .errors import CroupierError, TransportError, SchedulerError
from .model import TERMINAL_STATES, JobState, JobStatus
from .schedulers.base import Scheduler

if TYPE_CHECKING:
    from .accounting import JobFigures
    from .cluster import Cluster

log = logging.getLogger('croupier.monitor')


class InfrastructureUnreachable(CroupierError):
    """An infrastructure gave no answer about its jobs for longer than outage_limit."""


@dataclass
class TrackedJob:
    """A job the monitor follows: its scheduler id on its infrastructure and
    the last status seen."""
    name: str
    cluster: Cluster
    job_id: str
    status: Optional[JobStatus] = None
    unknown_since: Optional[float] = None
    marker: bool = False        # its script leaves an exit-code marker


@dataclass
class JobChange:
    """A job's state changed (or it was seen for the first time)."""
    job: TrackedJob
    old: Optional[JobStatus]
    new: JobStatus
    figures: JobFigures | None = None      # the ended job's JobFigures (its status did not change)


@dataclass
class _ClusterState:
    next_poll: float = 0.0
    failures: int = 0
    failing_since: Optional[float] = None
    last_error: str = ''
    polls: int = 0
    next_marker: float = 0.0
    marker_checks: int = 0
    # jobs whose markers are to be removed at the next check (ended, as a
    # marker or the scheduler told), and jobs whose start marker was read
    spent_markers: set[str] = field(default_factory=set)
    started_markers: set[str] = field(default_factory=set)
    # None only until track() sets it, right after the state is made
    cluster: Cluster = None     # type: ignore[assignment]
    # ended jobs whose accounting figures are to be asked for: id -> asks so far
    accounting: dict[str, int] = field(default_factory=dict)


#: an infrastructure and its jobs asked about in one command
_Group = tuple['Cluster', list[TrackedJob]]
#: what a status command answers: statuses, with the accounting figures when asked
_Answer = Union[dict[str, JobStatus], tuple[dict[str, JobStatus], dict[str, 'JobFigures']]]


@dataclass
class Monitor:
    """Follows the jobs of every infrastructure with batched status commands
    and marker checks, and reports their changes as JobChanges."""
    unknown_grace: float = 180.0
    outage_limit: float = 900.0
    max_backoff: float = 60.0
    clock: Callable[[], float] = time.monotonic
    marker_period: float = 0.5
    #: asks for an ended job's figures before giving up on them (the
    #: accounting may lag behind the scheduler by a poll or two, not more)
    accounting_asks: int = 5
    _jobs: dict[tuple[str, str], TrackedJob] = field(default_factory=dict)
    _clusters: dict[str, _ClusterState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse bounds that are not finite numbers >= 0."""
        # a NaN grace compares false with every wait: an unknown job would fail at once
        for name in ('unknown_grace', 'outage_limit', 'max_backoff', 'marker_period'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not 0 <= value < math.inf:
                raise ValueError(f'Monitor.{name} must be a finite number >= 0, not {value!r}')

    def track(self, cluster: Cluster, job_id: str | int, name: str,
              status: JobStatus | None = None, marker: bool = False) -> TrackedJob:
        """Follow ``job_id`` on ``cluster``; ``marker``: its script leaves an
        exit-code marker to look for between status commands."""
        job = TrackedJob(name, cluster, str(job_id), status, marker=marker)
        self._jobs[(cluster.name, str(job_id))] = job
        self._clusters.setdefault(cluster.name, _ClusterState()).cluster = cluster
        return job

    def untrack(self, cluster_key: str, job_id: str | int) -> None:
        """Stop following a job (cancelled: a marker it leaves is spent)."""
        job = self._jobs.pop((cluster_key, str(job_id)), None)
        if job is not None and job.marker:
            self._clusters[cluster_key].spent_markers.add(job.job_id)

    def jobs(self) -> list[TrackedJob]:
        """Every job followed, ended or not."""
        return list(self._jobs.values())

    def active(self) -> list[TrackedJob]:
        """The jobs followed that have not ended (or were never seen)."""
        return [j for j in self._jobs.values()
                if j.status is None or j.status.state not in TERMINAL_STATES]

    def polls(self, cluster_key: str) -> int:
        """How many status commands were sent to ``cluster_key``."""
        state = self._clusters.get(cluster_key)
        return state.polls if state else 0

    def marker_checks(self, cluster_key: str) -> int:
        """How many exit-code marker checks were sent to ``cluster_key``."""
        state = self._clusters.get(cluster_key)
        return state.marker_checks if state else 0

    # -- one cycle ------------------------------------------------------------

    def due(self, now: float | None = None) -> dict[str, _Group]:
        """Clusters with unfinished jobs whose next poll time has come."""
        now = self.clock() if now is None else now
        by_cluster: dict[str, _Group] = {}
        for job in self.active():
            by_cluster.setdefault(job.cluster.name, (job.cluster, []))[1].append(job)
        for key, state in self._clusters.items():
            if state.accounting:
                by_cluster.setdefault(key, (state.cluster, []))
        return {k: v for k, v in by_cluster.items() if self._clusters[k].next_poll <= now}

    def markers_due(self, now: float, exclude: Collection[str] = ()) -> dict[str, _Group]:
        """Clusters (not in ``exclude``, not failing) with unfinished jobs
        that leave markers, whose next marker check has come."""
        by_cluster: dict[str, _Group] = {}
        for job in self.active():
            key = job.cluster.name
            if job.marker and key not in exclude:
                by_cluster.setdefault(key, (job.cluster, []))[1].append(job)
        return {k: v for k, v in by_cluster.items()
                if self._clusters[k].next_marker <= now and not self._clusters[k].failures}

    def poll(self, force: bool = False) -> list[JobChange]:
        """Ask every due infrastructure once (all when ``force``) for its jobs'
        statuses, and look for the markers of the others whose check is due;
        return changes."""
        now = self.clock()
        if force:
            groups: dict[str, _Group] = {}
            for job in self.active():
                groups.setdefault(job.cluster.name, (job.cluster, []))[1].append(job)
        else:
            groups = self.due(now)
        looks = {} if force else self.markers_due(now, exclude=groups)
        # (ask, apply, group): each apply takes the answer of its own ask
        tasks: list[tuple[Callable[..., object], Callable[..., list[JobChange]], _Group]] = \
            [(self._ask, self._apply, group) for group in groups.values()] + \
            [(self._look, self._apply_markers, group) for group in looks.values()]
        if not tasks:
            return []
        if len(tasks) == 1:
            answers = [tasks[0][0](*tasks[0][2])]
        else:
            with ThreadPoolExecutor(max_workers=min(len(tasks), 16)) as pool:
                answers = list(pool.map(lambda t: t[0](*t[2]), tasks))
        changes: list[JobChange] = []
        for (_, apply, (cluster, jobs)), answer in zip(tasks, answers, strict=True):
            changes.extend(apply(cluster, jobs, answer))
        return changes

    def _look(self, cluster: Cluster, jobs: list[TrackedJob]
              ) -> dict[str, JobStatus] | TransportError | SchedulerError:
        """One marker check for ``jobs`` (the answer, or the error)."""
        state = self._clusters[cluster.name]
        state.marker_checks += 1
        spent, started = sorted(state.spent_markers), sorted(state.started_markers)
        try:
            answer = cluster.markers([j.job_id for j in jobs if j.marker], spent=spent,
                                     started=started)
        except (TransportError, SchedulerError) as exc:
            return exc
        state.spent_markers.difference_update(spent)
        state.started_markers.difference_update(started)
        return answer

    def _apply_markers(self, cluster: Cluster, jobs: list[TrackedJob],
                       answer: dict[str, JobStatus] | Exception) -> list[JobChange]:
        """The changes a marker check shows: the jobs it says started or
        ended. A failed check changes nothing: the next status command tells."""
        state = self._clusters[cluster.name]
        state.next_marker = self.clock() + self.marker_period
        if isinstance(answer, Exception):
            log.info('%s: exit-code marker check failed (%s)', cluster.name, answer)
            return []
        changes: list[JobChange] = []
        for job in jobs:
            new = answer.get(job.job_id)
            if new is None:
                continue
            job.unknown_since = None
            self._ended(job, new)
            if new.terminal:
                state.spent_markers.add(job.job_id)
            else:
                state.started_markers.add(job.job_id)
                if job.status is not None and job.status.state is new.state:
                    continue        # known already (from the scheduler)
            changes.append(JobChange(job, job.status, new))
            job.status = new
        return changes

    def _ask(self, cluster: Cluster, jobs: list[TrackedJob]
             ) -> _Answer | TransportError | SchedulerError:
        """One status command for ``jobs`` (with the accounting of the ended
        jobs awaiting figures, when there are some): the answer, or the error."""
        state = self._clusters[cluster.name]
        state.polls += 1
        try:
            if state.accounting:
                return cluster.statuses_and_figures([j.job_id for j in jobs],
                                                    sorted(state.accounting))
            return cluster.statuses([j.job_id for j in jobs])
        except (TransportError, SchedulerError) as exc:
            return exc

    def _apply(self, cluster: Cluster, jobs: list[TrackedJob],
               answer: _Answer | Exception) -> list[JobChange]:
        now = self.clock()
        state = self._clusters[cluster.name]
        if isinstance(answer, Exception):
            state.failures += 1
            state.failing_since = state.failing_since or now
            state.last_error = str(answer)
            if now - state.failing_since > self.outage_limit:
                raise InfrastructureUnreachable(
                    f'{cluster.name}: no answer about its jobs for '
                    f'{now - state.failing_since:.0f} s (limit {self.outage_limit:g} s): '
                    f'{answer}')
            backoff = min(cluster.monitor_period * (2 ** (state.failures - 1)),
                          max(self.max_backoff, cluster.monitor_period))
            state.next_poll = now + backoff
            log.warning('%s: status poll failed (%s); next try in %.1f s',
                        cluster.name, answer, backoff)
            return []
        state.failures = 0
        state.failing_since = None
        state.next_poll = now + cluster.monitor_period
        state.next_marker = now + self.marker_period
        changes: list[JobChange] = []
        if isinstance(answer, tuple):
            answer, figures = answer
            changes.extend(self._apply_figures(cluster, figures))
        # (the loop runs for every job followed: what it can, it asks once per cycle)
        accounting = cluster.accounting
        unknown = JobState.UNKNOWN
        for job in jobs:
            new = answer.get(job.job_id) or Scheduler.missing(job.job_id, 'monitor')
            old = job.status
            if new.state is unknown:
                new = self._bounded_unknown(job, new, now)     # its grace counts
            elif new is old:
                # the very status it had (a scheduler keeps what it parsed from
                # a row it sees again): no change
                continue
            elif job.unknown_since is not None:
                job.unknown_since = None
            if old is None or new.state is not old.state or new.raw_state != old.raw_state \
                    or new.exit_code != old.exit_code:
                changes.append(JobChange(job, old, new))
                if accounting:
                    self._ended(job, new)
            job.status = new
            if job.marker and new.state in TERMINAL_STATES:
                state.spent_markers.add(job.job_id)     # left, if its script wrote one
        return changes

    def _ended(self, job: TrackedJob, new: JobStatus) -> None:
        """When ``new`` ends ``job`` (seen for the first time) on an
        infrastructure keeping accounting figures: ask for its figures."""
        if new.terminal and job.cluster.accounting and \
                (job.status is None or not job.status.terminal):
            self._clusters[job.cluster.name].accounting.setdefault(job.job_id, 0)

    def _apply_figures(self, cluster: Cluster,
                       figures: dict[str, JobFigures]) -> list[JobChange]:
        """The figures that came back, as JobChanges; the jobs still without
        final figures are asked about again, up to accounting_asks times."""
        state = self._clusters[cluster.name]
        changes: list[JobChange] = []
        for job_id in list(state.accounting):
            found = figures.get(job_id)
            job = self._jobs.get((cluster.name, job_id))
            if found is not None:
                del state.accounting[job_id]
                if job is not None:
                    # its figures were asked for when its (ended) status was set; a job
                    # tracked again without a status would pass None on, as it did
                    changes.append(JobChange(job, job.status,
                                             job.status, figures=found))  # type: ignore[arg-type]
                continue
            state.accounting[job_id] += 1
            if state.accounting[job_id] >= self.accounting_asks:
                del state.accounting[job_id]
                log.warning('%s: no accounting figures for job %s after %d asks; '
                            'giving up on them', cluster.name, job_id, self.accounting_asks)
        return changes

    def awaiting_figures(self) -> bool:
        """Whether some ended job's accounting figures are still to be asked for."""
        return any(state.accounting for state in self._clusters.values())

    def collect_figures(self, deadline: float,
                        wait: Callable[[float], object] | None = None) -> list[JobChange]:
        """Ask every infrastructure with ended jobs awaiting figures (one
        command each, concurrently) until all came back, each was asked
        accounting_asks times, or ``deadline`` (on ``clock``) passed; between
        rounds, ``wait(seconds)`` (the accounting lags a little behind the
        scheduler). Returns the JobChanges carrying figures."""
        wait = wait or threading.Event().wait
        changes: list[JobChange] = []
        while self.awaiting_figures() and self.clock() < deadline:
            groups: list[_Group] = [(state.cluster, []) for state in self._clusters.values()
                      if state.accounting and not state.failures]
            if not groups:
                break
            with ThreadPoolExecutor(max_workers=min(len(groups), 16)) as pool:
                answers = list(pool.map(lambda group: self._ask(*group), groups))
            for (cluster, _), answer in zip(groups, answers, strict=True):
                if isinstance(answer, Exception):
                    log.info('%s: asking for accounting figures failed (%s)', cluster.name,
                             answer)
                    self._clusters[cluster.name].accounting.clear()
                    continue
                # asked with accounting: the answer holds statuses and figures
                assert isinstance(answer, tuple)
                changes.extend(self._apply_figures(cluster, answer[1]))
            if self.awaiting_figures():
                wait(max(0.0, min(1.0, deadline - self.clock())))
        return changes

    def _bounded_unknown(self, job: TrackedJob, status: JobStatus, now: float) -> JobStatus:
        """``status``, or FAILED once the job has been UNKNOWN for longer than
        unknown_grace."""
        if status.state is not JobState.UNKNOWN:
            job.unknown_since = None
            return status
        if job.unknown_since is None:
            job.unknown_since = now
        waited = now - job.unknown_since
        if waited < self.unknown_grace:
            return status
        what = (f'in state {status.raw_state!r}, which Croupier does not know'
                if status.raw_state else 'not known to the scheduler any more')
        return JobStatus(job.job_id, JobState.FAILED, raw_state=status.raw_state or 'VANISHED',
                         reason=f'job {job.job_id} was {what} for {waited:.0f} s '
                                f'(grace period {self.unknown_grace:g} s)',
                         source=status.source)

    def remove_spent_markers(self) -> None:
        """Remove the markers read or no longer needed (one command per
        infrastructure that has some), e.g. when the run ends; a failure is
        only logged: a leftover marker is never read as another job's."""
        for key, state in self._clusters.items():
            if not state.spent_markers and not state.started_markers:
                continue
            spent, started = sorted(state.spent_markers), sorted(state.started_markers)
            try:
                state.cluster.markers([], spent=spent, started=started)
                state.spent_markers.difference_update(spent)
                state.started_markers.difference_update(started)
            except (TransportError, SchedulerError) as exc:
                log.info('%s: removing exit-code markers failed (%s)', key, exc)

    # -- until the end ----------------------------------------------------------

    def next_wakeup(self) -> float | None:
        """When the next status command or marker check is due (None: no
        unfinished job)."""
        active = self.active()
        if not active:
            return None
        keys = {j.cluster.name for j in active} | \
            {k for k, state in self._clusters.items() if state.accounting}
        wake = min(self._clusters[k].next_poll for k in keys)
        for key in {j.cluster.name for j in active if j.marker}:
            state = self._clusters[key]
            if not state.failures:
                wake = min(wake, state.next_marker)
        return wake

    def run(self, on_change: Callable[[JobChange], object] | None = None,
            stop: threading.Event | None = None,
            until: Callable[[list[JobChange]], object] | None = None) -> None:
        """Poll until every job ended, ``stop`` (a threading.Event) is set, or
        ``until(changes)`` returns True. Waits on the event until the next poll
        is due, so a stop request is seen at once."""
        stop = stop or threading.Event()
        while not stop.is_set():
            changes = self.poll()
            for change in changes:
                if on_change:
                    on_change(change)
            if until and until(changes):
                return
            wake = self.next_wakeup()
            if wake is None:
                return
            stop.wait(max(0.0, wake - self.clock()))
