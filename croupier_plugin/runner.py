"""The embedded runner: blueprints on Cloudify's local workflow engine.

Imports are resolved as a Cloudify Manager 7.0.5 resolves them, so blueprints
written for a manager run unchanged on one machine: ``plugin:croupier`` is the
installed plugin.yaml; the Cloudify types, under any of the eight spellings a
manager maps (http or https, with or without www., cloudify.co or
getcloudify.org, ``/spec/cloudify/<version>/types.yaml``) or as
``cloudify/types/types.yaml``, are Croupier's own minimal types.yaml, chosen by
the blueprint's DSL version.

With ``CROUPIER_CLOUDIFY_TYPES`` naming a directory laid out like a manager's
``/opt/manager/resources`` (``spec/cloudify/<version>/types.yaml`` and
``cloudify/types/types[_1_x].yaml``), those files are read instead, exactly as
the manager picks them: the URL's version for a URL, the blueprint's DSL
version for ``cloudify/types/types.yaml``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import shutil
import stat
import threading
from typing import TYPE_CHECKING, Any, Iterator, Optional

import yaml
from cloudify.workflows.local import FileStorage
# the local Cloudify environment init_env and load_named give (cli, the portal)
from cloudify.workflows.local import _Environment as Environment

if TYPE_CHECKING:
    from cloudify_rest_client.node_instances import NodeInstance
    from dsl_parser.import_resolver.abstract_import_resolver import AbstractImportResolver

from .core.files import replace_file

RESOURCES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'resources')
PLUGIN_YAML = os.path.realpath(os.path.join(RESOURCES, 'plugin.yaml'))
TYPES_YAML = os.path.join(RESOURCES, 'types.yaml')
PLUGIN_IMPORT = 'plugin:croupier'
# the prefixes a 7.0.5 manager maps to its resources/spec folder
SPEC_URL = re.compile(r'^https?://(?:www\.)?(?:cloudify\.co|getcloudify\.org)/spec/')
CLOUDIFY_TYPES_PATH = re.compile(r'^cloudify/[^/]+/types\.yaml$')
# dsl_parser tries a relative import as "resource:<name>" last, first with the
# blueprint's DSL version in the file name (types_1_3.yaml), then as written
LOCAL_TYPES_IMPORT = re.compile(r'^resource:cloudify/types/types(?:_\d+_\d+)?\.yaml$')
CLOUDIFY_TYPES_ENV = 'CROUPIER_CLOUDIFY_TYPES'
# task retries of the local engine default to "forever": never use that
TASK_RETRIES = 0
TASK_RETRY_INTERVAL = 0


def types_for_version(folder: str, dsl_version: Optional[str]) -> str:
    """The types file of ``folder`` for a blueprint of ``dsl_version`` ('1_3'):
    ``types_1_3.yaml`` when there is one, else ``types.yaml``."""
    if dsl_version:
        versioned = os.path.join(folder, f'types_{dsl_version}.yaml')
        if os.path.exists(versioned):
            return versioned
    return os.path.join(folder, 'types.yaml')


# Croupier's plugin.yaml and the Cloudify types, parsed once per process: they are
# the bulk of every blueprint's YAML, and a portal or a test run parses many
# blueprints. Keyed by file, modification time and size, so an edited file is
# read again; each blueprint gets its own deep copy, as the parser changes it.
_PARSED_IMPORTS: dict = {}
_PARSED_IMPORTS_LOCK = threading.Lock()


def parsed_import(path: str, import_url: str) -> Any:
    """The parsed YAML (dsl_parser's Holder) of the import ``import_url`` read
    from the local file ``path``: a fresh copy of one parse per process."""
    from dsl_parser import utils as dsl_utils
    info = os.stat(path)
    key = (path, import_url, info.st_mtime_ns, info.st_size)
    with _PARSED_IMPORTS_LOCK:
        parsed = _PARSED_IMPORTS.get(key)
    if parsed is None:
        with open(path, encoding='utf-8') as fh:
            text = fh.read()
        parsed = dsl_utils.load_yaml(raw_yaml=text, filename=import_url,
                                     error_message=f"Failed to parse import '{import_url}'")
        with _PARSED_IMPORTS_LOCK:
            _PARSED_IMPORTS[key] = parsed
    return copy.deepcopy(parsed)


def _resolver_class() -> type[AbstractImportResolver]:
    # dsl_parser is imported only when a blueprint is parsed
    from dsl_parser.exceptions import DSLParsingLogicException
    from dsl_parser.import_resolver.abstract_import_resolver import (AbstractImportResolver,
                                                                     read_import)

    class CroupierImportResolver(AbstractImportResolver):
        """Resolves ``plugin:croupier`` and the Cloudify types as a manager does
        (see the module's docstring); anything else is read as written."""

        def __init__(self, types_root: Optional[str] = None) -> None:
            self.types_root = types_root

        def types_file(self, import_url: str, dsl_version: Optional[str]) -> Optional[str]:
            """The file a Cloudify types import stands for, or None when
            ``import_url`` is not one."""
            spec = SPEC_URL.match(import_url)
            if spec:
                rest = import_url[spec.end():]
                if self.types_root:
                    return os.path.join(self.types_root, 'spec', rest)
                if not CLOUDIFY_TYPES_PATH.match(rest):
                    raise DSLParsingLogicException(
                        13, f'import {import_url!r}: the embedded runner maps only the Cloudify '
                            f'types (.../spec/cloudify/<version>/types.yaml) under that address')
                return types_for_version(RESOURCES, dsl_version)
            local = LOCAL_TYPES_IMPORT.match(import_url)
            if local:
                if self.types_root:
                    return os.path.join(self.types_root, import_url[len('resource:'):])
                return types_for_version(RESOURCES, dsl_version)
            return None

        def fetch_import(self, import_url: str, **kwargs: Any) -> Any:
            """``import_url`` for a blueprint of ``kwargs['dsl_version']``: Croupier's
            plugin.yaml and the Cloudify types already parsed (``parsed_import``),
            anything else as text."""
            if import_url == PLUGIN_IMPORT:
                return parsed_import(PLUGIN_YAML, import_url)
            path = self.types_file(import_url, kwargs.get('dsl_version'))
            if path is not None:
                return parsed_import(path, import_url)
            return super().fetch_import(import_url, **kwargs)

        def resolve(self, import_url: str) -> str:
            """Any other remote import, read as written."""
            return read_import(import_url)

        def retrieve_plugin(self, import_url: str, **kwargs: Any) -> None:
            """No plugin catalogue: plugin.yaml is imported as a file."""
            return None

    return CroupierImportResolver


SPEC_PREFIXES = tuple(f'{scheme}://{www}{host}/spec/' for scheme in ('http', 'https')
                      for www in ('', 'www.') for host in ('cloudify.co', 'getcloudify.org'))
CLOUDIFY_VERSION = '7.0.5'


def import_rules() -> list:
    """Prefix rules for dsl_parser's DefaultImportResolver (what ``cfy`` can be
    configured with): ``plugin:croupier`` and the eight spellings of the
    Cloudify 7.0.5 types URL to Croupier's files. The embedded runner itself
    maps every version (see ``resolver``)."""
    rules = [{PLUGIN_IMPORT: 'file://' + PLUGIN_YAML}]
    rules += [{f'{prefix}cloudify/{CLOUDIFY_VERSION}/types.yaml': 'file://' + TYPES_YAML}
              for prefix in SPEC_PREFIXES]
    return rules


def resolver(types_root: Optional[str] = None) -> AbstractImportResolver:
    """The import resolver of the embedded runner; ``types_root`` (default:
    ``$CROUPIER_CLOUDIFY_TYPES``) reads a manager's own types files instead of
    Croupier's."""
    root = types_root or os.environ.get(CLOUDIFY_TYPES_ENV) or None
    if root and not os.path.isdir(os.path.join(root, 'spec')):
        raise ValueError(f'{CLOUDIFY_TYPES_ENV}={root}: not a folder laid out like a Cloudify '
                         f"Manager's resources (no spec/ in it)")
    return _resolver_class()(types_root=root)


# Limits checked before a YAML document is built: a blueprint or inputs file larger
# than this, or whose anchors and aliases would expand to more nodes than this (a
# "billion laughs" tree of a few lines expands to 10^9), is refused unread.
MAX_YAML_BYTES = 4 * 1024 * 1024
MAX_YAML_NODES = 1_000_000


# libyaml's safe loader when PyYAML was built with it (the same nodes, several times
# faster), else PyYAML's own
_SAFE_LOADER = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)


class InputError(ValueError):
    """A blueprint, an inputs file or a NAME=VALUE input that cannot be read; the
    message names the file (or the input) and the line, never a value."""


def _expanded_size(root: yaml.Node, where: str) -> int:
    """How many nodes ``root`` stands for once every alias is expanded.

    Aliases share their anchor's node object, so the count is computed once per
    node (no expansion happens here); an alias inside its own anchor is refused.
    """
    sizes: dict = {}
    open_nodes: set = set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[key] > MAX_YAML_NODES:
                raise InputError(f'{where}: its anchors and aliases expand to more than '
                                 f'{MAX_YAML_NODES} nodes (line {node.start_mark.line + 1})')
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise InputError(f'{where}: line {node.start_mark.line + 1}: an alias refers to '
                             f'the node it is part of')
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                raise InputError(f'{where}: line {child.start_mark.line + 1}: an alias '
                                 f'refers to the node it is part of')
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list:
    """The nodes directly under ``node`` (mapping keys and values, sequence items)."""
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _yaml_error(where: str, exc: yaml.YAMLError) -> InputError:
    """``exc`` as file, line, column and problem, without PyYAML's excerpt of the
    offending line (which may hold a password)."""
    mark = getattr(exc, 'problem_mark', None) or getattr(exc, 'context_mark', None)
    problem = getattr(exc, 'problem', None) or getattr(exc, 'context', None) or 'not YAML'
    at = f': line {mark.line + 1}, column {mark.column + 1}' if mark else ''
    return InputError(f'{where}{at}: {problem}')


def parse_yaml(text: str, where: str, construct: bool = True) -> Any:
    """The document in ``text`` (``where`` names it in errors), built with PyYAML's
    safe loader only after the size and alias-expansion limits were checked.

    With ``construct`` false the document is only checked (the blueprint, which
    Cloudify's parser reads itself).
    """
    if len(text.encode('utf-8', errors='replace')) > MAX_YAML_BYTES:
        raise InputError(f'{where}: larger than {MAX_YAML_BYTES} bytes')
    loader = _SAFE_LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, where)
        return loader.construct_document(node) if construct else None
    except yaml.YAMLError as exc:
        raise _yaml_error(where, exc) from None
    except RecursionError:
        raise InputError(f'{where}: nested too deeply') from None
    finally:
        loader.dispose()


