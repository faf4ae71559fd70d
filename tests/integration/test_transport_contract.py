"""One contract for every transport: the same tests run against the local
transport and against SSH to the test bed's front-end, so code above the
transport (schedulers, data transfers, the monitor) can rely on one behaviour.
"""

import os
import shlex
import time
import uuid

import pytest

from croupier_plugin.core.errors import TransportError
from croupier_plugin.core.transport import SshTransport
from croupier_plugin.core.transport.base import Transport
from croupier_plugin.core.transport.local import LocalTransport

HOSTILE = 'a b\'"$(touch pwned)`id`;&&|*\n\tü'


@pytest.fixture(params=['local', 'ssh'])
def place(request, tmp_path):
    """(transport, a fresh directory it can write, its home) for each transport."""
    if request.param == 'local':
        yield LocalTransport(), str(tmp_path), os.path.expanduser('~')
        return
    bed = request.getfixturevalue('bed')
    transport = SshTransport(request.getfixturevalue('ssh_settings'))
    path = f"{bed['home']}/croupier-tests/contract-{uuid.uuid4().hex[:10]}"
    transport.makedirs(path)
    yield transport, path, bed['home']
    transport.run(f'rm -rf -- {shlex.quote(path)}')


def listing(transport: Transport, directory: str) -> list:
    """The names in ``directory``, hidden ones included."""
    out = transport.run(f'ls -A -- {shlex.quote(directory)}', check=True).stdout
    return sorted(out.split('\n')[:-1]) if out else []


def test_exit_code_stdout_and_stderr_come_apart(place):
    transport, _, _ = place
    result = transport.run('printf out; printf err >&2; exit 3')
    assert (result.exit_code, result.stdout, result.stderr) == (3, 'out', 'err')
    assert not result.ok and transport.run('true').ok


def test_check_raises_a_transport_error_naming_the_exit_code(place):
    transport, _, _ = place
    with pytest.raises(TransportError, match='exit code 4.*went wrong'):
        transport.run('echo went wrong >&2; exit 4', check=True)


def test_a_quoted_value_reaches_the_command_literally(place):
    transport, directory, _ = place
    result = transport.run(f'cd {shlex.quote(directory)} && printf %s {shlex.quote(HOSTILE)}',
                           check=True)
    assert result.stdout == HOSTILE
    assert 'pwned' not in listing(transport, directory)


def test_large_outputs_on_both_streams_do_not_block(place):
    transport, _, _ = place
    # 4 MB on each stream at once: more than an SSH channel's window, read together
    result = transport.run('head -c 4000000 /dev/zero | tr "\\0" o; '
                           'head -c 4000000 /dev/zero | tr "\\0" e >&2', timeout=60)
    assert (len(result.stdout), len(result.stderr)) == (4000000, 4000000)


def test_output_that_is_not_utf8_is_replaced_not_fatal(place):
    transport, _, _ = place
    result = transport.run("printf 'a\\377b'", check=True)
    assert result.stdout == 'a\ufffdb'


def test_a_command_reading_stdin_gets_end_of_file(place):
    transport, _, _ = place
    start = time.monotonic()
    result = transport.run('cat; echo done', timeout=20)
    assert result.stdout == 'done\n'
    assert time.monotonic() - start < 15


def test_a_command_over_its_timeout_is_a_transport_error(place):
    transport, _, _ = place
    start = time.monotonic()
    with pytest.raises(TransportError, match='timed out'):
        transport.run('sleep 30', timeout=1)
    assert time.monotonic() - start < 5


def test_write_file_replaces_atomically_with_the_mode_asked(place):
    transport, directory, _ = place
    path = f'{directory}/file.txt'
    transport.write_file(path, 'first\n')
    data = os.urandom(300000)
    transport.write_file(path, data, mode=0o640)
    assert transport.read_file(path) == data
    transport.write_file(f'{directory}/text', 'second ü\n')
    assert transport.read_file(f'{directory}/text') == 'second ü\n'.encode()
    mode = transport.run(f'stat -c %a -- {shlex.quote(path)}', check=True).stdout.strip()
    assert mode == '640'
    transport.write_file(f'{directory}/default', 'x')
    mode = transport.run(f'stat -c %a -- {shlex.quote(directory)}/default',
                         check=True).stdout.strip()
    assert mode == '600'
    # no temporary file is left beside them
    assert listing(transport, directory) == ['default', 'file.txt', 'text']


def test_file_names_are_taken_literally(place):
    transport, directory, _ = place
    name = "it's a $(file) `name`"
    transport.write_file(f'{directory}/{name}', 'x')
    assert listing(transport, directory) == [name]
    assert transport.read_file(f'{directory}/{name}') == b'x'


def test_reading_a_missing_file_is_file_not_found(place):
    transport, directory, _ = place
    with pytest.raises(FileNotFoundError):
        transport.read_file(f'{directory}/missing')
    with pytest.raises(FileNotFoundError):
        transport.get(f'{directory}/missing', os.devnull)


def test_writing_where_it_cannot_is_a_transport_error(place):
    transport, directory, _ = place
    transport.write_file(f'{directory}/plain', 'x')
    # under a file, not a folder: refused for every user, root included
    with pytest.raises(TransportError):
        transport.write_file(f'{directory}/plain/file', 'x')
    assert listing(transport, directory) == ['plain']


def test_put_and_get_copy_bytes_with_the_mode_asked(place, tmp_path):
    transport, directory, _ = place
    source = tmp_path / 'source.bin'
    source.write_bytes(bytes(range(256)) * 1000)
    transport.put(str(source), f'{directory}/copy.bin', mode=0o644)
    mode = transport.run(f'stat -c %a -- {shlex.quote(directory)}/copy.bin',
                         check=True).stdout.strip()
    assert mode == '644'
    transport.put(str(source), f'{directory}/private.bin')
    mode = transport.run(f'stat -c %a -- {shlex.quote(directory)}/private.bin',
                         check=True).stdout.strip()
    assert mode == '600'
    back = tmp_path / 'back.bin'
    transport.get(f'{directory}/copy.bin', str(back))
    assert back.read_bytes() == source.read_bytes()


def test_makedirs_makes_nested_folders_and_may_be_repeated(place):
    transport, directory, _ = place
    nested = f'{directory}/a b/c;d/e'
    transport.makedirs(nested)
    transport.makedirs(nested)
    transport.write_file(f'{nested}/f', 'x')
    assert transport.read_file(f'{nested}/f') == b'x'


def test_home_relative_paths_mean_the_users_home(place):
    transport, directory, home = place
    assert transport.home() == home
    name = f'croupier-contract-{uuid.uuid4().hex[:8]}'
    try:
        transport.write_file(f'~/{name}', 'tilde')
        assert transport.read_file(f'{home}/{name}') == b'tilde'
        assert transport.read_file(f'$HOME/{name}') == b'tilde'
    finally:
        transport.run(f'rm -f -- ~/{shlex.quote(name)}')


def test_the_login_shell_option_reads_the_profile(place):
    transport, _, _ = place
    transport.login_shell = True
    try:
        assert transport.run('shopt -q login_shell && echo login', check=True).stdout == 'login\n'
    finally:
        transport.login_shell = False
    assert transport.run('shopt -q login_shell || echo plain', check=True).stdout == 'plain\n'
