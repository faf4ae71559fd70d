"""SLURM: sbatch scripts, one squeue(+sacct) round trip for many jobs, scancel."""

import shlex
from collections.abc import Collection, Iterable, Sequence

from ..model import JobSpec, JobState, JobStatus, format_hms, scheduler_job_name
from . import template
from .base import (Scheduler, check_job_ids, is_job_id, output_files, parse_exit_code,
                   render_body, shebang)
from .slurm_figures import SACCT_MARK, SlurmFigures
# where the tests and the bench read it
from .slurm_figures import slurm_duration as slurm_duration

P, R = JobState.PENDING, JobState.RUNNING
SQUEUE_RC_MARK = '@@croupier-squeue-rc='
# where a job's script leaves its exit code (a file per job id, on the shared
# home the login node sees too)
MARKER_DIR = '"$HOME"/.croupier/slurm'

# status_command's (squeue --Format fields, sacct fields, shell prefix), without
# and with the times; times as epoch seconds: no time zone to guess on this side
_FIELDS, _SACCT_FIELDS = 'JobArrayID:|,State:|,Reason:|,exit_code:', 'JobID,State,ExitCode,Reason'
STATUS_FIELDS = {
    False: (_FIELDS, _SACCT_FIELDS, ''),
    True: (_FIELDS + '|,SubmitTime:|,StartTime:|,TimeUsed:',
           _SACCT_FIELDS + ',Submit,Start,End,ElapsedRaw',
           'SLURM_TIME_FORMAT=%s; export SLURM_TIME_FORMAT; '),
}

# a status row: (job id, raw state, reason, exit text, source)
_Row = tuple[str, str, str, str, str]


def slurm_time(seconds: float) -> str:
    """``seconds`` as SLURM's --time value ([days-]hh:mm:ss)."""
    days, rest = divmod(int(seconds), 86400)
    return f'{days}-{format_hms(rest)}' if days else format_hms(rest)


def wait_status(text: str) -> tuple[int | None, int | None]:
    """squeue's exit_code field is the raw wait(2) status: 768 is exit code 3,
    15 is signal 15 (as recorded on SLURM 22.05)."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        return None, None
    if value & 0x7f:
        return 0, value & 0x7f
    return (value >> 8) & 0xff, 0


def _split_markers(stdout: str,
                   wanted: Collection[str]) -> tuple[str, dict[str, list[tuple[str, str]]]]:
    """(the plain jobs' marker lines, {array id: [(index, text)]} of the
    element markers of the arrays in ``wanted``) of marker_command's output."""
    plain: list[str] = []
    elements: dict[str, list[tuple[str, str]]] = {}
    for line in stdout.splitlines():
        name, _, text = line.strip().partition(' ')
        array_id, sep, index = name.partition('_')
        if sep and array_id in wanted and '_' not in index:
            elements.setdefault(array_id, []).append((index, text))
        else:
            plain.append(line)
    return '\n'.join(plain), elements


def _read_element_markers(found: list[tuple[str, str]]) -> tuple[dict[str, int], int, set[str]]:
    """({index: exit code}, the array's element count, the started indexes) of
    one array's element markers ``found`` ((index, text))."""
    codes: dict[str, int] = {}
    count = 0
    started: set[str] = set()
    for index, text in found:
        code, _, total = text.partition(' ')
        if text == 'run':
            started.add(index)
        elif code.isdigit() and total.isdigit():
            codes[index] = int(code)
            count = max(count, int(total))
    return codes, count, started


def _array_markers(array_id: str, found: list[tuple[str, str]]) -> JobStatus | None:
    """The JobStatus the element markers ``found`` ((index, text)) of one
    array tell, or None when only the scheduler can tell."""
    codes, count, started = _read_element_markers(found)
    if count and len(codes) >= count:
        return _ended_array(array_id, codes)
    # running only while an element's start marker is unread: the exit codes
    # of some elements say nothing of the others, which the scheduler may
    # hold pending
    if started - set(codes):
        return JobStatus(array_id, JobState.RUNNING, raw_state='RUNNING',
                         reason=f'array: {len(codes)}/{count or "?"} elements ended',
                         source='start marker')
    return None


