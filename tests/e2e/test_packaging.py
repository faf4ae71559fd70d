"""Packaging, for real: the wagon a Manager installs, and the demo under the `cfy` CLI.

test_wagon_builds_and_validates runs wagon-build.sh (wagon create + wagon validate)
and looks inside the archive.

test_cfy_local_mode_runs_the_demo installs Croupier next to the `cloudify` CLI in a
second virtualenv (.venv-cfy at the repo root, made once and reused) and drives
blueprints/hello through `cfy install`, `cfy executions start run_jobs`,
`cfy node-instances` and `cfy uninstall` in local mode (no manager profile), with the
Cloudify types and `plugin:croupier` imports resolved offline through config.yaml.

Nothing is mocked and nothing is skipped: a missing tool or a failed install fails.
Run with -s to see the timings.
"""

import contextlib
import fcntl
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN_YAML = os.path.join(ROOT, 'plugin.yaml')
TYPES_YAML = os.path.join(ROOT, 'croupier_plugin', 'resources', 'types.yaml')
HELLO = os.path.join(ROOT, 'blueprints', 'hello', 'blueprint.yaml')
CFY_VENV = os.path.join(ROOT, '.venv-cfy')
CLOUDIFY_VERSION = '7.0.5'
TYPES_URL = f'http://cloudify.co/spec/cloudify/{CLOUDIFY_VERSION}/types.yaml'
# Where .venv-cfy is known complete (written last, after pip check passed).
READY_MARKER = os.path.join(CFY_VENV, '.croupier-ready')
# cfy's default resolver refuses plugin:/blueprint: imports before looking at the
# rules; naming the plain DefaultImportResolver makes the rules apply to them too.
DEFAULT_RESOLVER = 'dsl_parser.import_resolver.default_import_resolver:DefaultImportResolver'


def timing(what, seconds):
    print(f'\n[timing] {what}: {seconds:.1f} s', flush=True)


