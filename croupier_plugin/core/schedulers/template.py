"""Job script parts and long remote commands, kept as shell in template files.

The files live in ``templates/`` beside this module (shipped as package data).
A placeholder is ``@{name}`` and nothing else: ``$``, ``{`` and ``%`` keep
their shell, awk and printf meanings, so a template reads as the shell it
renders to. Values are filled in as given: the caller quotes (shlex.quote)
whatever did not come from Croupier itself.

A line starting with ``#@`` is a note for the reader of the template and is
left out of what it renders (a script's own comments would reach the job).

Two kinds of file:

- a script part (``script``, ``script_lines``): the lines as they are,
  without the file's final newline; with ``script_lines`` a placeholder
  alone on its line may stand for any number of lines;
- a one-line command (``command``): a remote command sent as one line, written
  one part per line for reading; its lines, stripped of their indentation, are
  joined with one space (a line ending in ``;`` or ``then`` reads the same
  either way), or with nothing for an awk program (``*.awk``, one rule a
  line). Blank lines and lines starting with ``#`` are left out.
"""

import functools
import re
import string
from collections.abc import Sequence
from importlib import resources

# a placeholder alone on its line, which script_lines fills with lines
_LINES = re.compile(r'@\{([a-z_][a-z0-9_]*)\}')


class ShellTemplate(string.Template):
    """string.Template with ``@{name}`` as the only placeholder form."""

    delimiter = '@'
    # escaped, named and invalid match nothing: a bare '@' (as in '@@croupier'
    # marks) stays as written
    pattern = r'@(?:(?P<escaped>(?!))|(?P<named>(?!))|\{(?P<braced>[a-z_][a-z0-9_]*)\}|(?P<invalid>(?!)))'  # type: ignore[assignment]  # noqa: E501


@functools.cache
def _text(name: str) -> str:
    """The text of template file ``name``, read once, without its ``#@`` notes."""
    text = resources.files(__package__).joinpath('templates', name).read_text(encoding='utf-8')
    return ''.join(line for line in text.splitlines(keepends=True)
                   if not line.lstrip().startswith('#@'))


def script(name: str, /, **values: str) -> str:
    """Script part ``name`` with its placeholders filled (KeyError for a missing value)."""
    text = _text(name)
    return ShellTemplate(text[:-1] if text.endswith('\n') else text).substitute(values)


def script_lines(name: str, /, **values: str | Sequence[str]) -> list[str]:
    """Script part ``name`` as lines: a placeholder alone on its line given a
    sequence of lines takes them all (none: the line goes); the others are
    filled in as by ``script``."""
    text = _text(name)
    out: list[str] = []
    for line in (text[:-1] if text.endswith('\n') else text).split('\n'):
        m = _LINES.fullmatch(line)
        value = values[m[1]] if m else None
        if m and not isinstance(value, str):
            out.extend(value or ())
        else:
            words = {k: v for k, v in values.items() if isinstance(v, str)}
            out.append(ShellTemplate(line).substitute(words))
    return out


@functools.cache
def _command_text(name: str) -> str:
    """Command template ``name`` joined into its one line."""
    lines = (line.strip() for line in _text(name).splitlines())
    # awk programs: their parts need no separator (a space inside a pattern would matter)
    joint = '' if name.endswith('.awk') else ' '
    return joint.join(line for line in lines if line and not line.startswith('#'))


def command(name: str, /, **values: str) -> str:
    """One-line command ``name`` with its placeholders filled."""
    return ShellTemplate(_command_text(name)).substitute(values)
