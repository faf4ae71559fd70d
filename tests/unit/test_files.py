"""Files replaced whole (core/files.py): the one way Croupier writes a file that
others read."""

import os

import pytest

from croupier_plugin.core.files import TEMP_PREFIX, replace_file, replace_file_with


def test_a_reader_of_the_old_file_keeps_reading_it_whole(tmp_path):
    path = tmp_path / 'state.json'
    replace_file(str(path), 'old content\n')
    with open(path) as reader:
        replace_file(str(path), 'new content\n')
        assert reader.read() == 'old content\n'
    assert path.read_text() == 'new content\n'


def test_the_file_is_private_unless_a_mode_is_asked(tmp_path):
    old_umask = os.umask(0)
    try:
        replace_file(str(tmp_path / 'private'), b'x')
        replace_file(str(tmp_path / 'shared'), b'x', mode=0o644)
    finally:
        os.umask(old_umask)
    assert os.stat(tmp_path / 'private').st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / 'shared').st_mode & 0o777 == 0o644


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / 'state'
    replace_file(str(path), 'kept')

    def half_then_fail(fh):
        fh.write(b'half')
        raise OSError('disk full')
    with pytest.raises(OSError, match='disk full'):
        replace_file_with(str(path), half_then_fail)
    assert path.read_text() == 'kept'
    assert sorted(os.listdir(tmp_path)) == ['state']


def test_the_temporary_file_may_live_in_another_folder(tmp_path):
    (tmp_path / 'watched').mkdir()
    seen = []

    def write(fh):
        seen.extend(os.listdir(tmp_path / 'watched'))
        seen.extend(name for name in os.listdir(tmp_path) if name.startswith(TEMP_PREFIX))
        return fh.write(b'12345')
    assert replace_file_with(str(tmp_path / 'watched' / 'f'), write,
                             temp_dir=str(tmp_path)) == 5
    # while written, nothing showed in the watched folder; the temporary file was beside it
    assert len(seen) == 1 and seen[0].startswith(TEMP_PREFIX)
    assert os.listdir(tmp_path / 'watched') == ['f']
