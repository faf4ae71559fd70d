"""PyCOMPSs: a launcher script that runs ``enqueue_compss``; jobs followed through SLURM.

``enqueue_compss`` (COMPSs' submission command for supercomputers) writes a
batch script for the site's queue system and submits it (on SLURM:
``sbatch < script``, which prints ``Submitted batch job N``). The job it
creates is a plain queue-system job, and PyCOMPSs has no command to ask about
it, so status and cancel come from a *monitor* scheduler (SLURM by default,
``monitoring_options.monitor_interface`` in blueprints).

Croupier uploads a small launcher (``render_script``): modules, the job's
``pre_script``, its ``env``, a ``cd`` to ``app_source``, then ``enqueue_compss
<compss_args flags> --job_name=<name> <app_file> <app_args>``. The launcher runs
on the login node, in the job's working directory (``submit_command``).

Quoting: every value is a single shell word. Values without ``$`` are
``shlex.quote``-d. The documented COVID-19 example relies on the shell for a
few things (``dataset: $HOME/...`` in env, ``'${dataset}/metadata_clean.tsv'``
and ``'$(pwd)/results/'`` in app_args, ``'$(pwd)/...'`` as app_file), so
exactly these expand: ``$NAME`` and ``${NAME}`` (variables), ``$(pwd)`` (as
``${PWD}``) and a leading ``~/``. Anything else (``$(cmd)``, backquotes,
``;``, quotes, newlines, ``${X:-...}``) reaches ``enqueue_compss`` literally.

Pure text in and out, like the other schedulers: no I/O here.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from ..errors import ConfigError
from ..model import (MAX_COUNT, JobSpec, JobState, JobStatus, PartitionFigures, env_mapping,
                     job_options_mapping, scheduler_job_name, string_list)
from .base import Scheduler, check_job_ids, in_workdir
from .slurm import SlurmScheduler

if TYPE_CHECKING:
    from ..accounting import JobFigures

ENQUEUE_COMPSS = 'enqueue_compss'

# --------------------------------------------------------------------------
# shell words

_VAR_REF = re.compile(r'\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\$\(pwd\)')


def _double_quoted(text: str) -> str:
    return re.sub(r'([\\"$`])', r'\\\1', text)


def shell_word(text: object) -> str:
    """``text`` as one shell word where only variable references expand.

    ``$NAME``/``${NAME}`` expand, ``$(pwd)`` becomes ``${PWD}`` and a leading
    ``~/`` is the home directory; everything else stays literal.
    """
    text = str(text)
    prefix = ''
    if text == '~' or text.startswith('~/'):
        prefix, text = text[:2], text[2:]
    if '$' not in text:
        return prefix + (shlex.quote(text) if text or not prefix else '')
    return prefix + '"' + _expanded(text) + '"'


def _expanded(text: str) -> str:
    """The inside of a double-quoted word of ``text``: its variable
    references as ``${NAME}`` (``$(pwd)`` as ``${PWD}``), the rest escaped."""
    parts: list[str] = []
    pos = 0
    for m in _VAR_REF.finditer(text):
        parts.append(_double_quoted(text[pos:m.start()]))
        ref = m.group(0)
        if ref == '$(pwd)':
            ref = '${PWD}'
        elif not ref.startswith('${'):
            ref = '${' + ref[1:] + '}'
        parts.append(ref)
        pos = m.end()
    parts.append(_double_quoted(text[pos:]))
    return ''.join(parts)


# --------------------------------------------------------------------------
# compss_args: the documented enqueue_compss options


@dataclass(frozen=True)
class Option:
    """How one ``enqueue_compss`` option takes its value.

    kind: ``int`` (>= minimum; ``choices`` adds allowed words such as
    'disabled'), ``bool`` (rendered ``--flag=true|false``), ``enum``
    (one of ``choices``), ``word`` (goes into a queue-system directive, so
    ``pattern`` restricts it), ``text`` (any single line), ``switch``
    (true gives the bare ``--flag``, false leaves it out).
    bare: true also gives the bare ``--flag`` (options documented as both
    ``--flag`` and ``--flag=<value>``); false leaves it out.
    repeat: a list gives the flag once per item.
    """
    flag: str
    kind: str
    choices: tuple[str, ...] = ()
    minimum: int = 0
    maximum: int = MAX_COUNT
    pattern: str | None = None
    bare: bool = False
    repeat: bool = False
    allow_bool: bool = False


_WORD = r'[A-Za-z0-9_.+\-@%:,=/]+'
_CONSTRAINTS = r'[A-Za-z0-9_.+\-@%:,=/&|\[\]*()!]+'
_BOOL = ('true', 'false')


def _int(flag: str, minimum: int = 0, **kw: Any) -> Option:
    return Option(flag, 'int', minimum=minimum, **kw)


def _bool(flag: str) -> Option:
    return Option(flag, 'bool', choices=_BOOL)


def _enum(flag: str, *choices: str, **kw: Any) -> Option:
    return Option(flag, 'enum', choices=tuple(choices), **kw)


def _word(flag: str, pattern: str = _WORD) -> Option:
    return Option(flag, 'word', pattern=pattern)


def _text(flag: str, **kw: Any) -> Option:
    return Option(flag, 'text', **kw)


def _switch(flag: str) -> Option:
    return Option(flag, 'switch')


# The options of ``enqueue_compss -h`` in the COMPSs 3.3 manual ("Executing
# COMPSs applications" in the Supercomputers section), keyed by the flag name
# as croupier.datatypes.pycompss_options spells them (num_nodes, exec_time,
# log_level, graph, tracing, python_interpreter, qos, ...). base_log_dir and
# specific_log_dir are the pre-3.1 spellings (the manual notes their change);
# tracing keeps its pre-3.0 levels. --help/--version/--opts are not job options.
OPTIONS: dict[str, Option] = {
    # general / queue system configuration
    'heterogeneous': _switch('heterogeneous'),
    'sc_cfg': _word('sc_cfg'),
    # submission
    'exec_time': _int('exec_time', 1),
    'job_name': _word('job_name'),
    'queue': _word('queue'),
    'reservation': _word('reservation'),
    'job_execution_dir': _text('job_execution_dir'),
    'pre_env_script': _text('pre_env_script'),
    'extra_submit_flag': _text('extra_submit_flag', repeat=True),
    'storage_container_image': _text('storage_container_image', allow_bool=True),
    'storage_cpu_affinity': _text('storage_cpu_affinity'),
    'constraints': _word('constraints', _CONSTRAINTS),
    'project_name': _word('project_name'),
    'qos': _word('qos'),
    'forward_cpus_per_node': _bool('forward_cpus_per_node'),
    'job_dependency': _word('job_dependency'),
    'forward_time_limit': _bool('forward_time_limit'),
    'storage_home': _text('storage_home'),
    'storage_props': _text('storage_props'),
    # agents deployment
    'agents': _enum('agents', 'plain', 'tree', bare=True),
    # homogeneous submission
    'num_nodes': _int('num_nodes', 1),
    'num_switches': _int('num_switches', 0),
    # heterogeneous submission
    'type_cfg': _text('type_cfg'),
    'master': _word('master'),
    'workers': _word('workers'),
    # launch configuration
    'cpus_per_node': _int('cpus_per_node', 1),
    'gpus_per_node': _int('gpus_per_node', 0),
    'fpgas_per_node': _int('fpgas_per_node', 0),
    'io_executors': _int('io_executors', 0),
    'fpga_reprogram': _text('fpga_reprogram'),
    'max_tasks_per_node': _int('max_tasks_per_node', -1),
    'node_memory': _int('node_memory', 1, choices=('disabled',)),
    'node_storage_bandwidth': _int('node_storage_bandwidth', 0),
    'network': _enum('network', 'default', 'ethernet', 'infiniband', 'data'),
    'prolog': _text('prolog', repeat=True),
    'epilog': _text('epilog', repeat=True),
    'master_working_dir': _text('master_working_dir'),
    'worker_working_dir': _text('worker_working_dir'),
    'worker_in_master_cpus': _int('worker_in_master_cpus', 0),
    'worker_in_master_memory': _int('worker_in_master_memory', 0),
    'worker_port_range': _word('worker_port_range', r'[0-9]+,[0-9]+'),
    'jvm_worker_in_master_opts': _text('jvm_worker_in_master_opts'),
    'container_image': _text('container_image'),
    'container_compss_path': _text('container_compss_path'),
    'container_opts': _text('container_opts'),
    'elasticity': _int('elasticity', 0),
    'automatic_scaling': _bool('automatic_scaling'),
    'jupyter_notebook': _text('jupyter_notebook', bare=True),
    'ipython': _switch('ipython'),
    'ear': _text('ear', allow_bool=True),
    # tools enablers
    'graph': _bool('graph'),
    'tracing': _enum('tracing', 'true', 'false', 'basic', 'advanced', 'scorep',
                     'arm-map', 'arm-ddt'),
    'monitoring': _int('monitoring', 0, bare=True),
    'external_debugger': _int('external_debugger', 1, bare=True),
    'jmx_port': _int('jmx_port', 1, maximum=65535),
    # runtime configuration
    'task_execution': _enum('task_execution', 'compss', 'storage'),
    'storage_impl': _text('storage_impl'),
    'storage_conf': _text('storage_conf'),
    'project': _text('project'),
    'resources': _text('resources'),
    'lang': _enum('lang', 'java', 'c', 'python'),
    'summary': _switch('summary'),
    'log_level': _enum('log_level', 'off', 'info', 'api', 'debug', 'trace'),
    'debug': _switch('debug'),
    # advanced
    'extrae_config_file': _text('extrae_config_file'),
    'extrae_config_file_python': _text('extrae_config_file_python'),
    'trace_label': _text('trace_label'),
    'tracing_task_dependencies': _bool('tracing_task_dependencies'),
    'generate_trace': _bool('generate_trace'),
    'delete_trace_packages': _bool('delete_trace_packages'),
    'custom_threads': _bool('custom_threads'),
    'comm': _text('comm'),
    'conn': _text('conn'),
    'streaming': _enum('streaming', 'FILES', 'OBJECTS', 'PSCOS', 'ALL', 'NONE'),
    'streaming_master_name': _word('streaming_master_name'),
    'streaming_master_port': _int('streaming_master_port', 1, maximum=65535),
    'scheduler': _text('scheduler'),
    'scheduler_config_file': _text('scheduler_config_file'),
    'checkpoint': _text('checkpoint'),
    'checkpoint_params': _text('checkpoint_params'),
    'checkpoint_folder': _text('checkpoint_folder'),
    'library_path': _text('library_path'),
    'classpath': _text('classpath'),
    'appdir': _text('appdir'),
    'pythonpath': _text('pythonpath'),
    'env_script': _text('env_script'),
    'log_dir': _text('log_dir'),
    'base_log_dir': _text('base_log_dir'),
    'specific_log_dir': _text('specific_log_dir'),
    'uuid': _word('uuid'),
    'master_name': _word('master_name'),
    'master_port': _int('master_port', 1, maximum=65535),
    'jvm_master_opts': _text('jvm_master_opts'),
    'jvm_workers_opts': _text('jvm_workers_opts'),
    'cpu_affinity': _text('cpu_affinity'),
    'gpu_affinity': _text('gpu_affinity'),
    'fpga_affinity': _text('fpga_affinity'),
    'task_count': _int('task_count', 1),
    'input_profile': _text('input_profile'),
    'output_profile': _text('output_profile'),
    'PyObject_serialize': _bool('PyObject_serialize'),
    'persistent_worker_c': _bool('persistent_worker_c'),
    'enable_external_adaptation': _bool('enable_external_adaptation'),
    'gen_coredump': _switch('gen_coredump'),
    'keep_workingdir': _switch('keep_workingdir'),
    'python_interpreter': _word('python_interpreter'),
    'python_propagate_virtual_environment': _bool('python_propagate_virtual_environment'),
    'python_mpi_worker': _bool('python_mpi_worker'),
    'python_memory_profile': _switch('python_memory_profile'),
    'python_worker_cache': _text('python_worker_cache', allow_bool=True),
    'python_cache_profiler': _bool('python_cache_profiler'),
    'wall_clock_limit': _int('wall_clock_limit', 0),
    'shutdown_in_node_failure': _bool('shutdown_in_node_failure'),
    'provenance': _text('provenance', bare=True),
    'provenance_folder': _text('provenance-folder'),
}

_TRUE_WORDS = {'true': True, 'false': False}

# one validated option value: its text, True for a bare flag, a list for a repeated flag
OptionValue = str | bool | list[str | bool]


def _as_bool(value: Any) -> bool | None:
    """True/False for booleans and 'true'/'false' strings, else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _TRUE_WORDS.get(value.strip().lower())
    return None


