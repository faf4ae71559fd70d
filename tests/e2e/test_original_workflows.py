"""The original Croupier's workflows croupier_install and croupier_configure on a
named deployment of this machine (SHELL through the local transport)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_the_originals_workflows_on_a_named_deployment(tmp_path):
    """croupier_install installs (the interface's working directory exists after it),
    croupier_configure is refused with the reason, and run_jobs still runs."""
    env = dict(os.environ, CROUPIER_HOME=str(tmp_path / 'home'))
    work = tmp_path / 'work'
    blueprint = tmp_path / 'blueprint.yaml'
    blueprint.write_text(f"""tosca_definitions_version: cloudify_dsl_1_5
imports:
  - http://cloudify.co/spec/cloudify/7.0.5/types.yaml
  - plugin:croupier
node_templates:
  here:
    type: croupier.nodes.InfrastructureInterface
    properties:
      config: {{infrastructure_interface: SHELL, transport: local}}
      base_dir: {work}
      workdir_prefix: legacy
  hello:
    type: croupier.nodes.Job
    properties:
      job_options: {{commands: ['echo hello > hello.txt']}}
    relationships:
      - {{type: task_managed_by_interface, target: here}}
""")

    def croupier(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, '-m', 'croupier_plugin.cli', *args],
                              capture_output=True, text=True, env=env, timeout=300)

    work.mkdir()
    done = croupier('install', str(blueprint), 'legacy')
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(os.listdir(work)) == 1
    # Cloudify's uninstall removes the working directory and keeps the deployment;
    # croupier_install then installs it again, as install does
    emptied = croupier('execute', 'legacy', 'uninstall')
    assert emptied.returncode == 0, emptied.stdout + emptied.stderr
    assert os.listdir(work) == []
    again = croupier('execute', 'legacy', 'croupier_install')
    assert again.returncode == 0, again.stdout + again.stderr
    made = os.listdir(work)
    assert len(made) == 1 and made[0].startswith('legacy')
    refused = croupier('execute', 'legacy', 'croupier_configure')
    assert refused.returncode != 0
    assert 'recurring workflows' in refused.stdout + refused.stderr
    assert 'Traceback' not in refused.stdout + refused.stderr
    ran = croupier('execute', 'legacy', 'run_jobs')
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (work / made[0] / 'hello.txt').read_text() == 'hello\n'
    assert croupier('uninstall', 'legacy').returncode == 0
