"""The `croupier` command: validate and run blueprints on the embedded engine."""

import argparse
import logging
import os
import re
import signal
import sys
import time
from types import FrameType
from typing import Any, Optional, TextIO

from . import runner
from .core.accounting import figures_columns
from .eventlog import EventLog, deployment_secrets
from .validation import validate_plan


class Console:
    """Shows the local engine's output: our progress lines and errors; the
    engine's per-task events only with --verbose."""

    def __init__(self, verbose: bool = False, stream: Optional[TextIO] = None) -> None:
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.start = time.monotonic()
        # set for a run on a named deployment: everything is recorded for the portal
        self.events: Optional[EventLog] = None

    def line(self, text: str) -> None:
        """Write ``text`` as a progress line, with the seconds since the console began."""
        elapsed = time.monotonic() - self.start
        self.stream.write(f'[{elapsed:7.1f}s] {text}\n')
        self.stream.flush()

    def log_out(self, log: dict[str, Any], **kwargs: Any) -> None:
        """Record a log line of the local engine; show errors, warnings and Croupier's
        own lines (every line with --verbose)."""
        if self.events is not None:
            self.events.log(log)
        text = (log.get('message') or {}).get('text', '')
        level = log.get('level', 'info')
        ours = (log.get('logger') or '').startswith('ctx.') or text.startswith('job ')
        if self.verbose or level in ('error', 'warning') or text.startswith(('job ', 'run_jobs')) \
                or (ours and level != 'debug' and (log.get('context') or {}).get('node_id')):
            self.line(text)

    def event_out(self, event: dict[str, Any], **kwargs: Any) -> None:
        """Record an event of the local engine; show failures (every event with
        --verbose)."""
        if self.events is not None:
            self.events.event(event)
        etype = event.get('event_type', '')
        text = (event.get('message') or {}).get('text', '')
        if self.verbose or etype in ('task_failed', 'workflow_failed'):
            self.line(f'{etype}: {text}' if etype else text)

    def install(self) -> None:
        """Make this console the one Cloudify's logs and events go to."""
        from cloudify import logs
        logs.stdout_log_out = self.log_out
        logs.stdout_event_out = self.event_out
        # operation loggers would also reach the root handler: shown once, here
        logging.getLogger('ctx').propagate = False


def layout(headers: list[str], body: list[list[str]]) -> str:
    """A plain-text table: the headers, a rule, then each row, columns as wide as
    their widest cell."""
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h)
              for i, h in enumerate(headers)]
    lines = ['  '.join(h.ljust(w) for h, w in zip(headers, widths, strict=False)),
             '  '.join('-' * w for w in widths)]
    lines += ['  '.join(c.ljust(w) for c, w in zip(row, widths, strict=False))
              for row in body]
    return '\n'.join(lines)


def _table(rows: list[dict]) -> str:
    headers = ['job', 'infrastructure', 'scheduler id', 'state', 'exit code', 'duration']
    with_labels = any(r.get('labels') for r in rows)
    # the scheduler's figures, when an interface keeps them (accounting_options)
    with_figures = any(r.get('accounting') for r in rows)
    if with_figures:
        headers += ['elapsed', 'cpu time', 'nodes', 'cpus']
    if with_labels:
        headers.append('labels')
    body = []
    for r in rows:
        duration = '' if r.get('duration') is None else f"{r['duration']:.1f}s"
        exit_code = '' if r.get('exit_code') is None else str(r['exit_code'])
        state = r.get('state') or 'NOT RUN'
        if r.get('simulated'):
            state += ' (simulated)'
        row = [r['name'], r.get('cluster') or '', r.get('job_id') or '',
               state, exit_code, duration]
        if with_figures:
            row += figures_columns(r.get('accounting'))
        if with_labels:
            row.append(','.join(f'{k}={v}' for k, v in sorted((r.get('labels') or {}).items())))
        body.append(row)
    return layout(headers, body)


def job_instances(env: runner.Environment) -> list:
    """The deployment's job node instances (nodes of type croupier.nodes.Job or
    derived), as stored: what `croupier status` and the portal's job table show."""
    from .edge import JOB_TYPE, node_views
    views = node_views(env.storage)
    return [instance for instance in env.storage.get_node_instances()
            if views[instance.node_id].is_a(JOB_TYPE)]


