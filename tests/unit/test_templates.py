"""The shell templates of the schedulers: placeholders, notes, one-line commands, packaging."""

import ast
import fnmatch
import os

import pytest

from croupier_plugin.core.schedulers import template

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATES = os.path.join(ROOT, 'croupier_plugin', 'core', 'schedulers', 'templates')


def test_only_at_braces_are_placeholders() -> None:
    """$VAR, ${VAR}, awk's braces, printf's % and the @@ marks stay as written."""
    text = 'echo "${HOME}" $1 {a[$1]++} %s @@croupier-now= @{value}'
    assert template.ShellTemplate(text).substitute(value="'x'") == \
        'echo "${HOME}" $1 {a[$1]++} %s @@croupier-now= \'x\''


def test_a_missing_value_is_an_error_not_an_empty_word() -> None:
    with pytest.raises(KeyError):
        template.ShellTemplate('cd @{workdir}').substitute()


@pytest.mark.parametrize('name', sorted(os.listdir(TEMPLATES)))
def test_every_template_renders_without_notes_or_placeholders_left(name: str) -> None:
    """Each file renders with every placeholder filled; its #@ notes are not in it."""
    with open(os.path.join(TEMPLATES, name), encoding='utf-8') as fh:
        text = fh.read()
    names = set(template.ShellTemplate(text).get_identifiers())
    rendered = template.script(name, **{n: 'VALUE' for n in names})
    assert '@{' not in rendered and '#@' not in rendered
    assert rendered.count('VALUE') >= len(names)


def test_a_command_template_is_one_line() -> None:
    rendered = template.command('slurm_queue_counts.awk')
    assert '\n' not in rendered and rendered.startswith('{') and rendered.endswith('}')


def test_setup_ships_every_template_as_package_data() -> None:
    """setup.py's package_data (which pip and the wagon build follow) covers each file."""
    with open(os.path.join(ROOT, 'setup.py'), encoding='utf-8') as fh:
        tree = ast.parse(fh.read())
    globs: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == 'package_data':
            globs = ast.literal_eval(node.value)['croupier_plugin']
    for name in os.listdir(TEMPLATES):
        path = f'core/schedulers/templates/{name}'
        assert any(fnmatch.fnmatch(path, g) for g in globs), path


def test_a_line_placeholder_takes_any_number_of_lines_and_keeps_empty_ones() -> None:
    """No lines: the placeholder's line goes; an empty command stays an empty line."""
    without = template.script_lines('job_post.sh', post=[])
    assert without[:2] == ['(', 'set -e'] and without[2] == ')'
    kept = template.script_lines('job_post.sh', post=['a', '', 'b'])
    assert kept[2:5] == ['a', '', 'b']