def run(cmd, timeout, **kwargs):
    """Run cmd; return the CompletedProcess (output captured as text)."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


def ok(proc, what):
    if proc.returncode != 0:
        pytest.fail(f'{what} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}'
                    f'\n--- stderr\n{proc.stderr[-6000:]}', pytrace=False)
    return proc


def wagon_exe():
    venv_wagon = os.path.join(ROOT, '.venv', 'bin', 'wagon')
    exe = venv_wagon if os.access(venv_wagon, os.X_OK) else shutil.which('wagon')
    if not exe:
        pytest.fail('wagon not found: neither .venv/bin/wagon nor wagon on PATH', pytrace=False)
    return exe


def plugin_declaration():
    with open(PLUGIN_YAML) as fh:
        doc = yaml.safe_load(fh)
    return doc, doc['plugins']['croupier']


def plugin_entry_points(doc):
    """Every 'croupier.<module>.<function>' plugin.yaml maps an operation or workflow to."""
    found = set()
    for node_type in (doc.get('node_types') or {}).values():
        for interface in (node_type.get('interfaces') or {}).values():
            for op in interface.values():
                found.add(op['implementation'] if isinstance(op, dict) else op)
    for workflow in (doc.get('workflows') or {}).values():
        found.add(workflow['mapping'] if isinstance(workflow, dict) else workflow)
    return sorted(x for x in found if x.startswith('croupier.'))


# --------------------------------------------------------------------------- wagon

def test_wagon_builds_and_validates(tmp_path):
    out = tmp_path / 'dist'
    t0 = time.monotonic()
    build = ok(run(['bash', os.path.join(ROOT, 'wagon-build.sh'), str(out)], timeout=300,
                   cwd=str(tmp_path)), 'wagon-build.sh')
    timing('wagon-build.sh (create + validate)', time.monotonic() - t0)
    for line in build.stderr.splitlines():
        if line.startswith('wagon-build.sh:') and ' took ' in line:
            print('[timing] ' + line, flush=True)

    wagons = glob.glob(str(out / '*.wgn'))
    assert len(wagons) == 1, wagons
    wgn = wagons[0]
    assert build.stdout.strip().splitlines()[-1] == wgn, 'the script prints the path of the .wgn'
    assert 'Validation Passed' in build.stderr, build.stderr[-3000:]

    shown = json.loads(ok(run([wagon_exe(), 'show', wgn], timeout=60), 'wagon show').stdout)
    doc, declared = plugin_declaration()
    assert (shown['package_name'], shown['package_version']) == ('croupier', '0.1.0')
    assert (declared['package_name'], str(declared['package_version'])) == \
        (shown['package_name'], shown['package_version']), 'plugin.yaml and the wagon disagree'
    assert f'py{sys.version_info.major}{sys.version_info.minor}' in shown['supported_python_versions']
    assert shown['supported_platform'].startswith('linux'), shown['supported_platform']
    assert os.path.basename(wgn).startswith('croupier-0.1.0-')

    wheel_names = shown['wheels']
    assert 'croupier-0.1.0-py3-none-any.whl' in wheel_names
    # the wheels of every install_requires are in the archive (a Manager installs offline)
    for dist in ('cloudify_common-7.0.5-', 'paramiko-', 'pyyaml-', 'requests-', 'hvac-'):
        assert any(w.lower().startswith(dist) for w in wheel_names), (dist, wheel_names)

    # inside the croupier wheel: the files the plugin needs at run time
    with zipfile.ZipFile(wgn) as wagon:
        names = wagon.namelist()
        assert set(wheel_names) <= {os.path.basename(n) for n in names if n.endswith('.whl')}
        inner = next(n for n in names if n.endswith('/croupier-0.1.0-py3-none-any.whl'))
        (tmp_path / 'croupier.whl').write_bytes(wagon.read(inner))
    with zipfile.ZipFile(tmp_path / 'croupier.whl') as wheel:
        files = set(wheel.namelist())
        # resources/plugin.yaml is a symlink in the repo: the wheel must hold its content
        packaged_plugin = wheel.read('croupier_plugin/resources/plugin.yaml').decode()
        with open(PLUGIN_YAML) as fh:
            assert packaged_plugin == fh.read(), 'the wheel holds a stale or broken plugin.yaml'
        assert 'croupier_plugin/resources/types.yaml' in files
        assert not [f for f in files if f.startswith(('tests/', 'blueprints/', 'bench/'))]
        entry_points = plugin_entry_points(doc)
        assert entry_points, 'plugin.yaml maps no operation or workflow to croupier'
        for entry in entry_points:
            module, func = entry[len('croupier.'):].rsplit('.', 1)
            source = module.replace('.', '/') + '.py'
            assert source in files, f'{entry}: {source} is not in the wheel'
            assert re.search(rf'^def {func}\(', wheel.read(source).decode(), re.M), \
                f'{entry}: no function {func} in {source}'


# ------------------------------------------------------------------- cfy local mode

def _venv_ready(python):
    """True when .venv-cfy has cfy and imports croupier_plugin from this repo with
    every dependency setup.py names now (a venv made before one was added is stale)."""
    if not (os.path.exists(READY_MARKER) and os.access(os.path.join(CFY_VENV, 'bin', 'cfy'), os.X_OK)):
        return False
    probe = run([python, '-c', 'import cloudify_cli, croupier_plugin, croupier_plugin.operations, '
                 'croupier_plugin.workflows; print(croupier_plugin.__file__)'], timeout=60)
    return probe.returncode == 0 and probe.stdout.strip().startswith(os.path.join(ROOT, 'croupier_plugin'))


@pytest.fixture(scope='session')
def cfy_venv():
    """.venv-cfy: `pip install cloudify==7.0.5` and `pip install -e <repo>`, made once.

    The two coexist: cloudify 7.0.5 pins cryptography==43.0.1, which satisfies
    paramiko's cryptography>=3.3, and `pip check` passes; the fixture asserts it.
    """
    python = os.path.join(CFY_VENV, 'bin', 'python')
    lock_path = os.path.join('/tmp', 'croupier-venv-cfy.lock')
    with open(lock_path, 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two pytest runs must not build it at once
        if _venv_ready(python):
            print(f'\n[cfy venv] reusing {CFY_VENV}', flush=True)
        else:
            t0 = time.monotonic()
            shutil.rmtree(CFY_VENV, ignore_errors=True)  # a half-made one from an interrupted run
            ok(run([sys.executable, '-m', 'venv', CFY_VENV], timeout=120), 'python -m venv .venv-cfy')
            pip = [python, '-m', 'pip', 'install', '--disable-pip-version-check']
            ok(run(pip + [f'cloudify=={CLOUDIFY_VERSION}'], timeout=600),
               f'pip install cloudify=={CLOUDIFY_VERSION}')
            ok(run(pip + ['-e', ROOT], timeout=600), 'pip install -e <repo>')
            ok(run([python, '-m', 'pip', 'check'], timeout=120), 'pip check in .venv-cfy')
            versions = ok(run([python, '-m', 'pip', 'list', '--format=json'], timeout=120), 'pip list')
            pinned = {p['name'].lower(): p['version'] for p in json.loads(versions.stdout)}
            with open(READY_MARKER, 'w') as fh:
                json.dump({k: pinned.get(k) for k in
                           ('cloudify', 'cloudify-common', 'croupier', 'cryptography', 'paramiko')},
                          fh, indent=1)
            timing('create .venv-cfy (venv + pip install cloudify + pip install -e)',
                   time.monotonic() - t0)
            if not _venv_ready(python):
                pytest.fail('.venv-cfy was built but cfy/croupier_plugin are not usable', pytrace=False)
    return CFY_VENV


def test_cfy_local_mode_runs_the_demo(cfy_venv, tmp_path):
    cfy = os.path.join(cfy_venv, 'bin', 'cfy')
    python = os.path.join(cfy_venv, 'bin', 'python')
    workdir = tmp_path / 'cfy'      # CFY_WORKDIR: cfy keeps config and local state in .cloudify/
    cwd = tmp_path / 'cwd'          # relative imports are looked up in the CWD first
    workdir.mkdir()
    cwd.mkdir()
    env = dict(os.environ, CFY_WORKDIR=str(workdir),
               PATH=os.path.join(cfy_venv, 'bin') + os.pathsep + os.environ.get('PATH', ''))
    env.pop('VIRTUAL_ENV', None)
    env.pop('PYTHONPATH', None)
    times = {}

    def cfy_cmd(*args, timeout=90, what=None, check=True):
        t0 = time.monotonic()
        proc = run([cfy, *args], timeout=timeout, env=env, cwd=str(cwd))
        times[what or ' '.join(args[:2])] = time.monotonic() - t0
        return ok(proc, 'cfy ' + ' '.join(args)) if check else proc

    cfy_cmd('init', what='cfy init')
    config_path = workdir / '.cloudify' / 'config.yaml'
    assert config_path.exists(), 'cfy init did not honour CFY_WORKDIR'

    # the rules come from the runner, so the embedded engine and cfy share one mapping
    rules = json.loads(ok(run(
        [python, '-c', 'import json; from croupier_plugin.runner import import_rules; '
                       'print(json.dumps(import_rules()))'], timeout=60, env=env),
        'croupier_plugin.runner.import_rules() in .venv-cfy').stdout)
    as_dict = {k: v for rule in rules for k, v in rule.items()}
    assert as_dict['plugin:croupier'] == 'file://' + os.path.realpath(PLUGIN_YAML)
    assert as_dict[TYPES_URL] == 'file://' + TYPES_YAML
    base_config = config_path.read_text()

    def write_resolver(resolver):
        config_path.write_text(base_config + '\n' + yaml.safe_dump({'import_resolver': resolver},
                                                                   default_flow_style=False))

    # Pitfall, checked: the rules alone do not reach `plugin:` imports in cfy 7.0.5 --
    # its default resolver (ResolverWithCatalogIdentification) rejects them first.
    write_resolver({'parameters': {'rules': rules}})
    refused = cfy_cmd('blueprints', 'validate', HELLO, what='cfy blueprints validate (rules only)',
                      check=False)
    assert refused.returncode != 0 and 'plugin:croupier' in refused.stdout + refused.stderr, \
        (refused.stdout, refused.stderr)

    # What works: the rules plus the plain DefaultImportResolver, no fallback to the network.
    write_resolver({'implementation': DEFAULT_RESOLVER,
                    'parameters': {'rules': rules, 'fallback': False}})
    cfy_cmd('blueprints', 'validate', HELLO, what='cfy blueprints validate')

    greeting = 'hello from cfy local mode'
    # install's defaults are 5 retries 3 s apart: a failing operation should fail now
    cfy_cmd('install', HELLO, '-b', 'hello', '-i', json.dumps({'greeting': greeting}),
            '--task-retries', '0', '--task-retry-interval', '0', what='cfy install')
    installed = True
    try:
        cfy_cmd('executions', 'start', 'run_jobs', '-b', 'hello', what='cfy executions start run_jobs')

        # in local mode `cfy node-instances` logs the instances as JSON (--json prints nothing)
        listing = cfy_cmd('node-instances', '-b', 'hello', what='cfy node-instances')
        text = listing.stdout
        instances = {i['node_id']: i for i in json.loads(text[text.index('['):])}
        assert set(instances) == {'this_machine', 'job_a', 'job_b', 'job_c', 'job_d'}, list(instances)
        jobs = {k: v['runtime_properties'] for k, v in instances.items() if k.startswith('job_')}
        for node_id, props in jobs.items():
            assert props.get('state') == 'COMPLETED', (node_id, props)
            assert str(props.get('job_id', '')).startswith('sh-'), (node_id, props)
            assert props.get('exit_code') == 0, (node_id, props)
        # dependency order: B and C after A ended, D after both ended
        for later, earlier in (('job_b', 'job_a'), ('job_c', 'job_a'),
                               ('job_d', 'job_b'), ('job_d', 'job_c')):
            assert jobs[later]['submitted_at'] >= jobs[earlier]['ended_at'], (later, earlier, jobs)

        job_workdir = instances['this_machine']['runtime_properties']['workdir']
        with open(os.path.join(job_workdir, 'd.txt')) as fh:
            assert fh.read() == greeting.upper() + '\n' + greeting[::-1] + '\n'

        cfy_cmd('uninstall', '-b', 'hello', what='cfy uninstall')
        installed = False
        assert not os.path.exists(job_workdir), 'uninstall left the working directory'
        gone = cfy_cmd('node-instances', '-b', 'hello', what='cfy node-instances (after)', check=False)
        assert gone.returncode != 0, 'the local deployment is still there after uninstall'
    finally:
        if installed:  # leave no working directory behind when an assertion failed
            with contextlib.suppress(Exception):
                run([cfy, 'uninstall', '-b', 'hello'], timeout=60, env=env, cwd=str(cwd))
        for what, seconds in times.items():
            timing(what, seconds)
