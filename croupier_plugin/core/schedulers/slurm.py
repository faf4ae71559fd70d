"""SLURM: sbatch scripts, one squeue(+sacct) round trip for many jobs, scancel."""

import shlex
from collections.abc import Iterable, Sequence

from ..accounting import JobFigures, clock_seconds, combined, whole_number
from ..model import (JobSpec, JobState, JobStatus, JobTimes, PartitionFigures, format_hms,
                     scheduler_job_name)
from .base import Scheduler, check_job_ids, is_job_id, parse_exit_code, render_body, shebang

P, R = JobState.PENDING, JobState.RUNNING
SACCT_MARK = '@@croupier-sacct@@'
SQUEUE_RC_MARK = '@@croupier-squeue-rc='
NOW_MARK = '@@croupier-now='
SINFO_MARK = '@@croupier-sinfo@@'
QUEUE_MARK = '@@croupier-queue@@'
JOBS_MARK = '@@croupier-jobs@@'
# where a job's script leaves its exit code (a file per job id, on the shared
# home the login node sees too)
MARKER_DIR = '"$HOME"/.croupier/slurm'

# a status row: (job id, raw state, reason, exit text, source)
_Row = tuple[str, str, str, str, str]
# a times row: (submit, start, end, walltime used), epoch seconds or seconds
_TimesRow = tuple[int | None, int | None, int | None, int | None]


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


def slurm_duration(text: str | None) -> int | None:
    """squeue's TimeUsed ('5:03', '1:02:03', '2-01:02:03') in whole seconds, or None
    (read as every scheduler duration is, by accounting.clock_seconds)."""
    seconds = clock_seconds(text)
    return None if seconds is None else int(seconds)


def _epoch(text: str | None) -> int | None:
    text = (text or '').strip()
    return int(text) if text.isdigit() and text != '0' else None


def _count(text: str | None) -> int:
    text = (text or '').strip()
    return int(text) if text.isdigit() else 0


def _sections(stdout: str, marks: Iterable[str]) -> dict[str, list[str]]:
    """{mark: [the lines after it, up to the next of ``marks``]}."""
    out: dict[str, list[str]] = {m: [] for m in marks}
    section: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith(NOW_MARK):
            continue
        if line.strip() in out:
            section = out[line.strip()]
        elif section is not None:
            section.append(line)
    return out


def _field(fields: Sequence[str], i: int) -> str:
    return fields[i] if len(fields) > i else ''


