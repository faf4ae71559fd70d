"""The portal's job graph, from a parsed blueprint and from a stored deployment."""

import os

from croupier_plugin import runner
from croupier_plugin.web import service

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLURM_APP = os.path.join(ROOT, 'tests', 'web', 'blueprints', 'slurm-app', 'blueprint.yaml')
EXPECTED = {'jobs': [{'name': 'hello', 'interface': 'hpc', 'layer': 0},
                     {'name': 'check', 'interface': 'hpc', 'layer': 1},
                     {'name': 'work', 'interface': 'hpc', 'layer': 1}],
            'edges': [['hello', 'work'], ['hello', 'check']]}


def test_the_graph_of_a_parsed_blueprint():
    """An application page draws the graph from the blueprint's parsed plan."""
    plan = service.parse_blueprint(SLURM_APP)
    assert service.job_graph(plan['nodes']) == EXPECTED


def test_the_graph_of_a_stored_deployment(tmp_path, monkeypatch):
    """An instance page draws it from the deployment's stored nodes: the same graph."""
    monkeypatch.setenv('CROUPIER_HOME', str(tmp_path))
    env = runner.init_env(SLURM_APP, {'hpc_host': 'h.example.org', 'hpc_user': 'u',
                                      'hpc_private_key_file': '/nonexistent/key',
                                      'hpc_known_hosts': '/nonexistent/known_hosts'},
                          name='graph')
    assert service.job_graph(env.storage.get_nodes()) == EXPECTED
