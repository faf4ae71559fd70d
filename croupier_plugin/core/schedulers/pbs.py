"""PBS Pro and Torque: qsub scripts, one qstat round trip for many jobs, qdel.

Both read ``qstat -f`` blocks (``Job Id: X`` then ``name = value`` lines, long
values folded onto tab-indented continuation lines). They differ in the
resource syntax (Torque ``nodes=N:ppn=P``, PBS Pro ``select=``), the array
flag (``-t`` / ``-J``), how finished jobs stay visible (Torque keeps ``C``
jobs for ``keep_completed`` seconds; PBS Pro shows ``F`` jobs with ``-x`` when
job history is enabled) and the meaning of negative exit statuses.

A finished job can leave qstat before Croupier has seen how it ended, and
Debian's slurm-wlm-torque qstat never reports an exit status. So the batch
script records its own exit code in ``$HOME/.croupier/pbs/<job id>.rc``, and
``qdel`` through Croupier leaves ``<job id>.cancelled`` there; the status
command reads both for the ids it asks about. qstat wins whenever it reports
an exit status. The script also leaves a start marker and a copy of its exit
code in ``$HOME/.croupier/pbs-markers``, which the monitor lists every
``marker_period`` with one look at that directory (no qstat) and empties as it
reads, so the start and the end of a job are seen within about that time
whatever the infrastructure's monitor period.

PBS Pro is asked with ``qstat -x -f -F json`` (no folded lines to undo); when
that qstat fails for a reason other than single ids (a qstat without ``-F``
prints its usage), the same command asks in the text form, and later polls
ask in text at once. A job held by the system (it would never start) is
FAILED here, and the cluster deletes it; see ``system_hold``.
"""

import abc
import math
import re
import shlex
from collections.abc import Collection, Iterable, Mapping, Sequence

from ..errors import ConfigError, SchedulerError
from ..model import JobSpec, JobState, JobStatus, format_hms, scheduler_job_name
from . import template
from .base import Scheduler, check_job_ids, in_workdir, render_body, shebang
from .pbs_figures import NOW_MARK as NOW_MARK  # where the tests and the bench read it
from .pbs_figures import Index, PbsFigures, PbsProFigures
from .qstat import (Attrs, Block, _array_base, _sequence, parse_qstat_full, parse_qstat_json,
                    seconds)

P, R = JobState.PENDING, JobState.RUNNING
# what the files say of a job: (exit code of its exit-code file, whether cancelled)
Marks = tuple[int | None, bool]
RC_DIR = '"$HOME"/.croupier/pbs'
# where a job's script leaves its start and exit-code markers for the monitor's
# listing (removed once read; the exit-code files in RC_DIR stay for qstat's gaps)
MARKER_DIR = '"$HOME"/.croupier/pbs-markers'
QSTAT_RC_MARK = '@@croupier-qstat-rc='
FILES_MARK = '@@croupier-files@@'
# which form the qstat output after it has: json (PBS Pro's -F json) or text
FORM_MARK = '@@croupier-qstat-form='

# Torque: "qstat: Unknown Job Id Error 9.srv"; PBS Pro: "qstat: Unknown Job Id 9.srv";
# PBS Pro without -x: "qstat: 9.srv Job has finished, use -x or -H ..."
_UNKNOWN_LINE = re.compile(r'^(?![ \t]).*?(?:Unknown Job Id(?: Error)?\s+(\S+)|'
                           r'(\S+)\s+Job has finished)', re.M)
# lines qstat writes to stderr about single ids, which must not fail the whole poll
_PER_ID_ERRORS = ('Unknown Job Id', 'Job has finished')
_SIZE = re.compile(r'([0-9]+)([KMGT]?)')
# Torque/PBS MoM: "walltime 152 exceeded limit 120"; OpenPBS comment of a
# JOB_EXEC_KILL_WALLTIME job: "Job run at ... and exceeded resource walltime"
# OpenPBS comment of a running job deleted with qdel: "Job run at ... and
# terminated by USER@HOST" (recorded on OpenPBS 23.06)
_DELETED = re.compile(r'\band terminated\b')
_WALLTIME_KILL = re.compile(r'walltime \d+ exceeded limit|exceeded resource walltime',
                            re.IGNORECASE)


def pbs_size(text: str | int, factor: int = 1) -> str:
    """'4G' -> '4gb', '500M' -> '500mb', '1024' (MB, as in SLURM) -> '1024mb'."""
    m = _SIZE.fullmatch(str(text).strip().upper())
    if not m:
        raise ValueError(f'not a size: {text!r}')
    return f'{int(m[1]) * factor}{(m[2] or "M").lower()}b'


def system_hold(attrs: Mapping[str, str]) -> bool:
    """Whether a held job (state H) waits for something only an administrator
    can give: a system hold (Hold_Types ``s``) that is not a dependency's
    (PBS holds a job whose dependency is not met yet with ``s`` too, and then
    ``depend`` is set), or a hold the server put on a job that failed to start."""
    if 'failed to start' in attrs.get('comment', '').lower():
        return True
    return 's' in attrs.get('hold_types', '') and not attrs.get('depend')


