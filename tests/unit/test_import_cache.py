"""The embedded runner parses Croupier's plugin.yaml and the Cloudify types once
per process: each blueprint still gets its own copy, and an edited file is read
again."""

import os

from croupier_plugin import runner


def test_each_parse_gets_its_own_copy_of_a_cached_import(tmp_path):
    path = tmp_path / 'types.yaml'
    path.write_text('node_types:\n  a.Type: {}\n')
    first = runner.parsed_import(str(path), 'resource:types.yaml')
    # the parser changes what it is given: the next blueprint must not see it
    first.value.clear()
    second = runner.parsed_import(str(path), 'resource:types.yaml')
    assert [key.value for key in second.value] == ['node_types']
    assert second is not first


def test_an_edited_import_is_parsed_again(tmp_path):
    path = tmp_path / 'types.yaml'
    path.write_text('node_types:\n  a.Type: {}\n')
    runner.parsed_import(str(path), 'resource:types.yaml')
    path.write_text('node_types:\n  b.Type: {}\n  c.Type: {}\n')
    os.utime(path, ns=(1, 1))     # a different modification time, whatever the clock
    again = runner.parsed_import(str(path), 'resource:types.yaml')
    types = dict((key.value, value) for key, value in again.value.items())['node_types']
    assert sorted(key.value for key in types.value) == ['b.Type', 'c.Type']


def test_two_blueprints_in_one_process_parse_alike(tmp_path):
    text = ('tosca_definitions_version: cloudify_dsl_1_5\n'
            'imports:\n  - http://cloudify.co/spec/cloudify/7.0.5/types.yaml\n'
            '  - plugin:croupier\n'
            'node_templates:\n  hpc:\n    type: croupier.nodes.InfrastructureInterface\n'
            '    properties:\n      config: {infrastructure_interface: SLURM}\n'
            '      credentials: {host: h.example.org, user: u, password: pw}\n')
    path = tmp_path / 'blueprint.yaml'
    path.write_text(text)
    from dsl_parser.parser import parse_from_path
    plans = [parse_from_path(str(path), resolver=runner.resolver()) for _ in range(2)]
    assert plans[0]['nodes'] == plans[1]['nodes']
    hierarchy = plans[1]['nodes'][0]['type_hierarchy']
    assert hierarchy[0] == 'cloudify.nodes.Root'
    assert hierarchy[-1] == 'croupier.nodes.InfrastructureInterface'