def _single_line(prop: str, value: Any, text: str) -> str:
    if '\n' in text or '\r' in text or '\0' in text:
        raise ConfigError(prop, value, 'must be a single line')
    return text


def _option_value(prop: str, option: Option, value: Any) -> str | bool:
    """The validated text of one value of ``option`` (True for a bare flag)."""
    if option.kind == 'switch' or (option.bare and _as_bool(value) is not None):
        return _switch_value(prop, value)
    if option.kind == 'int':
        return _int_value(prop, option, value)
    if option.kind in ('bool', 'enum'):
        return _choice_value(prop, option, value)
    return _text_value(prop, option, value)


def _switch_value(prop: str, value: Any) -> bool:
    """Whether a switch (or a bare flag) is given."""
    flag = _as_bool(value)
    if flag is None:
        raise ConfigError(prop, value, 'must be true or false')
    return flag


def _int_value(prop: str, option: Option, value: Any) -> str:
    """An ``int`` option's value: an integer in its bounds or one of its words."""
    text = str(value).strip() if not isinstance(value, bool) else ''
    if text in option.choices:
        return text
    if re.fullmatch(r'-?[0-9]+', text) and option.minimum <= int(text) <= option.maximum:
        return str(int(text))
    also = f' or {" or ".join(repr(c) for c in option.choices)}' if option.choices else ''
    raise ConfigError(prop, value, f'must be an integer >= {option.minimum} and <= '
                                   f'{option.maximum}{also}')


