"""Every name the original Croupier's plugin.yaml declares (its master, permedcoe and
master_dev branches, listed in shared/research/original-schema.md) is declared by
Croupier's plugin.yaml, compatibly; a blueprint using them parses, and the settings
Croupier does not act on are refused by name with the reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from croupier_plugin.cli import main
from croupier_plugin.core.legacy import UNSUPPORTED_TYPES, legacy_problems

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DOC = ROOT.parent / 'shared' / 'research' / 'original-schema.md'
PLUGIN = yaml.safe_load((ROOT / 'plugin.yaml').read_text())
HEAD = '''tosca_definitions_version: cloudify_dsl_1_5
imports:
  - http://cloudify.co/spec/cloudify/7.0.5/types.yaml
  - plugin:croupier
'''


def original_schema() -> dict[str, dict]:
    """{'node_types'|'data_types': {name: {prop: [cells per branch]}},
    'relationships'|'workflows': {name: {}}}, read from the research document."""
    text = SCHEMA_DOC.read_text()
    found: dict[str, dict] = {'node_types': {}, 'data_types': {}, 'relationships': {},
                              'workflows': {}}
    section = None
    current = None
    for line in text.splitlines():
        heading = re.match(r'^## (\w+)', line)
        if heading:
            section = heading.group(1)
            continue
        entry = re.match(r'^### `([^`]+)`', line)
        if entry and section in ('node_types', 'data_types'):
            current = found[section].setdefault(entry.group(1), {})
            continue
        row = re.match(r'^\| `([^`]+)` \|(.*)\|$', line)
        if row and current is not None:
            current[row.group(1)] = [cell.strip() for cell in row.group(2).split('|')]
            continue
        item = re.match(r'^- `([^`]+)`', line)
        if item and section in ('relationships', 'workflows'):
            found[section][item.group(1)] = {}
    return found


ORIGINAL = original_schema()


def _properties(section: str, name: str) -> dict:
    """The properties of a node or data type of ours, with those it inherits."""
    declared = PLUGIN[section][name]
    props = dict(declared.get('properties') or {})
    parent = declared.get('derived_from')
    if parent and parent in PLUGIN[section]:
        props = {**_properties(section, parent), **props}
    return props


def test_the_research_document_lists_the_whole_schema():
    # a parse that found nothing would make every test below pass vacuously
    assert len(ORIGINAL['node_types']) >= 15
    assert len(ORIGINAL['data_types']) >= 15
    assert 'interface_contained_in' in ORIGINAL['relationships']
    assert 'croupier_configure' in ORIGINAL['workflows']


@pytest.mark.parametrize('section', ['node_types', 'data_types'])
def test_every_type_and_property_is_declared(section):
    missing = [f'{name}.{prop}' if prop else name
               for name, props in ORIGINAL[section].items()
               for prop in ([None] if name not in PLUGIN[section] else props)
               if prop is None or prop not in _properties(section, name)]
    assert missing == []


@pytest.mark.parametrize('section', ['relationships', 'workflows'])
def test_every_relationship_and_workflow_is_declared(section):
    assert [name for name in ORIGINAL[section] if name not in PLUGIN[section]] == []


def _required(spec: dict) -> bool:
    return 'default' not in spec and spec.get('required', True) is not False


@pytest.mark.parametrize('section', ['node_types', 'data_types'])
def test_nothing_the_original_left_optional_is_required(section):
    """A blueprint that parsed against any branch of the original parses here: a
    property Croupier requires was required in every branch that declared it."""
    too_strict = []
    for name, props in ORIGINAL[section].items():
        ours = _properties(section, name)
        for prop, cells in props.items():
            declared = [cell for cell in cells if cell != '—']
            if _required(ours[prop]) and not all('required' in cell and 'optional' not in cell
                                                  for cell in declared):
                too_strict.append(f'{name}.{prop}')
    assert too_strict == []


# Mappings Croupier checks itself, with errors naming node, property and value, and
# with more keys than the original's data types (env, modules, pre, post, factories...)
UNTYPED_ON_PURPOSE = {'croupier.nodes.Job.job_options', 'croupier.nodes.PyCOMPSsJob.job_options',
                      'croupier.nodes.Job.deployment'}


@pytest.mark.parametrize('section', ['node_types', 'data_types'])
def test_typed_properties_keep_the_original_data_type(section):
    """Blueprints type their inputs with the original's data types: a property the
    original typed with one of its data types has the same type here, except the
    mappings Croupier checks itself."""
    differing = []
    for name, props in ORIGINAL[section].items():
        ours = _properties(section, name)
        for prop, cells in props.items():
            types = {m.group(0) for cell in cells
                     for m in [re.match(r'croupier\.datatypes\.[\w.]+', cell)] if m}
            if f'{name}.{prop}' in UNTYPED_ON_PURPOSE:
                continue
            if types and ours[prop].get('type') not in types:
                differing.append(f'{name}.{prop}: {ours[prop].get("type")} not in {types}')
    assert differing == []


def test_a_blueprint_using_the_originals_names_is_valid(tmp_path, capsys):
    """Inputs typed with the original's data types, the interface's original settings at
    values Croupier honours, and a Vault node as the documentation writes it."""
    blueprint = tmp_path / 'blueprint.yaml'
    blueprint.write_text(HEAD + """inputs:
  hpc_credentials:
    type: croupier.datatypes.Credentials
  options:
    type: croupier.datatypes.job.Options
    default: {commands: ['echo hi'], nodes: 1, tasks: 1, max_time: '00:01:00'}
