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


HEAD = """tosca_definitions_version: cloudify_dsl_1_5
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


# -- imports resolved as a Cloudify Manager 7.0.5 resolves them ---------------

SHARED_TYPES = os.path.join(os.path.dirname(ROOT), 'shared', 'cloudify-manager-types')
SPELLINGS = [f'{scheme}://{www}{host}/spec/cloudify/{{version}}/types.yaml'
             for scheme in ('http', 'https') for www in ('', 'www.')
             for host in ('cloudify.co', 'getcloudify.org')]
VAULT_NODE = """  vault:
    type: croupier.nodes.Vault
    properties: {jwt: header.payload.signature, user: alice,
                 address: 'https://vault.example.org:8200'}
"""


def every_blueprint():
    """Every blueprint file under blueprints/ and tests/ (a YAML file that
    declares a tosca_definitions_version)."""
    found = []
    for pattern in ('blueprints/**/*.yaml', 'tests/**/*.yaml'):
        for path in glob.glob(os.path.join(ROOT, pattern), recursive=True):
            with open(path) as fh:
                if fh.read().lstrip().startswith('tosca_definitions_version'):
                    found.append(os.path.relpath(path, ROOT))
    return sorted(found)


def parse(path, types_root=None):
    from dsl_parser.parser import parse_from_path
    return parse_from_path(path, resolver=runner.resolver(types_root))


def blueprint_with(tmp_path, dsl, types_import):
    return write(tmp_path, f'tosca_definitions_version: cloudify_dsl_{dsl}\nimports:\n'
                           f'  - {types_import}\n  - plugin:croupier\nnode_templates:\n'
                 + VAULT_NODE)


def test_the_managers_types_files_are_beside_the_project():
    assert os.path.isfile(os.path.join(SHARED_TYPES, 'spec', 'cloudify', '7.0.5', 'types.yaml'))
    assert os.environ.get(runner.CLOUDIFY_TYPES_ENV) == SHARED_TYPES, \
        'tests/conftest.py makes every test resolve imports as a manager does'


def test_there_are_blueprints_to_check():
    names = every_blueprint()
    assert 'blueprints/hello/blueprint.yaml' in names
    assert 'tests/blueprints/slurm-vault.yaml' in names


@pytest.mark.parametrize('path', every_blueprint())
def test_every_blueprint_parses_as_a_manager_parses_it(path):
    plan = parse(os.path.join(ROOT, path), SHARED_TYPES)
    for node in plan['nodes']:
        if 'cloudify.nodes.Root' in node['type_hierarchy']:
            # the manager's Root adds these to every node
            assert node['properties']['use_external_resource'] is False, node['id']


@pytest.mark.parametrize('spelling, version, dsl',
                         [(s, '7.0.5', '1_3') for s in SPELLINGS] +
                         [(SPELLINGS[0], v, d) for v in ('7.0.5', '6.3.0', '4.5.5')
                          for d in ('1_3', '1_4', '1_5')])
def test_the_embedded_runner_maps_every_spelling_and_version(tmp_path, monkeypatch, spelling,
                                                            version, dsl):
    monkeypatch.delenv(runner.CLOUDIFY_TYPES_ENV, raising=False)
    plan = parse(blueprint_with(tmp_path, dsl, spelling.format(version=version)))
    vault = next(n for n in plan['nodes'] if n['id'] == 'vault')
    assert vault['properties']['use_external_resource'] is False


@pytest.mark.parametrize('dsl', ['1_3', '1_4', '1_5'])
def test_the_embedded_runner_maps_the_managers_local_types_import(tmp_path, monkeypatch, dsl):
    monkeypatch.delenv(runner.CLOUDIFY_TYPES_ENV, raising=False)
    plan = parse(blueprint_with(tmp_path, dsl, 'cloudify/types/types.yaml'))
    assert 'install' in plan['workflows']


@pytest.mark.parametrize('dsl, expected', [('1_3', 'types_1_3.yaml'), ('1_4', 'types_1_4.yaml'),
                                           ('1_5', 'types.yaml')])
def test_manager_resolution_picks_the_local_types_by_dsl_version(tmp_path, dsl, expected):
    resolver = runner.resolver(SHARED_TYPES)
    tried = [f'resource:cloudify/types/types_{dsl}.yaml', 'resource:cloudify/types/types.yaml']
    found = [resolver.types_file(url, dsl) for url in tried]
    chosen = next(p for p in found if os.path.exists(p))
    assert chosen == os.path.join(SHARED_TYPES, 'cloudify', 'types', expected)
    assert 'install' in parse(blueprint_with(tmp_path, dsl, 'cloudify/types/types.yaml'),
                              SHARED_TYPES)['workflows']


@pytest.mark.parametrize('dsl', ['1_3', '1_4'])
def test_manager_resolution_refuses_the_705_url_below_dsl_1_5(tmp_path, dsl):
    """As the real manager does at upload: its 7.0.5 types need cloudify_dsl_1_5."""
    from dsl_parser.exceptions import DSLParsingException
    path = blueprint_with(tmp_path, dsl, 'http://cloudify.co/spec/cloudify/7.0.5/types.yaml')
    with pytest.raises(DSLParsingException, match='cloudify_dsl_1_5|different '
                                                  'tosca_definitions_version'):
        parse(path, SHARED_TYPES)


def test_an_original_style_blueprint_runs_on_the_embedded_runner(tmp_path, monkeypatch):
    """cloudify_dsl_1_3 and the 7.0.5 types URL, as the original Croupier's
    blueprints are written: parsed, validated and installed by `croupier`."""
    monkeypatch.delenv(runner.CLOUDIFY_TYPES_ENV, raising=False)
    text = ('tosca_definitions_version: cloudify_dsl_1_3\nimports:\n'
            '  - http://www.getcloudify.org/spec/cloudify/7.0.5/types.yaml\n'
            '  - plugin:croupier\nnode_templates:\n' + VAULT_NODE + """  here:
    type: croupier.nodes.InfrastructureInterface
    properties:
      config: {infrastructure_interface: SHELL, transport: local}
      base_dir: %s
  job1:
    type: croupier.nodes.Job
    properties:
      job_options: {commands: ["true"]}
    relationships:
      - {type: task_managed_by_interface, target: here}
