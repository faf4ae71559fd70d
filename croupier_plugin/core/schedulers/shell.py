"""SHELL: a job is a background process in its own session, with an exit-code file.

For hosts without a batch system (and the demo). Each job gets an id
``sh-<random>``; its files live in ``$HOME/.croupier/jobs``: ``ID.submitted``
when submitted, ``ID.pid`` once running, ``ID.rc`` with the exit code when it
ended, ``ID.cancelled`` when cancelled. ``max_time`` is enforced with
``timeout`` (exit code 124 means TIMEOUT).
"""

import re
import secrets
import shlex
from collections.abc import Callable, Iterable, Sequence

from ..errors import ConfigError
from ..model import JobSpec, JobState, JobStatus, scheduler_job_name
from . import template
from .base import (Scheduler, check_job_ids, is_job_id, output_files, render_body,
                   shebang)

STATE_DIR = '"$HOME"/.croupier/jobs'
TIMEOUT_EXIT = 124

_ROW = re.compile(r'(\S+)\|(\w+)\|(-?[0-9]*)')


def _exited(exit_code: int | None) -> tuple[JobState, str]:
    """(state, reason) of a job that exited with ``exit_code``."""
    if exit_code == 0:
        return JobState.COMPLETED, ''
    if exit_code == TIMEOUT_EXIT:
        return JobState.TIMEOUT, 'time limit reached'
    return JobState.FAILED, ''


class ShellScheduler(Scheduler[JobSpec]):
    """SHELL: each job a background process in its own session on a host without a batch system."""

    name = 'SHELL'
    script_suffix = '.sh'

    STATES = {
        'SUBMITTED': JobState.PENDING,
        'RUNNING': JobState.RUNNING,
        'EXITED': JobState.COMPLETED,      # refined by the exit code
        'CANCELLED': JobState.CANCELLED,
        'KILLED': JobState.FAILED,         # gone without an exit code
    }

    def __init__(self, new_id: Callable[[], str] | None = None) -> None:
        self._new_id = new_id or (lambda: 'sh-' + secrets.token_hex(8))
        self._limits: dict[str, str] = {}

    def check(self, spec: JobSpec) -> None:
        """A SHELL host runs one process per job: no arrays, no job factories."""
        if spec.array:
            prop = spec.factory or 'scale (or array)'
            raise ConfigError(f'job_options.{prop}', spec.array,
                              'a SHELL interface runs no job arrays or factories; use '
                              'SLURM, PBS or TORQUE')

    def render_script(self, spec: JobSpec, token: str | None = None) -> str:
        """As Scheduler.render_script: a bash script, with the time limit as a comment."""
        self.check(spec)
        head = [shebang(spec), f'# croupier SHELL job {scheduler_job_name(spec.name)}']
        if spec.max_time:
            head.append(f'# croupier-max-time: {spec.max_time}')
        return '\n'.join(head) + '\n' + render_body(spec)

    @staticmethod
    def output_patterns(spec: JobSpec) -> tuple[str, str]:
        """The stdout and stderr file patterns of ``spec`` (%j: job id, %x: job name)."""
        name = scheduler_job_name(spec.name)
        return (spec.stdout or f'{name}.%j.out', spec.stderr or f'{name}.%j.err')

    def output_paths(self, spec: JobSpec, job_id: str,
                     workdir: str | None) -> tuple[str, str]:
        """As Scheduler.output_paths: the patterns expanded, under ``workdir`` when relative."""
        return output_files(self.output_patterns(spec),
                            {'%j': job_id, '%x': scheduler_job_name(spec.name)}, workdir)

    def submit_command(self, spec: JobSpec, script_path: str, workdir: str,
                       after: Iterable[str] = ()) -> str:
        """As Scheduler.submit_command: start the launcher detached and print the new
        id. A SHELL host carries no dependency (holds_for is false): ``after`` is refused."""
        if list(after):
            raise ValueError(f'{self.name} cannot make a job wait for others')
        job_id = self._new_id()
        stdout, stderr = self.output_paths(spec, job_id, workdir)
        limit = str(spec.max_time) if spec.max_time else ''
        q = shlex.quote
        launcher = q(template.script('shell_launcher.sh'))
        return (
            f'd={STATE_DIR}; mkdir -p "$d" && cd {q(workdir)} && '
            f': > "$d/{job_id}.submitted" || exit $?; '
            # only the launcher goes to the background, detached from this shell's output
            f'setsid bash -c {launcher} croupier-job "$d" {job_id} {q(script_path)} '
            f'{q(stdout)} {q(stderr)} {q(limit)} < /dev/null > /dev/null 2>&1 & '
            f'echo {job_id}'
        )

    def parse_submit_output(self, stdout: str) -> str:
        """As Scheduler.parse_submit_output: the last ``sh-`` id line of the output."""
        for line in reversed(stdout.strip().splitlines()):
            if line.startswith('sh-') and is_job_id(line.strip()):
                return line.strip()
        raise ValueError(f'no job id in the SHELL submission output: {stdout[-300:]!r}')

    def status_command(self, job_ids: Sequence[str]) -> str:
        """As Scheduler.status_command: one ``id|STATE|code`` line per job from its files."""
        return template.command('shell_status.sh', state_dir=STATE_DIR,
                                ids=' '.join(check_job_ids(job_ids)))

    def parse_status_output(self, stdout: str, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """As Scheduler.parse_status_output: an exit code 124 is TIMEOUT, other non-zero FAILED."""
        seen: dict[str, tuple[str, str]] = {}
        for line in stdout.splitlines():
            m = _ROW.fullmatch(line.strip())
            if m:
                seen[m[1]] = (m[2], m[3])
        return {job_id: self._row_status(job_id, *seen[job_id]) if job_id in seen
                else self.missing(job_id, 'shell') for job_id in job_ids}

    def _row_status(self, job_id: str, raw: str, code: str) -> JobStatus:
        """The status one ``id|STATE|code`` row tells."""
        state = self.normalize(raw)
        exit_code = int(code) if code else None
        reason = ''
        if raw == 'EXITED':
            state, reason = _exited(exit_code)
        elif raw == 'KILLED':
            reason = 'the process ended without recording an exit code'
        return JobStatus(job_id, state, raw_state=raw, reason=reason,
                         exit_code=exit_code, source='shell')

    def cancel_command(self, job_ids: Sequence[str]) -> str:
        """As Scheduler.cancel_command: mark each job cancelled and end its session."""
        ids = ' '.join(check_job_ids(job_ids))
        # mark first, then end the job's whole session (script, timeout, children)
        return (
            f'd={STATE_DIR}; for j in {ids}; do '
            'if [ ! -f "$d/$j.rc" ]; then : > "$d/$j.cancelled"; '
            'if [ -f "$d/$j.pid" ]; then pkill -TERM -s "$(cat "$d/$j.pid")" 2>/dev/null; fi; '
            'fi; done; true'
        )