def read_yaml_file(path: str, what: str, construct: bool = True) -> Any:
    """The YAML document in the file ``path`` (a ``what``: 'inputs file', 'blueprint'),
    refused unread when larger than MAX_YAML_BYTES."""
    where = f'{what} {path}'
    try:
        size = os.path.getsize(path)
        if size > MAX_YAML_BYTES:
            raise InputError(f'{where}: {size} bytes, larger than {MAX_YAML_BYTES}')
        with open(path, encoding='utf-8') as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise InputError(f'{where}: not UTF-8 text (byte {exc.start})') from None
    except OSError as exc:
        raise InputError(f'{where}: {exc.strerror}') from None
    return parse_yaml(text, where, construct)


def load_inputs(paths_or_pairs: Optional[list]) -> dict:
    """Inputs from YAML files and NAME=VALUE pairs, later ones winning."""
    inputs = {}
    for item in paths_or_pairs or []:
        if os.path.exists(item):
            data = read_yaml_file(item, 'inputs file') or {}
            if not isinstance(data, dict):
                raise InputError(f'inputs file {item} must hold a mapping of input names '
                                 f'to values')
            inputs.update(data)
        elif '=' in item:
            key, value = item.split('=', 1)
            inputs[key] = parse_yaml(value, f'input {key}')
        else:
            raise InputError(f'inputs: {item!r} is neither a file nor NAME=VALUE')
    return inputs