def _choice_value(prop: str, option: Option, value: Any) -> str:
    """A ``bool`` or ``enum`` option's value: one of its choices (a YAML
    boolean read as 'true' or 'false')."""
    text = value
    if isinstance(value, bool):
        text = 'true' if value else 'false'
    elif isinstance(value, str) and value.strip().lower() in _BOOL:
        text = value.strip().lower()
    if isinstance(text, str) and text.strip() in option.choices:
        return text.strip()
    hint = ''
    if value is False and 'off' in option.choices:
        hint = " (YAML reads a bare off as false: write 'off' in quotes)"
    raise ConfigError(prop, value, f'must be one of {", ".join(option.choices)}{hint}')


def _text_value(prop: str, option: Option, value: Any) -> str:
    """A ``word`` or ``text`` option's value: one non-empty line (a word: of
    its pattern's characters)."""
    if isinstance(value, bool):
        if option.allow_bool:
            return 'true' if value else 'false'
        raise ConfigError(prop, value, 'must be a string')
    if not isinstance(value, (str, int, float)):
        raise ConfigError(prop, value, 'must be a string')
    text = _single_line(prop, value, str(value))
    if not text.strip():
        raise ConfigError(prop, value, 'must not be empty')
    # every word option has a pattern (Option's default None is for the other kinds)
    if option.kind == 'word' and not re.fullmatch(option.pattern, text):  # type: ignore[arg-type]
        raise ConfigError(prop, value, 'may not hold spaces or shell characters (it goes '
                                       'into a queue-system directive)')
    return text


