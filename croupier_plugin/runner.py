"""The embedded runner: blueprints on Cloudify's local workflow engine.

Maps ``plugin:croupier`` to the installed plugin.yaml and the Cloudify types
URL to Croupier's own minimal types.yaml, so blueprints written for a Cloudify
Manager run unchanged on one machine.
"""

import os

import yaml

RESOURCES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'resources')
PLUGIN_YAML = os.path.realpath(os.path.join(RESOURCES, 'plugin.yaml'))
TYPES_YAML = os.path.join(RESOURCES, 'types.yaml')
TYPES_URLS = (
    'http://cloudify.co/spec/cloudify/7.0.5/types.yaml',
    'https://cloudify.co/spec/cloudify/7.0.5/types.yaml',
    'http://www.getcloudify.org/spec/cloudify/7.0.5/types.yaml',
    'cloudify/types/types.yaml',
)
# task retries of the local engine default to "forever": never use that
TASK_RETRIES = 0
TASK_RETRY_INTERVAL = 0


def import_rules():
    rules = [{'plugin:croupier': 'file://' + PLUGIN_YAML}]
    rules += [{url: 'file://' + TYPES_YAML} for url in TYPES_URLS]
    return rules


def resolver():
    from dsl_parser.import_resolver.default_import_resolver import DefaultImportResolver
    return DefaultImportResolver(rules=import_rules(), fallback=False)


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
            try:
                inputs[key] = yaml.safe_load(value)
            except yaml.YAMLError as exc:
                # the value is not repeated: it may be a secret
                raise ValueError(f'inputs: {key}: not valid YAML '
                                 f'({getattr(exc, "problem", None) or "unreadable"})') from None
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
