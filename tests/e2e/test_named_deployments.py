"""Named local deployments: `croupier cancel NAME` from another process."""

import os
import subprocess
import sys
import time
import uuid

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