def _checked_value(prop: str, option: Option, value: Any) -> OptionValue | None:
    """The validated value of a given option (a list for a repeated flag);
    None when it is left out (a false switch, an empty list)."""
    if option.repeat and isinstance(value, (list, tuple)):
        items = [_option_value(f'{prop}[{i}]', option, v) for i, v in enumerate(value)]
        return items or None
    checked = _option_value(prop, option, value)
    return None if checked is False else checked


class PycompssOptions:
    """A validated ``compss_args`` mapping, rendered as ``enqueue_compss`` flags."""

    TABLE = OPTIONS

    def __init__(self, values: Mapping[str, OptionValue] | None = None) -> None:
        #: option name -> validated text, True (bare flag) or a list (repeat)
        self.values: dict[str, OptionValue] = dict(values or {})

    @classmethod
    def from_mapping(cls, options: Any, prefix: str = 'job_options.compss_args') -> Self:
        """Validate ``options``: a mapping, or a list of single-key mappings,
        ``name=value`` or ``--name=value`` strings. Unset values (None, '')
        are left out, like unset job options."""
        if options is None or options == '' or options == []:
            return cls()
        if isinstance(options, (list, tuple)):
            options = cls._pairs(options, prefix)
        if not isinstance(options, dict):
            raise ConfigError(prefix, options, 'must be a mapping of enqueue_compss options '
                                               '(num_nodes, exec_time, qos, ...)')
        values: dict[str, OptionValue] = {}
        for key, value in options.items():
            option = cls._option(f'{prefix}.{key}', key, value)
            checked = None if value is None or value == '' else \
                _checked_value(f'{prefix}.{key}', option, value)
            if checked is not None:
                values[key] = checked
        return cls(values)

    @classmethod
    def _option(cls, prop: str, key: Any, value: Any) -> Option:
        """The TABLE row of option ``key``; ConfigError, with the closest names, for another."""
        option = cls.TABLE.get(key)
        if option is None:
            close = difflib.get_close_matches(str(key), cls.TABLE, n=3)
            hint = f'; did you mean {", ".join(close)}?' if close else ''
            raise ConfigError(prop, value, 'is not a documented enqueue_compss option '
                                           f'(see enqueue_compss -h){hint}')
        return option

    @staticmethod
    def _pairs(items: Sequence[Any], prefix: str) -> dict[Any, Any]:
        """The mapping of a compss_args list ({name: value} items, "name=value" strings)."""
        pairs: dict[Any, Any] = {}
        for i, item in enumerate(items):
            if isinstance(item, dict) and len(item) == 1:
                pairs.update(item)
            elif isinstance(item, str) and item.strip():
                name, sep, value = item.strip().lstrip('-').partition('=')
                pairs[name] = value if sep else True
            else:
                raise ConfigError(f'{prefix}[{i}]', item, 'must be "name=value" or {name: value}')
        return pairs

    def get(self, name: str, default: Any = None) -> Any:
        """The validated value of option ``name`` (text, True or a list), else ``default``."""
        return self.values.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def flags(self, skip: Collection[str] = ()) -> list[str]:
        """The flags as argv words (not quoted), in the order given."""
        out = []
        for key, value in self.values.items():
            if key in skip:
                continue
            flag = self.TABLE[key].flag
            for item in (value if isinstance(value, list) else [value]):
                out.append(f'--{flag}' if item is True else f'--{flag}={item}')
        return out

    def render(self, skip: Collection[str] = ()) -> str:
        """The flags as shell text, each one word (see ``shell_word``)."""
        return ' '.join(shell_word(f) for f in self.flags(skip))


