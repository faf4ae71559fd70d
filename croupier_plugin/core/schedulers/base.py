"""What every scheduler provides: pure functions over text, no I/O.

A scheduler renders the batch script of a JobSpec, builds the submit command
and reads the job id from its output, builds ONE status command for any
number of job ids and parses its output into normalized JobStatus values, and
builds the cancel command. Running these commands is the transport's work.
"""

from __future__ import annotations

import abc
import logging
import re
import shlex
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Generic, NoReturn, TypeVar

from ..errors import SchedulerError
from ..model import Container, JobSpec, JobState, JobStatus
from . import template

if TYPE_CHECKING:
    from ..accounting import JobFigures
    from ..model import JobTimes, PartitionFigures
    from ..transport.base import CommandResult

log = logging.getLogger('croupier.scheduler')

# an id starts with a letter or digit: one starting with '-' would be read as
# an option by the commands that take ids (scancel -ualice)
_JOB_ID = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.\-+\[\]]*')
# ids joined by ',' (which no id holds): a status command's ten thousand ids
# are checked by one match instead of one each
_JOB_IDS = re.compile(rf'{_JOB_ID.pattern}(?:,{_JOB_ID.pattern})*')


def is_job_id(text: object) -> bool:
    """Whether ``text`` has the shape of a scheduler job id (see _JOB_ID)."""
    return isinstance(text, str) and _JOB_ID.fullmatch(text) is not None


def check_job_ids(job_ids: Iterable[object]) -> list[str]:
    """Job ids come from scheduler output we parsed; refuse anything else
    before it reaches a shell."""
    ids = [str(j) for j in job_ids]
    joined = ','.join(ids)
    if ids and joined.count(',') == len(ids) - 1 and _JOB_IDS.fullmatch(joined) is not None:
        return ids
    for job_id in ids:
        if not is_job_id(job_id):
            raise ValueError(f'not a job id: {job_id!r}')
    return ids


def in_workdir(path: str, workdir: str | None) -> str:
    """``path`` as the job sees it: under ``workdir`` when relative (and there is one)."""
    if path.startswith('/') or not workdir:
        return path
    return f'{workdir.rstrip("/")}/{path}'


def output_files(patterns: tuple[str, str], tokens: Mapping[str, str],
                 workdir: str | None) -> tuple[str, str]:
    """The (stdout, stderr) file ``patterns`` with each of the scheduler's
    ``tokens`` ('%j': the job id, ...) replaced, under ``workdir`` when relative."""
    out = []
    for pattern in patterns:
        for token, value in tokens.items():
            pattern = pattern.replace(token, value)
        out.append(in_workdir(pattern, workdir))
    return out[0], out[1]


def module_command(item: str) -> str:
    """A ``modules`` item: a module name ('gcc/12') becomes ``module load gcc/12``;
    a whole command ('module use /apps/modules', as documented inputs give them)
    is kept, every word quoted."""
    words = item.split()
    if words and words[0] == 'module':
        return ' '.join(shlex.quote(w) for w in words)
    return f'module load {shlex.quote(item)}'


def render_body(spec: JobSpec, script_dir_var: str | None = None) -> str:
    """The shell part of a batch script, the same for every scheduler.

    Order: environment, modules and ``pre`` run in the job's shell and stop
    the job at the first failure; the main commands (or the script with its
    arguments) run with ``set -e``; ``post`` runs afterwards whatever the main
    part's result, and the job ends with the main part's exit code (or the
    post part's, when the main part succeeded).
    """
    q = shlex.quote
    post = template.script_lines('job_post.sh', post=spec.post) if spec.post else []
    lines = template.script_lines(
        'job_body.sh', name=q(spec.name), parameters=parameter_table(spec),
        exports=[f'export {key}={q(value)}' for key, value in spec.env.items()],
        modules=[module_command(m) for m in spec.modules], pre=spec.pre,
        main=_main_lines(spec), post=post)
    return '\n'.join(lines) + '\n'


def _main_lines(spec: JobSpec) -> list[str]:
    """The main part of the job's body: the container, the script with its
    arguments, or the commands."""
    if spec.container:
        return _container_lines(spec.container, spec)
    if not spec.script:
        return list(spec.commands)
    names = list(spec.parameters[0]) if spec.parameters else []
    args = ' '.join(substituted(a, names) for a in spec.arguments)
    # a bare file name is in the job's directory, not on PATH
    path = spec.script if '/' in spec.script else './' + spec.script
    return template.script_lines('job_script.sh', path=shlex.quote(path),
                                 args=' ' + args if args else '')


# days a marker nobody removed is kept: a run resumed later than this reads its
# jobs' ends from the scheduler (accounting) instead
MARKER_KEEP_DAYS = 14

