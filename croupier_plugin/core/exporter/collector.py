"""Prometheus metrics of the registered front-ends and jobs, gathered at scrape time.

Each target (scheduler, host, port, user) gets ONE remote command per scrape:
for SLURM, sinfo + squeue counts + the monitor's batched status command (with
times) of every job not known to have ended. A job's final status is kept and
never asked again. Targets are asked concurrently; scrapes closer together
than ``cache_seconds`` (e.g. two Prometheus servers) share one gathering.
"""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..errors import CroupierError, SchedulerError
from ..schedulers import get_scheduler
from ..transport import SshTransport

log = logging.getLogger('croupier.exporter')

JOB_LABELS = ['deployment', 'interface', 'infrastructure', 'job_name', 'job_id']


@dataclass
class TargetView:
    """What one scrape learnt about one target."""
    ok: bool = False
    error: str = ''
    seconds: float = 0.0
    partitions: list = field(default_factory=list)
    statuses: dict = field(default_factory=dict)     # job id -> JobStatus
    times: dict = field(default_factory=dict)        # job id -> JobTimes


@dataclass
class _TargetState:
    scheduler: object
    transport: Optional[object] = None
    commands: int = 0
    final: dict = field(default_factory=dict)        # job id -> (JobStatus, JobTimes)
    last: TargetView = field(default_factory=TargetView)


class HpcCollector:
    """A prometheus_client collector over a Registry."""

    def __init__(self, registry, config, transport_factory=None):
        self.registry = registry
        self.config = config
        self.transport_factory = transport_factory or self._ssh_transport
        self._states = {}
        self._lock = threading.Lock()          # one gathering at a time
        self._gathered_at = None
        self._views = {}

    def _ssh_transport(self, target):
        settings = self.config.credentials_for(target.host, target.port, target.user)
        return SshTransport(settings)

    def _state(self, target):
        state = self._states.get(target)
        if state is None:
            state = self._states[target] = _TargetState(get_scheduler(target.scheduler))
        return state

    # -- gathering ------------------------------------------------------------

    def gather(self):
        """{target: (registrations, TargetView)}, at most one gathering per
        ``cache_seconds``."""
        with self._lock:
            groups = self.registry.by_target()
            now = time.monotonic()
            fresh = self._gathered_at is not None and \
                now - self._gathered_at < self.config.cache_seconds
            if not fresh or any(t not in self._views for t in groups):
                targets = list(groups)
                if len(targets) == 1:
                    views = [self._ask(targets[0], groups[targets[0]])]
                elif targets:
                    with ThreadPoolExecutor(max_workers=min(len(targets), 16)) as pool:
                        views = list(pool.map(lambda t: self._ask(t, groups[t]), targets))
                else:
                    views = []
                self._views = dict(zip(targets, views))
                self._gathered_at = time.monotonic()
                # forget what no registration refers to any more
                for target in list(self._states):
                    if target not in groups:
                        del self._states[target]
            return {t: (regs, self._views[t]) for t, regs in groups.items()}

    def _ask(self, target, registrations):
        state = self._state(target)
        wanted = {job_id for reg in registrations for job_id in reg.jobs.values()}
        for job_id in list(state.final):
            if job_id not in wanted:
                del state.final[job_id]
        ask = sorted(wanted - set(state.final))
        scheduler = state.scheduler
        # schedulers with an exporter command tell times (and SLURM partitions);
        # the others are asked with their status command
        scrape = getattr(scheduler, 'exporter_command', None)
        partitions = getattr(scheduler, 'reports_partitions', False)
        view = TargetView()
        start = time.perf_counter()
        try:
            if not ask and not partitions:
                view.ok = True
            else:
                if state.transport is None:
                    state.transport = self.transport_factory(target)
                command = scrape(ask) if scrape else scheduler.status_command(ask)
                state.commands += 1
                result = state.transport.run(command, timeout=self.config.command_timeout)
                if result.exit_code != 0:
                    raise SchedulerError(f'the scrape command exited with {result.exit_code}: '
                                         f'{result.stderr.strip()[-300:]}')
                if scrape:
                    view.partitions, view.statuses, view.times = \
                        scheduler.parse_exporter_output(result.stdout, ask)
                else:
                    view.statuses = scheduler.parse_status_output(result.stdout, ask)
                view.ok = True
        except CroupierError as exc:
            view.error = str(exc)
            log.warning('%s: scrape failed: %s', target, exc)
            # keep what is known, so that dashboards do not blink on a failed scrape
            view.statuses, view.times = dict(state.last.statuses), dict(state.last.times)
            view.partitions = list(state.last.partitions)
        view.seconds = time.perf_counter() - start
        if view.ok:
            for job_id, status in view.statuses.items():
                if status.terminal:
                    state.final[job_id] = (status, view.times.get(job_id))
            state.last = view
        for job_id, (status, times) in state.final.items():
            view.statuses.setdefault(job_id, status)
            if times is not None:
                view.times.setdefault(job_id, times)
        return view

    def commands(self, target):
        """How many remote commands were sent to ``target``."""
        state = self._states.get(target)
        return state.commands if state else 0

    # -- metrics ----------------------------------------------------------------

    def describe(self):
        # no describe-time gathering: prometheus_client would run a scrape at register()
        return []

    def collect(self):
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
            infra = sorted(r.infrastructure for r in regs)[0]
            head = [infra, target.scheduler]
            up.add_metric(head, 1 if view.ok else 0)
            seconds.add_metric(head, view.seconds)
            commands.add_metric(head, self.commands(target))
            registered.add_metric(head, sum(len(r.jobs) for r in regs))
            for p in view.partitions:
                for what, family, values in (
                        ('nodes', nodes, (p.nodes_total, p.nodes_allocated, p.nodes_idle)),
                        ('cores', cores, (p.cores_total, p.cores_allocated, p.cores_idle))):
                    for label, value in zip(('total', 'allocated', 'idle'), values):
                        family.add_metric([infra, p.name, label], value)
                queue.add_metric([infra, p.name, 'pending'], p.jobs_pending)
                queue.add_metric([infra, p.name, 'running'], p.jobs_running)
                avail.add_metric([infra, p.name], 1 if p.available else 0)
            for reg in regs:
                for name, job_id in sorted(reg.jobs.items()):
                    labels = [reg.deployment, reg.interface, reg.infrastructure, name, job_id]
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
        return [up, seconds, commands, registered, nodes, cores, queue, avail, state,
                walltime, queued, exit_code]