""" % (tmp_path / 'base'))
    path = write(tmp_path, text)
    assert main(['validate', path]) == 0
    env = runner.init_env(path, name='original-style')
    runner.execute(env, 'install')
    assert (tmp_path / 'base').is_dir()
    runner.execute(env, 'uninstall')


@pytest.mark.parametrize('own_types', [True, False])
def test_roots_properties_are_declared_and_accepted_by_validation(tmp_path, monkeypatch,
                                                                  own_types):
    """use_external_resource and resource_id, which the manager's Root declares,
    given on every kind of Croupier node: parsed and found valid."""
    if own_types:
        monkeypatch.delenv(runner.CLOUDIFY_TYPES_ENV, raising=False)
    root = '      use_external_resource: false\n      resource_id: existing-one\n'
    text = HEAD + f"""  vault:
    type: croupier.nodes.Vault
    properties:
{root}      jwt: header.payload.signature
      user: alice
      address: https://vault.example.org
  exporter:
    type: croupier.nodes.HPCExporter
    properties:
{root}      address: http://127.0.0.1:9110
  hpc:
    type: croupier.nodes.InfrastructureInterface
    properties:
{root}      config: {{infrastructure_interface: SLURM}}
      credentials: {{host: h.example.org}}
    relationships:
      - {{type: retrieve_credentials_from_vault, target: vault}}
      - {{type: interface_monitored_by, target: exporter}}
  job1:
    type: croupier.nodes.Job
    properties:
{root}      job_options: {{commands: ["true"]}}
    relationships:
      - {{type: task_managed_by_interface, target: hpc}}
"""
    env = runner.init_env(write(tmp_path, text), name='root-properties')
    assert validate_plan(env.storage) == []


def test_the_resolver_refuses_a_folder_that_is_not_a_managers_resources(tmp_path):
    with pytest.raises(ValueError, match='not a folder laid out like'):
        runner.resolver(str(tmp_path))
