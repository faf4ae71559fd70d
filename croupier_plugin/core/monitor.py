"""The batched monitor: one status round trip per infrastructure per cycle.

Jobs on several infrastructures are tracked together; each infrastructure is
asked about all of its unfinished jobs in one command, at its own period, and
the infrastructures are asked concurrently. A job the scheduler no longer
knows (or reports in a state Croupier does not know) is UNKNOWN for at most
``unknown_grace`` seconds, then FAILED with the reason. Transport errors back
off exponentially; after ``outage_limit`` seconds without an answer the
monitor gives up on that infrastructure with ``InfrastructureUnreachable``.
"""

import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

from .errors import CroupierError, TransportError, SchedulerError
from .model import JobState, JobStatus

log = logging.getLogger('croupier.monitor')


class InfrastructureUnreachable(CroupierError):
    pass


@dataclass
class TrackedJob:
    name: str
    cluster: object
    job_id: str
    status: Optional[JobStatus] = None
    unknown_since: Optional[float] = None


@dataclass
class JobChange:
    """A job's state changed (or it was seen for the first time)."""
    job: TrackedJob
    old: Optional[JobStatus]
    new: JobStatus


@dataclass
class _ClusterState:
    next_poll: float = 0.0
    failures: int = 0
    failing_since: Optional[float] = None
    last_error: str = ''
    polls: int = 0


@dataclass
class Monitor:
    unknown_grace: float = 180.0
    outage_limit: float = 900.0
    max_backoff: float = 60.0
    clock: object = time.monotonic
    _jobs: dict = field(default_factory=dict)
    _clusters: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse bounds that are not finite numbers >= 0."""
        # a NaN grace compares false with every wait: an unknown job would fail at once
        for name in ('unknown_grace', 'outage_limit', 'max_backoff'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not 0 <= value < math.inf:
                raise ValueError(f'Monitor.{name} must be a finite number >= 0, not {value!r}')

    def track(self, cluster, job_id, name, status=None):
        job = TrackedJob(name, cluster, str(job_id), status)
        self._jobs[(cluster.key, str(job_id))] = job
        self._clusters.setdefault(cluster.key, _ClusterState())
        return job

    def untrack(self, cluster_key, job_id):
        self._jobs.pop((cluster_key, str(job_id)), None)

    def jobs(self):
        return list(self._jobs.values())

    def active(self):
        return [j for j in self._jobs.values() if j.status is None or not j.status.terminal]

    def polls(self, cluster_key):
        """How many status commands were sent to ``cluster_key``."""
        state = self._clusters.get(cluster_key)
        return state.polls if state else 0

    # -- one cycle ------------------------------------------------------------

    def due(self, now=None):
        """Clusters with unfinished jobs whose next poll time has come."""
        now = self.clock() if now is None else now
        by_cluster = {}
        for job in self.active():
            by_cluster.setdefault(job.cluster.key, (job.cluster, []))[1].append(job)
        return {k: v for k, v in by_cluster.items() if self._clusters[k].next_poll <= now}

    def poll(self, force=False):
        """Ask every due infrastructure once (all when ``force``); return changes."""
        now = self.clock()
        if force:
            groups = {}
            for job in self.active():
                groups.setdefault(job.cluster.key, (job.cluster, []))[1].append(job)
        else:
            groups = self.due(now)
        if not groups:
            return []
        if len(groups) == 1:
            answers = [self._ask(*next(iter(groups.values())))]
        else:
            with ThreadPoolExecutor(max_workers=min(len(groups), 16)) as pool:
                answers = list(pool.map(lambda g: self._ask(*g), groups.values()))
        changes = []
        for (cluster, jobs), answer in zip(groups.values(), answers):
            changes.extend(self._apply(cluster, jobs, answer))
        return changes

    def _ask(self, cluster, jobs):
        state = self._clusters[cluster.key]
        state.polls += 1
        try:
            return cluster.statuses([j.job_id for j in jobs])
        except (TransportError, SchedulerError) as exc:
            return exc

    def _apply(self, cluster, jobs, answer):
        now = self.clock()
        state = self._clusters[cluster.key]
        if isinstance(answer, Exception):
            state.failures += 1
            state.failing_since = state.failing_since or now
            state.last_error = str(answer)
            if now - state.failing_since > self.outage_limit:
                raise InfrastructureUnreachable(
                    f'{cluster.key}: no answer about its jobs for '
                    f'{now - state.failing_since:.0f} s (limit {self.outage_limit:g} s): '
                    f'{answer}')
            backoff = min(cluster.monitor_period * (2 ** (state.failures - 1)),
                          max(self.max_backoff, cluster.monitor_period))
            state.next_poll = now + backoff
            log.warning('%s: status poll failed (%s); next try in %.1f s',
                        cluster.key, answer, backoff)
            return []
        state.failures = 0
        state.failing_since = None
        state.next_poll = now + cluster.monitor_period
        changes = []
        for job in jobs:
            new = answer.get(job.job_id) or cluster.scheduler.missing(job.job_id, 'monitor')
            new = self._bounded_unknown(job, new, now)
            if job.status is None or (new.state, new.raw_state, new.exit_code) != \
                    (job.status.state, job.status.raw_state, job.status.exit_code):
                changes.append(JobChange(job, job.status, new))
            job.status = new
        return changes

    def _bounded_unknown(self, job, status, now):
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

    # -- until the end ----------------------------------------------------------

    def next_wakeup(self):
        keys = {j.cluster.key for j in self.active()}
        if not keys:
            return None
        return min(self._clusters[k].next_poll for k in keys)

    def run(self, on_change=None, stop=None, until=None):
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