def check_blueprint(path: str) -> None:
    """Refuse a blueprint file that is too large, not YAML, or whose aliases expand
    too far, before Cloudify's parser reads it."""
    read_yaml_file(path, 'blueprint', construct=False)


# the agent operations Cloudify's Compute type maps: a machine an interface is
# contained in (interface_contained_in) gets no agent from the embedded engine
# (its agent_config says install_method: none), so their modules need not exist here
AGENT_MODULES = ['cloudify_agent.operations', 'cloudify_agent.installer.operations']


def init_env(blueprint: str, inputs: dict[str, Any] | None = None, name: str = 'croupier',
             storage: FileStorage | None = None) -> Environment:
    """A local Cloudify environment for ``blueprint`` (parsed and checked)."""
    from cloudify.workflows import local
    check_blueprint(blueprint)
    blueprint = os.path.abspath(blueprint)
    # relative imports are looked up in the current directory first
    cwd = os.getcwd()
    os.chdir(os.path.dirname(blueprint))
    try:
        return local.init_env(blueprint, name=name, inputs=inputs or {}, resolver=resolver(),
                              storage=storage, ignored_modules=AGENT_MODULES)
    finally:
        os.chdir(cwd)


def home() -> str:
    """Where named local deployments live (CROUPIER_HOME, default ~/.croupier)."""
    return os.environ.get('CROUPIER_HOME') or os.path.expanduser('~/.croupier')


