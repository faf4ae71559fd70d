"""Named local deployments: `croupier cancel NAME` from another process."""

import os
import subprocess
import sys
import time
import uuid

from croupier_plugin import runner as croupier_runner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def croupier(env, *args, **kw):
    return subprocess.run([sys.executable, '-m', 'croupier_plugin.cli', *args],
                          capture_output=True, text=True, env=env, **kw)


def test_cancel_from_another_process(tmp_path):
    env = dict(os.environ, CROUPIER_HOME=str(tmp_path / 'home'))
    marker = f'croupier-long-{uuid.uuid4().hex[:8]}'
    bp = os.path.join(ROOT, 'tests', 'blueprints', 'shell-long.yaml')
    done = croupier(env, 'install', bp, 'longrun', '-i', f'base_dir={tmp_path}/work',
                    '-i', f'marker={marker}')
    assert done.returncode == 0, done.stdout + done.stderr
    runner = subprocess.Popen([sys.executable, '-m', 'croupier_plugin.cli', 'execute',
                               'longrun'], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while ' RUNNING ' not in croupier(env, 'status', 'longrun').stdout:
        assert time.monotonic() < deadline, 'the long job never ran'
        time.sleep(0.3)
    assert croupier(env, 'cancel', 'longrun').returncode == 0
    out, _ = runner.communicate(timeout=60)
    assert runner.returncode == 1
    assert 'run_jobs CANCELLED' in out
    table = croupier(env, 'status', 'longrun').stdout
    states = {line.split()[0].rsplit('_', 1)[0]: line.split()[3]
              for line in table.splitlines()[2:]}
    assert states == {'quick': 'COMPLETED', 'long': 'CANCELLED'}
    time.sleep(0.5)
    left = subprocess.run(['pgrep', '-f', marker], capture_output=True, text=True).stdout
    assert left.strip() == ''
    assert croupier(env, 'cancel', 'longrun').returncode == 1     # nothing runs any more
    assert croupier(env, 'uninstall', 'longrun').returncode == 0
    assert croupier(env, 'status', 'longrun').returncode == 2      # forgotten
    assert os.listdir(tmp_path / 'work') == []


# A deployment whose inputs hold a password: what `croupier install` stores of it must
# be readable by its owner only.
SECRET_BLUEPRINT = """tosca_definitions_version: cloudify_dsl_1_5
imports:
  - http://cloudify.co/spec/cloudify/7.0.5/types.yaml
  - plugin:croupier
inputs:
  base_dir: {type: string}
  password: {type: string}
node_templates:
  here:
    type: croupier.nodes.InfrastructureInterface
    properties:
      config: {infrastructure_interface: SHELL, transport: local}
      base_dir: { get_input: base_dir }
      monitoring_options: {monitor_period: 0.5}
  quick:
    type: croupier.nodes.Job
    properties:
      job_options: {commands: ['test -n "$PASSWORD"'], env: {PASSWORD: {get_input: password}}}
    relationships:
      - {type: task_managed_by_interface, target: here}
"""


def readable_by_others(top):
    """Every path under ``top`` (itself included) that its group or others may read,
    write or enter."""
    found = []
    for folder, dirs, files in os.walk(top):
        for path in [folder] + [os.path.join(folder, name) for name in files]:
            if os.lstat(path).st_mode & 0o077:
                found.append(f'{oct(os.lstat(path).st_mode & 0o777)} {path}')
    return found


def write_blueprint(tmp_path):
    path = tmp_path / 'bp' / 'secret.yaml'
    path.parent.mkdir()
    path.write_text(SECRET_BLUEPRINT)
    return str(path)


def test_the_store_is_private_and_an_old_store_is_made_private(tmp_path):
    home = tmp_path / 'home'
    env = dict(os.environ, CROUPIER_HOME=str(home))
    bp = write_blueprint(tmp_path)
    old_umask = os.umask(0o022)     # what most accounts have: files 0644, folders 0755
    try:
        done = croupier(env, 'install', bp, 'private', '-i', f'base_dir={tmp_path}/work',
                        '-i', 'password=Pa55-w0rd-in-the-store')
        assert done.returncode == 0, done.stdout + done.stderr
        stored = subprocess.run(['grep', '-rl', 'Pa55-w0rd-in-the-store', str(home)],
                                capture_output=True, text=True).stdout.split()
        assert stored, 'the password is expected in the store (Cloudify keeps the inputs)'
        assert readable_by_others(home) == []
        ran = croupier(env, 'execute', 'private')
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert readable_by_others(home) == []
        # a store written before it was private: everything opened up again
        store = home / 'deployments'
        for folder, dirs, files in os.walk(store):
            os.chmod(folder, 0o755)
            for name in files:
                os.chmod(os.path.join(folder, name), 0o644)
        assert readable_by_others(store) != []
        assert croupier(env, 'status', 'private').returncode == 0
        assert readable_by_others(store) == []
    finally:
        os.umask(old_umask)
    assert croupier(env, 'uninstall', 'private').returncode == 0


def store_entries(home, name):
    """What the store holds for ``name``."""
    root = os.path.join(home, 'deployments')
    return [p for p in (os.path.join(root, 'blueprints', name),
                        os.path.join(root, 'deployments', name),
                        os.path.join(root, f'{name}.pid')) if os.path.lexists(p)]


def test_a_failed_install_leaves_the_name_free(tmp_path):
    home = str(tmp_path / 'home')
    env = dict(os.environ, CROUPIER_HOME=home)
    bp = write_blueprint(tmp_path)
    # the blueprint parses, the deployment cannot be created: an input is missing
    failed = croupier(env, 'install', bp, 'half', '-i', f'base_dir={tmp_path}/work')
    assert failed.returncode == 2
    assert "Required inputs ['password']" in failed.stderr
    assert 'Traceback' not in failed.stderr
    assert store_entries(home, 'half') == []
    done = croupier(env, 'install', bp, 'half', '-i', f'base_dir={tmp_path}/work',
                    '-i', 'password=x')
    assert done.returncode == 0, done.stdout + done.stderr
    assert croupier(env, 'uninstall', 'half').returncode == 0
    assert store_entries(home, 'half') == []


def test_a_half_created_name_is_removed_by_uninstall_and_by_install(tmp_path, monkeypatch):
    home = str(tmp_path / 'home')
    env = dict(os.environ, CROUPIER_HOME=home)
    bp = write_blueprint(tmp_path)
    monkeypatch.setenv('CROUPIER_HOME', home)

    def half_create(name):
        # what an install stopped between storing the blueprint and creating the
        # deployment leaves behind (an earlier Croupier did not clean it up)
        croupier_runner.file_storage().create_blueprint(name, bp,
                                                        resolver=croupier_runner.resolver())
        assert store_entries(home, name) != []
    half_create('stuck')
    assert croupier(env, 'status', 'stuck').returncode == 2
    removed = croupier(env, 'uninstall', 'stuck')
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert store_entries(home, 'stuck') == []
    half_create('stuck')
    done = croupier(env, 'install', bp, 'stuck', '-i', f'base_dir={tmp_path}/work',
                    '-i', 'password=x')
    assert done.returncode == 0, done.stdout + done.stderr
    # a deployment whose stored state was cut short (a full disk): named, and forgotten
    state = os.path.join(home, 'deployments', 'deployments', 'stuck', 'deployment.json')
    with open(state, 'r+') as fh:
        fh.truncate(100)
    status = croupier(env, 'status', 'stuck')
    assert status.returncode == 2 and 'Traceback' not in status.stderr
    assert "deployment 'stuck': its stored state cannot be read" in status.stderr
    assert croupier(env, 'install', bp, 'stuck', '-i', 'base_dir=/tmp',
                    '-i', 'password=x').returncode == 2
    assert croupier(env, 'uninstall', 'stuck').returncode == 0
    assert store_entries(home, 'stuck') == []
    assert croupier(env, 'uninstall', 'stuck').returncode == 2    # nothing left to remove


def test_cancel_never_signals_a_process_that_took_over_a_stale_pid(tmp_path):
    env = dict(os.environ, CROUPIER_HOME=str(tmp_path / 'home'))
    marker = f'croupier-long-{uuid.uuid4().hex[:8]}'
    bp = os.path.join(ROOT, 'tests', 'blueprints', 'shell-long.yaml')
    done = croupier(env, 'install', bp, 'stale', '-i', f'base_dir={tmp_path}/work',
                    '-i', f'marker={marker}')
    assert done.returncode == 0, done.stdout + done.stderr
    pid_path = tmp_path / 'home' / 'deployments' / 'stale.pid'
    runner = subprocess.Popen([sys.executable, '-m', 'croupier_plugin.cli', 'execute',
                               'stale'], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while ' RUNNING ' not in croupier(env, 'status', 'stale').stdout:
        assert time.monotonic() < deadline, 'the long job never ran'
        time.sleep(0.3)
    left_by_runner = pid_path.read_text()     # as the runner wrote it
    assert os.stat(pid_path).st_mode & 0o077 == 0
    assert croupier(env, 'cancel', 'stale').returncode == 0
    runner.communicate(timeout=60)
    assert runner.returncode == 1
    assert not pid_path.exists()
    unrelated = subprocess.Popen(['sleep', '300'])
    try:
        # the runner died without removing its pid file, and the system gave its pid
        # to another process; then, a pid file naming that process by number only
        for stale in (left_by_runner.replace(f'"pid": {runner.pid}',
                                             f'"pid": {unrelated.pid}'),
                      str(unrelated.pid)):
            assert str(unrelated.pid) in stale
            pid_path.write_text(stale)
            refused = croupier(env, 'cancel', 'stale')
            assert refused.returncode == 1
            assert 'stale' in refused.stderr and 'nothing was signalled' in refused.stderr
            assert not pid_path.exists()
            time.sleep(0.3)
            assert unrelated.poll() is None, 'the unrelated process was signalled'
        # the runner's own record, its process gone: stale as well
        pid_path.write_text(left_by_runner)
        refused = croupier(env, 'cancel', 'stale')
        assert refused.returncode == 1 and not pid_path.exists()
    finally:
        unrelated.kill()
        unrelated.wait()
    assert croupier(env, 'uninstall', 'stale').returncode == 0


def test_concurrent_installs_of_one_name_leave_one_whole_deployment(tmp_path):
    home = str(tmp_path / 'home')
    env = dict(os.environ, CROUPIER_HOME=home)
    bp = write_blueprint(tmp_path)
    installs = [subprocess.Popen([sys.executable, '-m', 'croupier_plugin.cli', 'install', bp,
                                  'twice', '-i', f'base_dir={tmp_path}/work{n}',
                                  '-i', 'password=x'], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for n in range(4)]
    outputs = [p.communicate(timeout=120)[0] for p in installs]
    codes = [p.returncode for p in installs]
    assert codes.count(0) == 1, list(zip(codes, outputs))
    assert all("deployment 'twice' exists" in out
               for code, out in zip(codes, outputs) if code), outputs
    status = croupier(env, 'status', 'twice')
    assert status.returncode == 0 and 'quick' in status.stdout, status.stderr
    assert croupier(env, 'uninstall', 'twice').returncode == 0
    assert store_entries(home, 'twice') == []
