"""An infrastructure at run time: a scheduler reached through a transport."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import posixpath
import shlex
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from .errors import CroupierError, SchedulerError
from .model import JobSpec, JobStatus, PartitionFigures, scheduler_job_name

if TYPE_CHECKING:
    from .schedulers.pycompss import PycompssJob
    from .accounting import JobFigures
    from .schedulers.base import Scheduler
    from .transport.base import CommandResult, Transport

log = logging.getLogger('croupier.cluster')

# separates the status command's output from the accounting command's
ACCOUNTING_MARK = '@@croupier-accounting@@'


@dataclass
class SubmittedJob:
    """A job Croupier submitted: its scheduler id, infrastructure, script and
    output files, and when it was submitted (epoch seconds)."""
    name: str
    job_id: str
    infrastructure: str
    script_path: str
    stdout: Optional[str] = None
    stderr: Optional[str] = None
    submitted_at: float = 0.0
    # a dry run's job (simulate: true): the script it would have submitted
    rendered_script: Optional[str] = None


class Cluster:
    """Submit, poll and cancel jobs of one infrastructure.

    ``name`` names the infrastructure (its interface's node id); ``monitor_period``
    is how often the monitor asks it about its jobs.
    """

    SUBMIT_ATTEMPTS = 6          # 1+2+4+8+16 s of waiting for a controller to come back
    simulated = False            # a dry run (core.simulate.SimulatedCluster)
    accounting = False           # the monitor collects each ended job's figures
    reporting_user: str | None = None  # accounting_options.reporting_user, kept with them
    PRUNE_EVERY = 86400.0        # seconds between two prunings of old markers (see markers)

    def __init__(self, name: str, transport: Transport, scheduler: Scheduler[Any],
                 monitor_period: float = 15.0) -> None:
        self.name = name
        self.transport = transport
        self.scheduler = scheduler
        self.monitor_period = float(monitor_period)
        # when markers() is next to prune old markers (time.monotonic(); None: at its first look)
        self._next_prune: float | None = None

    def __repr__(self) -> str:
        return f'Cluster({self.name!r}, {self.scheduler.name}, {self.transport!r})'

    def script_path(self, spec: JobSpec | PycompssJob, workdir: str) -> str:
        """Where the batch script of ``spec`` goes in ``workdir``, named after
        the job (its scheduler-safe name, made unique when it had to change)."""
        name = scheduler_job_name(spec.name)
        if name != spec.name:
            # two names may clean up to the same text: keep their files apart
            name += '-' + hashlib.sha1(spec.name.encode()).hexdigest()[:8]
        return f'{workdir.rstrip("/")}/{name}{self.scheduler.script_suffix}'

    @staticmethod
    def blueprint_script_path(spec: JobSpec, workdir: str) -> str:
        """Where the blueprint script of ``spec`` (local_script) goes: next to the job."""
        # script bytes are only ever read from the file local_script names
        assert spec.local_script is not None
        return f'{workdir.rstrip("/")}/{posixpath.basename(spec.local_script)}'

    def submit(self, spec: JobSpec | PycompssJob, workdir: str, after: Iterable[str] = (), *,
               token: str | None = None, script_data: bytes | None = None) -> SubmittedJob:
        """Upload the job's script by SFTP and submit it; returns SubmittedJob.
        With ``after`` (scheduler job ids on this infrastructure), the scheduler
        starts the job once they completed, and drops it when one fails.
        ``token`` marks the scheduler's job, so that a submission whose answer
        was lost can be found again; ``script_data``: the bytes of the
        blueprint file ``spec.local_script`` names, uploaded next to the job.

        The submission is never repeated by the transport: if the connection
        breaks during it, CommandInterrupted says the outcome is unknown.
        """
        if script_data is not None:
            # (only a JobSpec names a blueprint script: local_script)
            assert isinstance(spec, JobSpec)
            uploaded = self.blueprint_script_path(spec, workdir)
            self.transport.write_file(uploaded, script_data, mode=0o700)
            spec = spec.with_script(uploaded)
        script_path = self.script_path(spec, workdir)
        self.transport.write_file(script_path, self.scheduler.render_script(spec, token),
                                  mode=0o700)
        command = self.scheduler.submit_command(spec, script_path, workdir, list(after))
        delay = 1.0
        for attempt in range(self.SUBMIT_ATTEMPTS):
            result = self.transport.run(command, idempotent=False)
            if result.exit_code == 0 or attempt == self.SUBMIT_ATTEMPTS - 1 or \
                    not self.scheduler.transient_submit_error(result):
                break
            # the controller refused to talk (restarting, overloaded): the job was
            # not submitted, so trying again cannot make a duplicate
            log.warning('%s: submission of %s refused for now (%s); retrying in %.0f s',
                        self.name, spec.name, (result.stderr or result.stdout).strip()[-200:],
                        delay)
            time.sleep(delay)
            delay *= 2
        if result.exit_code != 0:
            self.scheduler.submit_failed(result)
        try:
            job_id = self.scheduler.parse_submit_output(result.stdout)
        except ValueError as exc:
            raise SchedulerError(str(exc), exit_code=result.exit_code,
                                 stderr=result.stderr) from None
        stdout, stderr = self.output_paths(spec, job_id, workdir)
        log.info('%s: submitted %s as job %s', self.name, spec.name, job_id)
        return SubmittedJob(spec.name, job_id, self.name, script_path, stdout, stderr,
                            time.time())

    # -- what the scheduler can do, for the engine ------------------------------------

    @property
    def finds_lost_submissions(self) -> bool:
        """Whether find_submitted can find a job whose submission's answer was lost."""
        return self.scheduler.finds_lost_submissions

    def output_paths(self, spec: JobSpec | PycompssJob, job_id: str,
                     workdir: str | None) -> tuple[str | None, str | None]:
        """(stdout, stderr) paths of the job ``job_id`` of ``spec``, as submit gives them."""
        return self.scheduler.output_paths(spec, job_id, workdir)

    def leaves_marker(self, spec: JobSpec | PycompssJob) -> bool:
        """Whether the script of ``spec`` leaves the exit-code markers markers() reads."""
        return self.scheduler.leaves_marker(spec)

    def holds_for(self, parent_spec: JobSpec | PycompssJob) -> bool:
        """Whether a job can wait here, in the scheduler, for the successful end of a
        job of ``parent_spec`` submitted here."""
        return self.scheduler.holds_for(parent_spec)

    def find_submitted(self, token: str) -> str | None:
        """The id of the job submitted with ``token``, or None (for schedulers
        whose finds_lost_submissions is true)."""
        result = self.transport.run(self.scheduler.lookup_command(token))
        if result.exit_code != 0:
            raise SchedulerError(f'{self.name}: job lookup failed with exit code '
                                 f'{result.exit_code}: {result.stderr.strip()[-300:]}',
                                 exit_code=result.exit_code, stderr=result.stderr)
        return self.scheduler.parse_lookup_output(result.stdout, token)

    def statuses(self, job_ids: Iterable[str]) -> dict[str, JobStatus]:
        """{job_id: JobStatus} from ONE status command."""
        job_ids = list(job_ids)
        if not job_ids:
            return {}
        result = self.transport.run(self.scheduler.status_command(job_ids))
        return self._statuses_of(result, job_ids)

    def statuses_and_figures(self, job_ids: Iterable[str], accounting_ids: Iterable[str]
                             ) -> tuple[dict[str, JobStatus], dict[str, JobFigures]]:
        """({job_id: JobStatus} of ``job_ids``, {job_id: JobFigures} of the
        ended ``accounting_ids`` whose figures are final), from ONE command:
        the status command followed by the scheduler's accounting command
        (one batch for all ``accounting_ids``)."""
        job_ids, accounting_ids = list(job_ids), list(accounting_ids)
        accounting = self.scheduler.accounting_command(accounting_ids) if accounting_ids else None
        if accounting is None:
            return self.statuses(job_ids), {}
        # a subshell: a status command may end with `exit`, which must not
        # skip the accounting part; the status part's exit code is the command's
        status = (f'(\n{self.scheduler.status_command(job_ids)}\n)\ncroupier_rc=$?\n'
                  if job_ids else 'croupier_rc=0\n')
        result = self.transport.run(f'{status}echo {ACCOUNTING_MARK}\n'
                                    f'{accounting} 2>/dev/null\nexit "$croupier_rc"')
        lines = result.stdout.splitlines(keepends=True)
        cut = next((i for i in range(len(lines) - 1, -1, -1)
                    if lines[i].strip() == ACCOUNTING_MARK), len(lines))
        figures = self.scheduler.parse_accounting(''.join(lines[cut + 1:]), accounting_ids)
        if not job_ids:
            return {}, figures
        head = dataclasses.replace(result, stdout=''.join(lines[:cut]))
        return self._statuses_of(head, job_ids), figures

    def _statuses_of(self, result: CommandResult, job_ids: list[str]) -> dict[str, JobStatus]:
        """{job_id: JobStatus} from the status command's ``result``; raises
        SchedulerError when the command failed."""
        if result.exit_code != 0:
            raise SchedulerError(
                f'{self.name}: status command failed with exit code {result.exit_code}: '
                f'{result.stderr.strip()[-500:]}', exit_code=result.exit_code,
                stderr=result.stderr)
        statuses = self.scheduler.parse_status_output(result.stdout, job_ids)
        return self._delete_held(statuses)

    def markers(self, job_ids: Iterable[str], spent: Iterable[str] = (),
                started: Iterable[str] = ()) -> dict[str, JobStatus]:
        """{job_id: JobStatus} of the ``job_ids`` whose markers say they run or
        ended, from ONE look at the marker directory on the login node (no
        scheduler daemon is asked), which first removes the markers of the jobs
        ``spent`` and the start markers of the jobs ``started``; the first look
        (then one a day) also removes the markers nobody removed that are older
        than MARKER_KEEP_DAYS (Scheduler.listing_command). Raises
        TransportError like any command."""
        job_ids = list(job_ids)
        if not job_ids and not spent and not started:
            return {}
        prune = self._next_prune is None or time.monotonic() >= self._next_prune
        result = self.transport.run(self.scheduler.marker_command(list(spent), list(started),
                                                                  prune=prune))
        if prune:
            self._next_prune = time.monotonic() + self.PRUNE_EVERY
        if result.exit_code != 0:
            log.warning('%s: reading exit-code markers failed with exit code %s: %s',
                        self.name, result.exit_code, result.stderr.strip()[-300:])
            return {}
        return self.scheduler.parse_markers(result.stdout, job_ids)

    def _delete_held(self, statuses: dict[str, JobStatus]) -> dict[str, JobStatus]:
        """Delete the jobs that ended for Croupier while the scheduler still
        holds them (system holds: they would wait forever), in one command;
        their reasons say whether that worked."""
        held = [job_id for job_id, status in statuses.items()
                if self.scheduler.still_queued(status)]
        if not held:
            return statuses
        try:
            result = self.cancel(held)
            assert result is not None   # held is not empty
            outcome = 'deleted' if result.exit_code == 0 else \
                f'deleting it failed: {(result.stderr or result.stdout).strip()[-200:]}'
        except CroupierError as exc:
            outcome = f'deleting it failed: {exc}'
        log.warning('%s: jobs %s are held by the system: %s', self.name, ', '.join(held), outcome)
        for job_id in held:
            status = statuses[job_id]
            statuses[job_id] = status._replace(reason=f'{status.reason}; {outcome}')
        return statuses

    def cancel(self, job_ids: Iterable[str]) -> CommandResult | None:
        """Cancel ``job_ids`` with one scheduler command; its result, or None
        when there was nothing to cancel."""
        job_ids = list(job_ids)
        if not job_ids:
            return None
        return self.transport.run(self.scheduler.cancel_command(job_ids))

    def queue_figures(self) -> dict[str, PartitionFigures] | None:
        """{partition: PartitionFigures} now, from one command; None when the
        scheduler reports no queues."""
        command = self.scheduler.queue_command()
        if command is None:
            return None
        result = self.transport.run(command, timeout=60)
        if not result.ok:
            raise SchedulerError(f'{self.name}: queue figures: exit code {result.exit_code}: '
                                 f'{result.stderr.strip()[-300:]}', result.exit_code,
                                 result.stderr)
        return self.scheduler.parse_queue_output(result.stdout)

    def tail(self, path: str | None, lines: int = 20) -> str:
        """The last lines of a remote text file ('' when it cannot be read)."""
        if not path:
            return ''
        result = self.transport.run(f'tail -n {int(lines)} -- {shlex.quote(path)}')
        return result.stdout if result.exit_code == 0 else ''
