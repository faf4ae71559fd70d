"""Job model: the normalized state of a job and the validated job specification.

Every scheduler maps its raw states onto ``JobState``; every blueprint's
``job_options`` become a ``JobSpec`` through ``JobSpec.from_options``, which
refuses bad values with a ``ConfigError`` naming the property and the value.
"""

import dataclasses
import enum
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar, overload

from .errors import ConfigError


class JobState(str, enum.Enum):
    """A job's state, the same for every scheduler (each maps its raw states onto it)."""

    PENDING = 'PENDING'
    RUNNING = 'RUNNING'
    COMPLETED = 'COMPLETED'
    FAILED = 'FAILED'
    CANCELLED = 'CANCELLED'
    TIMEOUT = 'TIMEOUT'
    UNKNOWN = 'UNKNOWN'
    # never ran because a job it needs did not end as required (the engine does
    # not submit such jobs; a scheduler that deleted one for it says so too)
    SKIPPED = 'SKIPPED'
    # states only the engine gives a job's record: being submitted (the answer
    # has not come back yet), and an attempt cancelled to go to another
    # infrastructure
    SUBMITTING = 'SUBMITTING'
    MOVED = 'MOVED'

    @property
    def terminal(self) -> bool:
        """Whether the job has ended (no later state will come)."""
        return self in TERMINAL_STATES

    @property
    def successful(self) -> bool:
        """Whether the job ended as COMPLETED."""
        return self is JobState.COMPLETED

    def __str__(self) -> str:
        return self.value


TERMINAL_STATES = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT,
     JobState.SKIPPED})


class JobStatus(NamedTuple):
    """What the scheduler says about one job at one moment (a tuple: the monitor
    makes one per job per poll, so it must be cheap to build)."""
    job_id: str
    state: JobState
    raw_state: str = ''
    reason: str = ''
    exit_code: int | None = None
    signal: int | None = None
    source: str = ''

    @property
    def terminal(self) -> bool:
        """Whether the job has ended, by its normalized state."""
        return self.state.terminal

    def describe(self) -> str:
        """The state for a log line or a job's reason: the normalized state, the raw
        one when it differs, the exit code, signal and scheduler's reason."""
        parts = [f'{self.state.value}']
        if self.raw_state and self.raw_state != self.state.value:
            parts.append(f'({self.raw_state})')
        if self.exit_code is not None:
            parts.append(f'exit code {self.exit_code}')
        if self.signal:
            parts.append(f'signal {self.signal}')
        if self.reason and self.reason not in ('None', '(null)'):
            parts.append(f'reason: {self.reason}')
        return ' '.join(parts)


class JobTimes(NamedTuple):
    """How long a job waited and ran, in seconds, as the scheduler tells it
    (None where it does not)."""
    job_id: str
    queued: float | None = None      # submission to start, or to now while pending
    walltime: float | None = None    # run time so far, or in all once it ended


class PartitionFigures(NamedTuple):
    """One partition (SLURM) or queue (PBS) at one moment."""
    name: str
    available: bool = True
    nodes_total: int = 0
    nodes_allocated: int = 0
    nodes_idle: int = 0
    cores_total: int = 0
    cores_allocated: int = 0
    cores_idle: int = 0
    jobs_pending: int = 0
    jobs_running: int = 0
    default: bool = False       # where jobs that name no partition go


# --------------------------------------------------------------------------
# value checks shared by the job spec and the infrastructure settings

_ENV_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
# Values that end up in scheduler directives (#SBATCH/#PBS lines) are parsed
# by the scheduler, not by a shell, so they cannot be quoted: keep them plain.
_DIRECTIVE_WORD = re.compile(r'[A-Za-z0-9_.+\-@%:,=/]+')
# 15 digits hold any real memory size in any unit and keep the number sane
_MEMORY = re.compile(r'[0-9]{1,15}[KMGT]?B?', re.IGNORECASE)
_MAIL_TYPES = {'NONE', 'BEGIN', 'END', 'FAIL', 'REQUEUE', 'ALL', 'INVALID_DEPEND',
               'STAGE_OUT', 'TIME_LIMIT', 'TIME_LIMIT_90', 'TIME_LIMIT_80',
               'TIME_LIMIT_50', 'ARRAY_TASKS'}
