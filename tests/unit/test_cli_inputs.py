"""`croupier validate` and `install` on bad inputs and hostile YAML: a clear message
naming the input or the file and line, exit code 2, no traceback, no value echoed,
and no time or memory spent on an alias tree before it is refused.

Each case runs the real `croupier` command in its own process (its exit code and
stderr are what a user sees)."""

import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HEAD = """tosca_definitions_version: cloudify_dsl_1_5
imports:
  - http://cloudify.co/spec/cloudify/7.0.5/types.yaml
  - plugin:croupier
"""
BLUEPRINT = HEAD + """inputs:
  base_dir: {type: string}
  port: {type: integer, default: 22}
node_templates:
  here:
    type: croupier.nodes.InfrastructureInterface
    properties:
      config: {infrastructure_interface: SHELL, transport: local}
      base_dir: { get_input: base_dir }
"""
SECRET = 'alice:S3cr3t-Passw0rd'


def croupier(tmp_path, *args, timeout=60):
    """Run `croupier ARGS` with a private CROUPIER_HOME; (exit code, stdout, stderr,
    seconds)."""
    env = dict(os.environ, CROUPIER_HOME=str(tmp_path / 'home'))
    start = time.monotonic()
    done = subprocess.run([sys.executable, '-m', 'croupier_plugin.cli', *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=timeout)
    return done.returncode, done.stdout, done.stderr, time.monotonic() - start


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def laughs(depth=9, width=9, indent=''):
    """A "billion laughs" tree: a few lines whose aliases expand to width**depth nodes."""
    lines = [f'{indent}a0: &a0 [' + ', '.join(['"lol"'] * width) + ']']
    lines += [f'{indent}a{i}: &a{i} [' + ', '.join([f'*a{i - 1}'] * width) + ']'
              for i in range(1, depth + 1)]
    return '\n'.join(lines) + '\n'


def refused(result, *wanted):
    """The command failed with exit code 2, a message holding ``wanted``, no traceback."""
    code, out, err, _ = result
    assert code == 2, (code, out, err)
    assert 'Traceback' not in err and 'Traceback' not in out, err
    assert err.startswith('error: '), err
    for text in wanted:
        assert text in err, (text, err)
    return err


@pytest.mark.parametrize('command', ['validate', 'install'])
def test_a_missing_input_is_named(tmp_path, command):
    bp = write(tmp_path, 'bp.yaml', BLUEPRINT)
    args = [command, bp] + (['named'] if command == 'install' else [])
    refused(croupier(tmp_path, *args), "Required inputs ['base_dir']")


@pytest.mark.parametrize('command', ['validate', 'install'])
def test_an_unknown_input_is_named(tmp_path, command):
    bp = write(tmp_path, 'bp.yaml', BLUEPRINT)
    args = [command, bp] + (['named'] if command == 'install' else [])
    refused(croupier(tmp_path, *args, '-i', 'base_dir=/tmp', '-i', 'nosuch=1'),
            "Unknown inputs ['nosuch']")


def test_a_yaml_syntax_error_in_an_inputs_file_names_file_and_line(tmp_path):
    bp = write(tmp_path, 'bp.yaml', BLUEPRINT)
    inputs = write(tmp_path, 'in.yaml', f'base_dir: /tmp\npassword: "{SECRET}\nport: [1\n')
    err = refused(croupier(tmp_path, 'validate', bp, '-i', inputs),
                  f'inputs file {inputs}: line 4')
    assert 'S3cr3t' not in err        # PyYAML's excerpt of the line is left out


def test_a_yaml_syntax_error_in_the_blueprint_names_file_and_line(tmp_path):
    broken = BLUEPRINT.replace('default: 22}', 'default: 22')    # line 7
    bp = write(tmp_path, 'bp.yaml', broken)
    refused(croupier(tmp_path, 'validate', bp), f'blueprint {bp}: line 8')


def test_a_python_tag_in_an_inputs_file_is_refused(tmp_path):
    bp = write(tmp_path, 'bp.yaml', BLUEPRINT)
    made = tmp_path / 'made-by-yaml'
    inputs = write(tmp_path, 'in.yaml',
                   f'base_dir: !!python/object/apply:os.mkdir ["{made}"]\n')
    refused(croupier(tmp_path, 'validate', bp, '-i', inputs),
            f'inputs file {inputs}: line 1', 'python/object/apply:os.mkdir')
    assert not made.exists()


def test_a_python_tag_in_a_name_value_input_is_refused(tmp_path):
    bp = write(tmp_path, 'bp.yaml', BLUEPRINT)
    refused(croupier(tmp_path, 'validate', bp, '-i', 'base_dir=!!python/name:os.system'),
            'input base_dir: line 1', 'python/name:os.system')


def test_an_alias_tree_in_an_inputs_file_is_refused_at_once(tmp_path):
    bp = write(tmp_path, 'bp.yaml', BLUEPRINT)
    inputs = write(tmp_path, 'in.yaml', laughs() + 'base_dir: *a9\n')
    result = croupier(tmp_path, 'validate', bp, '-i', inputs, timeout=30)
    refused(result, f'inputs file {inputs}', 'anchors and aliases expand to more than')
    assert result[3] < 15


def test_an_alias_tree_in_an_input_default_is_refused_at_once(tmp_path):
    text = HEAD + 'inputs:\n  tree:\n    default:\n' + laughs(indent='      ') + \
        'node_templates: {}\n'
    bp = write(tmp_path, 'bp.yaml', text)
    result = croupier(tmp_path, 'validate', bp, timeout=30)
    refused(result, f'blueprint {bp}', 'anchors and aliases expand to more than')
    assert result[3] < 15


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path):
    bp = write(tmp_path, 'bp.yaml', BLUEPRINT)
    inputs = write(tmp_path, 'in.yaml', 'base_dir: /tmp\nloop: &x [1, *x]\n')
    refused(croupier(tmp_path, 'validate', bp, '-i', inputs),
            f'inputs file {inputs}: line 2', 'alias refers to the node it is part of')