def job_rows(env: runner.Environment) -> list[dict]:
    """The summary rows from the deployment's stored runtime properties: one per
    job, and one per earlier attempt of a job that was retried or rerun."""
    rows = []
    for instance in job_instances(env):
        p = instance.runtime_properties or {}
        labels = p.get('labels') or {}
        attempts = list(p.get('attempts') or [])
        runs = attempts + [p] if (p.get('state') or not attempts) else attempts
        for number, run in enumerate(runs, 1):
            duration = None
            if run.get('submitted_at') and run.get('ended_at'):
                duration = run['ended_at'] - run['submitted_at']
            name = instance.id if len(runs) == 1 else f'{instance.id}#{number}'
            rows.append(dict(name=name, cluster=run.get('cluster'), job_id=run.get('job_id'),
                             state=run.get('state'), exit_code=run.get('exit_code'),
                             duration=duration, labels=labels,
                             simulated=bool(run.get('simulated')),
                             accounting=run.get('accounting')))
    return sorted(rows, key=lambda r: (r.get('job_id') is None and not r.get('state'),
                                       r['name']))


def _inputs(args: argparse.Namespace) -> dict:
    """The command's inputs, kept on ``args`` so that an error message about them
    can be cleaned of their values."""
    args.loaded_inputs = runner.load_inputs(args.inputs)
    return args.loaded_inputs


def cmd_validate(args: argparse.Namespace) -> int:
    """Parse the blueprint with its inputs and print every problem found; 1 when
    there is one."""
    env = runner.init_env(args.blueprint, _inputs(args))
    problems = validate_plan(env.storage)
    if problems:
        for problem in problems:
            print(f'error: {problem}', file=sys.stderr)
        return 1
    print(f'{args.blueprint}: valid')
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Validate, install, run_jobs and (unless --keep) uninstall the blueprint in one
    go, then print the jobs' table; 1 when a step failed."""
    console = Console(verbose=args.verbose)
    env = runner.init_env(args.blueprint, _inputs(args), name=args.name)
    problems = validate_plan(env.storage)
    if problems:
        for problem in problems:
            print(f'error: {problem}', file=sys.stderr)
        return 1
    console.install()
    status = _run_workflow(console, env, 'install')
    if status == 0:
        status = _run_workflow(console, env, 'run_jobs')
    print(_table(job_rows(env)))
    if args.keep:
        console.line('kept: working directories are left in place (--keep)')
    else:
        status = _run_workflow(console, env, 'uninstall') or status
    return status


def _run_workflow(console: Console, env: runner.Environment, workflow: str,
                  name: Optional[str] = None, parameters: Optional[dict] = None) -> int:
    """Execute ``workflow``; SIGINT/SIGTERM (and `croupier cancel NAME`) cancel it.

    On a named deployment, its logs and events are recorded (see eventlog), and a
    cancelled execution is stored as such: the local engine stores it as terminated,
    which `croupier status --executions` and the portal would show as completed.
    """
    from cloudify.workflows import workflow_api

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        console.line(f'signal {signum}: cancelling {workflow}')
        workflow_api.set_cancel_request()
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    if name:
        console.events = EventLog(name, deployment_secrets(env))
        _end_cancelled_as_cancelled(console, env)
        runner.write_pid_file(name)
    try:
        console.line(workflow)
        result = runner.execute(env, workflow, parameters)
        if result == workflow_api.EXECUTION_CANCELLED_RESULT or \
                workflow_api.has_cancel_request():
            console.line(f'{workflow} CANCELLED')
            return 1
        return 0
    except Exception as exc:          # the workflow's own message says what failed
        console.line(f'{workflow} FAILED: {_cause(exc)}')
        return 1
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if name:
            runner.remove_pid_file(name, only_pid=os.getpid())


