"""The run_jobs engine: submit a DAG of jobs in dependency order and follow them.

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

import dataclasses
import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

from .data import TransferError, run_all
from .errors import CommandInterrupted, CroupierError
from .model import JobState, JobStatus
from .monitor import Monitor
from .placement import FiguresCache, choose

log = logging.getLogger('croupier.engine')

SKIPPED = 'SKIPPED'          # never submitted because a job it needs failed
MOVED = 'MOVED'              # an attempt cancelled to go to another infrastructure
# record['outputs'] of a completed job with output transfers
OUTPUTS_PENDING, OUTPUTS_DONE, OUTPUTS_FAILED = 'PENDING', 'DONE', 'FAILED'


# raw states a job may be retried on (retry_on), besides the normalized ones
RETRY_STATES = ('FAILED', 'TIMEOUT', 'NODE_FAIL', 'BOOT_FAIL', 'PREEMPTED', 'OUT_OF_MEMORY',
                'DEADLINE', 'QUEUE_TIMEOUT', 'NOT_SUBMITTED', 'OUTPUTS_FAILED')
# what an earlier attempt leaves in the record's history
ATTEMPT_KEYS = ('job_id', 'cluster', 'state', 'raw_state', 'reason', 'exit_code',
                'submitted_at', 'started_at', 'ended_at')
# states of a job whose run is over (the run they belong to ended)
ENDED_STATES = {'COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'UNKNOWN', SKIPPED}


@dataclass(frozen=True)
class JobPolicy:
    """How the engine treats a job beyond submitting it: resubmit it up to
    ``max_retries`` times after a failure (only for the states in ``retry_on``
    when given), and cancel it when it waited in the queue longer than
    ``max_time_in_queue`` seconds."""
    max_retries: int = 0
    retry_on: frozenset = frozenset()
    max_time_in_queue: Optional[float] = None

    def retries(self, record):
        """Whether a job that ended with ``record`` gets another attempt."""
        tries = [a for a in record.get('attempts') or [] if a.get('state') != MOVED]
        if len(tries) >= self.max_retries:
            return False
        if record.get('state') == JobState.UNKNOWN.value:
            return False        # it may still run: a new attempt could run it twice
        if not self.retry_on:
            # every failure, but not a cancellation: that was someone's decision
            return record.get('state') != JobState.CANCELLED.value
        raw = (record.get('raw_state') or '').split(' ')[0]
        return record.get('state') in self.retry_on or raw in self.retry_on


class InputsFailed(CroupierError):
    """An input transfer of a job failed: the job was not submitted."""


class JobFailed(CroupierError):
    def __init__(self, failures):
        self.failures = failures
        lines = []
        for job, status, tail in failures:
            line = f"job '{job.name}' ({job.cluster.key} job {job.record.get('job_id')}) " \
                   f"ended {status.describe()}"
            if tail:
                line += f'; last lines of its stderr:\n{tail.rstrip()}'
            lines.append(line)
        super().__init__('\n'.join(lines))


class RunCancelled(CroupierError):
    pass


@dataclass
class PlannedJob:
    name: str
    spec: object
    cluster: object
    workdir: str
    parents: list = field(default_factory=list)
    record: dict = field(default_factory=dict)
    stage_in: list = field(default_factory=list)     # transfers run before submission
    stage_out: list = field(default_factory=list)    # transfers run after completion
    policy: JobPolicy = field(default_factory=JobPolicy)
    # several infrastructures (placement.Candidate): the job goes where it is
    # expected to start first; cluster, workdir and spec are then the chosen one's
    placements: list = field(default_factory=list)

    def use(self, candidate):
        self.cluster, self.workdir, self.spec = candidate.cluster, candidate.workdir, \
            candidate.spec

    @property
    def state(self):
        return self.record.get('state')


def status_from_record(job_id, record):
    return JobStatus(job_id, JobState(record['state']), raw_state=record.get('raw_state', ''),
                     reason=record.get('reason', ''), exit_code=record.get('exit_code'))


class Engine:
    def __init__(self, jobs, store, events=None, stop=None, monitor=None,
                 max_parallel_submissions=16, clock=time.monotonic, rerun_failed=False):
        self.jobs = {j.name: j for j in jobs}
        self.store = store                  # store(job_name, record_dict)
        self.events = events or (lambda kind, job, **info: None)
        self.stop = stop or threading.Event()
        self.monitor = monitor or Monitor()
        self.max_parallel = max_parallel_submissions
        self.clock = clock
        self.rerun_failed = rerun_failed
        self.figures = FiguresCache()
        self._wake = threading.Event()
        self._check_graph()

    def _check_graph(self):
        for job in self.jobs.values():
            for parent in job.parents:
                if parent not in self.jobs:
                    raise CroupierError(f"job '{job.name}' depends on unknown job '{parent}'")
        seen, done = set(), set()

        def visit(name, path):
            if name in done:
                return
            if name in seen:
                raise CroupierError('job dependencies form a cycle: ' + ' -> '.join(path))
            seen.add(name)
            for parent in self.jobs[name].parents:
                visit(parent, path + [parent])
            done.add(name)
        for name in self.jobs:
            visit(name, [name])

    def request_stop(self):
        """Cancel the run: every live job is cancelled at once."""
        self.stop.set()
        self._wake.set()

    # -- records ------------------------------------------------------------

    def _save(self, job, **changes):
        job.record.update(changes)
        self.store(job.name, dict(job.record))

    def _reset(self, job, keep=('attempts', 'tried')):
        """Forget the job's run (it will be submitted again), keeping the
        history of its earlier attempts and the infrastructures it left."""
        kept = {k: job.record[k] for k in keep if job.record.get(k)}
        job.record.clear()
        job.record.update(kept)
        self.store(job.name, dict(job.record))

    def _archive_attempt(self, job):
        attempt = {k: job.record.get(k) for k in ATTEMPT_KEYS if job.record.get(k) is not None}
        job.record['attempts'] = list(job.record.get('attempts') or []) + [attempt]

    def _completed(self, job):
        """Completed, and its outputs moved: its dependants may start."""
        return job.state == JobState.COMPLETED.value and \
            (not job.stage_out or job.record.get('outputs') == OUTPUTS_DONE)

    # -- main loop ------------------------------------------------------------

    def run(self):
        self._resume()
        with ThreadPoolExecutor(max_workers=self.max_parallel,
                                thread_name_prefix='croupier-submit') as pool:
            submitting, finishing = {}, {}
            while True:
                if self.stop.is_set():
                    self._wait_submissions(submitting, finishing)
                    self._cancel_live('the execution was cancelled')
                    for job in self.jobs.values():
                        if job.state is None:
                            self._save(job, state=SKIPPED, reason='the execution was cancelled')
                    raise RunCancelled('run cancelled: every running job was cancelled')
                failures = self._collect_submissions(submitting)
                for change in self.monitor.poll():
                    self._on_change(change)
                failures += self._collect_outputs(finishing)
                self._queue_timeouts()
                failed = self._not_retried(failures + self._failed_jobs())
                if failed:
                    self._fail(failed + self._wait_submissions(submitting, finishing))
                for job in self._outputs_ready(finishing):
                    finishing[job.name] = pool.submit(self._stage_out, job)
                for job in self._ready(submitting):
                    # the token marks the scheduler job, so a submission whose answer
                    # was lost (connection or process died) can be found again
                    changes = dict(state='SUBMITTING', job_id=None,
                                   submit_token=secrets.token_hex(8))
                    if job.placements:
                        changes.update(self._place(job))
                    self._save(job, **changes)
                    submitting[job.name] = pool.submit(self._submit, job)
                if not submitting and not finishing and not self.monitor.active():
                    unfinished = [j.name for j in self.jobs.values() if not self._completed(j)]
                    if unfinished:      # cannot happen with a checked graph
                        raise CroupierError(f'jobs left unfinished: {unfinished}')
                    return self.summary()
                wake = self.monitor.next_wakeup()
                timeout = 1.0 if wake is None else max(0.0, min(wake - self.clock(), 5.0))
                self._wake.wait(timeout)
                self._wake.clear()
                # a stop request wakes us too
                if self.stop.is_set():
                    continue

    def _resume(self):
        records = [j for j in self.jobs.values() if j.record.get('state')]
        if records and all(self._ended(j) for j in self.jobs.values()):
            # the earlier run ended: run again from scratch, or only what did not complete
            for job in self.jobs.values():
                if self.rerun_failed and self._completed(job):
                    self.events('kept', job, reason='completed in an earlier run')
                elif self.rerun_failed:
                    if job.record.get('job_id'):
                        self._archive_attempt(job)
                    self._reset(job, keep=('attempts',))
                    self.events('rerun', job, reason='did not complete in the earlier run')
                else:
                    self._reset(job, keep=())
            return
        for job in self.jobs.values():
            # a placed job is followed where it was submitted
            for candidate in job.placements:
                if candidate.cluster.key == job.record.get('cluster'):
                    job.use(candidate)
            state = job.state
            job_id = job.record.get('job_id')
            if state == JobState.COMPLETED.value:
                self.events('kept', job, reason='completed in an earlier run')
                continue
            if job_id and state not in (None, SKIPPED) and \
                    state not in {s.value for s in JobState if s.terminal}:
                # submitted by an earlier run that did not see it end: re-attach by id
                self.monitor.track(job.cluster, job_id, job.name)
                self.events('reattached', job, job_id=job_id)
            elif state == 'SUBMITTING':
                # the earlier run died during the submission: did it reach the scheduler?
                if not self._recover_submission(job, 'an earlier run stopped while '
                                                     'submitting it'):
                    raise CroupierError(
                        f"job '{job.name}': an earlier run was submitting it when it stopped, "
                        f"and {job.cluster.key} cannot tell whether it got the job; check "
                        f"the scheduler's queue before running again")
            else:
                self._reset(job)

    def _ended(self, job):
        """The job's part of an earlier run is over (a completed job only once
        its outputs moved)."""
        if job.state == JobState.COMPLETED.value:
            return self._completed(job)
        return job.state in ENDED_STATES

    def _ready(self, submitting):
        tracked = {j.name for j in self.monitor.active()}
        ready = []
        for job in self.jobs.values():
            if job.name in submitting or job.name in tracked or job.record.get('job_id') \
                    or job.state is not None:
                continue
            if all(self._completed(self.jobs[p]) for p in job.parents):
                ready.append(job)
        return ready

    def _submit(self, job):
        spec = job.spec
        if hasattr(spec, 'submit_token'):
            spec = dataclasses.replace(spec, submit_token=job.record.get('submit_token'))
        try:
            if job.stage_in:
                try:
                    done = run_all(job.stage_in)
                except TransferError as exc:
                    raise InputsFailed(str(exc)) from None
                self.events('inputs', job, reason='; '.join(done))
            submitted = job.cluster.submit(spec, job.workdir)
        finally:
            self._wake.set()
        return submitted

    def _place(self, job):
        """Choose the job's infrastructure from live queue figures; the record
        keeps the choice and its reason."""
        candidate, reason, table = choose(job.placements, self.figures,
                                          exclude=job.record.get('tried') or ())
        job.use(candidate)
        self.events('placed', job, reason=reason)
        return dict(cluster=candidate.cluster.key,
                    placement={'chosen': candidate.name, 'reason': reason, 'figures': table})

    def _outputs_ready(self, finishing):
        return [job for job in self.jobs.values()
                if job.stage_out and job.name not in finishing
                and job.state == JobState.COMPLETED.value
                and job.record.get('outputs') in (None, OUTPUTS_PENDING)]

    def _stage_out(self, job):
        try:
            return run_all(job.stage_out)
        finally:
            self._wake.set()

    def _collect_outputs(self, finishing):
        failures = []
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
                status = JobStatus(job.record.get('job_id') or '', JobState.FAILED,
                                   raw_state='OUTPUTS_FAILED',
                                   reason=f'the job completed, but moving its outputs '
                                          f'failed: {exc}')
                self._save(job, state=JobState.FAILED.value, raw_state=status.raw_state,
                           reason=status.reason, outputs=OUTPUTS_FAILED)
                failures.append((job, status, ''))
                continue
            self._save(job, outputs=OUTPUTS_DONE)
            self.events('outputs', job, reason='; '.join(done))
        return failures

    def _recover_submission(self, job, why):
        """After a submission whose answer never came back: follow the job the
        scheduler holds under the record's token, or clear the record so the job
        is submitted again when the scheduler has none. False when the scheduler
        cannot be asked (then whether it got the job is unknown)."""
        token = job.record.get('submit_token')
        if not token or not job.cluster.scheduler.finds_lost_submissions:
            return False
        try:
            found = job.cluster.find_submitted(token)
        except CroupierError as exc:
            log.warning('%s: looking up job %s by its token failed: %s', job.cluster.key,
                        job.name, exc)
            return False
        if found:
            stdout, stderr = job.cluster.scheduler.output_paths(job.spec, found, job.workdir)
            self._follow(job, found, stdout, stderr,
                         job.cluster.script_path(job.spec, job.workdir), time.time())
            self.events('reattached', job, job_id=found, reason=f'{why}; found by its token')
        else:
            self.events('resubmitting', job, reason=f'{why}; the scheduler has no job with '
                                                    f'its token')
            job.record.clear()
        return True

    def _follow(self, job, job_id, stdout, stderr, script, submitted_at):
        """Store the job's scheduler id and start monitoring it."""
        self._save(job, job_id=job_id, state=JobState.PENDING.value, stdout=stdout,
                   stderr=stderr, script=script, submitted_at=submitted_at,
                   cluster=job.cluster.key)
        self.monitor.track(job.cluster, job_id, job.name,
                           JobStatus(job_id, JobState.PENDING, raw_state='SUBMITTED'))

    def _collect_submissions(self, submitting):
        failures = []
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
                self._save(job, state=JobState.FAILED.value, raw_state=status.raw_state,
                           reason=status.reason)
                failures.append((job, status, ''))
                continue
            except CommandInterrupted as exc:
                # the connection broke during the submission: ask the scheduler
                if not self._recover_submission(job, str(exc)):
                    failures.append((job, JobStatus('', JobState.UNKNOWN, reason=str(exc)),
                                     ''))
                    self._save(job, state=JobState.UNKNOWN.value, reason=str(exc))
                continue
            except CroupierError as exc:
                status = JobStatus('', JobState.FAILED, raw_state='NOT_SUBMITTED',
                                   reason=f'submission failed: {exc}')
                self._save(job, state=JobState.FAILED.value, reason=status.reason)
                failures.append((job, status, ''))
                continue
            self._follow(job, sub.job_id, sub.stdout, sub.stderr, sub.script_path,
                         sub.submitted_at)
            self.events('submitted', job, job_id=sub.job_id)
        return failures

    def _wait_submissions(self, submitting, finishing):
        """Let running submissions and output transfers end, and record them."""
        for future in list(submitting.values()) + list(finishing.values()):
            try:
                future.result()
            except Exception:       # recorded by the collectors below
                pass
        return self._collect_submissions(submitting) + self._collect_outputs(finishing)

    def _on_change(self, change):
        job = self.jobs[change.job.name]
        new = change.new
        changes = dict(state=new.state.value, raw_state=new.raw_state, reason=new.reason,
                       exit_code=new.exit_code)
        if new.terminal:
            changes['ended_at'] = time.time()
        elif new.state is JobState.RUNNING and not job.record.get('started_at'):
            # the end of its queue wait: the portal's timeline splits wait and run here
            changes['started_at'] = time.time()
        if new.state is JobState.COMPLETED and job.stage_out:
            changes['outputs'] = OUTPUTS_PENDING
        self._save(job, **changes)
        self.events('state', job, status=new)

    def _queue_timeouts(self):
        """Cancel and fail the jobs pending longer than their max_time_in_queue."""
        now = time.time()
        late = {}
        for job in self.jobs.values():
            limit = job.policy.max_time_in_queue
            if limit and job.state == JobState.PENDING.value and job.record.get('job_id') and \
                    now - (job.record.get('submitted_at') or now) > limit:
                late.setdefault(job.cluster.key, (job.cluster, []))[1].append(job)
        for cluster, jobs in late.values():
            try:
                cluster.cancel([j.record['job_id'] for j in jobs])
            except CroupierError as exc:
                log.warning('%s: cancelling jobs late in the queue failed: %s', cluster.key, exc)
                continue
            for job in jobs:
                self.monitor.untrack(cluster.key, job.record['job_id'])
                waited = f'still pending after {job.policy.max_time_in_queue:g} s ' \
                         f'(max_time_in_queue)'
                tried = list(job.record.get('tried') or []) + [cluster.key]
                if len(tried) < len(job.placements):
                    # another infrastructure may start it sooner
                    self._save(job, state=MOVED, raw_state='QUEUE_TIMEOUT', ended_at=now,
                               reason=f'{waited}: cancelled, to go to another infrastructure')
                    self._archive_attempt(job)
                    job.record['tried'] = tried
                    self._reset(job)
                    self.events('moved', job, reason=f'{waited} on {cluster.key}')
                    continue
                self._save(job, state=JobState.FAILED.value, raw_state='QUEUE_TIMEOUT',
                           reason=f'{waited}: cancelled', ended_at=now)
                self.events('cancelled', job, reason='waited too long in the queue')

    def _not_retried(self, failures):
        """The failures that end the run: the others get another attempt."""
        out, seen = [], set()
        for job, status, tail in failures:
            if job.name in seen:
                continue
            seen.add(job.name)
            if job.state != SKIPPED and job.policy.retries(job.record):
                done = len(job.record.get('attempts') or []) + 1
                self.events('retrying', job, reason=f'attempt {done} ended '
                                                    f'{status.describe()}; attempt {done + 1} of '
                                                    f'{job.policy.max_retries + 1} follows')
                self._archive_attempt(job)
                self._reset(job)
                continue
            out.append((job, status, tail))
        return out

    def _failed_jobs(self):
        out = []
        for job in self.jobs.values():
            state = job.state
            # a submitted job the scheduler skipped (deleted it when a job it
            # depends on failed) fails the run as well
            skipped = state == SKIPPED and job.record.get('job_id')
            if (state in (JobState.FAILED.value, JobState.CANCELLED.value,
                          JobState.TIMEOUT.value) or skipped) and not job.record.get('reported'):
                out.append((job, status_from_record(job.record.get('job_id') or '', job.record),
                            None))
        return out

    def _fail(self, failures):
        self._cancel_live('another job failed')
        for job in self.jobs.values():
            if job.state is None:
                self._save(job, state=SKIPPED, reason='a job it depends on failed')
                self.events('skipped', job)
        detailed = []
        seen = set()
        for job, status, tail in failures:
            if job.name in seen:
                continue
            seen.add(job.name)
            if tail is None:
                tail = self._stderr_tail(job)
            self._save(job, reported=True)
            detailed.append((job, status, tail))
        raise JobFailed(detailed)

    def _stderr_tail(self, job):
        try:
            return job.cluster.tail(job.record.get('stderr'), 20)
        except CroupierError:
            return ''

    def _cancel_live(self, why):
        live = [t for t in self.monitor.active()]
        by_cluster = {}
        for tracked in live:
            by_cluster.setdefault(tracked.cluster.key, (tracked.cluster, []))[1].append(tracked)
        for cluster, tracked in by_cluster.values():
            try:
                cluster.cancel([t.job_id for t in tracked])
            except CroupierError as exc:
                log.warning('%s: cancelling jobs failed: %s', cluster.key, exc)
            for t in tracked:
                job = self.jobs[t.name]
                self._save(job, state=JobState.CANCELLED.value, reason=f'cancelled: {why}',
                           reported=True, ended_at=time.time())
                self.monitor.untrack(cluster.key, t.job_id)
                self.events('cancelled', job, reason=why)

    def summary(self):
        rows = []
        for job in self.jobs.values():
            r = job.record
            duration = None
            if r.get('submitted_at') and r.get('ended_at'):
                duration = r['ended_at'] - r['submitted_at']
            rows.append(dict(name=job.name, cluster=job.cluster.key, job_id=r.get('job_id'),
                             state=r.get('state'), exit_code=r.get('exit_code'),
                             duration=duration, attempts=len(r.get('attempts') or []) + 1))
        return rows
