"""The engine's decisions, as pure functions of the plan and the records.

Each function looks at the planned jobs (their parents, policies, transfers,
placements) and their records, and returns what should be done: the actions
below. Nothing here talks to an infrastructure, stores a record or reads a
clock: the engine's loop (loop.py) carries the actions out, and the unit tests
drive these functions with scripted records and a scripted time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

from ..model import JobState, JobStatus
from .plan import PlannedJob
from .records import Outputs

# states of a job whose run is over (the run they belong to ended)
ENDED_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED,
                          JobState.TIMEOUT, JobState.UNKNOWN, JobState.SKIPPED})
# a failure the run reports (a skipped job counts when the scheduler dropped it)
FAILED_STATES = frozenset({JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT})


# -- actions -------------------------------------------------------------------

@dataclass(frozen=True)
class Submit:
    """Submit ``job``; with ``after`` (scheduler job ids of its parents on the
    same infrastructure), the scheduler starts it once they completed."""
    job: PlannedJob
    after: tuple = ()


@dataclass(frozen=True)
class StageOut:
    """Move the outputs of ``job``, which completed."""
    job: PlannedJob


@dataclass(frozen=True)
class Resume:
    """What to do with a job recorded by an earlier run: ``how`` is 'keep'
    (completed), 'reattach' (follow its scheduler job), 'recover' (find the
    submission whose answer was lost), 'reset' (forget the attempt, keep its
    history), 'rerun' (archive it and run again) or 'fresh' (forget all)."""
    job: PlannedJob
    how: str


@dataclass(frozen=True)
class QueueTimeout:
    """Cancel ``job``, pending longer than its max_time_in_queue; ``move``
    sends it to another of its infrastructures instead of failing it."""
    job: PlannedJob
    move: bool


@dataclass(frozen=True)
class Retry:
    """Submit ``job`` again: its policy allows another attempt."""
    job: PlannedJob
    reason: str


@dataclass(frozen=True)
class Failure:
    """``job`` ended the run with ``status``; ``tail`` is its stderr's end
    (None: to be read)."""
    job: PlannedJob
    status: JobStatus
    tail: Optional[str] = None


# -- what the records say --------------------------------------------------------

def completed(job: PlannedJob) -> bool:
    """Completed, and its outputs moved: its dependants may start."""
    return job.state is JobState.COMPLETED and \
        (not job.stage_out or job.record.outputs is Outputs.DONE)


def ended(job: PlannedJob) -> bool:
    """The job's part of an earlier run is over (a completed job only once its
    outputs moved)."""
    if job.state is JobState.COMPLETED:
        return completed(job)
    return job.state in ENDED_STATES


def live(job: PlannedJob) -> bool:
    """Submitted, and not ended yet as far as the record knows."""
    return bool(job.record.job_id) and job.state is not None and \
        job.state is not JobState.SKIPPED and not job.state.terminal


# -- decisions -------------------------------------------------------------------

def resume(jobs: Iterable[PlannedJob], rerun_failed: bool) -> list[Resume]:
    """What to do with each job's record at the start of a run (Resume actions)."""
    jobs = list(jobs)
    if any(j.state for j in jobs) and all(ended(j) for j in jobs):
        # the earlier run ended: run again from scratch, or only what did not complete
        if not rerun_failed:
            return [Resume(j, 'fresh') for j in jobs]
        return [Resume(j, 'keep' if completed(j) else 'rerun') for j in jobs]
    out = []
    for job in jobs:
        if job.state is JobState.COMPLETED:
            out.append(Resume(job, 'keep'))
        elif live(job):
            # submitted by an earlier run that did not see it end: follow it by id
            out.append(Resume(job, 'reattach'))
        elif job.state is JobState.SUBMITTING:
            # the earlier run died during the submission: did it reach the scheduler?
            out.append(Resume(job, 'recover'))
        else:
            out.append(Resume(job, 'reset'))
    return out


def scheduler_carries(job: PlannedJob, parent: PlannedJob) -> bool:
    """Whether ``job`` can be submitted now to wait, in the scheduler, for
    ``parent``: the parent runs (so the queue holds one level of waiting
    dependants beyond what runs, not the whole DAG, and a parent still pending
    can still be moved or timed out), on the same infrastructure, whose
    scheduler can hold a job for it; nothing the engine must do between them
    (an output transfer, a placement still to decide) and nothing that could
    run the parent again (retries). A job with a max_time_in_queue waits for
    its parents in the engine: its time in the queue counts from a submission
    its parents allow to start."""
    return (parent.state is JobState.RUNNING
            and bool(parent.record.job_id)
            and parent.cluster.name == job.cluster.name
            and not parent.stage_out and not parent.placements
            and parent.policy.max_retries == 0
            and not job.placements and not job.policy.max_time_in_queue
            and job.cluster.holds_for(parent.spec))