# --------------------------------------------------------------------------
# the job


@dataclass
class PycompssJob:
    """A croupier.nodes.PyCOMPSsJob's ``job_options``, validated."""
    name: str
    app_file: str
    app_name: str | None = None
    app_source: str | None = None
    app_args: list = field(default_factory=list)
    env: dict = field(default_factory=dict)
    modules: list = field(default_factory=list)
    pre_script: list = field(default_factory=list)
    compss_args: PycompssOptions = field(default_factory=PycompssOptions)

    OPTION_KEYS = ('pre_script', 'app_name', 'app_source', 'app_file', 'app_args', 'env',
                   'modules', 'compss_args')

    @classmethod
    def from_options(cls, name: str, options: Any, prefix: str = 'job_options') -> Self:
        """Validate a PyCOMPSsJob's ``job_options`` mapping."""
        options = cls._known_options(job_options_mapping(name, options, prefix), prefix)
        app_args = _app_args(options, prefix)
        pre_script, modules = _script_lines(options, prefix)
        return cls(
            name=name,
            # required: _text_option raises instead of returning None
            app_file=_text_option(options, prefix, 'app_file', required=True),  # type: ignore[arg-type]
            app_name=_text_option(options, prefix, 'app_name'),
            app_source=_text_option(options, prefix, 'app_source'),
            app_args=app_args,
            env=env_mapping(f'{prefix}.env', options.get('env')),
            modules=modules,
            pre_script=pre_script,
            compss_args=PycompssOptions.from_mapping(options.get('compss_args'),
                                                     f'{prefix}.compss_args'),
        )

    @classmethod
    def _known_options(cls, options: Mapping[str, Any], prefix: str) -> Mapping[str, Any]:
        """``options``, once every key is checked to be a PyCOMPSs job option."""
        for key, raw in options.items():
            if key not in cls.OPTION_KEYS:
                raise ConfigError(f'{prefix}.{key}', raw, 'is not a PyCOMPSs job option '
                                                          f'({", ".join(cls.OPTION_KEYS)})')
        return options