def _ended_array(array_id: str, codes: dict[str, int]) -> JobStatus | None:
    """The status of an array every element of which left its exit code
    ({index: code}): None when one was ended by a signal (the scheduler knows why)."""
    if any(c >= 128 for c in codes.values()):
        return None
    done = sum(1 for c in codes.values() if c == 0)
    summary = f'array: {done}/{len(codes)} elements completed'
    failed = sorted((i for i, c in codes.items() if c), key=lambda i: int(i) if i.isdigit() else 0)
    if not failed:
        return JobStatus(array_id, JobState.COMPLETED, raw_state='COMPLETED',
                         reason=summary, exit_code=0, source='exit-code marker')
    first = failed[0]
    return JobStatus(array_id, JobState.FAILED, raw_state='FAILED',
                     reason=f'{summary}; element {first} ended with exit code {codes[first]}',
                     exit_code=codes[first], source='exit-code marker')


def _status_row(line: str, source: str) -> _Row | None:
    """The row of one squeue or sacct line (None: too few fields)."""
    fields = line.split('|')
    if len(fields) < 4:
        if len(fields) < 2:
            return None
        fields += [''] * (4 - len(fields))
    if ' ' in line:         # padded columns (other formats): trim them
        fields = [f.strip() for f in fields]
    if source == 'squeue':
        return (fields[0], fields[1], fields[2], fields[3], source)
    return (fields[0], fields[1], fields[3], fields[2], source)


def _file_row(rows: dict[str, list[_Row]], row: _Row) -> None:
    """File ``row`` in ``rows`` under its job's id; an array element's also
    under its array's id; a job step's ('.') nowhere: only allocations count."""
    job = row[0]
    if '_' not in job and '+' not in job:
        if '.' not in job:
            held = rows.get(job)
            if held is None:
                rows[job] = [row]
            else:
                held.append(row)
        return
    base = job.replace('+', '_').split('_')[0]
    if '.' in base:
        return
    rows.setdefault(base, []).append(row)
    rows.setdefault(job, []).append(row)   # an element, also asked about by its id


