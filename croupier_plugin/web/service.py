"""What the portal shows and does, without HTTP: the catalogue of applications, the
named deployments (the same store as `croupier install/execute/status`), the worker
processes that run their workflows, and the recorded logs and events.

Nothing returned here holds a secret: inputs whose name or type marks them as one are
masked, and their values are scrubbed from every message and log line.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from typing import Any, Optional

from .. import cli, runner
from ..core.blueprint import DEPENDS_ON, JOB_TYPE, MANAGED_BY, vault_of
from ..core.files import replace_file
from ..eventlog import (CREDENTIAL_TYPES, HIDDEN, given_inputs, input_definitions, is_secret,
                        read_events, scrub, secret_name, secret_strings)

MAX_PACKAGE_BYTES = 20 * 1024 * 1024      # an uploaded blueprint package, zipped
MAX_UNPACKED_BYTES = 100 * 1024 * 1024    # and unpacked
MAX_PACKAGE_FILES = 2000
RUNNING_STATUSES = cli.RUNNING_STATUSES
# The DSL parser and the local engine read relative imports from the current
# directory, which runner.init_env changes: one parse at a time in this process.
_PARSE_LOCK = threading.Lock()


class PortalError(ValueError):
    """A request the portal refuses; ``field`` names the form field (or input) that
    caused it, when one did, and ``status`` the HTTP status to answer with."""

    def __init__(self, message: str, field: Optional[str] = None, status: int = 400,
                 fields: Optional[dict] = None) -> None:
        super().__init__(message)
        self.field = field
        self.status = status
        self.fields = fields or ({field: message} if field else {})


# ---------------------------------------------------------------- secrets


def mask(name: str, value: Any, definition: Optional[dict] = None) -> Any:
    """``value`` as it may be shown: a secret hidden; in a mapping of credentials,
    only its secret-named fields."""
    if isinstance(value, dict) and (definition or {}).get('type') in CREDENTIAL_TYPES \
            or isinstance(value, dict) and not secret_name(name):
        return {k: mask(k, v) for k, v in value.items()}
    if secret_name(name) and value not in (None, ''):
        return HIDDEN
    return value


def mask_inputs(inputs: dict, definitions: dict) -> dict:
    """Every input, secrets masked."""
    return {k: mask(k, v, definitions.get(k)) for k, v in (inputs or {}).items()}


# ---------------------------------------------------------------- places


def portal_dir(*parts: str) -> str:
    """The portal's own private folder under CROUPIER_HOME (created on first use)."""
    path = os.path.join(runner.home(), 'portal', *parts)
    with runner.private_umask():
        os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def meta_path(name: str) -> str:
    """What the portal knows of ``name`` beyond the deployment (its application)."""
    return os.path.join(portal_dir('instances'), f'{name}.json')


def check_name(name: str, what: str, field_name: str = 'name') -> str:
    """``name`` when it is a plain folder name (as deployment names are)."""
    from ..cli import NAME_PATTERN
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise PortalError(f'{what} {name!r}: use letters, digits, "_", "." and "-" '
                          f'(starting with a letter or digit, at most 100)', field_name)
    return name


# ---------------------------------------------------------------- applications


@dataclass
class InputSpec:
    """One blueprint input as the creation form shows it."""
    name: str
    type: Optional[str]
    description: str
    default: Any
    required: bool
    secret: bool
    constraints: list = field(default_factory=list)

    @property
    def choices(self) -> Optional[list]:
        """The values a ``valid_values`` constraint allows, else None."""
        for constraint in self.constraints:
            if isinstance(constraint, dict) and 'valid_values' in constraint:
                return list(constraint['valid_values'])
        return None

    def as_dict(self) -> dict:
        """JSON-ready, its default masked when the input is a secret."""
        return dict(name=self.name, type=self.type, description=self.description,
                    default=HIDDEN if self.secret and self.default not in (None, '')
                    else self.default,
                    required=self.required, secret=self.secret,
                    constraints=self.constraints, choices=self.choices)