def _end_cancelled_as_cancelled(console: Console, env: runner.Environment) -> None:
    """Have the engine store an execution that ends after a cancel request as
    cancelled, in the same write that stores its end (a reader never sees it ended
    as anything else), and record a workflow_cancelled event for it."""
    from datetime import datetime

    from cloudify.workflows import workflow_api
    storage = env.storage
    engine_end = storage.execution_ended

    def execution_ended(execution_id: str, error: Optional[BaseException] = None) -> None:
        if not workflow_api.has_cancel_request():
            return engine_end(execution_id, error)
        executions = storage.get_executions()
        workflow = None
        for execution in executions:
            if execution['id'] == execution_id:
                execution.update(status=CANCELLED, status_display=CANCELLED,
                                 ended_at=datetime.now(),
                                 error=_cause(error) if error else None)
                workflow = execution.get('workflow_id')
        storage._storage.store_executions(storage.name, executions)
        if console.events is not None:
            console.events.record('event', {
                'context': {'execution_id': execution_id, 'workflow_id': workflow},
                'message': {'text': f'{workflow} cancelled'}}, 'warning', 'workflow_cancelled')
    # the engine calls it on the deployment's storage object: this run's only
    storage.execution_ended = execution_ended


CANCELLED = 'cancelled'
# what the local engine stores, as Cloudify Manager names it: 'pending' until the end
# (the engine has no 'started'), 'terminated' for success
_EXECUTION_STATUS = {'terminated': 'completed', 'pending': 'started'}
RUNNING_STATUSES = ('pending', 'started', 'cancelling', 'force_cancelling')


def execution_rows(env: runner.Environment, runner_alive: bool) -> list[dict]:
    """The stored executions of the deployment, newest first, each with its status
    as `croupier status --executions` and the portal show it: completed, failed,
    cancelled, started; one still marked running whose runner has gone (``runner_alive``
    false) is interrupted (`croupier execute` resumes it)."""
    rows = []
    for e in env.storage.get_executions():
        status = _EXECUTION_STATUS.get(e.get('status'), e.get('status'))
        if status in RUNNING_STATUSES and not runner_alive:
            status = 'interrupted'
        start, end = e.get('started_at'), e.get('ended_at')
        rows.append({'id': e['id'], 'workflow': e.get('workflow_id'), 'status': status,
                     'parameters': e.get('parameters') or {},
                     'started_at': start, 'ended_at': end,
                     'duration_seconds': (end - start).total_seconds()
                     if start and end else None,
                     'error': e.get('error')})
    return list(reversed(rows))


def live_runner(name: str) -> Optional[int]:
    """The pid of the process running a workflow on ``name``, when its pid file names
    a live Croupier runner (the same process: same start time and command line)."""
    record = runner.read_pid_file(name)
    if not record:
        return None
    current = runner.process_identity(record['pid'])
    if current and all(current[k] == record[k] for k in ('start_time', 'cmdline')):
        return record['pid']
    return None


def _executions_table(rows: list[dict]) -> str:
    """The executions as `croupier status --executions` prints them."""
    headers = ['execution', 'workflow', 'status', 'started', 'duration']
    body = [[r['id'], r['workflow'] or '', r['status'] or '',
             r['started_at'].isoformat(timespec='seconds') if r['started_at'] else '',
             '' if r['duration_seconds'] is None else f"{r['duration_seconds']:.1f}s"]
            for r in rows]
    return layout(headers, body)


# A deployment name becomes a folder name in the store: nothing that could climb out
# of it or hide there.
NAME_PATTERN = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]{0,99}')