def _limit_directives(spec: JobSpec) -> list[str]:
    """The ``-l`` directives of the job's walltime and memory per CPU."""
    out = []
    if spec.max_time:
        out.append(f'-l walltime={format_hms(spec.max_time)}')
    if spec.mem_per_cpu:
        out.append(f'-l pmem={pbs_size(spec.mem_per_cpu)}')
    return out


def _read_files(lines: list[str]) -> tuple[dict[str, int], set[str]]:
    """({id: exit code}, {cancelled ids}) of the exit-code and cancel files'
    lines of status_command's output."""
    exit_files: dict[str, int] = {}
    cancelled: set[str] = set()
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and parts[0] == 'rc':
            try:
                exit_files[parts[1]] = int(parts[2])
            except ValueError:
                pass
        elif len(parts) == 2 and parts[0] == 'cancelled':
            cancelled.add(parts[1])
    return exit_files, cancelled


def _array_outcome(head: JobStatus | None, elements: list[JobStatus]) -> JobStatus:
    """The status that decides how an array whose elements all ended ended."""
    # Elements outside PBS Pro's job history have no exit status; then the
    # parent's (0 all ok, 1 some failed, 2 PBS error) decides, and an
    # element's own exit status only adds detail.
    known = [s for s in elements if s.exit_code is not None or s.state is not JobState.FAILED]
    if head and head.exit_code is not None and len(known) < len(elements):
        candidates = [s for s in known if s.state is not JobState.COMPLETED] or [head]
        if head.exit_code == 0:
            candidates = [head]
    else:
        candidates = elements
    order = [JobState.FAILED, JobState.TIMEOUT, JobState.CANCELLED, JobState.COMPLETED]
    return min(candidates, key=lambda s: order.index(s.state) if s.state in order else -1)