def input_specs(definitions: Optional[dict]) -> list[InputSpec]:
    """The blueprint's input definitions as form fields, in blueprint order."""
    specs = []
    for name, d in (definitions or {}).items():
        d = d or {}
        specs.append(InputSpec(name=name, type=d.get('type'),
                               description=str(d.get('description') or '').strip(),
                               default=d.get('default'), required='default' not in d,
                               secret=is_secret(name, d),
                               constraints=list(d.get('constraints') or [])))
    return specs


def job_graph(nodes: list[dict]) -> dict:
    """The jobs of a plan (or stored deployment) and their dependencies:
    {'jobs': [{name, interface, layer}], 'edges': [[parent, child]]}."""
    from .. import edge
    jobs, edges = {}, []
    for view in edge.node_views(nodes).values():
        if not view.is_a(JOB_TYPE):
            continue
        edges += [[parent, view.id] for parent in view.targets(DEPENDS_ON)]
        managers = view.targets(MANAGED_BY)
        jobs[view.id] = {'name': view.id, 'interface': managers[-1] if managers else None}
    edges = [e for e in edges if e[0] in jobs]
    layer: dict[str, int] = {}

    def depth(name: str, seen: tuple = ()) -> int:
        if name not in layer:
            parents = [p for p, c in edges if c == name and p not in seen]
            layer[name] = 1 + max((depth(p, seen + (name,)) for p in parents), default=-1)
        return layer[name]
    for name in jobs:
        jobs[name]['layer'] = depth(name)
    return {'jobs': sorted(jobs.values(), key=lambda j: (j['layer'], j['name'])),
            'edges': edges}


def graph_svg(graph: dict, states: Optional[dict] = None) -> str:
    """The job graph as inline SVG: one box per job (class ``state-STATE``, attribute
    ``data-job``), layers from left to right, an arrow per dependency."""
    from html import escape
    states = states or {}
    width, height, gap_x, gap_y = 150, 34, 60, 18
    rows: dict[int, int] = {}
    where = {}
    for job in graph['jobs']:
        row = rows.get(job['layer'], 0)
        rows[job['layer']] = row + 1
        where[job['name']] = (10 + job['layer'] * (width + gap_x), 10 + row * (height + gap_y))
    total_w = 20 + max((x for x, _ in where.values()), default=0) + width
    total_h = 20 + max((y for _, y in where.values()), default=0) + height
    parts = [f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="{total_w}" '
             f'height="{total_h}" viewBox="0 0 {total_w} {total_h}" role="img" '
             f'aria-label="job dependency graph">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
             'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
             '<path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>']
    for parent, child in graph['edges']:
        (x1, y1), (x2, y2) = where[parent], where[child]
        parts.append(f'<line class="edge" x1="{x1 + width}" y1="{y1 + height / 2}" '
                     f'x2="{x2}" y2="{y2 + height / 2}" marker-end="url(#arrow)"/>')
    for job in graph['jobs']:
        x, y = where[job['name']]
        state = states.get(job['name']) or 'NOT_RUN'
        label = job['name'] if len(job['name']) <= 20 else job['name'][:19] + '…'
        parts.append(f'<g class="job state-{escape(state)}" data-job="{escape(job["name"])}">'
                     f'<title>{escape(job["name"])}</title>'
                     f'<rect x="{x}" y="{y}" width="{width}" height="{height}" rx="6"/>'
                     f'<text x="{x + width / 2}" y="{y + height / 2 + 4}" '
                     f'text-anchor="middle">{escape(label)}</text></g>')
    parts.append('</svg>')
    return ''.join(parts)


