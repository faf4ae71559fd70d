"""Prometheus metrics of the registered front-ends and jobs, gathered at scrape time.

Each target (scheduler, host, port, user) gets ONE remote command per scrape:
for SLURM, sinfo + squeue counts + the monitor's batched status command (with
times) of every job not known to have ended. A job's final status is kept and
never asked again.

Targets are asked independently, each in a worker thread of its own, and a
scrape waits for them at most ``scrape_timeout`` seconds: a target that has
not answered by then is served with what it last told (``croupier_exporter_up``
0, ``croupier_exporter_data_age_seconds`` saying how old that is) while its
question goes on in the background; the next scrape takes its answer. A target
that failed is asked again only after a backoff (1 s, doubling, up to 2
minutes), so an unreachable front-end costs one worker, not every scrape.
Scrapes closer together than ``cache_seconds`` (e.g. two Prometheus servers)
share one answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Optional, cast

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..errors import CroupierError, SchedulerError
from ..model import JobStatus, JobTimes, PartitionFigures
from ..schedulers import get_scheduler
from ..transport import SshTransport
from ..transport.ssh import SshConnection

if TYPE_CHECKING:
    from ..schedulers.base import Scheduler
    from ..transport.base import Transport
    from ..transport.ssh import SshSettings
    from .config import ExporterConfig
    from .registry import Registration, Registry, Target

log = logging.getLogger('croupier.exporter')

JOB_LABELS = ['deployment', 'interface', 'infrastructure', 'job_name', 'job_id']
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 120.0
# targets asked at the same time; one more waits for a free worker
MAX_WORKERS = 32


@dataclass
class TargetView:
    """What one question to one target learnt (or, when ``ok`` is false, what
    is still known from before). ``gathered_at``: wall-clock time of the
    answer the data comes from (None: never answered)."""
    ok: bool = False
    error: str = ''
    seconds: float = 0.0
    gathered_at: Optional[float] = None
    partitions: list[PartitionFigures] = field(default_factory=list)
    statuses: dict[str, JobStatus] = field(default_factory=dict)
    times: dict[str, JobTimes] = field(default_factory=dict)


@dataclass
class _TargetState:
    """A target's connection, counters and answers. Only the one question in
    flight (``running``) changes ``transport``, ``final`` and ``last``."""
    scheduler: Scheduler
    transport: Optional[Transport] = None
    own_transport: bool = False
    commands: int = 0
    # job id -> (JobStatus, JobTimes)
    final: dict[str, tuple[JobStatus, JobTimes | None]] = field(default_factory=dict)
    last: TargetView = field(default_factory=TargetView)   # last successful answer
    view: Optional[TargetView] = None                # last finished question
    finished: float = 0.0                            # monotonic time of ``view``
    running: Optional[Future[None]] = None
    late: bool = False                               # a scrape gave up waiting for it
    failures: int = 0
    retry_at: float = 0.0


class _ExporterSshTransport(SshTransport):
    """An SSH transport with a connection of the exporter's own, not the
    process-wide pooled one: the exporter closes it after a failure so that
    the next attempt logs in with credentials read anew."""

    def __init__(self, settings: SshSettings) -> None:
        self.settings = settings
        self.login_shell = settings.login_shell
        self.connection = SshConnection(settings)


class HpcCollector:
    """A prometheus_client collector over a Registry."""

    def __init__(self, registry: Registry, config: ExporterConfig,
                 transport_factory: Optional[Callable[[Target], Transport]] = None) -> None:
        self.registry = registry
        self.config = config
        self.transport_factory = transport_factory
        self._states: dict[Target, _TargetState] = {}
        self._lock = threading.Lock()          # guards _states and each state's running
        self._pool = ThreadPoolExecutor(max_workers=MAX_WORKERS,
                                        thread_name_prefix='croupier-exporter-target')

    def _new_transport(self, target: Target) -> tuple[Transport, bool]:
        """(transport, whether the collector owns it) for ``target``."""
        if self.transport_factory is not None:
            return self.transport_factory(target), False
        settings = self.config.credentials_for(target.host, target.port, target.user)
        # the exporter retries across scrapes with its own backoff: one question
        # gives up on a dead front-end after about one scrape's wait
        settings = replace(settings, reconnect_timeout=min(settings.reconnect_timeout,
                                                           self.config.scrape_timeout))
        return _ExporterSshTransport(settings), True

    def close(self) -> None:
        """Stop asking and close the collector's own connections."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            states, self._states = list(self._states.values()), {}
        for state in states:
            self._drop_transport(state)

    @staticmethod
    def _drop_transport(state: _TargetState) -> None:
        transport, state.transport = state.transport, None
        if transport is not None and state.own_transport:
            # the collector owns only the _ExporterSshTransport it made
            cast(SshTransport, transport).connection.close()

    # -- gathering ------------------------------------------------------------

    def gather(self) -> dict[Target, tuple[list[Registration], TargetView]]:
        """{target: (registrations, TargetView)}: each target's answer if it came
        within ``scrape_timeout``, else what it last told (``ok`` false)."""
        groups = self.registry.by_target()
        now = time.monotonic()
        waiting: dict[Target, Future[None]] = {}
        state: _TargetState | None
        with self._lock:
            for target in list(self._states):
                if target not in groups:
                    # no registration refers to it any more
                    state = self._states.pop(target)
                    if state.running is None:
                        self._drop_transport(state)
            for target, regs in groups.items():
                state = self._states.get(target)
                if state is None:
                    state = self._states[target] = _TargetState(get_scheduler(target.scheduler))
                if state.running is None:
                    fresh = state.view is not None and \
                        now - state.finished < self.config.cache_seconds
                    if fresh or now < state.retry_at:
                        continue
                    state.running = self._pool.submit(self._ask_safely, target, state, regs)
                # a target that failed or already kept a scrape waiting is not
                # waited for: its answer is taken by the scrape after it comes
                if state.failures == 0 and not state.late:
                    waiting[target] = state.running
        if waiting:
            wait(list(waiting.values()), timeout=self.config.scrape_timeout)
        gathered: dict[Target, tuple[list[Registration], TargetView]] = {}
        with self._lock:
            for target, regs in groups.items():
                state = self._states.get(target)
                if state is None:
                    continue
                view = state.view
                if target in waiting and not waiting[target].done():
                    state.late = True
                if state.running is not None and (state.late or state.failures):
                    view = replace(view or TargetView(), ok=False, seconds=0.0,
                                   error=f'no answer within scrape_timeout '
                                         f'({self.config.scrape_timeout:g} s)')
                elif view is None:
                    view = TargetView(error='not asked yet')
                elif not view.ok and now < state.retry_at:
                    view = replace(view, seconds=0.0)
                gathered[target] = (regs, view)
        return gathered

    def _ask_safely(self, target: Target, state: _TargetState,
                    registrations: list[Registration]) -> None:
        """Ask ``target`` and publish the answer; a failure is logged, counted and
        backed off, and the connection is dropped (credentials are read anew
        at the next attempt)."""
        try:
            view = self._ask(target, state, registrations)
        except Exception as exc:    # noqa: BLE001 - a worker must always publish
            log.exception('%s: scrape failed', target)
            view = self._failed(state, f'{type(exc).__name__}: {exc}', 0.0)
        if not view.ok:
            self._drop_transport(state)
        with self._lock:
            now = time.monotonic()
            if view.ok:
                state.failures, state.retry_at = 0, 0.0
            else:
                state.failures += 1
                state.retry_at = now + min(BACKOFF_FIRST * 2 ** (state.failures - 1),
                                           BACKOFF_MAX)
            state.view, state.finished = view, now
            state.late, state.running = False, None
            forgotten = self._states.get(target) is not state
        if forgotten:
            # unregistered while it was being asked
            self._drop_transport(state)

    @staticmethod
    def _failed(state: _TargetState, error: str, seconds: float) -> TargetView:
        # what is known is kept, so that dashboards do not blink on a failed scrape
        last = state.last
        view = TargetView(ok=False, error=error, seconds=seconds,
                          gathered_at=last.gathered_at, partitions=list(last.partitions),
                          statuses=dict(last.statuses), times=dict(last.times))
        for job_id, (status, times) in state.final.items():
            view.statuses.setdefault(job_id, status)
            if times is not None:
                view.times.setdefault(job_id, times)
        return view

    def _ask(self, target: Target, state: _TargetState,
             registrations: list[Registration]) -> TargetView:
        """One remote command to ``target`` about its wanted jobs (and partitions)."""
        wanted = {job_id for reg in registrations for job_id in reg.jobs.values()}
        for job_id in list(state.final):
            if job_id not in wanted:
                del state.final[job_id]
        ask = sorted(wanted - set(state.final))
        scheduler = state.scheduler
        # SLURM and PBS scrape times (and partitions) in one command; the others
        # answer with their status command. Partitions are asked for unless every
        # interface on the target said only_jobs
        partitions = scheduler.reports_partitions and \
            not all(reg.only_jobs for reg in registrations)
        view = TargetView()
        start = time.perf_counter()
        try:
            if ask or partitions:
                if state.transport is None:
                    state.transport, state.own_transport = self._new_transport(target)
                command = scheduler.exporter_command(ask, partitions=partitions)
                state.commands += 1
                result = state.transport.run(command, timeout=self.config.command_timeout)
                if result.exit_code != 0:
                    raise SchedulerError(f'the scrape command exited with {result.exit_code}: '
                                         f'{result.stderr.strip()[-300:]}')
                view.partitions, view.statuses, view.times = \
                    scheduler.parse_exporter_output(result.stdout, ask)
            view.ok = True
            view.gathered_at = time.time()
        except CroupierError as exc:
            log.warning('%s: scrape failed: %s', target, exc)
            return self._failed(state, str(exc), time.perf_counter() - start)
        view.seconds = time.perf_counter() - start
        for job_id, status in view.statuses.items():
            if status.terminal:
                state.final[job_id] = (status, view.times.get(job_id))
        for job_id, (status, times) in state.final.items():
            view.statuses.setdefault(job_id, status)
            if times is not None:
                view.times.setdefault(job_id, times)
        state.last = view
        return view

    def commands(self, target: Target) -> int:
        """How many remote commands were sent to ``target``."""
        state = self._states.get(target)
        return state.commands if state else 0

    # -- metrics ----------------------------------------------------------------

    def describe(self) -> list[Metric]:
        """As prometheus_client's Collector.describe: nothing (see below)."""
        # no describe-time gathering: prometheus_client would run a scrape at register()
        return []

    def collect(self) -> list[Metric]:
        """As prometheus_client's Collector.collect: the metric families of
        every registered target and job, from one gather."""
        gathered = self.gather()
        up = GaugeMetricFamily('croupier_exporter_up',
                               'Whether the last scrape of the infrastructure answered (1) '
                               'or not (0)', labels=['infrastructure', 'scheduler'])
        seconds = GaugeMetricFamily('croupier_exporter_scrape_duration_seconds',
                                    'Time the scrape command of the infrastructure took',
                                    labels=['infrastructure', 'scheduler'])
        commands = CounterMetricFamily('croupier_exporter_remote_commands',
                                       'Remote commands sent to the infrastructure',
                                       labels=['infrastructure', 'scheduler'])
        age = GaugeMetricFamily('croupier_exporter_data_age_seconds',
                                'Seconds since the infrastructure last answered (the age of '
                                'the figures served for it)',
                                labels=['infrastructure', 'scheduler'])
        registered = GaugeMetricFamily('croupier_exporter_registered_jobs',
                                       'Jobs registered on the infrastructure',
                                       labels=['infrastructure', 'scheduler'])
        nodes = GaugeMetricFamily('croupier_partition_nodes', 'Nodes of the partition (queue), '
                                  'by state: total, allocated, idle',
                                  labels=['infrastructure', 'partition', 'state'])
        cores = GaugeMetricFamily('croupier_partition_cores', 'Cores of the partition (queue), '
                                  'by state: total, allocated, idle',
                                  labels=['infrastructure', 'partition', 'state'])
        queue = GaugeMetricFamily('croupier_partition_jobs', 'Jobs of all users in the '
                                  'partition (queue), by state: pending, running',
                                  labels=['infrastructure', 'partition', 'state'])
        avail = GaugeMetricFamily('croupier_partition_available',
                                  'Whether the partition (queue) is up (1) or not (0)',
                                  labels=['infrastructure', 'partition'])
        state = GaugeMetricFamily('croupier_job_state', 'The job\'s state: 1 for its current '
                                  'state (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, '
                                  'TIMEOUT, UNKNOWN)',
                                  labels=JOB_LABELS + ['state', 'raw_state'])
        walltime = GaugeMetricFamily('croupier_job_walltime_used_seconds',
                                     'Run time of the job so far (all of it once ended)',
                                     labels=JOB_LABELS)
        queued = GaugeMetricFamily('croupier_job_queued_seconds',
                                   'Time from submission to start (to now while pending)',
                                   labels=JOB_LABELS)
        exit_code = GaugeMetricFamily('croupier_job_exit_code',
                                      'Exit code of the ended job', labels=JOB_LABELS)
        for target, (regs, view) in sorted(gathered.items(), key=lambda i: str(i[0])):
            infrastructure = sorted(r.infrastructure for r in regs)[0]
            head = [infrastructure, target.scheduler]
            up.add_metric(head, 1 if view.ok else 0)
            seconds.add_metric(head, view.seconds)
            if view.gathered_at is not None:
                age.add_metric(head, max(0.0, time.time() - view.gathered_at))
            commands.add_metric(head, self.commands(target))
            registered.add_metric(head, sum(len(r.jobs) for r in regs))
            for p in view.partitions:
                for _what, family, values in (
                        ('nodes', nodes, (p.nodes_total, p.nodes_allocated, p.nodes_idle)),
                        ('cores', cores, (p.cores_total, p.cores_allocated, p.cores_idle))):
                    for label, value in zip(('total', 'allocated', 'idle'), values, strict=True):
                        family.add_metric([infrastructure, p.name, label], value)
                queue.add_metric([infrastructure, p.name, 'pending'], p.jobs_pending)
                queue.add_metric([infrastructure, p.name, 'running'], p.jobs_running)
                avail.add_metric([infrastructure, p.name], 1 if p.available else 0)
            for reg in regs:
                for name, job_id in sorted(reg.jobs.items()):
                    labels = [reg.deployment_name, reg.interface, reg.infrastructure, name,
                              job_id]
                    status = view.statuses.get(job_id)
                    if status is None:
                        continue
                    state.add_metric(labels + [status.state.value, status.raw_state or ''], 1)
                    if status.exit_code is not None:
                        exit_code.add_metric(labels, status.exit_code)
                    times = view.times.get(job_id)
                    if times is not None:
                        if times.walltime is not None:
                            walltime.add_metric(labels, times.walltime)
                        if times.queued is not None:
                            queued.add_metric(labels, times.queued)
        return [up, seconds, age, commands, registered, nodes, cores, queue, avail, state,
                walltime, queued, exit_code]