class PbsFamily(PbsFigures, Scheduler[JobSpec]):
    """What Torque and PBS Pro share; the subclasses hold the differences."""

    script_suffix = '.pbs'
    #: job_state letters of a job that ended; the exit status tells how
    ENDED = ('C', 'F', 'X')
    #: negative exit statuses: value -> (state, meaning)
    EXEC_CODES: dict[int, tuple[JobState, str]] = {}

    # -- script -------------------------------------------------------------

    @staticmethod
    def job_name(spec: JobSpec) -> str:
        """The -N name of ``spec``'s job: it starts with a letter ('j' put in front)."""
        # PBS wants a job name that starts with a letter (PBS Pro: or digit)
        name = scheduler_job_name(spec.name)
        return name if name[0].isalpha() else 'j' + name

    def check(self, spec: JobSpec) -> None:
        """ConfigError for job options this flavour has no equivalent of."""
        for field_name, option in (('qos', 'qos'), ('reservation', 'reservation')):
            value = getattr(spec, field_name)
            if value is not None:
                raise ConfigError(f'job_options.{option}', value,
                                  f'{self.name} has no {option} option; give the site\'s '
                                  f'own syntax in job_options.extra_directives')
        if spec.mail_type:
            self.mail_points(spec.mail_type)
        if spec.array:
            self.array_directive(spec.array)

    @staticmethod
    def mail_points(mail_type: str) -> str:
        """SLURM mail types -> PBS -m letters (a abort, b begin, e end, n none)."""
        letters = {'BEGIN': 'b', 'END': 'e', 'FAIL': 'a', 'ALL': 'abe', 'NONE': 'n'}
        types = [t.strip().upper() for t in mail_type.split(',') if t.strip()]
        bad = [t for t in types if t not in letters]
        if bad or ('NONE' in types and len(types) > 1):
            raise ConfigError('job_options.mail_type', mail_type,
                              'PBS mails only on BEGIN, END, FAIL, ALL or NONE (alone)')
        chosen = set(''.join(letters[t] for t in types))
        return 'n' if 'n' in chosen else ''.join(c for c in 'abe' if c in chosen)

    @abc.abstractmethod
    def resource_directives(self, spec: JobSpec) -> list[str]:
        """The ``-l`` directives of the job's nodes, tasks, CPUs and memory."""

    @abc.abstractmethod
    def array_directive(self, array: str) -> str:
        """The array directive; ConfigError for a form the flavour lacks."""

    def directives(self, spec: JobSpec) -> list[str]:
        """The #PBS options of ``spec`` (checked first: ConfigError for what PBS lacks)."""
        self.check(spec)
        out = [f'-N {self.job_name(spec)}'] + self.resource_directives(spec)
        out += _limit_directives(spec)
        out += [f'{flag} {value}' for flag, value in (
            ('-q', spec.partition), ('-A', spec.account), ('-M', spec.mail_user))
            if value is not None]
        if spec.mail_type:
            out.append(f'-m {self.mail_points(spec.mail_type)}')
        out += [f'{flag} {path}' for flag, path in (('-o', spec.stdout), ('-e', spec.stderr))
                if path]
        if spec.array:
            out.append(self.array_directive(spec.array))
        return out + list(spec.extra_directives)

    @staticmethod
    def prologue(spec: JobSpec) -> list[str]:
        """Shell lines run before the job's body."""
        lines: list[str] = []
        if not spec.array:
            # the exit-code file and the monitor's markers (see the module docstring)
            lines += template.script('pbs_prologue.sh', rc_dir=RC_DIR,
                                     marker_dir=MARKER_DIR).split('\n')
        # PBS starts jobs in $HOME; the job's files are where it was submitted
        lines.append('if [ -n "${PBS_O_WORKDIR:-}" ]; then cd "$PBS_O_WORKDIR" || exit 1; fi')
        return lines

    def render_script(self, spec: JobSpec, token: str | None = None) -> str:
        """As Scheduler.render_script: #PBS directives, the prologue, the body."""
        head = [shebang(spec)] + [f'#PBS {d}' for d in self.directives(spec)]
        return '\n'.join(head + self.prologue(spec)) + '\n' + render_body(spec)

    def output_paths(self, spec: JobSpec, job_id: str,
                     workdir: str | None) -> tuple[str | None, str | None]:
        """Given files as they are; otherwise PBS's own default,
        ``<job name>.o<sequence number>`` in the submission directory (array
        elements get per-element names that differ between flavours: None)."""
        out: list[str | None] = []
        for given, letter in ((spec.stdout, 'o'), (spec.stderr, 'e')):
            if given:
                path = given
            elif spec.array:
                out.append(None)
                continue
            else:
                path = f'{self.job_name(spec)}.{letter}{_sequence(job_id)}'
            out.append(in_workdir(path, workdir))
        return out[0], out[1]

    # -- exit-code markers ----------------------------------------------------

    def leaves_marker(self, spec: JobSpec) -> bool:
        """Every job but an array (its elements end one by one: qstat tells)."""
        return not spec.array

    def marker_command(self, spent: Iterable[str] = (), started: Iterable[str] = (),
                       prune: bool = False) -> str:
        """List the markers present (see Scheduler.listing_command): one look
        at MARKER_DIR, no qstat."""
        return self.listing_command(MARKER_DIR, spent, started, prune=prune)

    # -- submit -------------------------------------------------------------

    def holds_for(self, parent_spec: JobSpec) -> bool:
        """PBS waits for a plain job with afterok (an array needs another
        dependency type: the engine waits for those)."""
        return not parent_spec.array

    def submit_command(self, spec: JobSpec, script_path: str, workdir: str,
                       after: Iterable[str] = ()) -> str:
        """As Scheduler.submit_command: qsub from ``workdir``; with ``after`` (job ids),
        the job waits for their successful end (afterok) and is deleted when one fails."""
        # -N, -o and -e also on the command line: Debian's slurm-wlm-torque
        # qsub ignores them in the script and names the output files after
        # the -N it was given (or the script's name)
        q = shlex.quote
        options = [f'-N {q(self.job_name(spec))}']
        if after:
            # the server deletes the job when one of these fails
            options.append(f"-W {q('depend=afterok:' + ':'.join(check_job_ids(after)))}")
        if spec.stdout:
            options.append(f'-o {q(spec.stdout)}')
        if spec.stderr:
            options.append(f'-e {q(spec.stderr)}')
        return f'cd {q(workdir)} && qsub {" ".join(options)} {q(script_path)}'

    def parse_submit_output(self, stdout: str) -> str:
        """As Scheduler.parse_submit_output: the id exactly as qsub printed it."""
        # "123.server", "123[].server" (arrays) or a bare "123"; qstat and
        # qdel need the id exactly as printed
        for line in reversed(stdout.strip().splitlines()):
            line = line.strip()
            if re.fullmatch(r'[0-9]+(\[\])?(\.[A-Za-z0-9_.\-]+)?', line):
                return line
        raise ValueError(f'no job id in qsub output: {stdout.strip()[-300:]!r}')

    # -- status -------------------------------------------------------------

    @abc.abstractmethod
    def qstat_command(self, arrays: bool) -> str:
        """qstat with its options, to be followed by the ids."""

    def json_qstat_command(self, arrays: bool) -> str | None:
        """qstat printing JSON, to be followed by the ids; None for a flavour
        without a JSON form."""
        return None

    #: set once the server's qstat refused the JSON form: later polls ask in text
    json_refused = False


    def status_command(self, job_ids: Sequence[str]) -> str:
        """qstat for every id, then the exit-code and cancel files of each.

        qstat's stderr is kept apart (after QSTAT_RC_MARK) so that one
        unknown id cannot break a block of the others; the command fails
        only when qstat failed for another reason (no server, no qstat).
        Where the flavour has a JSON form it is asked first; when that qstat
        fails for a reason other than single ids (a qstat without ``-F json``
        prints its usage), the text form is asked in the same command, after
        a FORM_MARK line that says which form follows.
        """
        ids = check_job_ids(job_ids)
        per_id = '|'.join(f'*{shlex.quote(p)}*' for p in _PER_ID_ERRORS)
        return template.command(
            'pbs_status.sh', ids=' '.join(shlex.quote(i) for i in ids), per_id=per_id,
            query=self._qstat_query(any(_array_base(i) is not None for i in ids)),
            qstat_rc_mark=QSTAT_RC_MARK, files_mark=shlex.quote(FILES_MARK), rc_dir=RC_DIR)

    def _qstat_query(self, arrays: bool) -> str:
        """The qstat part of status_command: the JSON form first where the
        flavour has one and the server has not refused it, else the text form."""
        text = template.command('pbs_qstat_ask.sh', qstat=self.qstat_command(arrays))
        as_json = None if self.json_refused else self.json_qstat_command(arrays)
        if as_json is None:
            return text
        return template.command(
            'pbs_qstat_json_first.sh', json_mark=shlex.quote(FORM_MARK + 'json'),
            ask_json=template.command('pbs_qstat_ask.sh', qstat=as_json),
            text_mark=shlex.quote(FORM_MARK + 'text'), ask_text=text)

    @staticmethod
    def _split_output(stdout: str) -> tuple[str, str | None, str, list[str]]:
        """(qstat's output, its form, qstat's stderr, the files' lines) of
        status_command's output; the form is 'json', 'text' (after a JSON
        attempt failed) or None (text asked at once). After a fallback, the
        text form's output replaces what the JSON attempt printed. Cut at the
        marks, not line by line: a thousand jobs are some 70,000 lines."""
        qstat, _, tail = stdout.partition(QSTAT_RC_MARK)
        errors, _, files = tail.partition(FILES_MARK)
        errors = errors.partition('\n')[2]         # the rest of the line is the rc
        form: str | None = None
        at = qstat.rfind(FORM_MARK)
        if at >= 0:
            end = qstat.find('\n', at)
            end = len(qstat) if end < 0 else end
            form = qstat[at + len(FORM_MARK):end].strip()
            qstat = qstat[end + 1:]
        return qstat, form, errors, files.splitlines()

    def _blocks(self, qstat_text: str, form: str | None) -> list[Block]:
        """The job blocks of qstat's output in either form. A fallback to the
        text form is remembered, so that later polls ask in text at once."""
        if form != 'json':
            if form == 'text':
                self.json_refused = True
            return parse_qstat_full(qstat_text)
        try:
            return parse_qstat_json(qstat_text)
        except ValueError as exc:
            # some servers print JSON that does not parse (a value with a
            # character they do not escape): the text form from now on
            self.json_refused = True
            raise SchedulerError(f'{self.name}: qstat -F json printed no valid JSON ({exc}); '
                                 f'the next poll asks in the text form') from None

    def parse_status_output(self, stdout: str, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """As Scheduler.parse_status_output: qstat's blocks, then the exit-code and cancel files."""
        return self._statuses(stdout, job_ids)[0]

    def _statuses(self, stdout: str,
                  job_ids: Sequence[str]) -> tuple[dict[str, JobStatus], Index]:
        """({id: JobStatus}, the blocks' _index) from status_command's output."""
        qstat_text, form, errors, files = self._split_output(stdout)
        blocks = self._blocks(qstat_text, form)
        index = self._index(blocks)
        # qstat's messages about single ids (attribute lines are indented)
        unknown = {_sequence(m[1] or m[2])
                   for m in _UNKNOWN_LINE.finditer(qstat_text + '\n' + errors)}
        exit_files, cancelled = _read_files(files)
        result: dict[str, JobStatus] = {}
        for job_id in job_ids:
            key = str(job_id)
            marks = (exit_files.get(key), key in cancelled)
            result[job_id] = self._job_status(key, blocks, index, marks, unknown)
        return result, index

    def _job_status(self, key: str, blocks: list[Block], index: Index, marks: Marks,
                    unknown: Collection[str]) -> JobStatus:
        """One job's status: from its block (an array's: from its blocks), else
        from its files; ``unknown``: the sequence numbers qstat said it does not know."""
        status: JobStatus | None
        if _array_base(key) is not None and '[]' in key:
            status = self._array_status(key, blocks, marks)
        else:
            attrs = self._find(key, index)
            status = self._block_status(key, attrs, marks) if attrs is not None else None
        if status is None:
            status = self._without_qstat(key, marks, _sequence(key) in unknown)
        return status

    @staticmethod
    def _index(blocks: list[Block]) -> Index:
        """({id: block}, {sequence number: [blocks]}) of one qstat output, so
        that finding each job's block costs the same for 1 or 1,000 jobs."""
        by_id: dict[str, Attrs] = {}
        by_seq: dict[str, list[Attrs]] = {}
        for block_id, attrs in blocks:
            by_id.setdefault(block_id, attrs)
            by_seq.setdefault(_sequence(block_id), []).append(attrs)
        return by_id, by_seq

    @staticmethod
    def _find(key: str, index: Index) -> Attrs | None:
        """The block of ``key`` in ``_index``'s result: the same id, else the
        same sequence number (qsub may print a shorter server name than qstat)."""
        by_id, by_seq = index
        attrs = by_id.get(key)
        if attrs is not None:
            return attrs
        # a job moved to another server also has an M record here
        same_seq = sorted(by_seq.get(_sequence(key), ()),
                          key=lambda a: a.get('job_state', '') == 'M')
        return same_seq[0] if same_seq else None

    def _without_qstat(self, job_id: str, marks: Marks, said_unknown: bool) -> JobStatus:
        """The status of a job qstat does not show: from its exit-code or cancel file."""
        exit_code, cancelled = marks
        if exit_code is not None:
            return self._ended(job_id, '', exit_code, {}, cancelled, 'exit-code file')
        if cancelled:
            return JobStatus(job_id, JobState.CANCELLED, raw_state='', source='cancel file',
                             reason='cancelled by Croupier; qstat no longer shows it')
        status = self.missing(job_id, 'qstat')
        if said_unknown:
            status = JobStatus(job_id, JobState.UNKNOWN, source='qstat',
                               reason='qstat: Unknown Job Id')
        return status

    def _block_status(self, job_id: str, attrs: Mapping[str, str], marks: Marks) -> JobStatus:
        """The status one job's qstat block tells (its exit-code file fills a gap)."""
        raw = attrs.get('job_state', '')
        if raw.upper() in self.ENDED:
            return self._ended_block(job_id, raw, attrs, marks)
        state = self.normalize(raw)
        if raw.upper() == 'H':
            return self._held(job_id, raw, attrs)
        return JobStatus(job_id, state, raw_state=raw, reason=attrs.get('comment', ''),
                         source='qstat')

    def _ended_block(self, job_id: str, raw: str, attrs: Mapping[str, str],
                     marks: Marks) -> JobStatus:
        """The status of an ended job's block: its exit status, else its exit-code file's."""
        exit_code, cancelled = marks
        source = 'qstat'
        code: int | None
        try:
            # None (no exit status) raises TypeError, handled below
            code = int(attrs.get('exit_status'))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            code = exit_code
            if code is not None:
                source = 'qstat+exit-code file'
        return self._ended(job_id, raw, code, attrs, cancelled, source)

    @staticmethod
    def _held(job_id: str, raw: str, attrs: Mapping[str, str]) -> JobStatus:
        """A held job: FAILED when the system holds it (nothing but an
        administrator can start it: the cluster deletes it), else PENDING
        (a user or operator hold, bounded by the job's max_time_in_queue)."""
        holds = attrs.get('hold_types', '') or '?'
        comment = attrs.get('comment', '')
        if system_hold(attrs):
            return JobStatus(job_id, JobState.FAILED, raw_state=raw, source='qstat',
                             reason=f'held by the system (Hold_Types {holds}), so it would '
                                    f'never start: {comment or "the server gave no comment"}')
        return JobStatus(job_id, P, raw_state=raw, source='qstat',
                         reason=f'held ({holds})' + (f': {comment}' if comment else ''))

    def _ended(self, job_id: str, raw: str, code: int | None, attrs: Mapping[str, str],
               cancelled: bool, source: str) -> JobStatus:
        """The status of an ended job from its exit status (None: unknown)."""
        comment = attrs.get('comment', '')
        if code is None:
            if cancelled:
                return JobStatus(job_id, JobState.CANCELLED, raw_state=raw, source=source,
                                 reason='cancelled by Croupier')
            return self._ended_without_status(job_id, raw, attrs, source)
        state, signal, meaning = self.outcome(code, attrs)
        if cancelled and state is not JobState.COMPLETED:
            state, meaning = JobState.CANCELLED, 'cancelled by Croupier' + (
                f' ({meaning})' if meaning else '')
        reason = '; '.join(r for r in (meaning, comment) if r)
        return JobStatus(job_id, state, raw_state=raw, reason=reason, exit_code=code,
                         signal=signal, source=source)

    def _ended_without_status(self, job_id: str, raw: str, attrs: Mapping[str, str],
                              source: str) -> JobStatus:
        """An ended job without an exit status, and no exit-code file: only
        that it ended is known (Debian's wrappers, a server that forgot)."""
        comment = attrs.get('comment', '')
        return JobStatus(job_id, JobState.FAILED, raw_state=raw, source=source,
                         reason='ended without an exit status'
                                + (f'; {comment}' if comment else ''))

    def outcome(self, code: int,
                attrs: Mapping[str, str]) -> tuple[JobState, int | None, str]:
        """(state, signal, meaning) of an exit status."""
        if code == 0:
            return JobState.COMPLETED, None, ''
        if code < 0:
            state, meaning = self.EXEC_CODES.get(
                code, (JobState.FAILED, f'{self.name} could not run the job'))
            return state, None, meaning
        signal = None
        if 256 < code <= 256 + 64:      # the MoM's encoding of a job killed by a signal
            signal = code - 256
        elif 128 < code <= 128 + 64:    # the shell's encoding of a command killed by one
            signal = code - 128
        if signal and self._over_walltime(attrs):
            return JobState.TIMEOUT, signal, 'killed after its walltime'
        if _WALLTIME_KILL.search(attrs.get('comment', '')):
            return JobState.TIMEOUT, signal, ''
        return JobState.FAILED, signal, f'killed by signal {signal}' if signal else ''

    @staticmethod
    def _over_walltime(attrs: Mapping[str, str]) -> bool:
        """Whether the job used all of its walltime limit."""
        used = seconds(attrs.get('resources_used.walltime'))
        limit = seconds(attrs.get('resource_list.walltime'))
        return used is not None and limit is not None and 0 < limit <= used

    def _array_status(self, job_id: str, blocks: list[Block],
                      marks: Marks) -> JobStatus | None:
        """One status for an array from its own block and its elements' (None: neither shown)."""
        head, elements = self._array_parts(job_id, blocks, marks[1])
        if not elements:
            return head
        done = sum(1 for s in elements if s.state is JobState.COMPLETED)
        summary = f'array: {done}/{len(elements)} elements completed'
        live = [s for s in elements if not s.terminal]
        if live or (head and not head.terminal):
            state = R if any(s.state is R for s in live) or (head and head.state is R) else P
            first = live[0] if live else head
            assert first is not None    # no live element: then head is live
            return JobStatus(job_id, state, raw_state=first.raw_state, reason=summary,
                             source='qstat')
        first = _array_outcome(head, elements)
        return JobStatus(job_id, first.state, raw_state=first.raw_state,
                         reason=summary + (f'; {first.reason}' if first.reason else ''),
                         exit_code=first.exit_code, signal=first.signal, source='qstat')

    def _array_parts(self, job_id: str, blocks: list[Block],
                     cancelled: bool) -> tuple[JobStatus | None, list[JobStatus]]:
        """(the status of the array's own block, its elements' statuses) of
        array ``job_id`` in ``blocks``."""
        base = _array_base(job_id)
        parent: Attrs | None = None
        elements: list[JobStatus] = []
        for block_id, attrs in blocks:
            if _array_base(block_id) != base:
                continue
            if _sequence(block_id).endswith('[]'):
                parent = attrs
            else:
                elements.append(self._block_status(block_id, attrs, (None, cancelled)))
        head = self._block_status(job_id, parent, (None, cancelled)) if parent else None
        return head, elements

    # -- cancel -------------------------------------------------------------

    def cancel_command(self, job_ids: Sequence[str]) -> str:
        """qdel, after leaving a cancel file for each id (see the module
        docstring) so that the end of a job killed by qdel reads as CANCELLED."""
        quoted = ' '.join(shlex.quote(i) for i in check_job_ids(job_ids))
        return template.command('pbs_cancel.sh', ids=quoted, rc_dir=RC_DIR)


class TorqueScheduler(PbsFamily):
    """Torque: nodes=N:ppn=P resources, -t arrays, ended jobs kept as C for a while."""

    name = 'TORQUE'

    # qstat(1B) of Torque 6: C E H Q R T W S (no F, X, B, M or U)
    STATES = {
        'Q': P, 'H': P, 'W': P, 'T': P,
        'R': R, 'E': R, 'S': R,
        'C': JobState.COMPLETED,        # refined by exit_status
    }

    # Torque's JOB_EXEC_* codes (Torque 6 admin guide, "Job exit status")
    EXEC_CODES = {
        -1: (JobState.FAILED, 'JOB_EXEC_FAIL1: job exec failed, before files, no retry'),
        -2: (JobState.FAILED, 'JOB_EXEC_FAIL2: job exec failed, after files, no retry'),
        -3: (JobState.FAILED, 'JOB_EXEC_RETRY: job execution failed, do retry'),
        -4: (JobState.FAILED, 'JOB_EXEC_INITABT: job aborted on MOM initialization'),
        -5: (JobState.FAILED, 'JOB_EXEC_INITRST: job aborted on MOM init, chkpt, no migrate'),
        -6: (JobState.FAILED, 'JOB_EXEC_INITRMG: job aborted on MOM init, chkpt, ok migrate'),
        -7: (JobState.FAILED, 'JOB_EXEC_BADRESRT: job restart failed'),
        -8: (JobState.FAILED, 'JOB_EXEC_CMDFAIL: exec() of user command failed'),
        -9: (JobState.FAILED, 'JOB_EXEC_STDOUTFAIL: could not create/open stdout stderr files'),
        -10: (JobState.FAILED, 'JOB_EXEC_OVERLIMIT_MEM: job exceeded a memory limit'),
        -11: (JobState.TIMEOUT, 'JOB_EXEC_OVERLIMIT_WT: job exceeded a walltime limit'),
        -12: (JobState.TIMEOUT, 'JOB_EXEC_OVERLIMIT_CPUT: job exceeded a CPU time limit'),
        -13: (JobState.FAILED, 'JOB_EXEC_RETRY_CGROUP: could not create the job\'s cgroups'),
        -14: (JobState.FAILED, 'JOB_EXEC_RETRY_PROLOGUE: prologue failed'),
    }

    def resource_directives(self, spec: JobSpec) -> list[str]:
        """As PbsFamily.resource_directives: -l nodes=N:ppn=P and the job's total mem."""
        if not any((spec.nodes, spec.tasks, spec.tasks_per_node, spec.cpus_per_task,
                    spec.memory)):
            return []
        nodes = spec.nodes or 1
        out = []
        if any((spec.nodes, spec.tasks, spec.tasks_per_node, spec.cpus_per_task)):
            per_node = spec.tasks_per_node or (math.ceil(spec.tasks / nodes) if spec.tasks else 1)
            out.append(f'-l nodes={nodes}:ppn={per_node * (spec.cpus_per_task or 1)}')
        if spec.memory:
            # job_options.memory is per node (as in SLURM); Torque's mem is the job's total
            out.append(f'-l mem={pbs_size(spec.memory, nodes)}')
        return out

    def array_directive(self, array: str) -> str:
        """As PbsFamily.array_directive: -t with ranges and lists (no steps)."""
        if ':' in array:
            raise ConfigError('job_options.array', array,
                              'Torque\'s qsub -t takes ranges and lists, not steps (":")')
        return f'-t {array}'

    def qstat_command(self, arrays: bool) -> str:
        """As PbsFamily.qstat_command: qstat -f -1, with -t only for arrays."""
        # -1: attributes are not folded; -t: array elements, one block each
        # (only when needed: Debian's slurm-wlm-torque qstat refuses -t)
        return 'qstat -f -1 -t' if arrays else 'qstat -f -1'


class PbsScheduler(PbsProFigures, PbsFamily):
    """PBS Pro / OpenPBS: select= chunks, -J arrays, job history (-x), qstat's JSON form."""

    name = 'PBS'

    # qstat(1B) of PBS Pro / OpenPBS: B E F H M Q R S T U W X
    STATES = {
        'Q': P, 'H': P, 'W': P, 'T': P,
        'M': P,                         # moved to another server: it runs there
        'R': R, 'E': R, 'S': R, 'U': R,
        'B': R,                         # array: at least one subjob started
        'F': JobState.COMPLETED,        # refined by Exit_status
        'X': JobState.COMPLETED,        # subjob; refined by Exit_status
    }

    # PBS Pro's JOB_EXEC_* codes (OpenPBS src/include/job.h; Reference Guide
    # "Job Exit Codes"). Not Torque's: -11 is a rerun here, not a walltime kill.
    EXEC_CODES = {
        -1: (JobState.FAILED, 'JOB_EXEC_FAIL1: job exec failed, before files, no retry'),
        -2: (JobState.FAILED, 'JOB_EXEC_FAIL2: job exec failed, after files, no retry'),
        -3: (JobState.FAILED, 'JOB_EXEC_RETRY: job execution failed, do retry'),
        -4: (JobState.FAILED, 'JOB_EXEC_INITABT: job aborted on MoM initialization'),
        -5: (JobState.FAILED, 'JOB_EXEC_INITRST: job aborted on MoM init, checkpoint, '
                              'no migrate'),
        -6: (JobState.FAILED, 'JOB_EXEC_INITRMG: job aborted on MoM init, checkpoint, '
                              'ok migrate'),
        -7: (JobState.FAILED, 'JOB_EXEC_BADRESRT: job restart failed'),
        -10: (JobState.FAILED, 'JOB_EXEC_FAILUID: invalid uid/gid for job'),
        -11: (JobState.FAILED, 'JOB_EXEC_RERUN: job was rerun'),
        -12: (JobState.FAILED, 'JOB_EXEC_CHKP: job was checkpointed and killed'),
        -13: (JobState.FAILED, 'JOB_EXEC_FAIL_PASSWORD: job failed due to a bad password'),
        -14: (JobState.FAILED, 'JOB_EXEC_RERUN_ON_SIS_FAIL: communication failure between '
                               'mother superior and a sister'),
        -15: (JobState.FAILED, 'JOB_EXEC_QUERST: requeue job for restart from checkpoint'),
        -16: (JobState.FAILED, 'JOB_EXEC_FAILHOOK_RERUN: a hook rejected the job'),
        -17: (JobState.FAILED, 'JOB_EXEC_FAILHOOK_DELETE: a hook rejected the job'),
        -18: (JobState.FAILED, 'JOB_EXEC_HOOK_RERUN: a hook requeued the job'),
        -19: (JobState.FAILED, 'JOB_EXEC_HOOK_DELETE: a hook deleted the job'),
        -20: (JobState.FAILED, 'JOB_EXEC_RERUN_MS_FAIL: mother superior connection failed'),
        -21: (JobState.FAILED, 'JOB_EXEC_FAIL_SECURITY: security breach in PBS directory'),
        -22: (JobState.FAILED, 'JOB_EXEC_HOOKERROR: a hook failed or timed out'),
        -23: (JobState.FAILED, 'JOB_EXEC_FAIL_KRB5: no kerberos credentials'),
        -24: (JobState.FAILED, 'JOB_EXEC_KILL_NCPUS_BURST: exceeded ncpus (burst)'),
        -25: (JobState.FAILED, 'JOB_EXEC_KILL_NCPUS_SUM: exceeded ncpus (sum)'),
        -26: (JobState.FAILED, 'JOB_EXEC_KILL_VMEM: exceeded vmem'),
        -27: (JobState.FAILED, 'JOB_EXEC_KILL_MEM: exceeded mem'),
        -28: (JobState.TIMEOUT, 'JOB_EXEC_KILL_CPUT: exceeded cput'),
        -29: (JobState.TIMEOUT, 'JOB_EXEC_KILL_WALLTIME: exceeded walltime'),
        -30: (JobState.FAILED, 'JOB_EXEC_JOINJOB: join job error'),
    }

    def resource_directives(self, spec: JobSpec) -> list[str]:
        """As PbsFamily.resource_directives: one -l select= chunk per node (scattered)."""
        if not any((spec.nodes, spec.tasks, spec.tasks_per_node, spec.cpus_per_task,
                    spec.memory)):
            return []
        chunks = spec.nodes or 1
        per_chunk = spec.tasks_per_node or (math.ceil(spec.tasks / chunks) if spec.tasks else 1)
        threads = spec.cpus_per_task or 1
        select = f'select={chunks}:ncpus={per_chunk * threads}:mpiprocs={per_chunk}'
        if spec.cpus_per_task:
            select += f':ompthreads={threads}'
        if spec.memory:
            # a chunk is a node here, and job_options.memory is per node
            select += f':mem={pbs_size(spec.memory)}'
        out = [f'-l {select}']
        if spec.nodes and spec.nodes > 1:
            # one chunk per host, as SLURM's --nodes means
            out.append('-l place=scatter')
        return out

    def array_directive(self, array: str) -> str:
        """As PbsFamily.array_directive: -J with one range X-Y[:step], no limit."""
        range_part, _, limit = array.partition('%')
        if limit:
            raise ConfigError('job_options.scale_max_in_parallel', int(limit),
                              'PBS Pro\'s qsub -J cannot limit how many subjobs run at once '
                              f'(array {array!r})')
        if not re.fullmatch(r'[0-9]+-[0-9]+(:[0-9]+)?', range_part):
            raise ConfigError('job_options.array', array,
                              'PBS Pro\'s qsub -J takes one range X-Y[:step]')
        return f'-J {range_part}'

    def qstat_command(self, arrays: bool) -> str:
        """As PbsFamily.qstat_command: qstat -x -f, with -t only for arrays."""
        # -x: finished jobs too (while the server keeps job history);
        # -t: the subjobs of arrays, one block each
        return 'qstat -x -f -t' if arrays else 'qstat -x -f'

    def json_qstat_command(self, arrays: bool) -> str | None:
        """The same qstat printing JSON (-F json, PBS Pro 13 and later)."""
        return self.qstat_command(arrays).replace(' -f', ' -f -F json')

    def outcome(self, code: int,
                attrs: Mapping[str, str]) -> tuple[JobState, int | None, str]:
        """As the family's, and a job killed by a signal whose comment says the
        server terminated it (``... and terminated by USER@HOST``, qdel of a
        running job) is CANCELLED."""
        state, signal, meaning = super().outcome(code, attrs)
        if state is JobState.FAILED and signal and _DELETED.search(attrs.get('comment', '')):
            return JobState.CANCELLED, signal, f'deleted while it ran (signal {signal})'
        return state, signal, meaning

    def _ended_without_status(self, job_id: str, raw: str, attrs: Mapping[str, str],
                              source: str) -> JobStatus:
        """PBS Pro gives every job that ran an Exit_status; one that ended
        without it was deleted before it ran: by someone (CANCELLED), or by
        the server because a job it depends on did not end as its dependency
        requires (SKIPPED; PBS held it on that dependency with Hold_Types s)."""
        comment = attrs.get('comment', '')
        depend = attrs.get('depend', '')
        if depend and 's' in attrs.get('hold_types', ''):
            return JobStatus(job_id, JobState.SKIPPED, raw_state=raw, source=source,
                             reason=f'deleted by the server without running: a job it '
                                    f'depends on did not end as required ({depend})')
        return JobStatus(job_id, JobState.CANCELLED, raw_state=raw, source=source,
                         reason='deleted before it ran' + (f'; {comment}' if comment else ''))