class SlurmScheduler(SlurmFigures, Scheduler[JobSpec]):
    """SLURM: sbatch scripts, squeue (and sacct) for status, scancel, sinfo for partitions."""

    name = 'SLURM'
    script_suffix = '.sbatch'
    # sbatch's words when slurmctld cannot take a job right now
    TRANSIENT_SUBMIT_ERRORS = ('Unable to contact slurm controller',
                               'Slurm temporarily unable to accept job',
                               'Socket timed out on send/recv operation',
                               'Connection refused')

    # every state of squeue(1)/sacct(1) in SLURM 22.05, long and compact
    STATES = {
        'PENDING': P, 'PD': P,
        'CONFIGURING': P, 'CF': P,
        'REQUEUED': P, 'RQ': P,
        'REQUEUE_HOLD': P, 'RH': P,
        'REQUEUE_FED': P, 'RF': P,
        'RESV_DEL_HOLD': P, 'RD': P,
        'RUNNING': R, 'R': R,
        'COMPLETING': R, 'CG': R,
        'SUSPENDED': R, 'S': R,
        'STOPPED': R, 'ST': R,
        'RESIZING': R, 'RS': R,
        'SIGNALING': R, 'SI': R,
        'STAGE_OUT': R, 'SO': R,
        'COMPLETED': JobState.COMPLETED, 'CD': JobState.COMPLETED,
        'FAILED': JobState.FAILED, 'F': JobState.FAILED,
        'BOOT_FAIL': JobState.FAILED, 'BF': JobState.FAILED,
        'NODE_FAIL': JobState.FAILED, 'NF': JobState.FAILED,
        'OUT_OF_MEMORY': JobState.FAILED, 'OOM': JobState.FAILED,
        'PREEMPTED': JobState.FAILED, 'PR': JobState.FAILED,
        'SPECIAL_EXIT': JobState.FAILED, 'SE': JobState.FAILED,
        'CANCELLED': JobState.CANCELLED, 'CA': JobState.CANCELLED,
        'REVOKED': JobState.CANCELLED, 'RV': JobState.CANCELLED,
        'TIMEOUT': JobState.TIMEOUT, 'TO': JobState.TIMEOUT,
        'DEADLINE': JobState.TIMEOUT, 'DL': JobState.TIMEOUT,
    }

    # squeue reasons of a pending job that only an administrator can release
    # (a user's own hold, JobHeldUser, stays pending); the second one is
    # written either way by slurmctld. Exact strings: the check runs per row
    SYSTEM_HOLDS = frozenset({'JobHeldAdmin', 'launch failed requeued held',
                              'launch_failed_requeued_held'})

    def __init__(self) -> None:
        # (raw state, exit text, source) -> (state, exit, signal)
        self._decoded: dict[tuple[str, str, str], tuple[JobState, int | None, int | None]] = {}
        # the last answer's statuses of jobs told by one row of their own: a row
        # (which holds the job id) seen again gives the same status, unbuilt
        self._row_statuses: dict[_Row, JobStatus] = {}

    # -- script -------------------------------------------------------------

    # the #SBATCH options given by a JobSpec attribute when it is set
    VALUED_OPTIONS = (('--nodes', 'nodes'), ('--ntasks', 'tasks'),
                      ('--ntasks-per-node', 'tasks_per_node'), ('--cpus-per-task', 'cpus_per_task'),
                      ('--partition', 'partition'), ('--mem', 'memory'),
                      ('--mem-per-cpu', 'mem_per_cpu'), ('--account', 'account'), ('--qos', 'qos'),
                      ('--reservation', 'reservation'), ('--mail-user', 'mail_user'),
                      ('--mail-type', 'mail_type'), ('--array', 'array'))

    def directives(self, spec: JobSpec, token: str | None = None) -> list[str]:
        """The #SBATCH options of ``spec`` (name, resources, the submission's
        ``token``, output files, extras)."""
        out = [f'--job-name={scheduler_job_name(spec.name)}']
        for flag, attribute in self.VALUED_OPTIONS:
            value = getattr(spec, attribute)
            if value is not None:
                out.append(f'{flag}={value}')
        if spec.max_time:
            out.append(f'--time={slurm_time(spec.max_time)}')
        if token:
            out.append(f'--comment=croupier:{token}')
        stdout, stderr = self.output_patterns(spec)
        return out + [f'--output={stdout}', f'--error={stderr}'] + list(spec.extra_directives)

    @staticmethod
    def output_patterns(spec: JobSpec) -> tuple[str, str]:
        """The --output and --error patterns of ``spec`` (%A_%a for an array's elements)."""
        name = scheduler_job_name(spec.name)
        ident = '%A_%a' if spec.array else '%j'
        return (spec.stdout or f'{name}.{ident}.out', spec.stderr or f'{name}.{ident}.err')

    def render_script(self, spec: JobSpec, token: str | None = None) -> str:
        """As Scheduler.render_script: #SBATCH directives, the marker prologue, the body."""
        head = [shebang(spec)] + [f'#SBATCH {d}' for d in self.directives(spec, token)]
        return '\n'.join(head + self.prologue(spec)) + '\n' + render_body(spec)

    def prologue(self, spec: JobSpec) -> list[str]:
        """Shell lines run before the job's body: the start and exit-code
        markers, left by an EXIT trap so that the monitor sees the start and
        the end of the job with a file check instead of a scheduler query.
        An array's elements each leave their own, named ``<array id>_<index>``,
        the exit code followed by the array's element count."""
        if not self.leaves_marker(spec):
            return []
        if spec.array:
            return template.script(
                'slurm_prologue.sh', marker_dir=MARKER_DIR,
                job_known='[ -n "${SLURM_ARRAY_JOB_ID:-}" ] && [ -n "${SLURM_ARRAY_TASK_ID:-}" ]',
                mark='"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
                count='" ${SLURM_ARRAY_TASK_COUNT:-0}"').split('\n')
        return template.script('slurm_prologue.sh', marker_dir=MARKER_DIR,
                               job_known='[ -n "${SLURM_JOB_ID:-}" ]', mark='"$SLURM_JOB_ID"',
                               count="''").split('\n')

    def leaves_marker(self, spec: JobSpec) -> bool:
        """Every job, arrays included (one marker per element)."""
        return True

    def marker_command(self, spent: Iterable[str] = (), started: Iterable[str] = (),
                       prune: bool = False) -> str:
        """List the markers present (see Scheduler.listing_command); an
        array's element markers go with the array's."""
        spent_ids, started_ids = check_job_ids(spent), check_job_ids(started)
        return self.listing_command(MARKER_DIR, spent_ids, started_ids,
                                    extra=[f'{j}_*.rc {j}_*.run' for j in spent_ids]
                                    + [f'{j}_*.run' for j in started_ids], prune=prune)

    def parse_markers(self, stdout: str, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """As Scheduler.parse_markers for plain jobs; an array asked about by
        its id is RUNNING from its first element's marker, and ends once every
        element left its exit code (its count is in each): COMPLETED when all
        are 0, else FAILED with the first failed element's code; an element
        ended by a signal leaves the array to the scheduler, which knows why."""
        plain, elements = _split_markers(stdout, {str(j) for j in job_ids})
        out = super().parse_markers(plain, job_ids)
        for array_id, found in elements.items():
            status = _array_markers(array_id, found)
            if status is not None:
                out[array_id] = status
        return out

    def holds_for(self, parent_spec: JobSpec) -> bool:
        """SLURM waits for any job, arrays included (for all their elements)."""
        return True

    def output_paths(self, spec: JobSpec, job_id: str,
                     workdir: str | None) -> tuple[str, str]:
        """As Scheduler.output_paths: the patterns expanded, under ``workdir`` when relative."""
        return output_files(self.output_patterns(spec),
                            {'%A': str(job_id), '%j': str(job_id),
                             '%x': scheduler_job_name(spec.name)}, workdir)

    # -- submit -------------------------------------------------------------

    def submit_command(self, spec: JobSpec, script_path: str, workdir: str,
                       after: Iterable[str] = ()) -> str:
        """sbatch from ``workdir``; with ``after`` (job ids), the job waits for
        their successful end and is dropped by SLURM when one fails."""
        depend = ''
        if after:
            ids = ':'.join(check_job_ids(after))
            depend = f'--dependency=afterok:{ids} --kill-on-invalid-dep=yes '
        return (f'cd {shlex.quote(workdir)} && '
                f'sbatch --parsable {depend}{shlex.quote(script_path)}')

    def parse_submit_output(self, stdout: str) -> str:
        """As Scheduler.parse_submit_output: the id of sbatch's last id line."""
        # --parsable prints "jobid" or "jobid;cluster"; plain sbatch prints
        # "Submitted batch job N"
        for line in reversed(stdout.strip().splitlines()):
            line = line.strip()
            if line.startswith('Submitted batch job '):
                line = line.split()[3]
            job_id = line.split(';')[0]
            if job_id.isdigit():
                return job_id
        raise ValueError(f'no job id in sbatch output: {stdout.strip()[-300:]!r}')

    # -- status -------------------------------------------------------------

    # squeue states of a job that has not ended
    LIVE = ('PENDING', 'RUNNING', 'COMPLETING', 'CONFIGURING', 'REQUEUED', 'REQUEUE_HOLD',
            'REQUEUE_FED', 'RESV_DEL_HOLD', 'SUSPENDED', 'STOPPED', 'RESIZING', 'SIGNALING',
            'STAGE_OUT')

    MANY_IDS = 50

    def status_command(self, job_ids: Sequence[str], times: bool = False) -> str:
        """squeue for every id; sacct only for what squeue cannot tell.

        Both run in one remote command, so a poll is one round trip whatever
        the number of jobs, and sacct (which loads slurmdbd) is asked only
        about jobs that left squeue and arrays whose shown elements all ended.
        With ``times`` each row also carries the submit and start times (epoch
        seconds) and the walltime used, after the fields the monitor reads.
        """
        fields, sacct_fields, prefix = STATUS_FIELDS[times]
        missing = template.command('slurm_missing.awk', live='|'.join(self.LIVE))
        return template.command(
            'slurm_status.sh', prefix=prefix, ids=shlex.quote(','.join(check_job_ids(job_ids))),
            query=self._squeue_query(len(job_ids), f"--Format='{fields}'"),
            squeue_rc_mark=SQUEUE_RC_MARK, sacct_mark=shlex.quote(SACCT_MARK),
            missing=shlex.quote(missing), sacct_fields=sacct_fields)

    def _squeue_query(self, count: int, squeue_format: str) -> str:
        """The squeue part of status_command for ``count`` ids: by id for a
        few; for many, all the user's jobs filtered on the cluster by awk
        (squeue filters a long --jobs list slowly)."""
        if count > self.MANY_IDS:
            return template.command('slurm_squeue_mine.sh', format=squeue_format,
                                    keep=shlex.quote(template.command('slurm_keep_ids.awk')))
        return template.command('slurm_squeue_ids.sh', format=squeue_format)

    def parse_status_output(self, stdout: str, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """As Scheduler.parse_status_output: squeue's rows first, sacct's for what
        squeue no longer shows; an array's elements aggregated into one status."""
        squeue_rows, sacct_rows = self._status_rows(stdout)
        result: dict[str, JobStatus] = {}
        known, seen = self._row_statuses, {}
        for job_id in job_ids:
            key = str(job_id)
            queued, accounted = squeue_rows.get(key), sacct_rows.get(key)
            # the common case, one row of the job's own (from squeue, or sacct alone)
            row = (queued[0] if queued and not accounted and len(queued) == 1 else
                   accounted[0] if accounted and not queued and len(accounted) == 1 else None)
            if row is not None and row[0] == key:
                status = known.get(row) or self._row_status(key, row)
                seen[row] = status
            else:
                status = self._job_status(key, queued, accounted)
            result[job_id] = status
        self._row_statuses = seen
        return result

    @staticmethod
    def _status_rows(stdout: str) -> tuple[dict[str, list[_Row]], dict[str, list[_Row]]]:
        """({id: squeue rows}, {id: sacct rows}) of status_command's output; an
        array element's row is filed under its own id and its array's."""
        squeue_rows: dict[str, list[_Row]] = {}
        sacct_rows: dict[str, list[_Row]] = {}
        rows, source = squeue_rows, 'squeue'
        for line in stdout.splitlines():
            if not line or line[0] == '@':
                if line.strip() == SACCT_MARK:
                    rows, source = sacct_rows, 'sacct'
                continue
            row = _status_row(line, source)
            if row is not None:
                _file_row(rows, row)
        return squeue_rows, sacct_rows

    def _job_status(self, key: str, queued: list[_Row] | None,
                    accounted: list[_Row] | None) -> JobStatus:
        """One job's status from its squeue and sacct rows (UNKNOWN when neither has one)."""
        if queued and not accounted and len(queued) == 1:
            return self._row_status(key, queued[0])
        if accounted and not queued and len(accounted) == 1:
            return self._row_status(key, accounted[0])
        merged = self._merge_rows(key, queued or [], accounted or [])
        statuses = [self._row_status(key, r) for r in merged]
        return self._aggregate(key, statuses) if statuses else self.missing(key, 'squeue+sacct')

    @staticmethod
    def _merge_rows(key: str, queued: list[_Row], accounted: list[_Row]) -> list[_Row]:
        """squeue is the live truth for what it still shows; sacct fills in
        what it no longer shows (a job that left squeue, array elements
        purged before the others ended). While slurmdbd lags, sacct may show
        an array as one bare-id row: it is dropped when elements are known."""
        merged: dict[str, _Row] = {}
        if '_' in key:              # one element of an array: its own row only
            return queued[-1:] or accounted[-1:]
        elements = [r for r in accounted if r[0] != key]
        for row in elements or accounted:
            merged[row[0]] = row
        if any(r[0] != key for r in queued):
            merged.pop(key, None)
        for row in queued:
            merged[row[0]] = row
        return list(merged.values())

    def _row_status(self, job_id: str, row: _Row) -> JobStatus:
        """The JobStatus one squeue or sacct row tells (a system hold: FAILED)."""
        _row_id, raw, reason, exit_text, source = row
        state, exit_code, signal = self._decoded.get((raw, exit_text, source)) or \
            self._decode(raw, exit_text, source)
        if state is P and reason in self.SYSTEM_HOLDS:
            # held where only an administrator can release it: it would never start
            return JobStatus(job_id, JobState.FAILED, raw,
                             f'held by the system, so it would never start: {reason}',
                             exit_code, signal, source)
        return JobStatus(job_id, state, raw, reason, exit_code, signal, source)

    def _decode(self, raw: str, exit_text: str,
                source: str) -> tuple[JobState, int | None, int | None]:
        """(state, exit code, signal) of a row's raw state and exit text."""
        # thousands of rows share a few (state, exit) pairs: decode each pair once
        decoded = self._decoded.get((raw, exit_text, source))
        if decoded is None:
            state = self.normalize(raw)
            if not state.terminal:
                decoded = (state, None, None)
            elif source == 'squeue':
                decoded = (state, *wait_status(exit_text))
            else:
                decoded = (state, *parse_exit_code(exit_text))
            if len(self._decoded) < 10000:
                self._decoded[(raw, exit_text, source)] = decoded
        return decoded

    def _aggregate(self, job_id: str, statuses: list[JobStatus]) -> JobStatus:
        """One status for an array's element statuses: unfinished first, then the worst."""
        if len(statuses) == 1:
            return statuses[0]
        # an array: unfinished while any element is; then the worst outcome wins
        order = [JobState.UNKNOWN, JobState.RUNNING, JobState.PENDING, JobState.FAILED,
                 JobState.TIMEOUT, JobState.CANCELLED, JobState.COMPLETED]
        for state in order:
            picked = [s for s in statuses if s.state is state]
            if picked:
                first = picked[0]
                done = sum(1 for s in statuses if s.state is JobState.COMPLETED)
                return JobStatus(job_id, state, raw_state=first.raw_state,
                                 reason=f'array: {done}/{len(statuses)} elements completed'
                                        + (f'; {first.reason}' if first.reason and
                                           first.reason != 'None' else ''),
                                 exit_code=first.exit_code, signal=first.signal,
                                 source=first.source)
        raise AssertionError('unreachable')
    # -- lost submissions ---------------------------------------------------

    finds_lost_submissions = True

    def lookup_command(self, token: str) -> str:
        """As Scheduler.lookup_command: squeue of the user's jobs with their comments."""
        # squeue keeps ended jobs for MinJobAge (300 s by default): long enough
        # for a connection or an orchestrator to come back
        return "squeue --me --noheader --states=all -o '%i|%k'"

    def parse_lookup_output(self, stdout: str, token: str) -> str | None:
        """As Scheduler.parse_lookup_output: the job whose comment is croupier:<token>."""
        wanted = f'croupier:{token}'
        for line in stdout.splitlines():
            job_id, _, comment = line.strip().partition('|')
            if comment.strip() == wanted:
                job_id = job_id.strip().split('_')[0]
                return job_id if is_job_id(job_id) else None
        return None

    # -- cancel -------------------------------------------------------------

    def cancel_command(self, job_ids: Sequence[str]) -> str:
        """As Scheduler.cancel_command: one scancel for every id."""
        return 'scancel -- ' + ' '.join(shlex.quote(j) for j in check_job_ids(job_ids))