@dataclass
class Application:
    """A blueprint folder of the catalogue."""
    name: str
    folder: str
    blueprint: str

    def plan(self) -> dict:
        """The blueprint parsed by Cloudify's DSL parser (inputs not yet given)."""
        return parse_blueprint(self.blueprint)

    def summary(self) -> dict:
        """Name, description, inputs and job graph (JSON-ready)."""
        plan = self.plan()
        return {'name': self.name, 'description': str(plan.get('description') or '').strip(),
                'inputs': [s.as_dict() for s in input_specs(plan.get('inputs'))],
                'graph': job_graph(plan.get('nodes') or [])}


def parse_blueprint(path: str) -> dict:
    """The DSL parser's plan of the blueprint at ``path``; a PortalError with the same
    message as `croupier validate` when it cannot be parsed."""
    from dsl_parser import parser
    from ..cli import _dsl_errors, dsl_message
    path = os.path.abspath(path)
    with _PARSE_LOCK:
        cwd = os.getcwd()
        try:
            runner.check_blueprint(path)
            os.chdir(os.path.dirname(path))
            return parser.parse_from_path(path, resolver=runner.resolver())
        except _dsl_errors() as exc:
            raise PortalError(dsl_message(exc), 'package') from None
        except ValueError as exc:
            raise PortalError(str(exc), 'package') from None
        finally:
            os.chdir(cwd)


def _blueprint_in(folder: str) -> Optional[str]:
    """The blueprint file of an application folder: blueprint.yaml, else the one
    top-level YAML file that declares a TOSCA version."""
    preferred = os.path.join(folder, 'blueprint.yaml')
    if os.path.isfile(preferred):
        return preferred
    candidates = []
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if entry.endswith(('.yaml', '.yml')) and os.path.isfile(path):
            with open(path, encoding='utf-8', errors='replace') as fh:
                if 'tosca_definitions_version' in fh.read(4096):
                    candidates.append(path)
    return candidates[0] if len(candidates) == 1 else None


