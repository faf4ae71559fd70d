"""What the engine is given: the planned jobs, their policies, and the errors
it ends a run with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from ..errors import CroupierError
from ..model import JobSpec, JobState, JobStatus
from .records import JobRecord, as_record

if TYPE_CHECKING:
    from ..schedulers.pycompss import PycompssJob
    from ..cluster import Cluster
    from ..data import Transfer
    from ..placement import Candidate

# raw states a job may be retried on (retry_on), besides the normalized ones
RETRY_STATES = ('FAILED', 'TIMEOUT', 'NODE_FAIL', 'BOOT_FAIL', 'PREEMPTED', 'OUT_OF_MEMORY',
                'DEADLINE', 'QUEUE_TIMEOUT', 'NOT_SUBMITTED', 'OUTPUTS_FAILED')


@dataclass(frozen=True)
class JobPolicy:
    """How the engine treats a job beyond submitting it: resubmit it up to
    ``max_retries`` times after a failure (only for the states in ``retry_on``
    when given), and cancel it when it waited in the queue longer than
    ``max_time_in_queue`` seconds."""
    max_retries: int = 0
    retry_on: frozenset[str] = frozenset()
    max_time_in_queue: Optional[float] = None

    def retries(self, record: Any) -> bool:
        """Whether a job that ended with ``record`` (a JobRecord or its stored
        form) gets another attempt."""
        record = as_record(record)
        if record.retries_used() >= self.max_retries:
            return False
        if record.state is JobState.UNKNOWN:
            return False        # it may still run: a new attempt could run it twice
        if not self.retry_on:
            # every failure, but not a cancellation: that was someone's decision
            return record.state is not JobState.CANCELLED
        raw = (record.raw_state or '').split(' ')[0]
        state = record.state.value if record.state else None
        return state in self.retry_on or raw in self.retry_on


@dataclass
class PlannedJob:
    """One job of the run: what to submit where, after which jobs, with which
    transfers and policy; and its record (the run's knowledge of it)."""
    name: str
    spec: JobSpec | PycompssJob
    cluster: Cluster
    workdir: str
    parents: list[str] = field(default_factory=list)
    record: Any = field(default_factory=JobRecord)   # a JobRecord (a mapping is converted)
    stage_in: list[Transfer] = field(default_factory=list)    # run before submission
    stage_out: list[Transfer] = field(default_factory=list)   # run after completion
    policy: JobPolicy = field(default_factory=JobPolicy)
    # several infrastructures (placement.Candidate): the job goes where it is
    # expected to start first; cluster, workdir and spec are then the chosen one's
    placements: list[Candidate] = field(default_factory=list)
    # the bytes of the blueprint file spec.local_script names, uploaded at submission
    script_data: bytes | None = None

    def __post_init__(self) -> None:
        """Records come from runtime properties as mappings: type them once."""
        self.record = as_record(self.record)

    def use(self, candidate: Candidate) -> None:
        """Run the job on ``candidate``'s infrastructure."""
        self.cluster, self.workdir, self.spec = candidate.cluster, candidate.workdir, \
            candidate.spec
        self.script_data = candidate.script_data

    @property
    def state(self) -> Optional[JobState]:
        """The state of the job's current attempt (None before it is submitted)."""
        return self.record.state


class InputsFailed(CroupierError):
    """An input transfer of a job failed: the job was not submitted."""


class JobFailed(CroupierError):
    """The run ended because jobs failed; ``failures`` holds (job, status,
    stderr tail) for each."""

    def __init__(self, failures: list[tuple[PlannedJob, JobStatus, str]]) -> None:
        self.failures = failures
        lines = []
        for job, status, tail in failures:
            line = f"job '{job.name}' ({job.cluster.name} job {job.record.job_id}) " \
                   f"ended {status.describe()}"
            if tail:
                line += f'; last lines of its stderr:\n{tail.rstrip()}'
            lines.append(line)
        super().__init__('\n'.join(lines))


class RunCancelled(CroupierError):
    """The run was cancelled: every live job was cancelled."""


def status_from_record(job_id: str, record: Any) -> JobStatus:
    """The last known status of a job from its record (or its stored form)."""
    return as_record(record).status()._replace(job_id=job_id)