def _check_name(name: str) -> None:
    """Refuse a deployment name that is not a plain folder name."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f'deployment name {name!r}: use letters, digits, "_", "." and "-" '
                         f'(starting with a letter or digit, at most 100)')


def cmd_install(args: argparse.Namespace) -> int:
    """Create the named deployment and run install on it.

    The store's entries for the name are removed again when the deployment cannot be
    created (bad blueprint or inputs, refused properties), so that the name stays free.
    """
    _check_name(args.name)
    inputs = _inputs(args)
    with runner.store_lock():
        if _load(args.name) is not None:
            print(f'error: deployment {args.name!r} exists; uninstall it first',
                  file=sys.stderr)
            return 1
        if runner.remove_named(args.name):
            print(f'removed what an earlier failed install of {args.name!r} left',
                  file=sys.stderr)
        try:
            env = runner.init_env(args.blueprint, inputs, name=args.name,
                                  storage=runner.file_storage())
            problems = validate_plan(env.storage)
        except BaseException:
            runner.remove_named(args.name)
            raise
        if problems:
            runner.remove_named(args.name)
            for problem in problems:
                print(f'error: {problem}', file=sys.stderr)
            return 1
    console = Console(verbose=args.verbose)
    console.install()
    return _run_workflow(console, env, 'install', args.name)


def _load(name: str) -> Optional[runner.Environment]:
    """The stored deployment ``name`` (None when there is none), its name checked."""
    _check_name(name)
    try:
        return runner.load_named(name)
    except ValueError:          # json: a deployment.json cut short
        raise ValueError(f'deployment {name!r}: its stored state cannot be read; '
                         f'`croupier uninstall {name}` forgets it') from None


def _named(name: str) -> runner.Environment:
    """The stored deployment ``name``; a ValueError naming it when there is none."""
    env = _load(name)
    if env is None:
        raise ValueError(f'no deployment named {name!r}')
    return env


def cmd_execute(args: argparse.Namespace) -> int:
    """Run a workflow on the named deployment, then print the jobs' table."""
    env = _named(args.name)
    console = Console(verbose=args.verbose)
    console.install()
    status = _run_workflow(console, env, args.workflow, args.name)
    print(_table(job_rows(env)))
    return status


def cmd_rerun(args: argparse.Namespace) -> int:
    """run_jobs again on a deployment, keeping what completed: only the jobs that
    failed (or never ran because of them) are submitted."""
    env = _named(args.name)
    console = Console(verbose=args.verbose)
    console.install()
    status = _run_workflow(console, env, 'run_jobs', args.name,
                           parameters={'rerun_failed': True})
    print(_table(job_rows(env)))
    return status


def cmd_status(args: argparse.Namespace) -> int:
    """Print the named deployment's jobs (those with the --label values given) and,
    with --executions, its executions."""
    env = _named(args.name)
    rows = job_rows(env)
    for wanted in args.label or []:
        key, sep, value = wanted.partition('=')
        rows = [r for r in rows if key in r['labels'] and (not sep or r['labels'][key] == value)]
    print(_table(rows))
    if args.executions:
        print()
        print(_executions_table(execution_rows(env, live_runner(args.name) is not None)))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """Ask the process running a workflow on the deployment to cancel it.

    The pid file's process is signalled only when it still is that runner (same
    start time and command line): a pid the system has since given to another
    process is never signalled, and the stale file is removed.
    """
    _named(args.name)
    record = runner.read_pid_file(args.name)
    if record is None:
        print(f'no execution of {args.name!r} is running', file=sys.stderr)
        return 1
    pid = record.get('pid')
    # a pidfd pins the process: once it is checked, no other one can get the signal
    pidfd = None
    if isinstance(pid, int) and pid > 0 and hasattr(os, 'pidfd_open'):
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            pidfd = None
    try:
        current = runner.process_identity(pid) if isinstance(pid, int) and pid > 0 else None
        if not record:
            why = 'it does not record a Croupier process (pid, start time, command line)'
        elif current is None:
            why = f'process {pid} has ended'
        elif any(current[key] != record[key] for key in ('start_time', 'cmdline')):
            why = f'process {pid} is another process now'
        else:
            why = None
        if why:
            runner.remove_pid_file(args.name)
            print(f'no execution of {args.name!r} is running: its pid file was stale '
                  f'({why}) and is removed; nothing was signalled', file=sys.stderr)
            return 1
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        else:
            # (a positive int here: current is None for any other pid)
            os.kill(pid, signal.SIGTERM)  # type: ignore[arg-type]
    except ProcessLookupError:
        runner.remove_pid_file(args.name)
        print(f'no execution of {args.name!r} is running (process {pid} just ended)',
              file=sys.stderr)
        return 1
    finally:
        if pidfd is not None:
            os.close(pidfd)
    print(f'cancel requested (process {pid})')
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    """Uninstall the deployment and forget it; a name an install left half-created
    (stored, but never a complete deployment) is simply forgotten."""
    _check_name(args.name)
    with runner.store_lock():
        try:
            env = runner.load_named(args.name)
        except ValueError:          # its deployment.json was cut short
            env = None
        if env is None:
            if runner.remove_named(args.name):
                print(f'removed {args.name!r}: it was never completely created (or its '
                      f'stored state cannot be read), so no uninstall workflow ran')
                return 0
            raise ValueError(f'no deployment named {args.name!r}')
    console = Console(verbose=args.verbose)
    console.install()
    status = _run_workflow(console, env, 'uninstall', args.name)
    if status == 0:
        runner.remove_named(args.name)
    return status