class SlurmScheduler(Scheduler):
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

    # -- script -------------------------------------------------------------

    def directives(self, spec: JobSpec) -> list[str]:
        """The #SBATCH options of ``spec`` (name, resources, token, output files, extras)."""
        name = scheduler_job_name(spec.name)
        out = [f'--job-name={name}']
        for flag, value in (('--nodes', spec.nodes), ('--ntasks', spec.tasks),
                            ('--ntasks-per-node', spec.tasks_per_node),
                            ('--cpus-per-task', spec.cpus_per_task),
                            ('--partition', spec.partition), ('--mem', spec.memory),
                            ('--mem-per-cpu', spec.mem_per_cpu), ('--account', spec.account),
                            ('--qos', spec.qos), ('--reservation', spec.reservation),
                            ('--mail-user', spec.mail_user), ('--mail-type', spec.mail_type),
                            ('--array', spec.array)):
            if value is not None:
                out.append(f'{flag}={value}')
        if spec.max_time:
            out.append(f'--time={slurm_time(spec.max_time)}')
        if getattr(spec, 'submit_token', None):
            out.append(f'--comment=croupier:{spec.submit_token}')
        stdout, stderr = self.output_patterns(spec)
        out.append(f'--output={stdout}')
        out.append(f'--error={stderr}')
        out.extend(spec.extra_directives)
        return out

    @staticmethod
    def output_patterns(spec: JobSpec) -> tuple[str, str]:
        """The --output and --error patterns of ``spec`` (%A_%a for an array's elements)."""
        name = scheduler_job_name(spec.name)
        ident = '%A_%a' if spec.array else '%j'
        return (spec.stdout or f'{name}.{ident}.out', spec.stderr or f'{name}.{ident}.err')

    def render_script(self, spec: JobSpec) -> str:
        """As Scheduler.render_script: #SBATCH directives, the marker prologue, the body."""
        head = [shebang(spec)] + [f'#SBATCH {d}' for d in self.directives(spec)]
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
            lines = ['if [ -n "${SLURM_ARRAY_JOB_ID:-}" ] && '
                     '[ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then',
                     '  croupier_mark="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
                     '  croupier_count=" ${SLURM_ARRAY_TASK_COUNT:-0}"']
        else:
            lines = ['if [ -n "${SLURM_JOB_ID:-}" ]; then',
                     '  croupier_mark="$SLURM_JOB_ID"',
                     "  croupier_count=''"]
        return lines + [
            f'  croupier_marks={MARKER_DIR}',
            # a marker of an earlier job with the same id (ids wrap around)
            '  rm -f "$croupier_marks/$croupier_mark.rc"',
            # started: its waiting dependants can be queued behind it
            '  { mkdir -p "$croupier_marks" && echo run > "$croupier_marks/$croupier_mark.run"; } '
            '|| :',
            '  trap \'croupier_exit=$?; { mkdir -p "$croupier_marks" && '
            'printf "%s%s\\n" "$croupier_exit" "$croupier_count" > '
            '"$croupier_marks/$croupier_mark.rc.tmp" && '
            'mv -f "$croupier_marks/$croupier_mark.rc.tmp" "$croupier_marks/$croupier_mark.rc"; } '
            '|| :; exit "$croupier_exit"\' EXIT',
            # killed by a signal: 128+n, which the monitor leaves to the scheduler
            "  trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM",
            "  trap 'exit 138' USR1; trap 'exit 140' USR2; trap 'exit 152' XCPU",
            'fi',
        ]

    def leaves_marker(self, spec: JobSpec) -> bool:
        """Every job, arrays included (one marker per element)."""
        return True

    def marker_command(self, spent: Iterable[str] = (), started: Iterable[str] = ()) -> str:
        """List the markers present (see Scheduler.listing_command); an
        array's element markers go with the array's."""
        spent_ids, started_ids = check_job_ids(spent), check_job_ids(started)
        return self.listing_command(MARKER_DIR, spent_ids, started_ids,
                                    extra=[f'{j}_*.rc {j}_*.run' for j in spent_ids]
                                    + [f'{j}_*.run' for j in started_ids])

    def parse_markers(self, stdout: str, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """As Scheduler.parse_markers for plain jobs; an array asked about by
        its id is RUNNING from its first element's marker, and ends once every
        element left its exit code (its count is in each): COMPLETED when all
        are 0, else FAILED with the first failed element's code; an element
        ended by a signal leaves the array to the scheduler, which knows why."""
        wanted = {str(j) for j in job_ids}
        plain: list[str] = []
        elements: dict[str, list[tuple[str, str]]] = {}
        for line in stdout.splitlines():
            name, _, text = line.strip().partition(' ')
            array_id, sep, index = name.partition('_')
            if sep and array_id in wanted and '_' not in index:
                elements.setdefault(array_id, []).append((index, text))
            else:
                plain.append(line)
        out = super().parse_markers('\n'.join(plain), job_ids)
        for array_id, found in elements.items():
            status = self._array_markers(array_id, found)
            if status is not None:
                out[array_id] = status
        return out

    @staticmethod
    def _array_markers(array_id: str, found: list[tuple[str, str]]) -> JobStatus | None:
        """The JobStatus the element markers ``found`` ((index, text)) of one
        array tell, or None when only the scheduler can tell."""
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
        if not count or len(codes) < count:
            # running only while an element's start marker is unread: the exit
            # codes of some elements say nothing of the others, which the
            # scheduler may hold pending
            if started - set(codes):
                return JobStatus(array_id, JobState.RUNNING, raw_state='RUNNING',
                                 reason=f'array: {len(codes)}/{count or "?"} elements ended',
                                 source='start marker')
            return None
        if any(c >= 128 for c in codes.values()):
            return None
        done = sum(1 for c in codes.values() if c == 0)
        summary = f'array: {done}/{len(codes)} elements completed'
        failed = sorted((i for i, c in codes.items() if c),
                        key=lambda i: int(i) if i.isdigit() else 0)
        if not failed:
            return JobStatus(array_id, JobState.COMPLETED, raw_state='COMPLETED',
                             reason=summary, exit_code=0, source='exit-code marker')
        first = failed[0]
        return JobStatus(array_id, JobState.FAILED, raw_state='FAILED',
                         reason=f'{summary}; element {first} ended with exit code '
                                f'{codes[first]}',
                         exit_code=codes[first], source='exit-code marker')

    def holds_for(self, parent_spec: JobSpec) -> bool:
        """SLURM waits for any job, arrays included (for all their elements)."""
        return True

    def output_paths(self, spec: JobSpec, job_id: str,
                     workdir: str | None) -> tuple[str, str]:
        """As Scheduler.output_paths: the patterns expanded, under ``workdir`` when relative."""
        out = []
        for pattern in self.output_patterns(spec):
            path = (pattern.replace('%A', str(job_id)).replace('%j', str(job_id))
                    .replace('%x', scheduler_job_name(spec.name)))
            if not path.startswith('/') and workdir:
                path = workdir.rstrip('/') + '/' + path
            out.append(path)
        return out[0], out[1]

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

    # -- queue figures --------------------------------------------------------

    @staticmethod
    def _figures_parts() -> list[str]:
        """Shell parts printing every partition's nodes and cores (sinfo; the
        default partition's name ends in '*'), then its pending and running
        jobs of all users, counted on the cluster (one line per partition and
        state)."""
        count = ('{n[$1 FS $2]++} END{for(k in n)print k FS n[k]}')
        return [f'echo {shlex.quote(SINFO_MARK)}',
                "sinfo --noheader -o '%P|%a|%D|%F|%C' 2>/dev/null",
                f'echo {shlex.quote(QUEUE_MARK)}',
                "squeue --noheader --states=PENDING,RUNNING -o '%P|%T' 2>/dev/null | "
                f'awk -F"|" {shlex.quote(count)}']

    def queue_command(self) -> str:
        """ONE command for the partitions' figures (placement)."""
        return '; '.join(self._figures_parts())

    def parse_queue_output(self, stdout: str) -> dict[str, PartitionFigures]:
        """{partition: PartitionFigures} from queue_command's output."""
        sections = _sections(stdout, (SINFO_MARK, QUEUE_MARK))
        return {p.name: p for p in self._partitions(sections[SINFO_MARK],
                                                      sections[QUEUE_MARK])}

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
        ids = ','.join(check_job_ids(job_ids))
        live = '|'.join(self.LIVE)
        # awk lists the wanted ids squeue does not show, and the arrays whose
        # elements squeue shows all ended (some may have been purged already)
        awk = ('BEGIN{n=split(ids,a,",");for(i=1;i<=n;i++)w[a[i]]=1}'
               '{split($1,b,/[_+]/);if($2~/^(' + live + ')$/||$1!~/_/){l[b[1]]=1;l[$1]=1}}'
               'END{s="";for(k in w)if(!(k in l))s=s (s==""?"":",") k;print s}')
        fields = 'JobArrayID:|,State:|,Reason:|,exit_code:'
        sacct_fields = 'JobID,State,ExitCode,Reason'
        prefix = ''
        if times:
            fields += '|,SubmitTime:|,StartTime:|,TimeUsed:'
            sacct_fields += ',Submit,Start,End,ElapsedRaw'
            # times as epoch seconds: no time zone to guess on this side
            prefix = 'SLURM_TIME_FORMAT=%s; export SLURM_TIME_FORMAT; '
        fmt = f"--Format='{fields}'"
        if len(job_ids) > self.MANY_IDS:
            # squeue filters a long --jobs list slowly; all the user's jobs,
            # filtered on the cluster by awk, cost one pass
            keep = ('BEGIN{n=split(ids,a,",");for(i=1;i<=n;i++)w[a[i]]=1}'
                    '{split($1,b,/[_+]/);if((b[1] in w)||($1 in w))print}')
            query = (f'sq=$(squeue --me --noheader --states=all {fmt} 2>/dev/null | '
                     f'awk -F"|" -v ids="$ids" {shlex.quote(keep)}); ')
        else:
            query = f'sq=$(squeue --noheader --states=all --jobs="$ids" {fmt} 2>/dev/null); '
        return (
            prefix +
            f'ids={shlex.quote(ids)}; '
            + query +
            'rc=$?; '
            'printf "%s\\n" "$sq"; '
            f'echo "{SQUEUE_RC_MARK}$rc"; '
            f'echo {shlex.quote(SACCT_MARK)}; '
            f'm=$(printf "%s\\n" "$sq" | awk -F"|" -v ids="$ids" {shlex.quote(awk)}); '
            'if [ -n "$m" ]; then sacct --noheader --parsable2 --allocations --jobs="$m" '
            f'--format={sacct_fields}; fi'
        )

    def parse_status_output(self, stdout: str, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """As Scheduler.parse_status_output: squeue's rows first, sacct's for what
        squeue no longer shows; an array's elements aggregated into one status."""
        squeue_rows: dict[str, list[_Row]] = {}
        sacct_rows: dict[str, list[_Row]] = {}
        rows = squeue_rows
        source = 'squeue'
        for line in stdout.splitlines():
            if not line or line[0] == '@':
                if line.strip() == SACCT_MARK:
                    rows, source = sacct_rows, 'sacct'
                continue
            fields = line.split('|')
            row: _Row
            if len(fields) < 4:
                if len(fields) < 2:
                    continue
                fields += [''] * (4 - len(fields))
            if ' ' in line:         # padded columns (other formats): trim them
                fields = [f.strip() for f in fields]
            job = fields[0]
            if source == 'squeue':
                row = (job, fields[1], fields[2], fields[3], source)
            else:
                row = (job, fields[1], fields[3], fields[2], source)
            if '_' not in job and '+' not in job:
                if '.' not in job:      # ('.': a job step row; only allocations count)
                    held = rows.get(job)
                    if held is None:
                        rows[job] = [row]
                    else:
                        held.append(row)
                continue
            base = job.replace('+', '_').split('_')[0]
            if '.' in base:
                continue
            rows.setdefault(base, []).append(row)
            rows.setdefault(job, []).append(row)   # an element, also asked about by its id
        result: dict[str, JobStatus] = {}
        row_status = self._row_status
        for job_id in job_ids:
            key = str(job_id)
            queued = squeue_rows.get(key)
            accounted = sacct_rows.get(key)
            if queued and not accounted and len(queued) == 1:
                result[job_id] = row_status(key, queued[0])     # the common case
                continue
            if accounted and not queued and len(accounted) == 1:
                result[job_id] = row_status(key, accounted[0])
                continue
            merged = self._merge_rows(key, queued or [], accounted or [])
            statuses = [row_status(key, r) for r in merged]
            result[job_id] = (self._aggregate(key, statuses) if statuses
                              else self.missing(job_id, 'squeue+sacct'))
        return result

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
        # thousands of rows share a few (state, exit) pairs: decode each pair once
        decoded = self._decoded.get((raw, exit_text, source))
        if decoded is None:
            exit_code: int | None
            signal: int | None
            state = self.normalize(raw)
            if not state.terminal:
                exit_code = signal = None
            elif source == 'squeue':
                exit_code, signal = wait_status(exit_text)
            else:
                exit_code, signal = parse_exit_code(exit_text)
            decoded = (state, exit_code, signal)
            if len(self._decoded) < 10000:
                self._decoded[(raw, exit_text, source)] = decoded
        state, exit_code, signal = decoded
        if state is P and reason in self.SYSTEM_HOLDS:
            # held where only an administrator can release it: it would never start
            return JobStatus(job_id, JobState.FAILED, raw,
                             f'held by the system, so it would never start: {reason}',
                             exit_code, signal, source)
        return JobStatus(job_id, state, raw, reason, exit_code, signal, source)

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

    # -- exporter -------------------------------------------------------------

    reports_partitions = True

    def exporter_command(self, job_ids: Sequence[str], partitions: bool = True) -> str:
        """ONE command for a metrics scrape: the cluster's clock, every
        partition's nodes and cores (sinfo), its pending and running jobs
        counted on the cluster (squeue of all users, one line per partition
        and state), then the status command of ``job_ids`` with their times.
        ``partitions=False`` leaves sinfo and the squeue counts out."""
        parts = [f'echo "{NOW_MARK}$(date +%s)"',
                 *(self._figures_parts() if partitions else []),
                 f'echo {shlex.quote(JOBS_MARK)}']
        if job_ids:
            parts.append(self.status_command(job_ids, times=True))
        return '; '.join(parts)

    def parse_exporter_output(
            self, stdout: str, job_ids: Sequence[str],
    ) -> tuple[list[PartitionFigures], dict[str, JobStatus], dict[str, JobTimes]]:
        """(partitions, {id: JobStatus}, {id: JobTimes}) from exporter_command's output."""
        now = None
        for line in stdout.splitlines():
            if line.startswith(NOW_MARK):
                now = _epoch(line[len(NOW_MARK):])
        sections = _sections(stdout, (SINFO_MARK, QUEUE_MARK, JOBS_MARK))
        jobs = sections[JOBS_MARK]
        partitions = self._partitions(sections[SINFO_MARK], sections[QUEUE_MARK])
        text = '\n'.join(jobs)
        statuses = self.parse_status_output(text, job_ids) if job_ids else {}
        times = self._times(jobs, job_ids, now)
        return partitions, statuses, times

    @staticmethod
    def _partitions(sinfo: Iterable[str], queue: Iterable[str]) -> list[PartitionFigures]:
        """PartitionFigures from sinfo's lines, with the pending and running
        job counts of squeue's (partition|state|count) lines."""
        counts: dict[tuple[str, str], int] = {}
        for line in queue:
            fields = line.strip().split('|')
            if len(fields) != 3:
                continue
            # a job queued to several partitions ("a,b") counts in each
            for name in fields[0].split(','):
                key = (name, fields[1])
                counts[key] = counts.get(key, 0) + _count(fields[2])
        out: dict[str, PartitionFigures] = {}
        for line in sinfo:
            fields = line.strip().split('|')
            if len(fields) != 5:
                continue
            name, avail, _nodes, node_aiot, cpu_aiot = fields
            default = name.endswith('*')
            name = name.rstrip('*')
            nodes = (node_aiot.split('/') + ['0'] * 4)[:4]
            cpus = (cpu_aiot.split('/') + ['0'] * 4)[:4]
            figures = out.get(name)
            # a partition over several node sets has one line per set: add them up
            values = [_count(nodes[3]), _count(nodes[0]), _count(nodes[1]),
                      _count(cpus[3]), _count(cpus[0]), _count(cpus[1])]
            if figures is not None:
                values = [a + b for a, b in zip(values, figures[2:8], strict=False)]
            # values: exactly the six node and core counts, which mypy cannot tell of a list
            out[name] = PartitionFigures(  # type: ignore[misc]
                                         name, avail.strip().lower() == 'up',
                                         *values,  # type: ignore[arg-type]
                                         jobs_pending=counts.get((name, 'PENDING'), 0),
                                         jobs_running=counts.get((name, 'RUNNING'), 0),
                                         default=default or bool(figures and figures.default))
        return list(out.values())

    @staticmethod
    def _times(lines: Iterable[str], job_ids: Sequence[str],
               now: int | None) -> dict[str, JobTimes]:
        """JobTimes from the rows of a status command run with ``times``:
        squeue rows (id|state|reason|rc|submit|start|used) before the sacct
        mark, sacct rows (id|state|exit|reason|submit|start|end|elapsed) after."""
        queued_rows: dict[str, list[_TimesRow]] = {}
        accounted_rows: dict[str, list[_TimesRow]] = {}
        rows = queued_rows
        for line in lines:
            if line.strip() == SACCT_MARK:
                rows = accounted_rows
                continue
            if not line or line.startswith('@@'):
                continue
            fields = [f.strip() for f in line.split('|')]
            if len(fields) < 7 or '.' in fields[0]:
                continue
            if rows is queued_rows:
                submit, start = _epoch(fields[4]), _epoch(fields[5])
                pending = fields[1] in ('PENDING', 'PD')
                used = 0 if pending else slurm_duration(fields[6])
                end = None
            else:
                if len(fields) < 8:
                    continue
                submit, start, end = _epoch(fields[4]), _epoch(fields[5]), _epoch(fields[6])
                used = _count(fields[7]) if fields[7].isdigit() else None
                pending = start is None
            job = fields[0]
            keys = [job]
            if '_' in job or '+' in job:
                keys.append(job.replace('+', '_').split('_')[0])
            for key in keys:
                rows.setdefault(key, []).append((submit, None if pending else start, end, used))
        out: dict[str, JobTimes] = {}
        for job_id in job_ids:
            key = str(job_id)
            found = queued_rows.get(key) or accounted_rows.get(key)
            if not found:
                continue
            submits = [r[0] for r in found if r[0] is not None]
            starts = [r[1] for r in found if r[1] is not None]
            used_list = [r[3] for r in found if r[3] is not None]
            submit = min(submits) if submits else None
            queued = None
            if submit is not None:
                if starts:
                    queued = max(0, min(starts) - submit)
                elif now is not None:
                    ends = [r[2] for r in found if r[2] is not None]
                    # never started: waited until it was cancelled, or until now
                    queued = max(0, (min(ends) if ends else now) - submit)
            out[job_id] = JobTimes(key, queued, max(used_list) if used_list else None)
        return out

    # -- accounting -------------------------------------------------------------

    ACCOUNTING_FIELDS = 'JobID,State,ElapsedRaw,TotalCPU,AllocNodes,AllocCPUS'

    def accounting_command(self, job_ids: Sequence[str]) -> str:
        """ONE sacct for the figures of every id in ``job_ids``: the job's row
        (which adds up its steps' CPU time) and its steps' rows (whose batch
        step tells when that CPU time is recorded)."""
        ids = ','.join(check_job_ids(job_ids))
        return (f'sacct --noheader --parsable2 --jobs={shlex.quote(ids)} '
                f'--format={self.ACCOUNTING_FIELDS}')

    def parse_accounting(self, stdout: str, job_ids: Sequence[str]) -> dict[str, JobFigures]:
        """{job_id: JobFigures} from accounting_command's output: elapsed
        (ElapsedRaw), CPU time used (TotalCPU), nodes and CPUs allocated. An
        array's figures add up its elements' (the longest elapsed). A job that
        sacct does not show yet, or shows unfinished, or that ran but whose
        batch step is not recorded as ended yet (slurmdbd records the job's
        end first, and its CPU time with the batch step's, a moment later), is
        left out."""
        rows: dict[str, list[tuple[bool, JobFigures]]] = {}
        batch_ended: set[str] = set()
        lines = [[f.strip() for f in line.split('|')] for line in stdout.splitlines()]
        for fields in lines:
            if len(fields) == 6 and fields[0].endswith('.batch'):
                if self.STATES.get(fields[1].split(' ')[0].rstrip('+').upper(),
                                   JobState.UNKNOWN).terminal:
                    batch_ended.add(fields[0][:-len('.batch')])
        for fields in lines:
            if len(fields) != 6 or not fields[0] or '.' in fields[0]:
                continue
            job, raw, elapsed, cpu, nodes, cpus = fields
            figures = JobFigures(whole_number(elapsed), clock_seconds(cpu), whole_number(nodes),
                                 whole_number(cpus), 'sacct')
            key = job.replace('+', '_').split('_')[0]
            ended = self.STATES.get(raw.split(' ')[0].rstrip('+').upper(),
                                    JobState.UNKNOWN).terminal
            # a job that never ran (cancelled in the queue) has no batch step
            ended = ended and (job in batch_ended or figures.elapsed == 0)
            rows.setdefault(key, []).append((ended, figures))
            if key != job:
                rows.setdefault(job, []).append((ended, figures))
        out: dict[str, JobFigures] = {}
        for job_id in job_ids:
            found = rows.get(str(job_id))
            if not found or not all(ended for ended, _ in found):
                continue
            parts = [figures for _, figures in found]
            out[job_id] = parts[0] if len(parts) == 1 else combined(parts, 'sacct')
        return out

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