class Catalogue:
    """The applications: one folder per blueprint under ``root``."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    def applications(self) -> list[Application]:
        """Every folder of the catalogue that holds a blueprint, by name."""
        if not os.path.isdir(self.root):
            return []
        found = []
        for entry in sorted(os.listdir(self.root)):
            folder = os.path.join(self.root, entry)
            if entry.startswith('.') or not os.path.isdir(folder):
                continue
            blueprint = _blueprint_in(folder)
            if blueprint:
                found.append(Application(entry, folder, blueprint))
        return found

    def get(self, name: str) -> Application:
        """The application ``name``; a 404 PortalError when there is none."""
        for app in self.applications():
            if app.name == name:
                return app
        raise PortalError(f'no application named {name!r}', 'application', status=404)

    def add_package(self, filename: str, data: bytes, name: Optional[str] = None) -> Application:
        """Unpack a blueprint package (a zip of the blueprint's folder) as the
        application ``name`` (default: the zip's name), after checking it: a zip no
        larger than MAX_PACKAGE_BYTES, no path out of the folder, no links, a blueprint
        the DSL parser accepts. Nothing is kept when a check fails."""
        name = name or re.sub(r'\.zip$', '', os.path.basename(filename or ''), flags=re.I)
        check_name(name, 'application name')
        if len(data) > MAX_PACKAGE_BYTES:
            raise PortalError(f'package {filename!r}: {len(data)} bytes, larger than '
                              f'{MAX_PACKAGE_BYTES}', 'package', status=413)
        target = os.path.join(self.root, name)
        if os.path.exists(target):
            raise PortalError(f'application {name!r} exists', 'name', status=409)
        os.makedirs(self.root, exist_ok=True)
        staging = os.path.join(self.root, f'.upload-{name}-{os.getpid()}-{time.time_ns()}')
        try:
            _unzip(filename, data, staging)
            folder = _single_top_folder(staging)
            blueprint = _blueprint_in(folder)
            if blueprint is None:
                raise PortalError(f'package {filename!r}: no blueprint.yaml (nor a single '
                                  f'top-level YAML blueprint) in it', 'package')
            parse_blueprint(blueprint)
            os.rename(folder, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return Application(name, target, os.path.join(target, os.path.basename(blueprint)))


def _unzip(filename: str, data: bytes, target: str) -> None:
    """Unpack the zip ``data`` into ``target``, refusing what could escape it."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise PortalError(f'package {filename!r}: not a zip file', 'package') from None
    members = archive.infolist()
    if len(members) > MAX_PACKAGE_FILES:
        raise PortalError(f'package {filename!r}: more than {MAX_PACKAGE_FILES} files',
                          'package')
    if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
        raise PortalError(f'package {filename!r}: unpacks to more than '
                          f'{MAX_UNPACKED_BYTES} bytes', 'package')
    os.makedirs(target)
    for member in members:
        path = os.path.normpath(os.path.join(target, member.filename))
        if member.filename.startswith('/') or not path.startswith(target + os.sep):
            raise PortalError(f'package {filename!r}: {member.filename!r} lies outside '
                              f'the package folder', 'package')
        mode = member.external_attr >> 16
        if (mode & 0o170000) == 0o120000:
            raise PortalError(f'package {filename!r}: {member.filename!r} is a symbolic '
                              f'link', 'package')
        if member.is_dir():
            os.makedirs(path, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with archive.open(member) as src, open(path, 'wb') as dst:
            shutil.copyfileobj(src, dst)


def _single_top_folder(staging: str) -> str:
    """The blueprint folder of an unpacked package: the package itself, or its only
    top-level folder when the zip holds the folder rather than its content."""
    entries = [e for e in os.listdir(staging) if e != '__MACOSX']
    if len(entries) == 1 and os.path.isdir(os.path.join(staging, entries[0])):
        return os.path.join(staging, entries[0])
    return staging


# ---------------------------------------------------------------- inputs


def convert_inputs(specs: list[InputSpec], raw: dict) -> dict:
    """Form values (strings) as the blueprint's input types; an empty field of an
    input with a default is left out (the default applies). Every field that cannot
    be read is named in one PortalError."""
    values, errors = {}, {}
    by_name = {s.name: s for s in specs}
    for name, text in raw.items():
        spec = by_name.get(name)
        if spec is None:
            continue
        if text is None or text == '':
            if spec.required:
                errors[name] = f'input {name}: required'
            continue
        try:
            values[name] = _typed(spec, text)
        except (ValueError, TypeError) as exc:
            errors[name] = f'input {name}: {exc}'
    for spec in specs:
        if spec.required and spec.name not in raw and spec.name not in errors:
            errors[spec.name] = f'input {spec.name}: required'
    if errors:
        raise PortalError('; '.join(errors.values()), fields=errors)
    return values


def _typed(spec: InputSpec, text: str) -> Any:
    """One form value as its input's type (YAML for untyped inputs, as the CLI's
    NAME=VALUE; strings for secrets and strings)."""
    kind = spec.type
    if kind == 'string' or (spec.secret and kind is None):
        return text
    if kind == 'integer':
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError('must be an integer') from None
    if kind == 'float':
        try:
            return float(text.strip())
        except ValueError:
            raise ValueError('must be a number') from None
    if kind == 'boolean':
        lowered = text.strip().lower()
        if lowered not in ('true', 'false'):
            raise ValueError('must be true or false')
        return lowered == 'true'
    value = runner.parse_yaml(text, f'input {spec.name}')
    return text if value is None else value


def field_errors(message: str, specs: list[InputSpec]) -> dict:
    """The inputs a validation message names, each with the message."""
    named = {s.name: message for s in specs
             if re.search(r"(?<![\w.-])'?" + re.escape(s.name) + r"'?(?![\w-])", message)}
    return named


def validate_inputs(app: Application, inputs: dict) -> None:
    """Check the application's blueprint with ``inputs`` as `croupier validate` does
    (no remote side effect); a PortalError naming the input fields at fault."""
    from cloudify.workflows.local import InMemoryStorage
    from ..cli import _dsl_errors, dsl_message
    from ..validation import validate_plan
    specs = input_specs(app.plan().get('inputs'))
    with _PARSE_LOCK:
        try:
            env = runner.init_env(app.blueprint, inputs, name='portal-check',
                                  storage=InMemoryStorage())
            problems = validate_plan(env.storage)
        except _dsl_errors() as exc:
            message = dsl_message(exc, inputs)
            raise PortalError(message, fields=field_errors(message, specs)) from None
        except ValueError as exc:
            raise PortalError(scrub(str(exc), secret_strings(inputs, {}))) from None
    if problems:
        secrets = secret_strings(inputs, app.plan().get('inputs') or {})
        message = '\n'.join(scrub(p, secrets) for p in problems)
        raise PortalError(message, fields=field_errors(message, specs))


# ---------------------------------------------------------------- instances


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def instance_names() -> list[str]:
    """Every named deployment (and every one the portal is still creating)."""
    names = set()
    root = os.path.join(runner.store_root(), 'deployments')
    if os.path.isdir(root):
        names |= {n for n in os.listdir(root)
                  if os.path.exists(os.path.join(root, n, 'deployment.json'))}
    names |= {n[:-5] for n in os.listdir(portal_dir('instances')) if n.endswith('.json')
              and Workers.alive(n[:-5])}
    return sorted(names)


def _job_rows(env: runner.Environment, now: float) -> list[dict]:
    """One row per job instance: the current attempt's figures and its earlier
    attempts' count."""
    rows = []
    for instance in cli.job_instances(env):
        p = instance.runtime_properties or {}
        submitted, started, ended = p.get('submitted_at'), p.get('started_at'), p.get('ended_at')
        queued = running = None
        if submitted and (started or not ended):
            # a job that ended between two polls was never seen running: its wait and
            # its run cannot be told apart, and neither is given
            queued = (started or now) - submitted
        if started:
            running = (ended or now) - started
        rows.append({'name': instance.id, 'node': instance.node_id,
                     'infrastructure': p.get('cluster'), 'job_id': p.get('job_id'),
                     'state': p.get('state') or 'NOT_RUN', 'raw_state': p.get('raw_state'),
                     'reason': p.get('reason'), 'exit_code': p.get('exit_code'),
                     'submitted_at': submitted, 'started_at': started, 'ended_at': ended,
                     'queued_seconds': queued, 'running_seconds': running,
                     'labels': p.get('labels') or {},
                     'attempts': len(p.get('attempts') or []) + (1 if p.get('job_id') else 0),
                     'has_output': bool(p.get('stdout') or p.get('stderr'))})
    return sorted(rows, key=lambda r: (r['submitted_at'] is None, r['submitted_at'] or 0,
                                       r['name']))


def _when(value: Any) -> Optional[str]:
    """A stored execution time as ISO text."""
    if value is None:
        return None
    return value.isoformat(timespec='seconds') if hasattr(value, 'isoformat') else str(value)


def _executions(env: runner.Environment, name: str, secrets: list[str]) -> list[dict]:
    """The deployment's executions as `croupier status --executions` shows them,
    newest first, times as ISO text and errors scrubbed of secrets."""
    alive = cli.live_runner(name) is not None or Workers.alive(name)
    found = []
    for row in cli.execution_rows(env, alive):
        found.append(dict(row, started_at=_when(row['started_at']),
                          ended_at=_when(row['ended_at']),
                          error=scrub(row['error'], secrets) if row['error'] else None))
    return found


def load_env(name: str) -> runner.Environment | None:
    """The stored deployment ``name``, or None (also while it is being created)."""
    try:
        return runner.load_named(name)
    except ValueError:
        return None


def instance_view(name: str) -> dict:
    """Everything the instance page and ``GET /api/v1/instances/NAME`` show.

    The store's files are replaced whole (runner.PrivateFileStorage): a read never
    meets one half-written.
    """
    check_name(name, 'instance')
    meta = _read_json(meta_path(name)) or {}
    env = load_env(name)
    if env is None:
        if not Workers.alive(name) and not meta:
            raise PortalError(f'no instance named {name!r}', 'name', status=404)
        return {'name': name, 'application': meta.get('application'), 'inputs': {},
                'state': 'creating' if Workers.alive(name) else 'failed to create',
                'jobs': [], 'executions': [], 'graph': {'jobs': [], 'edges': []},
                'running_execution': None, 'worker_log': Workers.log_tail(name)}
    plan = env.plan
    definitions = input_definitions(env)
    given = given_inputs(env)
    secrets = secret_strings(given, definitions)
    executions = _executions(env, name, secrets)
    running = next((e for e in executions if e['status'] in RUNNING_STATUSES), None)
    last = executions[0] if executions else None
    nodes = [dict(n, id=n.id) for n in env.storage.get_nodes()]
    return {'name': name, 'application': meta.get('application'),
            'description': str(plan.get('description') or '').strip(),
            'inputs': mask_inputs(given, definitions),
            'state': (last or {}).get('status') or 'created',
            'last_workflow': (last or {}).get('workflow'),
            'jobs': _job_rows(env, time.time()), 'executions': executions,
            'graph': job_graph(nodes),
            'running_execution': running['id'] if running else None,
            'worker_log': Workers.log_tail(name) if not executions else ''}


def find_execution(execution_id: str) -> tuple[str, dict]:
    """(instance name, execution) of the execution ``execution_id``."""
    for name in instance_names():
        env = load_env(name)
        if env is None:
            continue
        for e in env.storage.get_executions():
            if e['id'] == execution_id:
                return name, e
    raise PortalError(f'no execution {execution_id!r}', 'id', status=404)


def job_output(name: str, job: str, stream: str, lines: int = 50) -> str:
    """The last ``lines`` lines of a job's stdout or stderr, read on its
    infrastructure (credentials as install got them, Vault included)."""
    from .. import edge
    if stream not in ('stdout', 'stderr'):
        raise PortalError(f'stream {stream!r}: stdout or stderr', 'stream')
    env = load_env(check_name(name, 'instance'))
    if env is None:
        raise PortalError(f'no instance named {name!r}', 'name', status=404)
    instances = {i.id: i for i in env.storage.get_node_instances()}
    if job not in instances:
        raise PortalError(f'instance {name}: no job {job!r}', 'job', status=404)
    record = instances[job].runtime_properties or {}
    path = record.get(stream)
    if not path or not record.get('cluster'):
        return ''
    views = edge.node_views(env.storage)
    target = views[record['cluster']]
    vault_view = vault_of(target, views)
    vault = (vault_view.id, vault_view.properties) if vault_view else None
    settings = edge.interface_settings(target.id, target.properties, vault)
    cluster = settings.cluster()
    text = cluster.tail(path, max(1, min(int(lines), 1000)))
    return scrub(text, secret_strings(given_inputs(env), input_definitions(env)))


def read_logs(name: str, offset: int = 0, limit: int = 50, level: str = '',
              event_type: str = '', execution: str = '') -> dict:
    """A page of ``name``'s recorded logs and events, newest last, filtered by level,
    event type and execution; also the levels and event types there are."""
    items, levels, types = [], set(), set()
    for item in read_events(name):
        levels.add(item.get('level') or '')
        types.add(item.get('event_type') or '')
        if level and item.get('level') != level:
            continue
        if event_type and item.get('event_type') != event_type:
            continue
        if execution and item.get('execution_id') != execution:
            continue
        items.append(item)
    offset, limit = max(0, int(offset)), max(1, min(int(limit), 500))
    return {'total': len(items), 'offset': offset, 'limit': limit,
            'items': items[offset:offset + limit],
            'levels': sorted(levels - {''}), 'event_types': sorted(types - {''})}


def dashboard() -> list[dict]:
    """Every instance with its application, job counts and last execution."""
    rows = []
    for name in instance_names():
        try:
            view = instance_view(name)
        except PortalError:
            continue
        last = view['executions'][0] if view['executions'] else None
        counts: dict[str, int] = {}
        for job in view['jobs']:
            counts[job['state']] = counts.get(job['state'], 0) + 1
        rows.append({'name': name, 'application': view['application'], 'state': view['state'],
                     'last_execution': last, 'jobs': counts})
    return rows


# ---------------------------------------------------------------- workers


class Workers:
    """The detached processes (``python -m croupier_plugin.web.worker``) that run
    workflows: in their own session, so they outlive `croupier serve`, and reaped by
    a thread while the server that started them runs."""

    _lock = threading.Lock()
    _procs: dict[str, subprocess.Popen] = {}

    @classmethod
    def alive(cls, name: str) -> bool:
        """Whether a worker this server started for ``name`` still runs."""
        proc = cls._procs.get(name)
        return proc is not None and proc.poll() is None

    @classmethod
    def log_path(cls, name: str) -> str:
        """The worker's own output (the CLI's lines and errors)."""
        return os.path.join(portal_dir('workers'), f'{name}.log')

    @classmethod
    def log_tail(cls, name: str, size: int = 4000) -> str:
        """The end of the last worker's output for ``name``."""
        try:
            with open(cls.log_path(name), 'rb') as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - size))
                return fh.read().decode('utf-8', errors='replace')
        except OSError:
            return ''

    @classmethod
    def start(cls, name: str, action: str, *args: str, announce: bool = False) -> Optional[int]:
        """Start a worker for ``action`` on ``name``; a 409 PortalError when a workflow
        already runs on it. With ``announce``, returns the read end of the pipe on
        which the worker writes its execution's id (see wait_for_execution)."""
        read_fd = write_fd = None
        if announce:
            read_fd, write_fd = os.pipe()
            args = (*args, '--announce-fd', str(write_fd))
        try:
            cls._spawn(name, action, args, write_fd)
        except BaseException:
            if read_fd is not None:
                os.close(read_fd)
            raise
        finally:
            # only the worker holds the write end: its end (or exit) is our end of file
            if write_fd is not None:
                os.close(write_fd)
        return read_fd

    @classmethod
    def _spawn(cls, name: str, action: str, args: tuple, pass_fd: Optional[int]) -> None:
        """Start the worker process (see start)."""
        with cls._lock:
            previous = cls._procs.get(name)
            if previous is not None and not cli.live_runner(name):
                # its workflow has ended: the worker is only printing its summary
                with contextlib.suppress(subprocess.TimeoutExpired):
                    previous.wait(5)
            if cls.alive(name) or cli.live_runner(name):
                raise PortalError(f'instance {name!r}: a workflow is running on it',
                                  'name', status=409)
            with runner.private_umask():
                log = open(cls.log_path(name), 'ab')
            try:
                proc = subprocess.Popen(
                    [sys.executable, '-m', 'croupier_plugin.web.worker', action, name, *args],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, close_fds=True,
                    pass_fds=(pass_fd,) if pass_fd is not None else (),
                    env=dict(os.environ, CROUPIER_HOME=runner.home()))
            finally:
                log.close()
            cls._procs[name] = proc
        threading.Thread(target=proc.wait, daemon=True).start()

    @staticmethod
    def wait_for_execution(name: str, read_fd: int, timeout: float = 15.0) -> Optional[dict]:
        """The execution the worker announces on ``read_fd`` (closed here), once stored;
        None when the worker ended without starting one, or said nothing in time."""
        import select
        received = b''
        deadline = time.monotonic() + timeout
        try:
            while not received.endswith(b'\n'):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                    return None
                chunk = os.read(read_fd, 256)
                if not chunk:
                    return None
                received += chunk
        finally:
            os.close(read_fd)
        execution_id = received.decode('ascii', errors='replace').strip()
        env = load_env(name)
        for e in env.storage.get_executions() if env is not None else []:
            if e['id'] == execution_id:
                return e
        return None


def write_private(path: str, text: str) -> None:
    """Write ``text`` to ``path`` for its owner only, replacing the file whole (a
    page being drawn meanwhile reads the old text or the new, never a part)."""
    replace_file(path, text)


def create_instance(app: Application, name: str, inputs: dict) -> dict:
    """Validate ``inputs`` and start installing the instance ``name`` of ``app`` in a
    worker (the inputs travel in a private file the worker removes)."""
    check_name(name, 'instance name')
    if load_env(name) is not None or Workers.alive(name) or \
            os.path.exists(os.path.join(runner.store_root(), 'deployments', name)):
        raise PortalError(f'instance {name!r} exists; uninstall it first', 'name', status=409)
    validate_inputs(app, inputs)
    write_private(meta_path(name), json.dumps({'application': app.name,
                                               'created_at': time.time()}))
    inputs_file = os.path.join(portal_dir('inputs'), f'{name}.json')
    write_private(inputs_file, json.dumps(inputs))
    Workers.start(name, 'install', app.blueprint, inputs_file)
    return {'name': name, 'application': app.name, 'state': 'creating'}


def start_execution(name: str, workflow: str, parameters: dict) -> dict:
    """Start ``workflow`` on ``name`` in a worker; the stored execution once it has
    begun (or what the worker said when it could not)."""
    env = load_env(check_name(name, 'instance'))
    if env is None:
        raise PortalError(f'no instance named {name!r}', 'name', status=404)
    if workflow not in (env.plan.get('workflows') or {}):
        raise PortalError(f'instance {name}: no workflow {workflow!r} (there are: '
                          f'{", ".join(sorted(env.plan.get("workflows") or {}))})',
                          'workflow')
    if not isinstance(parameters, dict):
        raise PortalError('parameters: a mapping of names to values', 'parameters')
    announced = Workers.start(name, 'execute', workflow, json.dumps(parameters),
                              announce=True)
    # (with announce=True, start gives the pipe's read end: never None)
    started = Workers.wait_for_execution(name, announced)  # type: ignore[arg-type]
    if started is None:
        raise PortalError(f'instance {name}: {workflow} did not start: '
                          f'{Workers.log_tail(name, 800).strip()}', status=500)
    return {'id': started['id'], 'workflow': workflow, 'instance': name,
            'status': started.get('status')}


def cancel_execution(execution_id: str) -> dict:
    """Cancel a running execution as `croupier cancel` does."""
    from .. import cli
    name, execution = find_execution(execution_id)
    if execution.get('status') not in RUNNING_STATUSES or not cli.live_runner(name):
        raise PortalError(f'execution {execution_id} is not running', 'id', status=409)
    out, err = io.StringIO(), io.StringIO()
    import argparse
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.cmd_cancel(argparse.Namespace(name=name))
    if status != 0:
        raise PortalError(err.getvalue().strip() or 'not cancelled', status=409)
    return {'id': execution_id, 'instance': name, 'status': 'cancelling',
            'message': out.getvalue().strip()}


def uninstall_instance(name: str) -> dict:
    """Start uninstalling ``name`` in a worker (which forgets it once done)."""
    check_name(name, 'instance')
    if not any(os.path.exists(p) for p in runner.named_paths(name)) \
            and not os.path.exists(meta_path(name)):
        raise PortalError(f'no instance named {name!r}', 'name', status=404)
    Workers.start(name, 'uninstall')
    return {'name': name, 'state': 'uninstalling'}
