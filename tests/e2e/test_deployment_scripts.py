"""Application deployment scripts (bootstrap at install, revert at uninstall) and a
blueprint-shipped local_script, on the embedded engine with a local SHELL interface."""

import os

from croupier_plugin import runner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_bootstrap_local_script_and_revert(tmp_path, capsys):
    marker = tmp_path / 'markers'
    marker.mkdir()
    env = runner.init_env(os.path.join(ROOT, 'tests', 'blueprints', 'deploy', 'blueprint.yaml'),
                          {'base_dir': str(tmp_path / 'work'), 'marker_dir': str(marker)},
                          name='deploy')
    runner.execute(env, 'install')
    instances = {i.node_id: i for i in env.storage.get_node_instances()}
    workdir = instances['here'].runtime_properties['workdir']
    # bootstrap ran in the working directory with its inputs, before any job
    assert open(f'{workdir}/app.txt').read() == f'app version 2.1 deployed in {workdir}\n'
    assert not [f for f in os.listdir(workdir) if f.startswith('.croupier-bootstrap')]
    # hpc_execution: false ran on this side, told where the source is
    assert (marker / 'local-bootstrap.txt').read_text() == \
        'ran on the orchestrator for localhost, source=sources\n'
    runner.execute(env, 'run_jobs')
    app = {i.node_id: i for i in env.storage.get_node_instances()}['app'].runtime_properties
    assert app['state'] == 'COMPLETED'
    assert open(app['stdout']).read() == (f'analysed: [x y] [$(no)]\n'
                                          f'app version 2.1 deployed in {workdir}\n')
    assert os.path.exists(f'{workdir}/analyse.sh')          # uploaded next to the job
    runner.execute(env, 'uninstall')
    reverted = [f.name for f in marker.iterdir() if f.name.startswith('reverted-')]
    assert len(reverted) == 1
    assert (marker / reverted[0]).read_text() == f'reverted from {workdir}\n'
    assert not os.path.exists(workdir)
    assert 'app version' not in capsys.readouterr().err
