"""The original Croupier's workflows croupier_install and croupier_configure (with
recurring_workflow) on deployments of this machine (SHELL through the local
transport)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from croupier_plugin import runner


def test_the_originals_workflows_on_a_named_deployment(tmp_path):
    """croupier_install installs (the interface's working directory exists after it),
    croupier_configure changes nothing when no interface is recurring, and run_jobs
    still runs."""
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
    # no interface is recurring: croupier_configure leaves the deployment as it is
    kept = croupier('execute', 'legacy', 'croupier_configure')
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert os.listdir(work) == made
    ran = croupier('execute', 'legacy', 'run_jobs')
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (work / made[0] / 'hello.txt').read_text() == 'hello\n'
    assert croupier('uninstall', 'legacy').returncode == 0


RECURRING = """tosca_definitions_version: cloudify_dsl_1_5
imports:
  - http://cloudify.co/spec/cloudify/7.0.5/types.yaml
  - plugin:croupier
node_templates:
  here:
    type: croupier.nodes.InfrastructureInterface
    properties:
      config: {{infrastructure_interface: SHELL, transport: local}}
      base_dir: {work}
      workdir_prefix: recur
      recurring_workflow: true
      monitoring_options: {{monitor_period: 0.2}}
  stamp:
    type: croupier.nodes.Job
    properties:
      job_options: {{commands: ['cat ../setup.txt > stamp.txt; pwd >> stamp.txt']}}
      deployment:
        bootstrap: setup.sh
    relationships:
      - {{type: task_managed_by_interface, target: here}}
"""


def test_recurring_workflow_gets_a_working_directory_per_recurrence(tmp_path):
    """recurring_workflow: true: install makes no working directory; run_jobs before
    croupier_configure is refused naming the interface and what to do; each
    croupier_configure makes a new directory and bootstraps the job in it, and the
    run_jobs after it runs the job again there; uninstall removes every recurrence's
    directory."""
    work = tmp_path / 'work'
    work.mkdir()
    folder = tmp_path / 'app'
    folder.mkdir()
    (folder / 'blueprint.yaml').write_text(RECURRING.format(work=work))
    # the bootstrap script runs in the recurrence's directory: it leaves a file beside it
    (folder / 'setup.sh').write_text('echo "set up in $(basename "$PWD")" > ../setup.txt\n')
    env = runner.init_env(str(folder / 'blueprint.yaml'), name='recur')
    runner.execute(env, 'install')
    assert os.listdir(work) == []
    with pytest.raises(Exception, match="node 'here' has no working directory yet: it has "
                                        "recurring_workflow: true, so execute "
                                        "croupier_configure before each run_jobs"):
        runner.execute(env, 'run_jobs')

    seen, job_ids = [], []
    for _ in range(2):
        runner.execute(env, 'croupier_configure')
        new = sorted(set(os.listdir(work)) - set(seen) - {'setup.txt'})
        assert len(new) == 1 and new[0].startswith('recur_'), os.listdir(work)
        seen.append(new[0])
        runner.execute(env, 'run_jobs')
        assert (work / new[0] / 'stamp.txt').read_text() == \
            f'set up in {new[0]}\n{work / new[0]}\n'
        [stamp] = [i for i in env.storage.get_node_instances() if i.node_id == 'stamp']
        assert stamp.runtime_properties['state'] == 'COMPLETED'
        job_ids.append(stamp.runtime_properties['job_id'])
    # a new recurrence, a new job: the second run_jobs did not take the first's record
    assert seen[0] != seen[1] and job_ids[0] != job_ids[1]
    runner.execute(env, 'uninstall')
    assert sorted(os.listdir(work)) == ['setup.txt']