node_templates:
  vault:
    type: croupier.nodes.Vault
    properties: {jwt: a.b.c, user: alice, address: 'https://127.0.0.1:8200'}
  hpc:
    type: croupier.nodes.InfrastructureInterface
    properties:
      config: {infrastructure_interface: SLURM, country_tz: Europe/Madrid}
      credentials: {get_input: hpc_credentials}
      accounting_options: {}
      simulate: false
      recurring_workflow: false
      internet_access: true
      supported_prtocols: [SFTP]
      agent_config: {install_method: none}
      monitoring_options: {monitor_period: 15, only_jobs: false}
  job1:
    type: croupier.nodes.Job
    properties:
      job_options: {get_input: options}
    relationships:
      - {type: task_managed_by_interface, target: hpc}
  store:
    type: croupier.nodes.DataAccessInfrastructure
    properties:
      endpoint: store.example.org
      credentials: {user: u, password: pw}
  data:
    type: croupier.nodes.HPCDataSource
    properties: {filepath: /scratch/in.dat}
    relationships:
      - {type: ds_located_at, target: store}
""")
    assert main(['validate', str(blueprint), '-i',
                 'hpc_credentials={"host": "h.example.org", "user": "u", "password": "pw"}']) == 0
    assert 'valid' in capsys.readouterr().out


INTERFACE = 'croupier.nodes.InfrastructureInterface'
CREDENTIALS = {'host': 'h.example.org', 'user': 'u', 'password': 'pw'}

# (case, node types, properties, relationships, property named, value shown)
REFUSED = [
    ('simulate not a bool', [INTERFACE], {'simulate': 'yes'}, [], 'simulate', "'yes'"),
    ('accounting user on two lines', [INTERFACE],
     {'accounting_options': {'reporting_user': 'acc\nx'}}, [],
     'accounting_options.reporting_user', "'acc\\nx'"),
    ('accounting user a number', [INTERFACE], {'accounting_options': {'reporting_user': 5}},
     [], 'accounting_options.reporting_user', '5'),
    ('accounting options a list', [INTERFACE], {'accounting_options': ['acc']}, [],
     'accounting_options', "['acc']"),
    ('agent', [INTERFACE], {'agent_config': {'install_method': 'remote'}}, [],
     'agent_config.install_method', "'remote'"),
    ('tunnel', [INTERFACE], {'credentials': dict(CREDENTIALS, ssh_tunnel='jump')}, [],
     'credentials.ssh_tunnel', "'<hidden>'"),
    ('auth header on a data host', ['croupier.nodes.DataAccessInfrastructure'],
     {'credentials': {'auth-header': 'Bearer t0ken'}}, [], 'credentials.auth-header',
     "'<hidden>'"),
    ('GridFTP certificate', ['croupier.nodes.GridFTPDataAccessInfrastructure',
                             'croupier.nodes.DataAccessInfrastructure'],
     {'credentials': {'user': 'u', 'cert': '/home/u/.globus/usercert.pem'}}, [],
     'credentials.cert', "'<hidden>'"),
    ('group name', ['croupier.nodes.Job'], {'job_options': {'group_name': 'g'}}, [],
     'job_options.group_name', "'g'"),
    ('gpu memory', ['croupier.nodes.Job'], {'job_options': {'gpu_memory': '8G'}}, [],
     'job_options.gpu_memory', "'8G'"),
]


@pytest.mark.parametrize('case,types,props,rels,prop,shown', REFUSED,
                         ids=[row[0] for row in REFUSED])
def test_settings_croupier_does_not_act_on_are_refused_by_name(case, types, props, rels,
                                                               prop, shown):
    problems = legacy_problems('n1', types, props, rels)
    assert len(problems) == 1
    assert problems[0].startswith(f"node 'n1', property '{prop}' = ")
    assert shown in problems[0]


def test_secrets_in_refused_credentials_are_not_shown():
    problems = legacy_problems('dai', ['croupier.nodes.DataAccessInfrastructure'],
                               {'credentials': {'auth-header': 'Bearer s3cr3t-t0ken'}})
    assert problems and 's3cr3t' not in problems[0]


@pytest.mark.parametrize('type_name', sorted(UNSUPPORTED_TYPES))
def test_unsupported_node_types_are_refused_with_the_reason(type_name):
    problems = legacy_problems('n1', [type_name], {})
    assert problems == [f"node 'n1': type {type_name}: {UNSUPPORTED_TYPES[type_name]}"]


def test_dry_runs_and_accounting_are_accepted():
    """simulate: true and accounting_options are carried out, not refused."""
    assert legacy_problems('hpc', [INTERFACE], {
        'simulate': True, 'accounting_options': {'reporting_user': 'acc'},
        'credentials': CREDENTIALS}) == []


def test_workspaces_and_gridftp_infrastructures_are_not_refused_here():
    """An HPCDataSource's workspace and a GridFTP infrastructure (without a
    certificate) are Croupier's to run: the dataflow checks their values."""
    assert legacy_problems('data', ['croupier.nodes.HPCDataSource',
                                    'croupier.nodes.FileDataSource'],
                           {'filepath': 'in', 'workspace': {'name': 'ws', 'create': True,
                                                            'lifetime': 1}}) == []
    assert legacy_problems('grid', ['croupier.nodes.GridFTPDataAccessInfrastructure',
                                    'croupier.nodes.DataAccessInfrastructure'],
                           {'endpoint': 'grid.example.org:2811', 'ssh_endpoint': 'grid:22',
                            'credentials': {'user': 'u', 'private_key_file': '/k'}}) == []
    assert 'croupier.nodes.GridFTPDataAccessInfrastructure' not in UNSUPPORTED_TYPES


