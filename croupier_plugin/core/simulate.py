"""Dry runs: an interface with ``simulate: true`` sends nothing to its cluster.

The original Croupier's ``simulate`` skipped the front-end and marked every job
completed. Croupier keeps that, and makes the dry run useful: each job's batch
script is rendered exactly as it would have been submitted and kept in the job's
runtime properties, so a blueprint's scripts can be read before they ever reach
a cluster. No SSH connection is opened: the cluster's transport refuses every
use, so a code path that would reach the front-end fails loudly instead of
connecting.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Iterable
from typing import Any, cast

from .cluster import Cluster, SubmittedJob
from .errors import CroupierError
from .model import JobState, JobStatus
from .transport.base import Transport

#: the raw state (and the monitor's source) of a simulated job
SIMULATED = 'SIMULATED'


class NoTransport:
    """The transport of a simulated interface: any use is a bug, reported as
    one instead of opening a connection."""

    def __init__(self, infrastructure: str) -> None:
        self.infrastructure = infrastructure

    def __repr__(self) -> str:
        return f'NoTransport({self.infrastructure!r})'

    def __getattr__(self, name: str) -> Any:
        def refuse(*args: Any, **kwargs: Any) -> None:
            raise CroupierError(f'{self.infrastructure} is simulated (simulate: true): nothing '
                                f'is sent to its cluster, so {name} is not available')
        return refuse


class SimulatedCluster(Cluster):
    """A cluster that accepts every job, sends nothing, and reports each job
    completed at the monitor's next look."""

    simulated = True

    def __init__(self, name: str, scheduler: Any) -> None:
        """``scheduler`` renders the scripts; the monitor looks without delay
        (a period of 0), since looking costs nothing."""
        # NoTransport stands in for a Transport: each of its methods refuses
        super().__init__(name, cast(Transport, NoTransport(name)), scheduler, monitor_period=0.0)
        self._serial = itertools.count(1)
        self._run = secrets.token_hex(3)

    def __repr__(self) -> str:
        return f'SimulatedCluster({self.name!r}, {self.scheduler.name})'

    def submit(self, spec: Any, workdir: str, after: Iterable[str] = (), *,
               token: str | None = None, script_data: bytes | None = None) -> SubmittedJob:
        """Render the job's script as it would be submitted and keep it in the
        returned SubmittedJob (``rendered_script``); nothing is sent."""
        if script_data is not None:
            spec = spec.with_script(self.blueprint_script_path(spec, workdir))
        script_path = self.script_path(spec, workdir)
        # the ids are never given to a scheduler; they only tell the attempts apart
        job_id = f'simulated-{self._run}-{next(self._serial)}'
        stdout, stderr = self.scheduler.output_paths(spec, job_id, workdir)
        job = SubmittedJob(spec.name, job_id, self.name, script_path, stdout, stderr,
                           time.time())
        job.rendered_script = self.scheduler.render_script(
            spec, token)
        return job

    def find_submitted(self, token: str) -> str | None:
        """A simulated job is never lost: there is nothing to look up."""
        return None

    def statuses(self, job_ids: Iterable[str]) -> dict[str, JobStatus]:
        """Every job completed, with exit code 0."""
        return {job_id: JobStatus(job_id, JobState.COMPLETED, raw_state=SIMULATED,
                                  reason='simulated: nothing was sent to the cluster',
                                  exit_code=0, source=SIMULATED)
                for job_id in job_ids}

    def markers(self, job_ids: Iterable[str], spent: Iterable[str] = (),
                started: Iterable[str] = ()) -> dict:
        """No markers: statuses answers at once."""
        return {}

    def cancel(self, job_ids: Iterable[str]) -> None:
        """Nothing runs, so nothing is cancelled."""
        return None

    def queue_figures(self) -> None:
        """A simulated interface reports no queues."""
        return None

    def tail(self, path: str | None, lines: int = 20) -> str:
        """A simulated job writes no output."""
        return ''
