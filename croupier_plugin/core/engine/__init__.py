"""The run_jobs engine: records (records.py), the plan it is given (plan.py),
its decisions as pure functions (decisions.py) and the loop that carries them
out (loop.py)."""

from .decisions import ENDED_STATES
from .loop import Engine
from .plan import (RETRY_STATES, InputsFailed, JobFailed, JobPolicy, PlannedJob, RunCancelled,
                   status_from_record)
from .records import Attempt, JobRecord, Outputs

__all__ = ['ENDED_STATES', 'RETRY_STATES', 'Attempt', 'Engine', 'InputsFailed', 'JobFailed',
           'JobPolicy', 'JobRecord', 'Outputs', 'PlannedJob', 'RunCancelled',
           'status_from_record']