def _text_option(options: Mapping[str, Any], prefix: str, key: str,
                 required: bool = False) -> str | None:
    """The single line a PyCOMPSsJob's text option ``key`` gives (None: unset)."""
    raw = options.get(key)
    if raw is None or raw == '':
        if required:
            raise ConfigError(f'{prefix}.{key}', raw, 'is required for a PyCOMPSs job')
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise ConfigError(f'{prefix}.{key}', raw, 'must be a string')
    return _single_line(f'{prefix}.{key}', raw, str(raw))


def _app_args(options: Mapping[str, Any], prefix: str) -> list[str]:
    """The application's arguments: a list, or a mapping's values in order."""
    args = options.get('app_args')
    if isinstance(args, dict):
        # a data type such as the COVID-19 example's: its values, in order
        args = list(args.values())
    app_args = string_list(f'{prefix}.app_args', args)
    for i, arg in enumerate(app_args):
        if '\0' in arg:
            raise ConfigError(f'{prefix}.app_args[{i}]', arg, 'must not contain NUL')
    return app_args


def _script_lines(options: Mapping[str, Any], prefix: str) -> tuple[list[str], list[str]]:
    """(pre_script, modules): single lines each, every module item checked."""
    pre_script = string_list(f'{prefix}.pre_script', options.get('pre_script'))
    modules = string_list(f'{prefix}.modules', options.get('modules'))
    for key, items in (('pre_script', pre_script), ('modules', modules)):
        for i, item in enumerate(items):
            _single_line(f'{prefix}.{key}[{i}]', item, item)
    for i, item in enumerate(modules):
        check_module(f'{prefix}.modules[{i}]', item)
    return pre_script, modules


_MODULE_NAME = re.compile(r'[A-Za-z0-9_.+\-/:@%]+')


