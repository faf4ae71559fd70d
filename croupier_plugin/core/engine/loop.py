"""The run_jobs engine's loop: it carries out the decisions (decisions.py).

Pure Python: the Cloudify workflow gives it the jobs (spec, cluster, working
directory, parents), a store that persists each job's record (runtime
properties), a stop event for cancellation, and an event sink for progress.

- Jobs whose parents all completed are submitted concurrently.
- Each scheduler job id is stored the moment sbatch returns it.
- The batched monitor follows every submitted job.
- A job's input transfers run (concurrently) right before it is submitted;
  its output transfers run after it completed, and its dependants wait for
  them. A failed transfer fails the job with the transfer's reason.
- A failed job ends the run: live jobs are cancelled, its dependants are never
  submitted, and JobFailed carries name, state, exit code and stderr tail.
- A stop request cancels every live job and raises RunCancelled.
- Resuming: a record with a job id is re-attached by id, never resubmitted;
  completed jobs are not run again.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, TypeVar

from ..data import TransferError, run_all
from ..errors import CommandInterrupted, CroupierError
from ..model import JobState, JobStatus
from ..monitor import JobChange, Monitor
from ..placement import FiguresCache, choose
from . import decisions
from .decisions import Failure
from .plan import InputsFailed, JobFailed, PlannedJob, RunCancelled
from .records import Outputs

if TYPE_CHECKING:
    from ..accounting import JobFigures
    from ..cluster import Cluster, SubmittedJob

log = logging.getLogger('croupier.engine')

Store = Callable[[str, dict[str, Any]], None]
Events = Callable[..., None]
T = TypeVar('T')


def cancel_by_infrastructure(items: Iterable[T], cluster_of: Callable[[T], Cluster],
                             job_id_of: Callable[[T], Optional[str]], what: str
                             ) -> list[tuple[Cluster, list[T], bool]]:
    """Cancel the jobs of ``items`` with one command per infrastructure:
    (cluster, its items, whether the command was sent) for each; a failure is
    logged as cancelling ``what`` failed."""
    by_cluster: dict[str, tuple[Cluster, list[T]]] = {}
    for item in items:
        cluster = cluster_of(item)
        by_cluster.setdefault(cluster.name, (cluster, []))[1].append(item)
    done = []
    for cluster, some in by_cluster.values():
        try:
            cluster.cancel([job_id for job_id in map(job_id_of, some) if job_id])
            sent = True
        except CroupierError as exc:
            log.warning('%s: cancelling %s failed: %s', cluster.name, what, exc)
            sent = False
        done.append((cluster, some, sent))
    return done


class Engine:
    """Runs a DAG of planned jobs to its end (see the module's docstring)."""

    def __init__(self, jobs: Iterable[PlannedJob], store: Store,
                 events: Optional[Events] = None, stop: Optional[threading.Event] = None,
                 monitor: Optional[Monitor] = None, max_parallel_submissions: int = 16,
                 clock: Callable[[], float] = time.monotonic,
                 rerun_failed: bool = False) -> None:
        self.jobs = {j.name: j for j in jobs}
        self.store = store                  # store(job_name, stored form of its record)
        self.events = events or (lambda kind, job, **info: None)
        self.stop = stop or threading.Event()
        self.monitor = monitor or Monitor()
        self.max_parallel = max_parallel_submissions
        self.clock = clock
        self.rerun_failed = rerun_failed
        self.figures = FiguresCache()
        self._wake = threading.Event()
        problem = decisions.check_graph(self.jobs)
        if problem:
            raise CroupierError(problem)

    def request_stop(self) -> None:
        """Cancel the run: every live job is cancelled at once."""
        self.stop.set()
        self._wake.set()

    # -- records ------------------------------------------------------------

    def _save(self, job: PlannedJob, **changes: Any) -> None:
        """Change the job's record and store it."""
        for name, value in changes.items():
            setattr(job.record, name, value)
        self.store(job.name, job.record.to_properties())

    def _reset(self, job: PlannedJob, keep_history: bool = True) -> None:
        """Forget the job's attempt (it will be submitted again), keeping the
        history of its earlier attempts and the infrastructures it left."""
        job.record.reset(keep_history=keep_history, keep_tried=keep_history)
        self._save(job)

    # -- main loop ------------------------------------------------------------

    def run(self) -> list[dict[str, Any]]:
        """Run every job to its end; returns the summary rows. Raises JobFailed,
        RunCancelled, or CroupierError when a record cannot be resumed."""
        self._resume()
        with ThreadPoolExecutor(max_workers=self.max_parallel,
                                thread_name_prefix='croupier-submit') as pool:
            submitting: dict[str, Future[SubmittedJob]] = {}
            finishing: dict[str, Future[list[str]]] = {}
            while True:
                if self.stop.is_set():
                    self._wait_submissions(submitting, finishing)
                    self._skip_held('the execution was cancelled')
                    self._cancel_live('the execution was cancelled')
                    for job in decisions.never_submitted(self.jobs):
                        self._save(job, state=JobState.SKIPPED,
                                   reason='the execution was cancelled')
                    self._collect_figures()
                    self.monitor.remove_spent_markers()
                    raise RunCancelled('run cancelled: every running job was cancelled')
                failures = self._collect_submissions(submitting)
                for change in self.monitor.poll():
                    self._on_change(change)
                failures += self._collect_outputs(finishing)
                self._queue_timeouts(decisions.queue_timeouts(self.jobs, time.time()))
                retries, fatal = decisions.retry_or_fail(failures + decisions.failed(self.jobs))
                for retry in retries:
                    self._retry(retry)
                if fatal:
                    self._fail(fatal + self._wait_submissions(submitting, finishing))
                for stage in decisions.outputs_ready(self.jobs, finishing):
                    finishing[stage.job.name] = pool.submit(self._stage_out, stage.job)
                busy = set(submitting) | {t.name for t in self.monitor.active()}
                for submit in decisions.ready(self.jobs, busy):
                    submitting[submit.job.name] = self._start_submission(pool, submit)
                if not submitting and not finishing and not self.monitor.active():
                    unfinished = [n for n, j in self.jobs.items() if not decisions.completed(j)]
                    if unfinished:      # cannot happen with a checked graph
                        raise CroupierError(f'jobs left unfinished: {unfinished}')
                    self._collect_figures()
                    self.monitor.remove_spent_markers()
                    return self.summary()
                wake = self.monitor.next_wakeup()
                timeout = 1.0 if wake is None else max(0.0, min(wake - self.clock(), 5.0))
                self._wake.wait(timeout)
                self._wake.clear()

    def _resume(self) -> None:
        """Carry out the resume decisions for the records of an earlier run."""
        for job in self.jobs.values():
            # a placed job is followed where it was submitted
            for candidate in job.placements:
                if candidate.cluster.name == job.record.infrastructure:
                    job.use(candidate)
        for action in decisions.resume(self.jobs.values(), self.rerun_failed):
            job = action.job
            if action.how == 'keep':
                self.events('kept', job, reason='completed in an earlier run')
            elif action.how == 'fresh':
                self._reset(job, keep_history=False)
            elif action.how == 'rerun':
                if job.record.job_id:
                    job.record.archive_attempt()
                job.record.reset(keep_history=True, keep_tried=False)
                self._save(job)
                self.events('rerun', job, reason='did not complete in the earlier run')
            elif action.how == 'reattach':
                self.monitor.track(job.cluster, job.record.job_id, job.name,
                                   marker=self._leaves_marker(job))
                self.events('reattached', job, job_id=job.record.job_id)
            elif action.how == 'recover':
                if not self._recover_submission(job, 'an earlier run stopped while '
                                                     'submitting it'):
                    raise CroupierError(
                        f"job '{job.name}': an earlier run was submitting it when it stopped, "
                        f"and {job.cluster.name} cannot tell whether it got the job; check "
                        f"the scheduler's queue before running again")
            else:
                self._reset(job)

    # -- submit ---------------------------------------------------------------

    def _start_submission(self, pool: ThreadPoolExecutor,
                          submit: decisions.Submit) -> Future[SubmittedJob]:
        """Record that the job is being submitted, then submit it in the pool."""
        job = submit.job
        # the token marks the scheduler job, so a submission whose answer
        # was lost (connection or process died) can be found again
        changes: dict[str, Any] = dict(state=JobState.SUBMITTING, job_id=None,
                                       submit_token=secrets.token_hex(8))
        if job.placements:
            changes.update(self._place(job))
        self._save(job, **changes)
        return pool.submit(self._submit, job, submit.after)

    def _submit(self, job: PlannedJob, after: tuple[str, ...] = ()) -> SubmittedJob:
        """Run the job's input transfers, then submit it (in a pool thread),
        to wait in the scheduler for the jobs ``after`` when given."""
        try:
            if job.stage_in and self._simulated(job):
                self.events('inputs', job, reason=f'simulated: {len(job.stage_in)} input '
                                                  f'transfer(s) not run')
            elif job.stage_in:
                try:
                    done = run_all(job.stage_in)
                except TransferError as exc:
                    raise InputsFailed(str(exc)) from None
                self.events('inputs', job, reason='; '.join(done))
            submitted = job.cluster.submit(job.spec, job.workdir, after=after,
                                           token=job.record.submit_token,
                                           script_data=job.script_data)
        finally:
            self._wake.set()
        return submitted

    def _place(self, job: PlannedJob) -> dict[str, Any]:
        """Choose the job's infrastructure from live queue figures; the record
        keeps the choice and its reason."""
        candidate, reason, table = choose(job.placements, self.figures,
                                          exclude=job.record.tried)
        job.use(candidate)
        self.events('placed', job, reason=reason)
        return dict(infrastructure=candidate.cluster.name,
                    placement={'chosen': candidate.name, 'reason': reason, 'figures': table})

    def _recover_submission(self, job: PlannedJob, why: str) -> bool:
        """After a submission whose answer never came back: follow the job the
        scheduler holds under the record's token, or clear the record so the job
        is submitted again when the scheduler has none. False when the scheduler
        cannot be asked (then whether it got the job is unknown)."""
        token = job.record.submit_token
        if not token or not job.cluster.finds_lost_submissions:
            return False
        try:
            found = job.cluster.find_submitted(token)
        except CroupierError as exc:
            log.warning('%s: looking up job %s by its token failed: %s', job.cluster.name,
                        job.name, exc)
            return False
        if found:
            stdout, stderr = job.cluster.output_paths(job.spec, found, job.workdir)
            self._follow(job, found, stdout, stderr,
                         job.cluster.script_path(job.spec, job.workdir), time.time())
            self.events('reattached', job, job_id=found, reason=f'{why}; found by its token')
        else:
            self.events('resubmitting', job, reason=f'{why}; the scheduler has no job with '
                                                    f'its token')
            job.record.reset()
        return True

    def _follow(self, job: PlannedJob, job_id: str, stdout: Optional[str],
                stderr: Optional[str], script: str, submitted_at: float,
                **extra: Any) -> None:
        """Store the job's scheduler id (and the ``extra`` record fields, e.g.
        a dry run's) and start monitoring it."""
        self._save(job, job_id=job_id, state=JobState.PENDING, stdout=stdout,
                   stderr=stderr, script=script, submitted_at=submitted_at,
                   infrastructure=job.cluster.name, **extra)
        self.monitor.track(job.cluster, job_id, job.name,
                           JobStatus(job_id, JobState.PENDING, raw_state='SUBMITTED'),
                           marker=self._leaves_marker(job))

    @staticmethod
    def _simulated(job: PlannedJob) -> bool:
        """Whether the job's interface is a dry run (simulate: true), which
        sends nothing anywhere, its data transfers included."""
        return job.cluster.simulated

    @staticmethod
    def _leaves_marker(job: PlannedJob) -> bool:
        """Whether the job's script leaves an exit-code marker to look for."""
        return job.cluster.leaves_marker(job.spec)

    def _collect_submissions(self, submitting: dict[str, Future[SubmittedJob]]
                             ) -> list[Failure]:
        """Record the submissions that ended; the failed ones as Failures."""
        failures: list[Failure] = []
        for name, future in list(submitting.items()):
            if not future.done():
                continue
            del submitting[name]
            job = self.jobs[name]
            try:
                sub = future.result()
            except InputsFailed as exc:
                status = JobStatus('', JobState.FAILED, raw_state='NOT_SUBMITTED',
                                   reason=f'not submitted: an input transfer failed: {exc}')
                self._save(job, state=JobState.FAILED, raw_state=status.raw_state,
                           reason=status.reason)
                failures.append(Failure(job, status, ''))
                continue
            except CommandInterrupted as exc:
                # the connection broke during the submission: ask the scheduler
                if not self._recover_submission(job, str(exc)):
                    failures.append(Failure(job, JobStatus('', JobState.UNKNOWN,
                                                           reason=str(exc)), ''))
                    self._save(job, state=JobState.UNKNOWN, reason=str(exc))
                continue
            except CroupierError as exc:
                status = JobStatus('', JobState.FAILED, raw_state='NOT_SUBMITTED',
                                   reason=f'submission failed: {exc}')
                self._save(job, state=JobState.FAILED, reason=status.reason)
                failures.append(Failure(job, status, ''))
                continue
            rendered = sub.rendered_script
            simulated = dict(simulated=True, rendered_script=rendered) \
                if rendered is not None else {}
            self._follow(job, sub.job_id, sub.stdout, sub.stderr, sub.script_path,
                         sub.submitted_at, **simulated)
            self.events('submitted', job, job_id=sub.job_id, simulated=bool(simulated))
        return failures

    def _wait_submissions(self, submitting: dict[str, Future[SubmittedJob]],
                          finishing: dict[str, Future[list[str]]]) -> list[Failure]:
        """Let running submissions and output transfers end, and record them."""
        for future in list(submitting.values()) + list(finishing.values()):
            try:
                future.result()
            except Exception:       # recorded by the collectors below
                pass
        return self._collect_submissions(submitting) + self._collect_outputs(finishing)

    # -- watch ------------------------------------------------------------------

    def _on_change(self, change: JobChange) -> None:
        """Record a state change the monitor saw."""
        job = self.jobs[change.job.name]
        if change.figures is not None:
            figures = change.figures.to_properties(change.job.cluster.reporting_user)
            if job.record.job_id == change.job.job_id:
                self._save(job, accounting=figures)
            else:
                # an earlier attempt's (retried or moved since): its figures go with it
                for attempt in job.record.attempts:
                    if attempt.job_id == change.job.job_id:
                        attempt.accounting = figures
                self._save(job)
            self.events('accounting', job, reason=self._describe_figures(change.figures))
            return
        new = change.new
        changes: dict = dict(state=new.state, raw_state=new.raw_state, reason=new.reason,
                             exit_code=new.exit_code)
        if new.terminal:
            changes['ended_at'] = time.time()
        elif new.state is JobState.RUNNING and not job.record.started_at:
            # the end of its queue wait: the portal's timeline splits wait and run here
            changes['started_at'] = time.time()
        if new.state is JobState.COMPLETED and job.stage_out:
            changes['outputs'] = Outputs.PENDING
        self._save(job, **changes)
        self.events('state', job, status=new)

    def _collect_figures(self) -> None:
        """Record the accounting figures of the jobs that ended since the last
        status command (one command per infrastructure, for a few seconds at
        most while the accounting catches up)."""
        if not self.monitor.awaiting_figures():
            return
        deadline = self.clock() + self.FIGURES_WAIT
        for change in self.monitor.collect_figures(deadline):
            self._on_change(change)

    #: how long the end of a run waits for the accounting of its last jobs
    FIGURES_WAIT = 10.0

    @staticmethod
    def _describe_figures(figures: JobFigures) -> str:
        """The figures in words, for the event log."""
        parts = []
        if figures.elapsed is not None:
            parts.append(f'elapsed {figures.elapsed} s')
        if figures.cpu_time is not None:
            parts.append(f'CPU time {figures.cpu_time:g} s')
        if figures.nodes is not None:
            parts.append(f'{figures.nodes} node(s)')
        if figures.cpus is not None:
            parts.append(f'{figures.cpus} CPU(s)')
        return f"{', '.join(parts) or 'no figures'} ({figures.source})"

    # -- stage out ----------------------------------------------------------------

    def _stage_out(self, job: PlannedJob) -> list[str]:
        """Run the job's output transfers (in a pool thread); a dry run's
        are not run."""
        try:
            if self._simulated(job):
                return [f'simulated: {len(job.stage_out)} output transfer(s) not run']
            return run_all(job.stage_out)
        finally:
            self._wake.set()

    def _collect_outputs(self, finishing: dict[str, Future[list[str]]]) -> list[Failure]:
        """Record the output transfers that ended; the failed ones as Failures."""
        failures: list[Failure] = []
        for name, future in list(finishing.items()):
            if not future.done():
                continue
            del finishing[name]
            job = self.jobs[name]
            try:
                done = future.result()
            except (CroupierError, OSError) as exc:
                # an OSError (a full local disk, say) is this job's failure too: raised
                # out of the run, it would leave the other jobs running and records half set
                status = JobStatus(job.record.job_id or '', JobState.FAILED,
                                   raw_state='OUTPUTS_FAILED',
                                   reason=f'the job completed, but moving its outputs '
                                          f'failed: {exc}')
                self._save(job, state=JobState.FAILED, raw_state=status.raw_state,
                           reason=status.reason, outputs=Outputs.FAILED)
                failures.append(Failure(job, status, ''))
                continue
            self._save(job, outputs=Outputs.DONE)
            self.events('outputs', job, reason='; '.join(done))
        return failures

    # -- retry, time out, fail, cancel -----------------------------------------------

    def _retry(self, retry: decisions.Retry) -> None:
        """Archive the attempt and forget it: the job is submitted again."""
        self.events('retrying', retry.job, reason=retry.reason)
        retry.job.record.archive_attempt()
        self._reset(retry.job)

    def _queue_timeouts(self, timeouts: list[decisions.QueueTimeout]) -> None:
        """Cancel the jobs late in the queue (one command per infrastructure),
        then move each to another infrastructure or fail it."""
        for _, late, sent in cancel_by_infrastructure(
                timeouts, lambda t: t.job.cluster, lambda t: t.job.record.job_id,
                'jobs late in the queue'):
            for timeout in late if sent else []:
                self._late(timeout)

    def _late(self, timeout: decisions.QueueTimeout) -> None:
        """Record a job cancelled for waiting too long: moved or failed."""
        job = timeout.job
        cluster = job.cluster
        now = time.time()
        self.monitor.untrack(cluster.name, job.record.job_id)
        waited = f'still pending after {job.policy.max_time_in_queue:g} s (max_time_in_queue)'
        if timeout.move:
            # another infrastructure may start it sooner
            self._save(job, state=JobState.MOVED, raw_state='QUEUE_TIMEOUT', ended_at=now,
                       reason=f'{waited}: cancelled, to go to another infrastructure')
            job.record.archive_attempt()
            job.record.tried.append(cluster.name)
            self._reset(job)
            self.events('moved', job, reason=f'{waited} on {cluster.name}')
            return
        self._save(job, state=JobState.FAILED, raw_state='QUEUE_TIMEOUT',
                   reason=f'{waited}: cancelled', ended_at=now)
        self.events('cancelled', job, reason='waited too long in the queue')

    def _fail(self, failures: list[Failure]) -> None:
        """End the run: skip the jobs waiting for their parents in the
        scheduler, cancel live jobs, skip the others, raise JobFailed."""
        failed = [f.job.name for f in failures]
        self._skip_held('a job it depends on failed', failed)
        self._cancel_live('another job failed')
        for job in decisions.never_submitted(self.jobs):
            self._save(job, state=JobState.SKIPPED, reason='a job it depends on failed')
            self.events('skipped', job)
        detailed, seen = [], set()
        for failure in failures:
            job = failure.job
            if job.name in seen:
                continue
            seen.add(job.name)
            tail = self._stderr_tail(job) if failure.tail is None else failure.tail
            self._save(job, reported=True)
            detailed.append((job, failure.status, tail))
        self._collect_figures()
        self.monitor.remove_spent_markers()
        raise JobFailed(detailed)

    def _skip_held(self, why: str, failed: Iterable[str] = ()) -> None:
        """Cancel the jobs waiting in the scheduler for parents (one command
        per infrastructure) and record them as never run: SKIPPED with the
        reason, without a job id (they never started)."""
        jobs = decisions.held(self.jobs)
        cancel_by_infrastructure(jobs, lambda j: j.cluster, lambda j: j.record.job_id,
                                 'jobs waiting for their parents')
        failed = set(failed)
        for job in jobs:
            job_id = job.record.job_id
            self.monitor.untrack(job.cluster.name, job_id)
            names = [p for p in job.parents if p in failed] or \
                [p for p in job.parents if self.jobs[p].state is not JobState.COMPLETED]
            job.record.reset()
            self._save(job, state=JobState.SKIPPED,
                       reason=f"{why} ({', '.join(names)}): its {job.cluster.name} job "
                              f"{job_id}, waiting for it, was cancelled before it started")
            self.events('skipped', job, reason=why)

    def _stderr_tail(self, job: PlannedJob) -> str:
        """The end of the job's stderr ('' when it cannot be read)."""
        try:
            return job.cluster.tail(job.record.stderr, 20)
        except CroupierError:
            return ''

    def _cancel_live(self, why: str) -> None:
        """Cancel every followed job that has not ended, one command per
        infrastructure."""
        for cluster, tracked, _ in cancel_by_infrastructure(
                self.monitor.active(), lambda t: t.cluster, lambda t: t.job_id, 'jobs'):
            for t in tracked:
                job = self.jobs[t.name]
                self._save(job, state=JobState.CANCELLED, reason=f'cancelled: {why}',
                           reported=True, ended_at=time.time())
                self.monitor.untrack(cluster.name, t.job_id)
                self.events('cancelled', job, reason=why)

    def summary(self) -> list[dict[str, Any]]:
        """One row per job: where it ran, its id, state, exit code, duration and
        number of attempts."""
        rows = []
        for job in self.jobs.values():
            r = job.record
            duration = None
            if r.submitted_at and r.ended_at:
                duration = r.ended_at - r.submitted_at
            rows.append(dict(name=job.name, cluster=job.cluster.name, job_id=r.job_id,
                             state=r.state.value if r.state else None,
                             exit_code=r.exit_code, duration=duration,
                             attempts=len(r.attempts) + 1))
        return rows