# the element's index, whatever the scheduler: SLURM, PBS Pro, Torque
ARRAY_INDEX = '${SLURM_ARRAY_TASK_ID:-${PBS_ARRAY_INDEX:-${PBS_ARRAYID:-0}}}'


def parameter_table(spec: JobSpec) -> list[str]:
    """A job factory's table: each array element exports its row's values, as
    NAME and CROUPIER_PARAMETER_NAME, and its index as CROUPIER_TASK_INDEX."""
    if not spec.factory:
        return []
    q = shlex.quote
    rows = []
    for index, row in enumerate(spec.parameters):
        exports = ' '.join(f'{k}={q(v)} CROUPIER_PARAMETER_{k}={q(v)}' for k, v in row.items())
        rows.append(f'{index}) {"export " + exports if exports else ":"} ;;')
    return template.script_lines('job_parameters.sh', index=ARRAY_INDEX, rows=rows)


def substituted(argument: str, names: Sequence[str]) -> str:
    """``argument`` quoted for the shell, with ``$name`` and ``${name}`` of the
    factory's parameters left to expand (inside double quotes)."""
    if not names or '$' not in argument:
        return shlex.quote(argument)
    pattern = re.compile(r'\$\{(' + '|'.join(map(re.escape, names)) + r')\}|\$('
                         + '|'.join(map(re.escape, names)) + r')(?![A-Za-z0-9_])')
    out: list[str] = []
    last = 0
    for m in pattern.finditer(argument):
        if m.start() > last:
            out.append(shlex.quote(argument[last:m.start()]))
        out.append(f'"${{{m.group(1) or m.group(2)}}}"')
        last = m.end()
    if last < len(argument):
        out.append(shlex.quote(argument[last:]))
    return ''.join(out) or "''"


def _container_lines(container: Container, spec: JobSpec) -> list[str]:
    """The main part of a SingularityJob: the commands (or the script) inside the
    image, with Apptainer or Singularity, whichever the host has, optionally
    under srun or mpirun."""
    launcher = container.launcher or 'none'
    run = ([] if launcher == 'none' else [launcher]) + ['"$croupier_runtime"', 'exec']
    run += _container_options(container) + _container_payload(spec)
    return template.script_lines('job_container.sh', run=' '.join(run))


def _container_options(container: Container) -> list[str]:
    """The runtime's words before the payload: home, bind mounts, the image."""
    q = shlex.quote
    words = ['-H', q(container.home)] if container.home else []
    for volume in container.volumes:
        words += ['-B', q(volume)]
    # (JobSpec.from_options requires the image of a container)
    return words + [q(container.image or '')]


def _container_payload(spec: JobSpec) -> list[str]:
    """What runs inside the image: the script with its arguments, or the commands."""
    if spec.script:
        names = list(spec.parameters[0]) if spec.parameters else []
        return [shlex.quote(spec.script)] + [substituted(a, names) for a in spec.arguments]
    return ['bash', '-c', shlex.quote('set -e\n' + '\n'.join(spec.commands))]


def shebang(spec: JobSpec) -> str:
    """The batch script's first line: a login shell when ``spec`` loads modules."""
    # a login shell brings the site's `module` command; only pay for it when needed
    return '#!/bin/bash -l' if spec.modules else '#!/bin/bash'


def parse_exit_code(text: str | None) -> tuple[int | None, int | None]:
    """'3:0' -> (3, 0); '0:15' -> (0, 15); '3' -> (3, None); '' -> (None, None)."""
    text = (text or '').strip()
    if not text or text in ('N/A', '(null)'):
        return None, None
    code, _, sig = text.partition(':')
    try:
        exit_code = int(code)
    except ValueError:
        return None, None
    try:
        signal = int(sig) if sig else None
    except ValueError:
        signal = None
    return exit_code, signal


def read_markers(stdout: str, wanted: Collection[str]) -> tuple[set[str], dict[str, int]]:
    """(ids with a start marker, {id: exit code}) of marker_command's output,
    for the ids in ``wanted``."""
    started: set[str] = set()
    codes: dict[str, int] = {}
    for line in stdout.splitlines():
        job_id, _, text = line.strip().partition(' ')
        if job_id not in wanted:
            continue
        if text == 'run':
            started.add(job_id)
        elif text.isdigit():
            codes[job_id] = int(text)
    return started, codes


def exit_marker_status(job_id: str, code: int) -> JobStatus:
    """The status an exit-code marker below 128 tells: 0 COMPLETED, else FAILED."""
    if code == 0:
        return JobStatus(job_id, JobState.COMPLETED, raw_state='COMPLETED',
                         exit_code=0, source='exit-code marker')
    return JobStatus(job_id, JobState.FAILED, raw_state='FAILED', exit_code=code,
                     reason='NonZeroExitCode', source='exit-code marker')