def ready(jobs: Mapping[str, PlannedJob], busy: Iterable[str]) -> list[Submit]:
    """The jobs to submit now (Submit actions): not submitted yet, not ``busy``
    (being submitted or followed), and every parent either completed or one
    the scheduler can make it wait for (scheduler_carries: then ``after``
    lists those parents' scheduler job ids)."""
    busy = set(busy)
    out = []
    for job in jobs.values():
        if job.name in busy or job.record.job_id or job.state is not None:
            continue
        waiting = [jobs[p] for p in job.parents if not completed(jobs[p])]
        if all(scheduler_carries(job, parent) for parent in waiting):
            out.append(Submit(job, tuple(p.record.job_id for p in waiting)))
    return out


# what the scheduler says of a job waiting for its parents, or dropped for them
_HELD_STATES = frozenset({JobState.PENDING, JobState.CANCELLED, JobState.SKIPPED})


def held(jobs: Mapping[str, PlannedJob]) -> list[PlannedJob]:
    """The submitted jobs whose parents have not all completed (as far as the
    records know) and that did not start: they wait in the scheduler for
    them, or were dropped by it because a parent failed."""
    return [job for job in jobs.values()
            if job.record.job_id and job.state in _HELD_STATES
            and any(jobs[p].state is not JobState.COMPLETED for p in job.parents)]


def outputs_ready(jobs: Mapping[str, PlannedJob], finishing: Iterable[str]) -> list[StageOut]:
    """The completed jobs whose outputs are to move now (StageOut actions)."""
    finishing = set(finishing)
    return [StageOut(job) for job in jobs.values()
            if job.stage_out and job.name not in finishing
            and job.state is JobState.COMPLETED
            and job.record.outputs in (None, Outputs.PENDING)]


def queue_timeouts(jobs: Mapping[str, PlannedJob], now: float) -> list[QueueTimeout]:
    """The pending jobs that waited longer than their max_time_in_queue at
    ``now`` (wall-clock seconds), as QueueTimeout actions."""
    out = []
    for job in jobs.values():
        limit = job.policy.max_time_in_queue
        record = job.record
        if limit and job.state is JobState.PENDING and record.job_id and \
                now - (record.submitted_at or now) > limit:
            tried = len(record.tried) + 1
            out.append(QueueTimeout(job, move=tried < len(job.placements)))
    return out


def failed(jobs: Mapping[str, PlannedJob]) -> list[Failure]:
    """The jobs whose records say they failed and that were not reported yet."""
    out = []
    waiting = {job.name for job in held(jobs)}
    for job in jobs.values():
        if job.name in waiting:
            # its fate is its parents': dropped by the scheduler when one
            # failed (that parent is the failure), or still to start
            continue
        # a submitted job the scheduler skipped (deleted it when a job it
        # depends on failed: a dependency the engine did not set) fails the run
        skipped = job.state is JobState.SKIPPED and job.record.job_id
        if (job.state in FAILED_STATES or skipped) and not job.record.reported:
            out.append(Failure(job, job.record.status()))
    return out


def retry_or_fail(failures: Iterable[Failure]) -> tuple[list[Retry], list[Failure]]:
    """Split ``failures`` into Retry actions (the policy allows another attempt)
    and the Failures that end the run; one entry per job."""
    retries: list[Retry] = []
    fatal: list[Failure] = []
    seen: set[str] = set()
    for failure in failures:
        job = failure.job
        if job.name in seen:
            continue
        seen.add(job.name)
        if job.state is not JobState.SKIPPED and job.policy.retries(job.record):
            done = len(job.record.attempts) + 1
            retries.append(Retry(job, f'attempt {done} ended {failure.status.describe()}; '
                                      f'attempt {done + 1} of {job.policy.max_retries + 1} '
                                      f'follows'))
        else:
            fatal.append(failure)
    return retries, fatal


def never_submitted(jobs: Mapping[str, PlannedJob]) -> list[PlannedJob]:
    """The jobs without a state: skipped when the run ends early."""
    return [job for job in jobs.values() if job.state is None]


def check_graph(jobs: Mapping[str, PlannedJob]) -> Optional[str]:
    """What is wrong with the jobs' dependencies (an unknown parent, a cycle),
    or None."""
    for job in jobs.values():
        for parent in job.parents:
            if parent not in jobs:
                return f"job '{job.name}' depends on unknown job '{parent}'"
    seen, done = set(), set()

    def visit(name: str, path: list[str]) -> Optional[str]:
        if name in done:
            return None
        if name in seen:
            return 'job dependencies form a cycle: ' + ' -> '.join(path)
        seen.add(name)
        for parent in jobs[name].parents:
            problem = visit(parent, path + [parent])
            if problem:
                return problem
        done.add(name)
        return None
    for name in jobs:
        problem = visit(name, [name])
        if problem:
            return problem
    return None