_ARRAY = re.compile(r'[0-9]+(-[0-9]+(:[0-9]+)?)?(,[0-9]+(-[0-9]+(:[0-9]+)?)?)*(%[0-9]+)?')
# counts (nodes, tasks, array elements...) are 32-bit fields in SLURM and PBS
MAX_COUNT = 2 ** 31 - 1
# no site runs a job (or queues one) for longer than a year; beyond it a value is a typo
MAX_DURATION = 365 * 86400
# a directive word longer than this is a mistake, and may exceed a scheduler's line limit
MAX_WORD = 1024
_TIME_FORMS = [
    # SLURM's accepted time formats, in seconds
    (re.compile(r'([0-9]+)'), lambda m: int(m[1]) * 60),
    (re.compile(r'([0-9]+):([0-9]{1,2})'), lambda m: int(m[1]) * 60 + int(m[2])),
    (re.compile(r'([0-9]+):([0-9]{1,2}):([0-9]{1,2})'),
     lambda m: int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3])),
    (re.compile(r'([0-9]+)-([0-9]+)'), lambda m: int(m[1]) * 86400 + int(m[2]) * 3600),
    (re.compile(r'([0-9]+)-([0-9]+):([0-9]{1,2})'),
     lambda m: int(m[1]) * 86400 + int(m[2]) * 3600 + int(m[3]) * 60),
    (re.compile(r'([0-9]+)-([0-9]+):([0-9]{1,2}):([0-9]{1,2})'),
     lambda m: int(m[1]) * 86400 + int(m[2]) * 3600 + int(m[3]) * 60 + int(m[4])),
]


def has_line_break(text: str) -> bool:
    """Whether ``text`` holds a character that ends a line (or a NUL): such a
    value would break the directive or command line it goes into."""
    return any(c in text for c in '\n\r\0')


def parse_duration(prop: str, value: object) -> int:
    """Seconds from a SLURM-style time ('30', '10:00', '1:00:00', '2-00:00:00').

    A bare integer means minutes, as in SLURM's --time.
    """
    if isinstance(value, bool):
        raise ConfigError(prop, value, 'must be a time such as "30" (minutes), '
                                       '"01:30:00" or "1-12:00:00"')
    if isinstance(value, int):
        if value <= 0:
            raise ConfigError(prop, value, 'must be a positive number of minutes')
        if value * 60 > MAX_DURATION:
            raise ConfigError(prop, value, f'must be at most {MAX_DURATION // 60} minutes '
                                           f'(365 days)')
        return value * 60
    if isinstance(value, str) and not has_line_break(value):
        text = value.strip()
        for pattern, seconds in _TIME_FORMS:
            m = pattern.fullmatch(text)
            if m:
                total = seconds(m)
                if total <= 0:
                    raise ConfigError(prop, value, 'must be longer than zero')
                if total > MAX_DURATION:
                    raise ConfigError(prop, value, 'must be at most 365 days')
                return total
    raise ConfigError(prop, value, 'must be a time such as "30" (minutes), '
                                   '"01:30:00" or "1-12:00:00"')


def format_hms(seconds: float) -> str:
    """'HH:MM:SS' (hours may exceed 24), accepted by SLURM and PBS alike."""
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return f'{h:02d}:{m:02d}:{s:02d}'