def test_honoured_values_are_accepted():
    assert legacy_problems('hpc', [INTERFACE], {
        'simulate': False, 'recurring_workflow': True, 'internet_access': True,
        'supported_prtocols': ['SFTP'], 'accounting_options': {},
        'agent_config': {'install_method': 'none'}, 'credentials': CREDENTIALS,
        'monitoring_options': {'only_jobs': True, 'deployment_label': 'covid19'}},
        [(['interface_contained_in'], 'vm')]) == []


def test_a_refused_setting_stops_validate_naming_it(tmp_path, capsys):
    """Through `croupier validate`: the refusal is said once, not again as an unknown
    field, and the node type refusal names its node."""
    blueprint = tmp_path / 'blueprint.yaml'
    blueprint.write_text(HEAD + """node_templates:
  hpc:
    type: croupier.nodes.InfrastructureInterface
    properties:
      config: {infrastructure_interface: SLURM}
      credentials: {host: h.example.org, user: u, password: pw, ssh_tunnel: jump.example.org}
  job1:
    type: croupier.nodes.Job
    properties:
      job_options: {commands: [run]}
    relationships:
      - {type: task_managed_by_interface, target: hpc}
  grid:
    type: croupier.nodes.GridFTPDataAccessInfrastructure
    properties: {endpoint: gsiftp://grid.example.org, supported_protocols: [GRIDFTP],
                 credentials: {user: u, password: pw, cert: /home/u/usercert.pem}}
""")
    assert main(['validate', str(blueprint)]) != 0
    err = capsys.readouterr().err
    assert "node 'hpc', property 'credentials.ssh_tunnel'" in err
    assert 'jump.example.org' not in err
    assert 'not a known credentials field' not in err
    assert "node 'grid', property 'credentials.cert' = '<hidden>': GridFTP X.509 " \
           "certificates are not supported" in err
    assert 'usercert.pem' not in err


def test_a_master_branch_vault_node_with_a_token_and_its_cubbyhole_is_valid(tmp_path, capsys):
    """The original's master branch gives a Vault token (and may read its cubbyhole)
    instead of a JWT: accepted, and the token is not shown."""
    blueprint = tmp_path / 'blueprint.yaml'
    blueprint.write_text(HEAD + """node_templates:
  vault:
    type: croupier.nodes.Vault
    properties: {token: hvs.master-branch-token, cubbyhole: true,
                 address: 'https://127.0.0.1:8200'}
  hpc:
    type: croupier.nodes.InfrastructureInterface
    properties:
      config: {infrastructure_interface: SLURM}
      credentials: {host: h.example.org}
    relationships:
      - {type: retrieve_credentials_from_vault, target: vault}
  job1:
    type: croupier.nodes.Job
    properties:
      job_options: {commands: [run]}
    relationships:
      - {type: task_managed_by_interface, target: hpc}
""")
    assert main(['validate', str(blueprint)]) == 0
    out = capsys.readouterr()
    assert 'valid' in out.out
    assert 'master-branch-token' not in out.out + out.err