def store_root() -> str:
    """The folder holding every named deployment's blueprint, deployment and pid file."""
    return os.path.join(home(), 'deployments')


# os.umask is process-wide: one lock so that two writers never restore each other's
# umask while one of them is still writing (an RLock: storage writes nest).
_UMASK_LOCK = threading.RLock()


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files and folders created inside are for their owner only (umask 077).

    Held only around the store's own writes: the umask is shared with every thread
    of the process, and while it is held other threads can only create files more
    private than they asked for, never less.
    """
    with _UMASK_LOCK:
        previous = os.umask(0o077)
        try:
            yield
        finally:
            os.umask(previous)


def make_private(path: str) -> None:
    """Take group and other permissions off ``path`` and everything under it.

    Symbolic links are neither followed nor changed (their own mode means nothing).
    """
    def tighten(target: str) -> None:
        mode = os.lstat(target).st_mode
        if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
            os.chmod(target, stat.S_IMODE(mode) & 0o700)
    if not os.path.lexists(path):
        return
    tighten(path)
    if os.path.isdir(path) and not os.path.islink(path):
        for folder, dirs, files in os.walk(path):
            for name in dirs + files:
                tighten(os.path.join(folder, name))


class PrivateFileStorage(FileStorage):
    """Cloudify's file storage, written for its owner only, each file replaced whole.

    A named deployment's storage holds its inputs and properties, inline passwords,
    private keys and the Vault JWT among them: every write runs under umask 077, and
    the blueprint's copied resources (copied with their own modes) are tightened.

    Cloudify's own storage rewrites its JSON files in place, so that another process
    reading the store (`croupier status`, the portal) may meet one cut short. Here
    the deployment, its node instances, its executions and the payload are written
    to a private temporary file that then replaces the old one (os.replace): a reader
    sees the old document or the new one, never a mix.
    """

    def _write_json(self, path: str, data: object, indent: Optional[int] = 4,
                    trailer: str = '') -> None:
        """Write ``data`` as Cloudify's storage encodes it to ``path``, atomically.

        The temporary file lies at the store's root, not beside ``path``: Cloudify
        takes every file of a node-instances folder for a node instance.
        """
        import json
        from cloudify.workflows.local import JSONEncoderWithDatetime
        text = json.dumps(data, indent=indent, cls=JSONEncoderWithDatetime) + trailer
        replace_file(path, text, temp_dir=self._root_storage_dir)

    def _deployment_dir(self, name: str) -> str:
        """The folder of the deployment ``name`` in the store."""
        return os.path.join(self._root_storage_dir, 'deployments', name)

    def store_blueprint(self, name: str, blueprint: dict) -> None:
        """Cloudify's copy of the blueprint folder and plan, then made private."""
        with private_umask():
            super().store_blueprint(name, blueprint)
        make_private(os.path.join(self._root_storage_dir, 'blueprints', name))

    def store_deployment(self, name: str, deployment: dict) -> None:
        """The deployment's folders (as Cloudify lays them out) and its deployment.json,
        private; the JSON written last, so that its presence means a whole deployment."""
        folder = self._deployment_dir(name)
        with private_umask():
            os.makedirs(folder)
            for sub in ('node-instances', 'nodes', 'workdir', 'updates'):
                os.mkdir(os.path.join(folder, sub))
        self._write_json(os.path.join(folder, 'deployment.json'), deployment)

    def set_deployment_attributes(self, name: str, **attrs: Any) -> None:
        """Update the stored deployment's attributes, replacing its file whole."""
        deployment = self.get_deployment(name)
        deployment.update(attrs)
        self._write_json(os.path.join(self._deployment_dir(name), 'deployment.json'),
                         deployment)

    def store_instance(self, deployment_id: str, instance: NodeInstance) -> NodeInstance:
        """Store a node instance, replacing its file whole."""
        from cloudify_rest_client.node_instances import NodeInstance
        self._write_json(self._instance_path(deployment_id, instance.id), instance,
                         indent=None)
        return NodeInstance(instance)

    def store_executions(self, deployment_id: str, executions: list) -> None:
        """Store the deployment's executions, replacing their file whole."""
        self._write_json(os.path.join(self._deployment_dir(deployment_id),
                                      'executions.json'), executions)

    def store_deployment_update(self, deployment_id: str, update_id: str,
                                update: dict) -> None:
        """Cloudify's, under umask 077."""
        with private_umask():
            super().store_deployment_update(deployment_id, update_id, update)

    def set_deployment_update_attributes(self, deployment_id: str, update_id: str,
                                         **attrs: Any) -> None:
        """Cloudify's, under umask 077."""
        with private_umask():
            super().set_deployment_update_attributes(deployment_id, update_id, **attrs)

    @contextlib.contextmanager
    def payload(self) -> Iterator[dict]:
        """The store's payload, its file replaced whole on leaving the block."""
        import json
        from cloudify.workflows.local import load_datetime
        path = os.path.join(self._root_storage_dir, 'payload')
        try:
            with open(path) as fh:
                data = json.load(fh, object_hook=load_datetime)
        except OSError:
            data = {}
        yield data
        self._write_json(path, data, trailer=os.linesep)