def positive_int(prop: str, value: object, minimum: int = 1,
                 maximum: int = MAX_COUNT) -> int:
    """A count: an integer (or a string of digits) from ``minimum`` to
    ``maximum``; booleans and floats (2.0, NaN, inf) are refused."""
    if isinstance(value, str) and re.fullmatch(r' *[0-9]+ *', value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or \
            not minimum <= value <= maximum:
        raise ConfigError(prop, value, f'must be an integer >= {minimum} and <= {maximum}')
    return value


def directive_word(prop: str, value: object) -> str:
    """A value for a scheduler directive line: plain characters, one line, at most
    MAX_WORD characters (directives cannot be quoted)."""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ConfigError(prop, value, 'must be a string')
    text = str(value)
    if len(text) > MAX_WORD:
        raise ConfigError(prop, f'{text[:40]}... ({len(text)} characters)',
                          f'must be at most {MAX_WORD} characters')
    if not _DIRECTIVE_WORD.fullmatch(text):
        raise ConfigError(prop, value, 'may hold only letters, digits and . _ - + @ % : , = /'
                                       ' (it goes into a scheduler directive)')
    return text


def string_list(prop: str, value: Any) -> list[str]:
    """A list of strings; a single string counts as a one-element list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        out: list[str] = []
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise ConfigError(f'{prop}[{i}]', item, 'must be a string')
            out.append(str(item))
        return out
    raise ConfigError(prop, value, 'must be a list of strings')


def env_mapping(prop: str, value: Any) -> dict[str, str]:
    """Environment variables ({NAME: value}, ["NAME=value"] or [{NAME: value}]) as
    {NAME: string}; a boolean becomes 'true'/'false' and None ''."""
    if value is None:
        return {}
    if isinstance(value, (list, tuple)):
        # also accept ["NAME=value", ...] and [{NAME: value}, ...]
        pairs: dict[Any, Any] = {}
        for i, item in enumerate(value):
            if isinstance(item, dict) and len(item) == 1:
                pairs.update(item)
            elif isinstance(item, str) and '=' in item:
                k, v = item.split('=', 1)
                pairs[k] = v
            else:
                raise ConfigError(f'{prop}[{i}]', item, 'must be "NAME=value" or {NAME: value}')
        value = pairs
    if not isinstance(value, dict):
        raise ConfigError(prop, value, 'must be a mapping of variable names to values')
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not _ENV_NAME.fullmatch(k):
            raise ConfigError(f'{prop}.{k}', k, 'is not a valid environment variable name')
        if isinstance(v, (dict, list)):
            raise ConfigError(f'{prop}.{k}', v, 'must be a string or a number')
        out[k] = '' if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
    return out


_SAFE_NAME = re.compile(r'[^A-Za-z0-9_.\-]')


def scheduler_job_name(name: str) -> str:
    """The job name as given to schedulers: their directives cannot be quoted,
    so anything outside [A-Za-z0-9_.-] becomes '_'. The literal name reaches the
    job in CROUPIER_JOB_NAME; jobs are tracked by id, never by this name."""
    cleaned = _SAFE_NAME.sub('_', name)[:100]
    return cleaned or 'job'


_RESERVED_NAMES = {'PATH', 'HOME', 'USER', 'SHELL', 'IFS', 'PWD', 'LD_LIBRARY_PATH', 'TMPDIR'}
MAX_FACTORY_ELEMENTS = 1000     # SLURM's default MaxArraySize allows indices 0-1000
_PARAMETER_KEYS = {'parameter_sweep': ('name', 'start', 'end', 'step'), 'zip': ('name', 'values')}


# sweep values are written out in full: keep them to what a float holds exactly
MAX_SWEEP_VALUE = 10 ** 15


def _number(prop: str, value: object) -> float:
    """A sweep's start, end or step: a finite number of sane size."""
    # (math.isfinite cannot take an int beyond a float's range: compare its size first)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not abs(value) <= MAX_SWEEP_VALUE or not math.isfinite(value):
        raise ConfigError(prop, value, f'must be a finite number between -{MAX_SWEEP_VALUE} '
                                       f'and {MAX_SWEEP_VALUE}')
    return value


def _sweep_values(prop: str, item: dict[str, Any]) -> list[str]:
    start = _number(f'{prop}.start', item.get('start'))
    end = _number(f'{prop}.end', item.get('end'))
    step = _number(f'{prop}.step', item.get('step', 1))
    if step == 0 or (end - start) * step < 0:
        raise ConfigError(f'{prop}.step', step, f'must go from start ({start}) towards end '
                                                f'({end})')
    steps = (end - start) / step
    # a step too small for its range gives inf, or a count no job can hold
    count = int(steps + 1e-9) + 1 if steps < MAX_FACTORY_ELEMENTS else MAX_FACTORY_ELEMENTS + 1
    if count > MAX_FACTORY_ELEMENTS:
        raise ConfigError(prop, item, f'gives {count} values; at most '
                                      f'{MAX_FACTORY_ELEMENTS} elements per job')
    whole = all(isinstance(v, int) for v in (start, end, step))
    return [str(start + i * step) if whole else f'{start + i * step:.12g}'
            for i in range(count)]


def factory_rows(prop: str, kind: str, raw: Any) -> list[dict[str, str]]:
    """The rows (one {name: value} per element) of a job factory:
    parameter_sweep [{name, start, end, step}, ...] gives the product of the
    ranges (end included when reached); zip [{name, values}, ...] the i-th
    value of each list; repeat N, N empty rows."""
    if kind == 'repeat':
        count = positive_int(prop, raw)
        if count > MAX_FACTORY_ELEMENTS:
            raise ConfigError(prop, raw, f'at most {MAX_FACTORY_ELEMENTS} elements per job')
        return [{} for _ in range(count)]
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ConfigError(prop, raw, 'must be a list of parameters '
                                     f'({", ".join(_PARAMETER_KEYS[kind])})')
    columns: list[tuple[str, list[str]]] = []
    for i, item in enumerate(raw):
        at = f'{prop}[{i}]'
        if not isinstance(item, dict):
            raise ConfigError(at, item,
                              f'must be a mapping with {", ".join(_PARAMETER_KEYS[kind])}')
        for key in item:
            if key not in _PARAMETER_KEYS[kind]:
                raise ConfigError(f'{at}.{key}', item[key],
                                  f'is not one of {", ".join(_PARAMETER_KEYS[kind])}')
        name = item.get('name')
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise ConfigError(f'{at}.name', name, 'must be a variable name (letters, digits, _)')
        if name in _RESERVED_NAMES or name.startswith(('CROUPIER_', 'SLURM_', 'PBS_')):
            raise ConfigError(f'{at}.name', name, 'is a variable the job or its scheduler '
                                                  'needs; choose another name')
        if name in (c[0] for c in columns):
            raise ConfigError(f'{at}.name', name, 'is given twice')
        if kind == 'zip':
            values = item.get('values')
            if not isinstance(values, list) or not values or \
                    any(isinstance(v, (dict, list)) or v is None for v in values):
                raise ConfigError(f'{at}.values', values, 'must be a non-empty list of values')
            if len(values) > MAX_FACTORY_ELEMENTS:
                raise ConfigError(f'{at}.values', f'<{len(values)} values>',
                                  f'at most {MAX_FACTORY_ELEMENTS} elements per job')
            if columns and len(values) != len(columns[0][1]):
                raise ConfigError(f'{at}.values', values,
                                  f'has {len(values)} values, {columns[0][0]} has '
                                  f'{len(columns[0][1])}: zip needs lists of one length')
            columns.append((name, [str(v).lower() if isinstance(v, bool) else str(v)
                                   for v in values]))
        else:
            columns.append((name, _sweep_values(at, item)))
    if kind == 'zip':
        return [{name: values[i] for name, values in columns}
                for i in range(len(columns[0][1]))]
    rows: list[dict[str, str]] = [{}]
    for name, values in columns:
        rows = [dict(row, **{name: v}) for row in rows for v in values]
        if len(rows) > MAX_FACTORY_ELEMENTS:
            raise ConfigError(prop, raw, f'gives more than {MAX_FACTORY_ELEMENTS} '
                                         f'combinations; at most that many elements per job')
    return rows


def job_options_mapping(name: Any, options: Any, prefix: str = 'job_options') -> dict[str, Any]:
    """Checks shared by every kind of job: a name, and options that form a mapping."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError('name', name, 'a job needs a non-empty name')
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ConfigError(prefix, options, 'must be a mapping')
    return options


# --------------------------------------------------------------------------
# the job spec: its parts, and the table its job_options are read by

#: reads one job_options value: (property, value) -> the field's value, or ConfigError
Parser = Callable[[str, Any], Any]


def _single_lines(prop: str, value: Any) -> list[str]:
    """A list of strings each one non-empty line (modules, extra directives)."""
    items = string_list(prop, value)
    for i, item in enumerate(items):
        if has_line_break(item) or not item.strip():
            raise ConfigError(f'{prop}[{i}]', item, 'must be a single line')
    return items


def _path(prop: str, value: Any) -> str:
    """A path of one line (a script on the cluster, or a blueprint file)."""
    if not isinstance(value, str):
        raise ConfigError(prop, value, 'must be a path')
    if '\n' in value or '\0' in value:
        raise ConfigError(prop, value, 'must be a single-line path')
    return value


def _memory(prop: str, value: Any) -> str:
    """A size such as 500M, 4G or 1024 (MB), as SLURM writes it (500M, 4G, 1024)."""
    text = str(value).strip() if not isinstance(value, bool) else ''
    text = '' if has_line_break(str(value)) else text
    if not _MEMORY.fullmatch(text):
        raise ConfigError(prop, value, 'must be a size such as 500M, 4G or 1024 (MB)')
    return text.upper().rstrip('B') if text[-1:].isalpha() else text


def _mail_type(prop: str, value: Any) -> str:
    """SLURM mail types, comma-separated, upper case."""
    types = [t.strip().upper() for t in str(value).split(',')]
    bad = [t for t in types if t not in _MAIL_TYPES]
    if has_line_break(str(value)):
        raise ConfigError(prop, value, 'must be a single line (it goes into a '
                                       'scheduler directive)')
    if bad:
        raise ConfigError(prop, value, f'unknown mail type(s) {bad}; '
                                       f'use {sorted(_MAIL_TYPES)}')
    return ','.join(types)


def _array_range(prop: str, value: Any) -> str:
    """An array's index range ("0-9", "1,3,5-7%2")."""
    text = str(value).strip()
    if not _ARRAY.fullmatch(text) or has_line_break(str(value)):
        raise ConfigError(prop, value, 'must be an index range such as "0-9" or "1,3,5-7%2"')
    return text


def _volumes(prop: str, value: Any) -> list[str]:
    """A container's bind mounts, each src[:dest[:opts]]."""
    volumes = string_list(prop, value)
    for i, volume in enumerate(volumes):
        if not volume or '\n' in volume:
            raise ConfigError(f'{prop}[{i}]', volume, 'must be src[:dest[:opts]]')
    return volumes


LAUNCHERS = ('none', 'srun', 'mpirun')


def _launcher(prop: str, value: Any) -> str:
    """How the container is started: one of LAUNCHERS."""
    if value not in LAUNCHERS:
        raise ConfigError(prop, value, f'must be one of {LAUNCHERS}')
    return str(value)


def _line(prop: str, value: Any) -> str:
    """A single-line string (a container's image or home)."""
    if not isinstance(value, str) or '\n' in value:
        raise ConfigError(prop, value, 'must be a single-line string')
    return value


@dataclass
class Resources:
    """What the job asks the scheduler for."""
    nodes: int | None = None
    tasks: int | None = None
    tasks_per_node: int | None = None
    cpus_per_task: int | None = None
    max_time: int | None = None        # seconds
    partition: str | None = None
    memory: str | None = None
    mem_per_cpu: str | None = None
    account: str | None = None
    qos: str | None = None
    reservation: str | None = None


@dataclass
class Attributes:
    """What the job runs, in which environment, and where its output goes."""
    commands: list[str] = field(default_factory=list)
    script: str | None = None          # path of a script on the remote host
    arguments: list[str] = field(default_factory=list)
    local_script: str | None = None    # a blueprint file, uploaded by SFTP at submission
    env: dict[str, str] = field(default_factory=dict)
    modules: list[str] = field(default_factory=list)
    pre: list[str] = field(default_factory=list)
    post: list[str] = field(default_factory=list)
    stdout: str | None = None
    stderr: str | None = None
    mail_user: str | None = None
    mail_type: str | None = None
    extra_directives: list[str] = field(default_factory=list)


@dataclass
class JobArray:
    """The job's array elements: an index range, and a job factory's table
    (one row per element, each row's values as environment variables)."""
    indices: str | None = None
    factory: str | None = None         # 'parameter_sweep', 'zip' or 'repeat'
    parameters: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Container:
    """The image a SingularityJob runs in, and how."""
    image: str | None = None
    home: str | None = None
    volumes: list[str] = field(default_factory=list)
    launcher: str | None = None        # one of LAUNCHERS; None: 'none'


T = TypeVar('T')


class _InPart(Generic[T]):
    """A flat name of JobSpec from before its parts, kept for the code and tests
    that read (or set) it: ``spec.nodes`` is ``spec.resources.nodes``."""

    def __init__(self, part: str, name: str | None = None) -> None:
        self.part = part
        self.name = name or ''

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = self.name or name

    @overload
    def __get__(self, spec: None, owner: type) -> '_InPart[T]': ...

    @overload
    def __get__(self, spec: 'JobSpec', owner: type) -> T: ...

    def __get__(self, spec: 'JobSpec | None', owner: type) -> 'T | _InPart[T]':
        if spec is None:
            return self
        value: T = getattr(getattr(spec, self.part), self.name)
        return value

    def __set__(self, spec: 'JobSpec', value: T) -> None:
        setattr(getattr(spec, self.part), self.name, value)


#: every job_options key (the canonical one of OPTION_ALIASES) read by one
#: parser into one field of one part: key -> (part, field, parser). Keys that
#: are not here (scale, scale_max_in_parallel, the factories) are read together
#: after the others. Defaults are the parts' own.
OPTIONS: dict[str, tuple[str, str, Parser]] = {
    'commands': ('attributes', 'commands', string_list),
    'script': ('attributes', 'script', _path),
    'arguments': ('attributes', 'arguments', string_list),
    'local_script': ('attributes', 'local_script', _path),
    'env': ('attributes', 'env', env_mapping),
    'modules': ('attributes', 'modules', _single_lines),
    'pre': ('attributes', 'pre', string_list),
    'post': ('attributes', 'post', string_list),
    'stdout': ('attributes', 'stdout', directive_word),
    'stderr': ('attributes', 'stderr', directive_word),
    'mail_user': ('attributes', 'mail_user', directive_word),
    'mail_type': ('attributes', 'mail_type', _mail_type),
    'extra_directives': ('attributes', 'extra_directives', _single_lines),
    'nodes': ('resources', 'nodes', positive_int),
    'tasks': ('resources', 'tasks', positive_int),
    'tasks_per_node': ('resources', 'tasks_per_node', positive_int),
    'cpus_per_task': ('resources', 'cpus_per_task', positive_int),
    'max_time': ('resources', 'max_time', parse_duration),
    'partition': ('resources', 'partition', directive_word),
    'memory': ('resources', 'memory', _memory),
    'mem_per_cpu': ('resources', 'mem_per_cpu', _memory),
    'account': ('resources', 'account', directive_word),
    'qos': ('resources', 'qos', directive_word),
    'reservation': ('resources', 'reservation', directive_word),
    'array': ('job_array', 'indices', _array_range),
    'image': ('container', 'image', _line),
    'home': ('container', 'home', _line),
    'volumes': ('container', 'volumes', _volumes),
    'launcher': ('container', 'launcher', _launcher),
}


@dataclass(init=False)
class JobSpec:
    """A job as Croupier submits it, independent of the scheduler: its
    resources, attributes, array and (a SingularityJob) container. Values of
    one submission (its token, a blueprint script's bytes) are not in it: they
    are arguments of Cluster.submit and Scheduler.render_script."""
    name: str
    resources: Resources
    attributes: Attributes
    job_array: JobArray
    container: Container | None

    def __init__(self, name: str, resources: Resources | None = None,
                 attributes: Attributes | None = None, job_array: JobArray | None = None,
                 container: Container | None = None, **flat: Any) -> None:
        """The parts, and any flat names (``commands=[...]``) set in them."""
        self.name = name
        self.resources = resources or Resources()
        self.attributes = attributes or Attributes()
        self.job_array = job_array or JobArray()
        self.container = container
        for key, value in flat.items():
            if not isinstance(type(self).__dict__.get(key), _InPart):
                raise TypeError(f'JobSpec has no field {key!r}')
            setattr(self, key, value)

    nodes = _InPart[int | None]('resources')
    tasks = _InPart[int | None]('resources')
    tasks_per_node = _InPart[int | None]('resources')
    cpus_per_task = _InPart[int | None]('resources')
    max_time = _InPart[int | None]('resources')
    partition = _InPart[str | None]('resources')
    memory = _InPart[str | None]('resources')
    mem_per_cpu = _InPart[str | None]('resources')
    account = _InPart[str | None]('resources')
    qos = _InPart[str | None]('resources')
    reservation = _InPart[str | None]('resources')
    commands = _InPart[list[str]]('attributes')
    script = _InPart[str | None]('attributes')
    arguments = _InPart[list[str]]('attributes')
    local_script = _InPart[str | None]('attributes')
    env = _InPart[dict[str, str]]('attributes')
    modules = _InPart[list[str]]('attributes')
    pre = _InPart[list[str]]('attributes')
    post = _InPart[list[str]]('attributes')
    stdout = _InPart[str | None]('attributes')
    stderr = _InPart[str | None]('attributes')
    mail_user = _InPart[str | None]('attributes')
    mail_type = _InPart[str | None]('attributes')
    extra_directives = _InPart[list[str]]('attributes')
    array = _InPart[str | None]('job_array', 'indices')
    factory = _InPart[str | None]('job_array')
    parameters = _InPart[list[dict[str, str]]]('job_array')

    # job_options keys accepted, with the spellings of the original Croupier
    OPTION_ALIASES = {
        'commands': 'commands', 'command': 'commands',
        'script': 'script', 'remote_script': 'script',
        'arguments': 'arguments', 'args': 'arguments',
        'nodes': 'nodes', 'tasks': 'tasks', 'ntasks': 'tasks',
        'tasks_per_node': 'tasks_per_node', 'cpus_per_task': 'cpus_per_task',
        'max_time': 'max_time', 'time': 'max_time',
        'partition': 'partition', 'queue': 'partition',
        'memory': 'memory', 'mem': 'memory',
        'cpu_memory': 'mem_per_cpu', 'mem_per_cpu': 'mem_per_cpu',
        'account': 'account', 'qos': 'qos', 'reservation': 'reservation',
        'mail_user': 'mail_user', 'mail_type': 'mail_type',
        'stdout_file': 'stdout', 'stdout': 'stdout',
        'stderr_file': 'stderr', 'stderr': 'stderr',
        'scale': 'scale', 'scale_max_in_parallel': 'scale_max_in_parallel',
        'array': 'array',
        'env': 'env', 'environment': 'env',
        'modules': 'modules', 'pre': 'pre', 'post': 'post',
        'extra_directives': 'extra_directives',
        'local_script': 'local_script',
        'image': 'image', 'home': 'home', 'volumes': 'volumes', 'launcher': 'launcher',
        'parameter_sweep': 'parameter_sweep', 'zip': 'zip', 'repeat': 'repeat',
    }
    FACTORIES = ('parameter_sweep', 'zip', 'repeat')
    CONTAINER_KEYS = ('image', 'home', 'volumes', 'launcher')
    LAUNCHERS = LAUNCHERS

    def with_script(self, script: str) -> 'JobSpec':
        """A copy of the spec that runs ``script`` (a path on the cluster)."""
        return dataclasses.replace(
            self, attributes=dataclasses.replace(self.attributes, script=script))

    @classmethod
    def from_options(cls, name: str, options: Any, prefix: str = 'job_options',
                     container: bool = False) -> 'JobSpec':
        """Validate a blueprint's ``job_options`` mapping into a JobSpec, each
        key by its row of OPTIONS, then the checks across keys. ``container``
        allows (and requires) the SingularityJob options."""
        options = job_options_mapping(name, options, prefix)
        values = cls._given(options, prefix)
        spec = cls(name=name, container=Container() if container else None)
        for target, (key, raw) in values.items():
            row = OPTIONS.get(target)
            if row is None:
                continue        # read with the others below
            part, field_name, parser = row
            if part == 'container' and not container:
                raise ConfigError(f'{prefix}.{key}', raw,
                                  'is an option of croupier.nodes.SingularityJob')
            setattr(getattr(spec, part), field_name, parser(f'{prefix}.{key}', raw))
        spec._read_array(values, prefix)
        spec._check(options, prefix)
        return spec

    @classmethod
    def _given(cls, options: dict[str, Any], prefix: str) -> dict[str, tuple[str, Any]]:
        """{canonical key: (key as given, value)} of the options given a value;
        ConfigError for an unknown key or one given under two spellings."""
        values: dict[str, tuple[str, Any]] = {}
        for key, raw in options.items():
            target = cls.OPTION_ALIASES.get(key)
            if target is None:
                known = ', '.join(sorted(cls.OPTION_ALIASES))
                raise ConfigError(f'{prefix}.{key}', raw, f'is not a known job option ({known})')
            if raw is None or raw == '' or raw == []:
                continue
            if target in values:
                raise ConfigError(f'{prefix}.{key}', raw, f'is given twice (also as another '
                                                           f'spelling of {target})')
            values[target] = (key, raw)
        return values

    def _read_array(self, values: dict[str, tuple[str, Any]], prefix: str) -> None:
        """The array part from a job factory, or scale (with scale_max_in_parallel)."""
        def p(key: str) -> str:
            return f'{prefix}.{key}'

        factories = [t for t in self.FACTORIES if t in values]
        if len(factories) > 1:
            key, raw = values[factories[1]]
            raise ConfigError(p(key), raw, f'give one job factory, not {" and ".join(factories)}')
        for other in ('scale', 'array'):
            if factories and other in values:
                key, raw = values[other]
                raise ConfigError(p(key), raw, f'cannot be combined with {factories[0]}')
        limit = values.get('scale_max_in_parallel')
        if factories:
            key, raw = values[factories[0]]
            rows = factory_rows(p(key), factories[0], raw)
            self.job_array = JobArray(f'0-{len(rows) - 1}', factories[0], rows)
            if limit is not None:
                self.job_array.indices = f'{self.array}%{positive_int(p(limit[0]), limit[1])}'
            return
        if 'scale' in values:
            key, raw = values['scale']
            count = positive_int(p(key), raw)
            if self.array:
                raise ConfigError(p(key), raw, 'cannot be combined with array')
            if count > 1:
                self.job_array.indices = f'0-{count - 1}'
                if limit is not None:
                    self.job_array.indices += f'%{positive_int(p(limit[0]), limit[1])}'
        elif limit is not None:
            raise ConfigError(p(limit[0]), limit[1], 'needs scale')

    def _check(self, options: dict[str, Any], prefix: str) -> None:
        """The checks across options: an image for a container, one way to give
        the job's work, arguments only with a script, tasks that fit."""
        def p(key: str) -> str:
            return f'{prefix}.{key}'

        if self.container is not None and not self.container.image:
            raise ConfigError(p('image'), None, 'a SingularityJob needs the image to run')
        if self.script and self.local_script:
            raise ConfigError(p('local_script'), self.local_script,
                              'give either script (on the cluster) or local_script, not both')
        script = self.script or self.local_script
        if self.commands and script:
            raise ConfigError(p('script'), script, 'give either commands or a script, '
                                                   'not both')
        if not self.commands and not script:
            raise ConfigError(prefix, options, 'a job needs commands or a script')
        if self.arguments and not script:
            raise ConfigError(p('arguments'), self.arguments, 'arguments need a script')
        if self.tasks_per_node and self.nodes and self.tasks and \
                self.tasks_per_node * self.nodes < self.tasks:
            raise ConfigError(p('tasks'), self.tasks,
                              f'exceeds nodes x tasks_per_node '
                              f'({self.nodes} x {self.tasks_per_node})')
