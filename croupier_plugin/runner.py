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

import os
import re
from typing import Optional

import yaml

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


def _resolver_class():
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

        def fetch_import(self, import_url: str, **kwargs) -> str:
            """The text of ``import_url`` for a blueprint of ``kwargs['dsl_version']``."""
            if import_url == PLUGIN_IMPORT:
                return read_import('file:' + PLUGIN_YAML)
            path = self.types_file(import_url, kwargs.get('dsl_version'))
            if path is not None:
                return read_import('file:' + path)
            return super().fetch_import(import_url, **kwargs)

        def resolve(self, import_url: str) -> str:
            """Any other remote import, read as written."""
            return read_import(import_url)

        def retrieve_plugin(self, import_url: str, **kwargs) -> None:
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


def resolver(types_root: Optional[str] = None):
    """The import resolver of the embedded runner; ``types_root`` (default:
    ``$CROUPIER_CLOUDIFY_TYPES``) reads a manager's own types files instead of
    Croupier's."""
    root = types_root or os.environ.get(CLOUDIFY_TYPES_ENV) or None
    if root and not os.path.isdir(os.path.join(root, 'spec')):
        raise ValueError(f'{CLOUDIFY_TYPES_ENV}={root}: not a folder laid out like a Cloudify '
                         f"Manager's resources (no spec/ in it)")
    return _resolver_class()(types_root=root)


def load_inputs(paths_or_pairs):
    """Inputs from YAML files and NAME=VALUE pairs, later ones winning."""
    inputs = {}
    for item in paths_or_pairs or []:
        if os.path.exists(item):
            with open(item) as fh:
                data = yaml.safe_load(fh) or {}
            if not isinstance(data, dict):
                raise ValueError(f'inputs file {item} must hold a mapping')
            inputs.update(data)
        elif '=' in item:
            key, value = item.split('=', 1)
            inputs[key] = yaml.safe_load(value)
        else:
            raise ValueError(f'inputs: {item!r} is neither a file nor NAME=VALUE')
    return inputs


def init_env(blueprint, inputs=None, name='croupier', storage=None):
    """A local Cloudify environment for ``blueprint`` (parsed and checked)."""
    from cloudify.workflows import local
    blueprint = os.path.abspath(blueprint)
    # relative imports are looked up in the current directory first
    cwd = os.getcwd()
    os.chdir(os.path.dirname(blueprint))
    try:
        return local.init_env(blueprint, name=name, inputs=inputs or {}, resolver=resolver(),
                              storage=storage)
    finally:
        os.chdir(cwd)


def home():
    """Where named local deployments live (CROUPIER_HOME, default ~/.croupier)."""
    return os.environ.get('CROUPIER_HOME') or os.path.expanduser('~/.croupier')


def file_storage():
    from cloudify.workflows.local import FileStorage
    root = os.path.join(home(), 'deployments')
    os.makedirs(root, exist_ok=True)
    return FileStorage(root)


def load_named(name):
    """The stored environment of the named deployment, or None."""
    from cloudify.workflows import local
    return local.load_env(name, storage=file_storage(), resolver=resolver())


def pid_file(name):
    return os.path.join(home(), 'deployments', f'{name}.pid')


def remove_named(name):
    import shutil
    root = os.path.join(home(), 'deployments')
    for sub in ('deployments', 'blueprints'):
        shutil.rmtree(os.path.join(root, sub, name), ignore_errors=True)


def execute(env, workflow, parameters=None):
    return env.execute(workflow, parameters=parameters or {}, task_retries=TASK_RETRIES,
                       task_retry_interval=TASK_RETRY_INTERVAL)