def check_module(prop: str, item: str) -> str:
    """A ``modules`` item is a module name ('COMPSs/3.3') or a whole module
    command, as the documented inputs give them ('module load COMPSs/3.0',
    'module use /apps/modules/...')."""
    words = item.split()
    if words and words[0] == 'module':
        if len(words) < 2:
            raise ConfigError(prop, item, 'is a module command without a subcommand')
    elif not _MODULE_NAME.fullmatch(item):
        raise ConfigError(prop, item, 'must be a module name such as COMPSs/3.3, or a '
                                      '"module ..." command')
    return item


def module_line(item: str) -> str:
    """The launcher line of one ``modules`` item, every word quoted."""
    words = item.split()
    if words and words[0] == 'module':
        return ' '.join(shell_word(w) for w in words)
    return f'module load {shell_word(item)}'


# --------------------------------------------------------------------------
# the scheduler

_SUBMITTED = (re.compile(r'Submitted batch job\s+([0-9]+)'),         # sbatch
              re.compile(r'Job <([0-9]+)> is submitted'))            # bsub
_BARE_ID = re.compile(r'[0-9]+(\.[A-Za-z0-9_.\-]+)?')                # qsub: 123.server


def _script_head(spec: PycompssJob) -> list[str]:
    """The launcher script's first lines: the shebang, a comment, the job's names."""
    q = shlex.quote
    # a login shell brings the site's `module` command
    lines = ['#!/bin/bash -l' if spec.modules else '#!/bin/bash',
             (f'# croupier: submits PyCOMPSs job {scheduler_job_name(spec.name)} '
              f'with {ENQUEUE_COMPSS}'),
             f'export CROUPIER_JOB_NAME={q(spec.name)}']
    if spec.app_name:
        lines.append(f'export CROUPIER_APP_NAME={q(spec.app_name)}')
    return lines