def cmd_keys_generate(args: argparse.Namespace) -> int:
    """An ed25519 key pair: the private key goes to Vault, the public line to stdout."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from .core.errors import ConfigError, CroupierError
    from .core.vault import VaultSettings
    jwt = args.jwt
    if args.jwt_file:
        with open(args.jwt_file) as fh:
            jwt = fh.read().strip()
    jwt = jwt or os.environ.get('CROUPIER_JWT', '')
    try:
        settings = VaultSettings.from_properties({
            'address': args.vault_address, 'jwt': jwt, 'user': args.user,
            'auth_mount': args.auth_mount, 'role': args.role or '',
            'kv_mount': args.kv_mount})
    except ConfigError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    comment = f'croupier-{args.user}@{args.host}'
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    secret = {'private_key': private}
    if args.ssh_user:
        secret['user'] = args.ssh_user
    try:
        client = settings.login()
        try:
            where = settings.write(client, args.host, secret)
        finally:
            settings.logout(client)
    except CroupierError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(f'# private key stored in Vault at {where}; add this line to '
          f'~/.ssh/authorized_keys on {args.host}:', file=sys.stderr)
    print(f'{public} {comment}')
    return 0


def cmd_exporter(args: argparse.Namespace) -> int:
    """The Prometheus exporter, until SIGINT or SIGTERM."""
    import threading

    from .core.errors import ConfigError
    from .core.exporter import ExporterConfig, ExporterService
    try:
        config = ExporterConfig.load(args.config)
        if args.listen:
            config.listen = args.listen
        if args.port is not None:
            config.port = args.port
        service = ExporterService(config)
    except ConfigError as exc:
        print(f'error: {args.config}: {exc}', file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        stop.set()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, on_signal)
    service.start()
    print(f'croupier exporter: listening on {service.address} (metrics at /metrics, '
          f'registrations at /api/v1/registrations)', flush=True)
    stop.wait()
    service.stop()
    print('croupier exporter: stopped', flush=True)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """Print the site configuration in effect and where each value comes from."""
    from .core import site
    try:
        config = site.load()
    except site.SiteConfigError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    print(f'site configuration file: {config.file or "none"} (looked at: '
          f'{", ".join(config.searched)})')
    rows = [(key, config.get(key) or '-', config.describe(key)) for key in site.SETTINGS]
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    for key, value, source in rows:
        print(f'{key.ljust(width[0])}  {value.ljust(width[1])}  {source}')
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """The portal (Croupier Web) until interrupted."""
    from .web.serve import run
    return run(args.host, args.port, args.catalogue, args.allow_remote)


def _cause(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__


def main(argv: Optional[list[str]] = None) -> int:
    """The `croupier` command line: run the subcommand ``argv`` names; its exit status
    (2 for a bad blueprint, inputs or file)."""
    parser = argparse.ArgumentParser(prog='croupier', description='Run HPC workflow '
                                     'blueprints on the embedded Cloudify engine.')
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('validate', help='parse a blueprint and check every property')
    p.add_argument('blueprint')
    p.add_argument('-i', '--inputs', action='append', help='YAML file or NAME=VALUE')
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser('run', help='install, run_jobs and uninstall a blueprint')
    p.add_argument('blueprint')
    p.add_argument('-i', '--inputs', action='append', help='YAML file or NAME=VALUE')
    p.add_argument('--keep', action='store_true', help='do not uninstall at the end')
    p.add_argument('--name', default='croupier', help='deployment name')
    p.add_argument('-v', '--verbose', action='store_true', help="show the engine's events")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser('install', help='create a named local deployment and install it')
    p.add_argument('blueprint')
    p.add_argument('name')
    p.add_argument('-i', '--inputs', action='append', help='YAML file or NAME=VALUE')
    p.add_argument('-v', '--verbose', action='store_true')
    p.set_defaults(func=cmd_install)
    p = sub.add_parser('execute', help='run a workflow (default run_jobs) on a deployment')
    p.add_argument('name')
    p.add_argument('workflow', nargs='?', default='run_jobs')
    p.add_argument('-v', '--verbose', action='store_true')
    p.set_defaults(func=cmd_execute)
    p = sub.add_parser('rerun', help='run_jobs again, submitting only the jobs that failed '
                                     '(and those that never ran because of them)')
    p.add_argument('name')
    p.add_argument('-v', '--verbose', action='store_true')
    p.set_defaults(func=cmd_rerun)
    p = sub.add_parser('status', help="show a deployment's jobs")
    p.add_argument('name')
    p.add_argument('-l', '--label', action='append',
                   help='only jobs with this label (KEY=VALUE, or KEY for any value); repeatable')
    p.add_argument('-e', '--executions', action='store_true',
                   help='also list its executions (workflow, status, start, duration)')
    p.set_defaults(func=cmd_status)
    p = sub.add_parser('cancel', help="cancel a deployment's running execution")
    p.add_argument('name')
    p.set_defaults(func=cmd_cancel)
    p = sub.add_parser('uninstall', help='uninstall a deployment and forget it')
    p.add_argument('name')
    p.add_argument('-v', '--verbose', action='store_true')
    p.set_defaults(func=cmd_uninstall)
    p = sub.add_parser('keys', help='SSH keys kept in Vault')
    keys = p.add_subparsers(dest='keys_command', required=True)
    p = keys.add_parser('generate', help='create an ed25519 key pair, store the private key '
                        'in Vault, print the public key line')
    p.add_argument('--vault-address', required=True)
    p.add_argument('--jwt', default='', help='the JWT (visible to other local users in the '
                   'process list: prefer --jwt-file or CROUPIER_JWT)')
    p.add_argument('--jwt-file', help='file holding the JWT')
    p.add_argument('--user', required=True, help='your Vault user (the JWT role by default)')
    p.add_argument('--host', required=True, help='the HPC front-end the key is for')
    p.add_argument('--ssh-user', help='login user on the host, stored with the key')
    p.add_argument('--role', help='JWT role, when not the user')
    p.add_argument('--auth-mount', default='jwt')
    p.add_argument('--kv-mount', default='secret')
    p.set_defaults(func=cmd_keys_generate)
    p = sub.add_parser('exporter', help='run the Prometheus exporter (metrics of the '
                       'registered interfaces and jobs) until interrupted')
    p.add_argument('--config', required=True, help='YAML file: listen, port, hosts '
                   '(credentials per front-end) and/or vault, state_file, cache_seconds')
    p.add_argument('--listen', help='address to listen on (default: the file\'s, or 127.0.0.1)')
    p.add_argument('--port', type=int, help='port (default: the file\'s, or 9110; 0 picks one)')
    p.set_defaults(func=cmd_exporter)
    p = sub.add_parser('config', help='show the site configuration in effect (Vault and '
                       'exporter addresses, known_hosts) and where each value comes from')
    p.set_defaults(func=cmd_config)
    p = sub.add_parser('serve', help='the web portal and REST API over the named '
                       'deployments (prints its address with an access token)')
    p.add_argument('--host', default='127.0.0.1', help='address to listen on (default '
                   '127.0.0.1; others need --allow-remote)')
    p.add_argument('--port', type=int, default=8080, help='port (default 8080; 0 picks one)')
    p.add_argument('--catalogue', help='folder of applications (default '
                   '$CROUPIER_HOME/applications)')
    p.add_argument('--allow-remote', action='store_true',
                   help='allow a --host beyond loopback (plain HTTP: use a TLS proxy)')
    p.set_defaults(func=cmd_serve)
    args = parser.parse_args(argv)
    # the exporter is a service: its registrations are worth a log line
    default = 'INFO' if args.command == 'exporter' else 'WARNING'
    level = os.environ.get('CROUPIER_LOG_LEVEL', default).upper()
    logging.basicConfig(level=getattr(logging, level, logging.WARNING),
                        format='%(levelname)s %(name)s: %(message)s')
    try:
        return args.func(args)
    except Exception as exc:
        if isinstance(exc, _dsl_errors()):
            print('error: ' + dsl_message(exc, getattr(args, 'loaded_inputs', None)),
                  file=sys.stderr)
            return 2
        if isinstance(exc, (ValueError, OSError)):
            print(f'error: {exc}', file=sys.stderr)
            return 2
        raise


def _dsl_errors() -> tuple:
    """The exceptions Cloudify's DSL parser raises about a blueprint or its inputs."""
    from dsl_parser import exceptions
    return (exceptions.DSLParsingException, exceptions.MissingRequiredInputError,
            exceptions.UnknownInputError, exceptions.InputEvaluationError,
            exceptions.ConstraintException, exceptions.FunctionEvaluationError,
            exceptions.FunctionValidationError, exceptions.UnknownSecretError,
            exceptions.UnsupportedGetSecretError,
            exceptions.EvaluationRecursionLimitReached)


