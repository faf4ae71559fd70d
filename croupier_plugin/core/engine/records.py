"""A job's record: what the engine knows about one job of a run, typed.

The record is stored as the job's runtime properties. Their names and values
are what users see (``croupier status``) and what a later run resumes from, so
``JobRecord.to_properties`` and ``JobRecord.from_properties`` are the only
places that know them, and they keep the stored form exactly as it was:
plain strings for the states, plain dicts for the attempts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Optional

from ..model import JobState, JobStatus


class Outputs(str, enum.Enum):
    """Where the output transfers of a completed job are."""
    PENDING = 'PENDING'
    DONE = 'DONE'
    FAILED = 'FAILED'


# the runtime-property names that differ from the record's field names: users
# (and earlier versions' records) know the infrastructure's name as ``cluster``
STORED_AS = {'infrastructure': 'cluster'}
FIELD_OF = {stored: name for name, stored in STORED_AS.items()}


def _stored(values: dict[str, Any]) -> dict[str, Any]:
    """A record's values under their runtime-property names."""
    return {STORED_AS.get(name, name): value for name, value in values.items()}


def _fields(props: Mapping[str, Any]) -> dict[str, Any]:
    """Stored values under the record's field names."""
    return {FIELD_OF.get(name, name): value for name, value in (props or {}).items()}


def _state(value: Any) -> Optional[JobState]:
    """The stored state as a JobState (None when the job has no state yet)."""
    if value is None or value == '':
        return None
    if isinstance(value, JobState):
        return value
    try:
        return JobState(str(value))
    except ValueError:
        # a state this version does not know: the job's fate is not known either
        return JobState.UNKNOWN


@dataclass
class Attempt:
    """What an earlier attempt of the job left: where and how it ended."""
    job_id: Optional[str] = None
    infrastructure: Optional[str] = None       # its name; stored as ``cluster``
    state: Optional[JobState] = None
    raw_state: Optional[str] = None
    reason: Optional[str] = None
    exit_code: Optional[int] = None
    submitted_at: Optional[float] = None
    started_at: Optional[float] = None
    ended_at: Optional[float] = None
    simulated: Optional[bool] = None
    accounting: Optional[dict[str, Any]] = None

    def to_properties(self) -> dict[str, Any]:
        """The stored form: only the values that are set, states as strings."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = value.value if isinstance(value, JobState) else value
        return _stored(out)

    @classmethod
    def from_properties(cls, props: Mapping[str, Any]) -> 'Attempt':
        """An attempt read back from its stored form (unknown names ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in _fields(props).items() if k in known}
        values['state'] = _state(values.get('state'))
        return cls(**values)


@dataclass
class JobRecord:
    """Everything the engine records about a job's current attempt, plus the
    history of its earlier attempts and the infrastructures it left."""
    job_id: Optional[str] = None
    state: Optional[JobState] = None
    raw_state: Optional[str] = None
    reason: Optional[str] = None
    exit_code: Optional[int] = None
    stdout: Optional[str] = None
    stderr: Optional[str] = None
    script: Optional[str] = None
    submitted_at: Optional[float] = None
    started_at: Optional[float] = None     # first seen RUNNING: the end of its queue wait
    ended_at: Optional[float] = None
    infrastructure: Optional[str] = None   # its name; stored as ``cluster``
    reported: Optional[bool] = None
    submit_token: Optional[str] = None
    outputs: Optional[Outputs] = None
    attempts: list[Attempt] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)        # infrastructure names left behind
    placement: Optional[dict[str, Any]] = None
    # a dry run (simulate: true): nothing was sent; rendered_script is the
    # batch script the job would have been submitted with
    simulated: Optional[bool] = None
    rendered_script: Optional[str] = None
    # the scheduler's figures of the ended job (see model.JobFigures.to_properties)
    accounting: Optional[dict[str, Any]] = None

    @classmethod
    def property_names(cls) -> tuple[str, ...]:
        """The runtime-property names a record owns on its node instance."""
        return tuple(STORED_AS.get(f.name, f.name) for f in fields(cls))

    @classmethod
    def from_properties(cls, props: Optional[Mapping[str, Any]]) -> 'JobRecord':
        """The record stored in ``props`` (a job's runtime properties, or a
        record's stored form); other properties are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in _fields(props or {}).items()
                  if k in known and v is not None}
        values['state'] = _state(values.get('state'))
        if values.get('outputs') is not None:
            values['outputs'] = Outputs(values['outputs'])
        values['attempts'] = [Attempt.from_properties(a) for a in values.get('attempts') or []]
        values['tried'] = list(values.get('tried') or [])
        return cls(**values)

    def to_properties(self) -> dict[str, Any]:
        """The stored form: the values that are set, states as strings, empty
        lists left out (as the record dicts of earlier versions stored them)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or (isinstance(value, list) and not value):
                continue
            if f.name == 'attempts':
                value = [a.to_properties() for a in value]
            elif isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, (list, dict)):
                value = type(value)(value)
            out[f.name] = value
        return _stored(out)

    # -- what it says ----------------------------------------------------------

    def status(self) -> JobStatus:
        """The job's last known status, as the monitor would report it."""
        return JobStatus(self.job_id or '', self.state or JobState.UNKNOWN,
                         raw_state=self.raw_state or '', reason=self.reason or '',
                         exit_code=self.exit_code)

    def archive_attempt(self) -> None:
        """Keep the current attempt in the history (before it is forgotten)."""
        self.attempts.append(Attempt(self.job_id, self.infrastructure, self.state, self.raw_state,
                                     self.reason, self.exit_code, self.submitted_at,
                                     self.started_at, self.ended_at, self.simulated,
                                     self.accounting))

    def reset(self, keep_history: bool = True, keep_tried: bool = True) -> None:
        """Forget the current attempt so the job is submitted again, keeping
        (when asked) the earlier attempts and the infrastructures it left."""
        attempts = self.attempts if keep_history else []
        tried = self.tried if keep_tried else []
        for f in fields(self):
            setattr(self, f.name, None)
        self.attempts, self.tried = attempts, tried

    def retries_used(self) -> int:
        """Earlier attempts that count as retries (a move to another
        infrastructure does not)."""
        return sum(1 for a in self.attempts if a.state is not JobState.MOVED)


def as_record(record: Any) -> JobRecord:
    """A JobRecord from a record or from its stored form (a mapping)."""
    if isinstance(record, JobRecord):
        return record
    return JobRecord.from_properties(record)