class PycompssScheduler(Scheduler[PycompssJob]):
    """Submits PycompssJob specs with enqueue_compss; the monitor scheduler
    (SLURM by default) reports on and cancels the jobs it created."""

    name = 'PYCOMPSS'
    script_suffix = '.compss.sh'

    def __init__(self, monitor: Scheduler | None = None) -> None:
        self.monitor = monitor if monitor is not None else SlurmScheduler()

    # a read-only property in place of the class attribute: reading it is all Scheduler does
    @property
    def STATES(self) -> dict[str, JobState]:  # type: ignore[override]
        """The monitor scheduler's raw state table."""
        # the Scheduler attribute, delegated
        return self.monitor.STATES

    # -- script -------------------------------------------------------------

    def job_name(self, spec: PycompssJob) -> str:
        """The --job_name of ``spec``: compss_args' job_name, else the job's own name."""
        given = spec.compss_args.get('job_name')
        return given if given else scheduler_job_name(spec.name)

    def enqueue_command(self, spec: PycompssJob) -> str:
        """The launcher's enqueue_compss line: flags, --job_name, app_file, app_args."""
        words = [ENQUEUE_COMPSS]
        words += [shell_word(f) for f in spec.compss_args.flags(skip=('job_name',))]
        words.append(shell_word(f'--job_name={self.job_name(spec)}'))
        words.append(shell_word(spec.app_file))
        words += [shell_word(a) for a in spec.app_args]
        return ' '.join(words)

    def render_script(self, spec: JobSpec | PycompssJob, token: str | None = None) -> str:
        """As Scheduler.render_script: the launcher script (a PycompssJob only, else TypeError)."""
        if not isinstance(spec, PycompssJob):
            raise TypeError(f'{self.name} submits PycompssJob specs, not {type(spec).__name__}')
        lines = _script_head(spec) + ['set -e'] + [module_line(item) for item in spec.modules]
        lines += spec.pre_script
        lines += [f'export {key}={shell_word(value)}' for key, value in spec.env.items()]
        if spec.app_source:
            lines.append(f'cd {shell_word(spec.app_source)}')
        lines.append(self.enqueue_command(spec))
        return '\n'.join(lines) + '\n'

    def output_paths(self, spec: PycompssJob, job_id: str,
                     workdir: str | None) -> tuple[str | None, str | None]:
        """enqueue_compss writes compss-<jobid>.out/.err in the job's directory:
        job_execution_dir when given, else where it was run (app_source,
        relative to the working directory, else the working directory).
        None when that path needs the remote shell ($VAR, ~)."""
        directory = spec.compss_args.get('job_execution_dir') or spec.app_source or '.'
        if '$' in directory or directory.startswith('~'):
            return None, None
        if directory in ('.', './'):
            directory = workdir or '.'
        else:
            directory = in_workdir(directory, workdir)
        base = f'{directory.rstrip("/")}/compss-{job_id}'
        return f'{base}.out', f'{base}.err'

    # -- submit -------------------------------------------------------------

    def submit_command(self, spec: JobSpec | PycompssJob, script_path: str, workdir: str,
                       after: Iterable[str] = ()) -> str:
        """As Scheduler.submit_command: run the launcher from ``workdir``, no input.
        enqueue_compss carries no dependency (holds_for is false): ``after`` is refused."""
        if list(after):
            raise ValueError(f'{self.name} cannot make a job wait for others')
        shell = 'bash -l' if spec.modules else 'bash'
        return f'cd {shlex.quote(workdir)} && {shell} {shlex.quote(script_path)} < /dev/null'

    def parse_submit_output(self, stdout: str) -> str:
        """The queue-system job id enqueue_compss reported: sbatch's
        'Submitted batch job N' (or bsub's 'Job <N> is submitted'), else a
        bare id on the last line (qsub's 'N.server')."""
        lines = [line.strip() for line in stdout.strip().splitlines() if line.strip()]
        for line in reversed(lines):
            for pattern in _SUBMITTED:
                m = pattern.search(line)
                if m:
                    return m.group(1)
        if lines and _BARE_ID.fullmatch(lines[-1]):
            return lines[-1]
        raise ValueError(f'no job id in {ENQUEUE_COMPSS} output: {stdout.strip()[-300:]!r}')

    # -- status and cancel: the monitor scheduler's ---------------------------

    def status_command(self, job_ids: Sequence[str]) -> str:
        """As Scheduler.status_command: the monitor scheduler's."""
        return self.monitor.status_command(check_job_ids(job_ids))

    def parse_status_output(self, stdout: str, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """As Scheduler.parse_status_output: the monitor scheduler's."""
        return self.monitor.parse_status_output(stdout, job_ids)

    def cancel_command(self, job_ids: Sequence[str]) -> str:
        """As Scheduler.cancel_command: the monitor scheduler's."""
        return self.monitor.cancel_command(check_job_ids(job_ids))

    def normalize(self, raw: str | None) -> JobState:
        """As Scheduler.normalize: the monitor scheduler's."""
        return self.monitor.normalize(raw)

    def still_queued(self, status: JobStatus) -> bool:
        """As Scheduler.still_queued: the monitor scheduler's."""
        return self.monitor.still_queued(status)

    def accounting_command(self, job_ids: Sequence[str]) -> str | None:
        """As Scheduler.accounting_command: the monitor scheduler's."""
        return self.monitor.accounting_command(job_ids)

    def parse_accounting(self, stdout: str, job_ids: Sequence[str]) -> dict[str, JobFigures]:
        """As Scheduler.parse_accounting: the monitor scheduler's."""
        return self.monitor.parse_accounting(stdout, job_ids)

    def queue_command(self) -> str | None:
        """As Scheduler.queue_command: the monitor scheduler's."""
        return self.monitor.queue_command()

    def parse_queue_output(self, stdout: str) -> dict[str, PartitionFigures]:
        """As Scheduler.parse_queue_output: the monitor scheduler's."""
        return self.monitor.parse_queue_output(stdout)