HIDDEN = '<hidden>'
# Every message of the DSL parser (cloudify-common 7.0.5) that quotes a value, as
# (text before the value, text after it); the value is whatever lies between, which
# may span lines (a private key). Greedy: a value holding the text after is still
# hidden whole.
_DSL_VALUE_SHAPES = [re.compile(f'({before})(.*)({after})', re.S) for before, after in (
    # utils.parse_value and constraints._validate_type_match (property and input types)
    (r"yet it was assigned with the value '", r"'$"),
    # functions.GetInput with a return type
    (r"Value '", r"' of input '[^']*' does not match data type declared for "),
    # constraints._validate_input_value: object-based types and constraints
    (r"Value '", r"' of '[^']*' is not a valid value for data type "),
    (r"Value '", r"' of input '[^']*' does not match any relevant entity"),
    (r"^Value ", r" of input \S+ (?:is invalid\.|violates constraint )"),
    (r"Input value ", r", of input \S+, cannot contain an intrinsic function"),
    # functions: unresolved arguments and argument type checks
    (r"found an unresolved argument: ", r"$"),
    (r"should not be a function \(", r"\)$"),
    (r"should be of type .*? but is .*? \(", r"\)$"),
)]


def _strings(value: object) -> list[str]:
    """Every string value inside ``value`` (in mappings, lists; keys are names, not
    values, and are left out)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in _strings(item)]
    return []


def dsl_message(exc: Exception, inputs: Optional[dict] = None) -> str:
    """The DSL parser's message for ``exc`` with every value it quotes hidden.

    The parser appends the offending YAML element (file, line, path and its whole
    value): the element is described here without its value. Besides the known
    message shapes, any string given as an input (four characters or more) is hidden
    wherever it still appears, also as Python would quote it inside a list.
    """
    from dsl_parser.exceptions import DSLParsingException
    if isinstance(exc, DSLParsingException):
        text = ' '.join(str(arg) for arg in exc.args)
    else:
        text = str(exc)
    for shape in _DSL_VALUE_SHAPES:
        text = shape.sub(lambda m: m.group(1) + HIDDEN + m.group(3), text)
    secrets = {s for s in _strings(inputs or {}) if len(s) >= 4}
    secrets |= {repr(s)[1:-1] for s in secrets}
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, HIDDEN)
    element = getattr(exc, 'element', None)
    if element is not None:
        if element.filename:
            text += f'\n  in: {element.filename}'
        line = element.name_start_line if element.name_start_line is not None \
            and element.name_start_line >= 0 else element.start_line
        if line is not None and line >= 0:
            text += f'\n  in line: {line + 1}'
        text += f'\n  path: {element.path}'
    return text


if __name__ == '__main__':
    sys.exit(main())