@pytest.mark.parametrize('which', ['blueprint', 'inputs file'])
def test_a_file_over_the_size_limit_is_refused_unread(tmp_path, which):
    from croupier_plugin.runner import MAX_YAML_BYTES
    padding = '#' * 79 + '\n'
    big = padding * (MAX_YAML_BYTES // len(padding) + 1)
    if which == 'blueprint':
        bp = write(tmp_path, 'bp.yaml', BLUEPRINT + big)
        args = ['validate', bp]
        where = bp
    else:
        bp = write(tmp_path, 'bp.yaml', BLUEPRINT)
        where = write(tmp_path, 'in.yaml', 'base_dir: /tmp\n' + big)
        args = ['validate', bp, '-i', where]
    refused(croupier(tmp_path, *args), f'{which} {where}: ', f'larger than {MAX_YAML_BYTES}')


# Item 25: every DSL parser message that quotes a value shows <hidden> instead.

def test_a_credentials_string_in_an_input_of_the_wrong_type_is_hidden(tmp_path):
    bp = write(tmp_path, 'bp.yaml', BLUEPRINT)
    err = refused(croupier(tmp_path, 'validate', bp, '-i', 'base_dir=/tmp',
                           '-i', f'port={SECRET}'),
                  "Property type validation failed in 'port'", "value '<hidden>'")
    assert 'S3cr3t' not in err


def test_credentials_in_an_inputs_file_mapping_of_the_wrong_type_are_hidden(tmp_path):
    bp = write(tmp_path, 'bp.yaml', BLUEPRINT)
    inputs = write(tmp_path, 'in.yaml', 'base_dir: /tmp\n'
                   'port: {user: alice, password: "S3cr3t-Passw0rd\\nsecond line"}\n')
    err = refused(croupier(tmp_path, 'install', bp, 'wrongtype', '-i', inputs),
                  "'port'", "'<hidden>'")
    assert 'S3cr3t' not in err and 'second line' not in err


def test_a_wrong_value_written_in_the_blueprint_is_hidden(tmp_path):
    bp = write(tmp_path, 'bp.yaml', """tosca_definitions_version: cloudify_dsl_1_5
imports:
  - http://cloudify.co/spec/cloudify/7.0.5/types.yaml
node_types:
  pinned: {derived_from: cloudify.nodes.Root, properties: {pin: {type: integer}}}
node_templates:
  lock: {type: pinned, properties: {pin: "S3cr3t-Passw0rd\\nsecond line"}}
""")
    err = refused(croupier(tmp_path, 'validate', bp),
                  "Property type validation failed in 'lock': property 'pin'",
                  f'in: {bp}', 'path: node_templates.lock.properties')
    assert 'S3cr3t' not in err and 'second line' not in err


def test_a_value_breaking_an_input_constraint_is_hidden(tmp_path):
    bp = write(tmp_path, 'bp.yaml', HEAD + """inputs:
  token: {type: string, constraints: [{pattern: '^[a-z]+$'}]}
node_templates: {}
""")
    err = refused(croupier(tmp_path, 'validate', bp, '-i', f'token={SECRET}'),
                  'Value <hidden> of input token violates constraint')
    assert 'S3cr3t' not in err


def test_every_value_quoting_message_shape_is_hidden():
    """The message shapes of dsl_parser that quote a value, as it words them."""
    from dsl_parser import exceptions
    from croupier_plugin.cli import dsl_message
    secret = 'S3cr3t\nPassw0rd'
    shapes = [
        exceptions.DSLParsingLogicException(
            1, "Property type validation failed in 'n': property 'p' type is 'integer', "
               f"yet it was assigned with the value '{secret}'"),
        exceptions.InputEvaluationError(
            f"Value '{secret}' of input 'i' does not match data type declared for "
            "'p': 'integer'."),
        exceptions.ConstraintException(
            f"Value '{secret}' of 'i' is not a valid value for data type 'node_id'."),
        exceptions.ConstraintException(
            f"Value '{secret}' of input 'i' does not match any relevant entity or "
            "violates at least one of the constraints: x."),
        exceptions.ConstraintException(f'Value {secret} of input i is invalid. Too short'),
        exceptions.DSLParsingException(
            1, f'Input value {secret}, of input i, cannot contain an intrinsic function '
               'and also have constraints.'),
        exceptions.FunctionEvaluationError('get_input', f'found an unresolved argument: '
                                                        f'{secret}'),
        exceptions.FunctionEvaluationError(
            'concat', f"argument `x` should be of type <class 'str'> but is "
                      f"<class 'list'> ({secret})"),
        exceptions.FunctionEvaluationError(
            'concat', f'argument `x` should not be a function ({secret})'),
    ]
    for exc in shapes:
        text = dsl_message(exc)
        assert 'S3cr3t' not in text and 'Passw0rd' not in text, text
        assert '<hidden>' in text, text
