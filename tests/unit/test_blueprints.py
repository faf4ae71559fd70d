"""plugin.yaml and every example blueprint parse with cloudify-common's dsl_parser,
and `croupier validate` names node, property and value for bad input."""

import glob
import os

import pytest

from croupier_plugin import runner
from croupier_plugin.cli import main
from croupier_plugin.validation import validate_plan

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEY = os.path.join(ROOT, 'tests', 'fixtures', 'keys', 'ed25519_example')

EXAMPLE_INPUTS = {
    'slurm-dag': {'hpc_host': 'hpc.example.org', 'hpc_user': 'alice',
                  'hpc_private_key_file': KEY},
    'two-systems': {'first_host': 'a.example.org', 'first_user': 'alice',
                    'first_private_key_file': KEY, 'second_host': 'b.example.org',
                    'second_user': 'bob', 'second_private_key_file': KEY},
    'hello': {},
    'placement': {'first_host': 'a.example.org', 'first_user': 'alice',
                  'first_private_key_file': KEY, 'second_host': 'b.example.org',
                  'second_user': 'bob', 'second_private_key_file': KEY},
    'retries-and-rerun': {'hpc_host': 'hpc.example.org', 'hpc_user': 'alice',
                          'hpc_private_key_file': KEY},
    'parameter-sweep': {'hpc_host': 'hpc.example.org', 'hpc_user': 'alice',
                        'hpc_private_key_file': KEY},
    'dataflow': {'iam_jwt': 'header.payload.signature', 'iam_user': 'alice',
                 'vault_address': 'https://vault.example.org', 'hpc_host': 'hpc.example.org',
                 'hpc_user': 'alice', 'hpc_private_key_file': KEY,
                 'web_endpoint': 'https://data.example.org', 'data_resource': '/sets/small.csv',
                 'store_host': 'store.example.org'},
    'covid19-pycompss': {
        'iam_jwt': 'header.payload.signature', 'iam_user': 'alice',
        'vault_address': 'https://vault.example.org', 'hpc_host': 'hpc.example.org',
        'covid19_args': {'metadata': 'm.tsv', 'outputs': 'out', 'ko_file': 'ko.txt',
                         'replicates': 2, 'model': 'epithelial'},
        'pycompss_args': {'num_nodes': 2, 'exec_time': 30, 'qos': 'debug'}},
}


def test_every_example_blueprint_has_inputs_here():
    names = {os.path.basename(os.path.dirname(p))
             for p in glob.glob(os.path.join(ROOT, 'blueprints', '*', 'blueprint.yaml'))}
    assert names == set(EXAMPLE_INPUTS)


@pytest.mark.parametrize('name', sorted(EXAMPLE_INPUTS))
def test_example_blueprint_parses_and_validates(name):
    env = runner.init_env(os.path.join(ROOT, 'blueprints', name, 'blueprint.yaml'),
                          EXAMPLE_INPUTS[name], name=f'check-{name}')
    assert 'run_jobs' in env.plan['workflows']
    assert validate_plan(env.storage) == []


def write(tmp_path, text):
    path = tmp_path / 'blueprint.yaml'
    path.write_text(text)
    return str(path)


HEAD = """tosca_definitions_version: cloudify_dsl_1_4
imports:
  - http://cloudify.co/spec/cloudify/7.0.5/types.yaml
  - plugin:croupier
node_templates:
"""

HPC = """  hpc:
    type: croupier.nodes.InfrastructureInterface
    properties:
      config: {infrastructure_interface: %s}
      credentials: {host: h.example.org, user: u, password: secret-pw-1}
"""

JOB = """  job1:
    type: croupier.nodes.Job
    properties:
      job_options: %s
    relationships:
      - {type: task_managed_by_interface, target: hpc}
"""


@pytest.mark.parametrize('scheduler, options, expected', [
    ('LSF', '{commands: ["true"]}',
     "node 'hpc', property 'config.infrastructure_interface' = 'LSF'"),
    ('SLURM', '{commands: ["true"], nodes: -2}', "node 'job1', property 'job_options.nodes' = -2"),
    ('SLURM', "{commands: [\'true\'], max_time: 'ten minutes'}",
     "node 'job1', property 'job_options.max_time' = 'ten minutes'"),
    ('SLURM', '{commands: ["true"], colour: red}', "node 'job1', property 'job_options.colour'"),
    ('PBS', '{commands: ["true"], qos: normal}', "node 'job1', property 'job_options.qos' = "
                                                 "'normal'"),
])
def test_validate_names_node_property_and_value(tmp_path, capsys, scheduler, options,
                                                expected):
    path = write(tmp_path, HEAD + HPC % scheduler + JOB % options)
    assert main(['validate', path]) == 1
    err = capsys.readouterr().err
    assert expected in err
    assert 'secret-pw-1' not in err


def test_missing_host_is_named(tmp_path, capsys):
    text = HEAD + """  hpc:
    type: croupier.nodes.InfrastructureInterface
    properties:
      config: {infrastructure_interface: SLURM}
      credentials: {user: u, password: pw}
""" + JOB % '{commands: ["true"]}'
    assert main(['validate', write(tmp_path, text)]) == 1
    assert "node 'hpc', property 'credentials.host' = None: is required" in \
        capsys.readouterr().err


def test_job_without_interface_is_refused(tmp_path, capsys):
    text = HEAD + HPC % 'SLURM' + """  lonely:
    type: croupier.nodes.Job
    properties:
      job_options: {commands: ['true']}
"""
    assert main(['validate', write(tmp_path, text)]) == 1
    assert "node 'lonely': a job needs a task_managed_by_interface relationship" in \
        capsys.readouterr().err


def test_unknown_import_fails_clearly(tmp_path, capsys):
    text = HEAD.replace('plugin:croupier', 'plugin:nothere') + HPC % 'SLURM'
    assert main(['validate', write(tmp_path, text)]) == 2
    assert 'plugin:nothere' in capsys.readouterr().err


def test_install_refuses_a_bad_job_before_creating_anything(tmp_path, capsys):
    base = tmp_path / 'base'
    text = HEAD + """  here:
    type: croupier.nodes.InfrastructureInterface
    properties:
      config: {infrastructure_interface: SHELL, transport: local}
      base_dir: %s
  job1:
    type: croupier.nodes.Job
    properties:
      job_options: {commands: ["true"], max_time: "soon"}
    relationships:
      - {type: task_managed_by_interface, target: here}
""" % base
    env = runner.init_env(write(tmp_path, text), name='refused')
    from cloudify.exceptions import WorkflowFailed
    with pytest.raises(WorkflowFailed):
        runner.execute(env, 'install')
    # the local engine reports a task's error in its events, not in the exception
    assert "node 'job1', property 'job_options.max_time' = 'soon'" in capsys.readouterr().out
    assert not base.exists()