def file_storage() -> PrivateFileStorage:
    """The store of named deployments, made private.

    A store written by an earlier Croupier (files 0644, folders 0755) is tightened
    here, each time it is opened. The home folder is created private but an existing
    one is left as it is: CROUPIER_HOME may name a folder that is not Croupier's.
    """
    os.makedirs(home(), mode=0o700, exist_ok=True)
    os.makedirs(store_root(), mode=0o700, exist_ok=True)
    make_private(store_root())
    return PrivateFileStorage(store_root())


@contextlib.contextmanager
def store_lock() -> Iterator[None]:
    """Held while a name is being created or forgotten, so that two `croupier`
    processes never take each other's half-made entries for leftovers."""
    import fcntl
    file_storage()
    fd = os.open(os.path.join(store_root(), '.lock'), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def load_named(name: str) -> Optional[Environment]:
    """The stored environment of the named deployment, or None."""
    from cloudify.workflows import local
    return local.load_env(name, storage=file_storage(), resolver=resolver())


def pid_file(name: str) -> str:
    """Where the process running a workflow on ``name`` records who it is."""
    return os.path.join(store_root(), f'{name}.pid')


def process_identity(pid: int) -> Optional[dict]:
    """What tells process ``pid`` apart from a later one given the same number: its
    start time (clock ticks after boot, field 22 of /proc/PID/stat) and its command
    line. None when no process has that number."""
    try:
        with open(f'/proc/{pid}/stat', 'rb') as fh:
            stat_line = fh.read().decode('utf-8', errors='replace')
        with open(f'/proc/{pid}/cmdline', 'rb') as fh:
            cmdline = fh.read().decode('utf-8', errors='replace').rstrip('\0').split('\0')
    except (FileNotFoundError, ProcessLookupError):
        return None
    # field 2, the command name, is in parentheses and may itself hold ") "
    fields_from_3 = stat_line[stat_line.rindex(')') + 2:].split()
    return {'pid': pid, 'start_time': int(fields_from_3[22 - 3]), 'cmdline': cmdline}


def write_pid_file(name: str) -> None:
    """Record this process as the one running a workflow on ``name`` (pid, start
    time and command line, so that a later process given the same pid is not taken
    for it)."""
    import json
    replace_file(pid_file(name), json.dumps(process_identity(os.getpid())))


def read_pid_file(name: str) -> Optional[dict]:
    """The runner recorded for ``name``; None when there is no pid file. A file that
    is not such a record (a bare number from an older Croupier, garbage) gives {}."""
    import json
    try:
        with open(pid_file(name)) as fh:
            text = fh.read()
    except FileNotFoundError:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return {}
    if not (isinstance(record, dict) and isinstance(record.get('pid'), int)
            and isinstance(record.get('start_time'), int)
            and isinstance(record.get('cmdline'), list)):
        return {}
    return record


def remove_pid_file(name: str, only_pid: Optional[int] = None) -> None:
    """Remove ``name``'s pid file (when ``only_pid`` is given: only if it names that
    process, so that a runner never removes another runner's record)."""
    if only_pid is not None and (read_pid_file(name) or {}).get('pid') != only_pid:
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(pid_file(name))


def named_paths(name: str) -> list[str]:
    """The folders the store keeps for ``name`` (its blueprint and its deployment)."""
    return [os.path.join(store_root(), sub, name) for sub in ('deployments', 'blueprints')]


def remove_named(name: str) -> bool:
    """Forget ``name``: its stored blueprint, deployment and pid file. True when
    anything was there."""
    found = False
    for path in named_paths(name):
        if os.path.lexists(path):
            found = True
            shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(pid_file(name))
    return found


def execute(env: Environment, workflow: str, parameters: dict[str, Any] | None = None) -> Any:
    """Run ``workflow`` on the local environment with Croupier's task retries (none);
    the workflow's result."""
    return env.execute(workflow, parameters=parameters or {}, task_retries=TASK_RETRIES,
                       task_retry_interval=TASK_RETRY_INTERVAL)