#: the kind of job spec a scheduler takes: a JobSpec (SLURM, PBS, Torque,
#: SHELL) or a PycompssJob (PYCOMPSS); planning pairs each job with interfaces
#: of its kind
S = TypeVar('S')


class Scheduler(abc.ABC, Generic[S]):
    """A batch system, as pure command builders and output parsers, for the
    job specs of its kind (``S``)."""

    name = ''
    #: raw state -> normalized state
    STATES: dict[str, JobState] = {}
    script_suffix = '.sh'

    @abc.abstractmethod
    def render_script(self, spec: S, token: str | None = None) -> str:
        """The batch script for ``spec``, as text; ``token`` (one submission's
        mark) is written where lookup_command finds it, by the schedulers that
        find lost submissions."""

    def check(self, spec: S) -> None:
        """ConfigError for an option of ``spec`` this scheduler has no
        equivalent of (none here: every option has one)."""
        return None

    @abc.abstractmethod
    def submit_command(self, spec: S, script_path: str, workdir: str,
                       after: Iterable[str] = ()) -> str:
        """The command that submits the uploaded script of ``spec`` from ``workdir``;
        with ``after`` (job ids here), one that waits in the scheduler for their
        successful end (given only where holds_for says a job can wait)."""

    @abc.abstractmethod
    def parse_submit_output(self, stdout: str) -> str:
        """The job id in the submit command's output."""

    @abc.abstractmethod
    def status_command(self, job_ids: Sequence[str]) -> str:
        """ONE command that reports on every id in ``job_ids``."""

    @abc.abstractmethod
    def parse_status_output(self, stdout: str, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """{job_id: JobStatus} for each id in ``job_ids`` (UNKNOWN when absent)."""

    @abc.abstractmethod
    def cancel_command(self, job_ids: Sequence[str]) -> str:
        """ONE command that cancels every id in ``job_ids``."""

    def accounting_command(self, job_ids: Sequence[str]) -> str | None:
        """ONE command printing the accounting figures of every ended job in
        ``job_ids`` (None: the scheduler keeps none Croupier can read)."""
        return None

    def parse_accounting(self, stdout: str, job_ids: Sequence[str]) -> dict[str, JobFigures]:
        """{job_id: JobFigures} from accounting_command's output, for the
        jobs whose figures are final (a job the accounting still shows
        unfinished, or not at all, is left out: asked again later)."""
        return {}

    def queue_command(self) -> str | None:
        """ONE command that reports every partition's (queue's) figures, or
        None when the scheduler has no queues to report."""
        return None

    def parse_queue_output(self, stdout: str) -> dict[str, PartitionFigures]:
        """{partition: PartitionFigures} from queue_command's output."""
        return {}

    # -- a metrics scrape (croupier exporter) --------------------------------------

    #: whether exporter_command reports the partitions' (queues') figures too
    reports_partitions = False

    def exporter_command(self, job_ids: Sequence[str], partitions: bool = True) -> str:
        """ONE command for a metrics scrape of ``job_ids`` (and, where
        reports_partitions, of the partitions): here the status command."""
        return self.status_command(job_ids)

    def parse_exporter_output(
            self, stdout: str, job_ids: Sequence[str],
    ) -> tuple[list[PartitionFigures], dict[str, JobStatus], dict[str, JobTimes]]:
        """(partitions, {id: JobStatus}, {id: JobTimes}) from exporter_command's
        output: here the statuses alone."""
        return [], self.parse_status_output(stdout, job_ids), {}

    #: texts of a refused submission that say nothing was submitted (retry later)
    TRANSIENT_SUBMIT_ERRORS: tuple[str, ...] = ()

    def transient_submit_error(self, result: CommandResult) -> bool:
        """Whether a refused submission's output says nothing was submitted (retry later)."""
        text = (result.stderr or '') + (result.stdout or '')
        return any(marker in text for marker in self.TRANSIENT_SUBMIT_ERRORS)

    #: whether lookup_command can find a job by the token it was submitted with
    finds_lost_submissions = False

    def lookup_command(self, token: str) -> str:
        """ONE command that lists the user's jobs with their submission tokens
        (only when finds_lost_submissions)."""
        raise NotImplementedError(f'{self.name} cannot look jobs up by token')

    def parse_lookup_output(self, stdout: str, token: str) -> str | None:
        """The id of the job carrying ``token`` in lookup_command's output, or None."""
        return None

    def output_paths(self, spec: S, job_id: str,
                     workdir: str | None) -> tuple[str | None, str | None]:
        """(stdout, stderr) paths of a submitted job, for runtime properties."""
        return None, None

    # -- the scheduler runs the DAG ---------------------------------------------

    def holds_for(self, parent_spec: S) -> bool:
        """Whether a job can be submitted to wait, in this scheduler, for the
        successful end of a job of ``parent_spec`` submitted here (then the
        scheduler starts it, and drops it when that job fails)."""
        return False

    # -- exit-code markers --------------------------------------------------------

    def leaves_marker(self, spec: S) -> bool:
        """Whether the batch script of ``spec`` leaves a start marker and an
        exit-code marker that marker_command can read."""
        return False

    def marker_command(self, spent: Iterable[str] = (), started: Iterable[str] = (),
                       prune: bool = False) -> str:
        """ONE command printing '<job id> run' for every start marker and
        '<job id> <exit code>' for every exit-code marker present (a look at
        one directory: no scheduler daemon is asked), after removing every
        marker of the jobs ``spent`` (ended) and the start markers of the jobs
        ``started`` (read already); with ``prune``, first every marker older
        than MARKER_KEEP_DAYS (see listing_command)."""
        raise NotImplementedError(f'{self.name} leaves no markers')

    @staticmethod
    def listing_command(directory: str, spent: Iterable[str] = (), started: Iterable[str] = (),
                        extra: Iterable[str] = (), prune: bool = False) -> str:
        """marker_command over ``directory`` (a shell word): it holds only the
        markers not read yet (each is removed once read), so the command stays
        short whatever the number of jobs followed, and forks nothing but
        ``rm`` (only when there are markers to remove). ``extra``: more
        patterns of files to remove, built from checked job ids. ``prune``
        (a cluster asks for it on its first look, then once a day) also
        removes, with one ``find``, the markers left more than MARKER_KEEP_DAYS
        ago by runs that could not remove theirs (killed, or ended while a job
        they cancelled still ran): the directory does not grow without end,
        and a run resumed within that time still finds its jobs' markers."""
        files = [f'{j}.rc {j}.run' for j in check_job_ids(spent)]
        files += [f'{j}.run' for j in check_job_ids(started)]
        files += list(extra)
        clean = f'rm -f -- {" ".join(files)}; ' if files else ''
        if prune:
            # (POSIX find: '! -name . -prune' keeps it to the directory itself;
            # -mtime +N is older than N+1 whole days)
            clean = (f"find . ! -name . -prune -type f \\( -name '*.rc' -o -name '*.run' \\) "
                     f"-mtime +{MARKER_KEEP_DAYS - 1} -exec rm -f -- {{}} + 2>/dev/null; "
                     + clean)
        return template.command('marker_listing.sh', directory=directory, clean=clean)

    def parse_markers(self, stdout: str, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """{job_id: JobStatus} for the jobs whose markers say something: a
        start marker RUNNING; an exit code 0 COMPLETED, 1-127 FAILED (it wins
        over the start marker); a job ended by a signal (128 and up) is left to
        the scheduler, which knows why."""
        started, codes = read_markers(stdout, {str(j) for j in job_ids})
        out = {job_id: JobStatus(job_id, JobState.RUNNING, raw_state='RUNNING',
                                 source='start marker')
               for job_id in started - set(codes)}
        for job_id, code in codes.items():
            if code < 128:
                out[job_id] = exit_marker_status(job_id, code)
        return out

    def normalize(self, raw: str | None) -> JobState:
        """The JobState of a raw scheduler state; UNKNOWN (logged) when new."""
        key = (raw or '').strip().split(' ')[0].rstrip('+').upper()
        state = self.STATES.get(key)
        if state is None:
            log.warning('%s: unknown job state %r, treated as UNKNOWN', self.name, raw)
            return JobState.UNKNOWN
        return state

    def still_queued(self, status: JobStatus) -> bool:
        """Whether ``status`` ended the job for Croupier while the scheduler
        still holds it in its queue (a job the system held, which would never
        start): such a job must be deleted."""
        if not status.terminal:
            return False
        key = (status.raw_state or '').strip().split(' ')[0].rstrip('+').upper()
        return self.STATES.get(key) in (JobState.PENDING, JobState.RUNNING)

    @staticmethod
    def missing(job_id: str, source: str) -> JobStatus:
        """The status of a job the scheduler's output does not mention: UNKNOWN."""
        return JobStatus(job_id, JobState.UNKNOWN, raw_state='', source=source,
                         reason='not known to the scheduler')

    @staticmethod
    def submit_failed(result: CommandResult) -> NoReturn:
        """Raise the SchedulerError of a failed submission, with its exit code and output."""
        raise SchedulerError(
            f'submission failed with exit code {result.exit_code}: '
            f'{(result.stderr or result.stdout).strip()[-1000:]}',
            exit_code=result.exit_code, stderr=result.stderr)
