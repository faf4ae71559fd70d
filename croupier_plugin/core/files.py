"""Files on this machine replaced whole.

Every file Croupier writes for others to read (the embedded engine's store, the
portal's files, the exporter's registrations, files a transfer or the local
transport writes) is written to a private temporary file beside it and then
renamed over it: a reader meets the old content or the new, never a part, and
no one else can read it while it is written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from typing import BinaryIO, TypeVar

# the name every such temporary file starts with
TEMP_PREFIX = '.croupier-'

T = TypeVar('T')


def replace_file_with(path: str, write: Callable[[BinaryIO], T], mode: int = 0o600,
                      temp_dir: str | None = None) -> T:
    """Replace ``path`` whole with what ``write`` writes to the file it is given;
    return what ``write`` returns. The temporary file is created 0600 (whatever
    the umask, never through a link) in ``temp_dir`` (default: ``path``'s folder,
    which must be on the same file system) and given ``mode`` before the rename."""
    folder = temp_dir or os.path.dirname(path) or '.'
    fd, temporary = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
    try:
        with os.fdopen(fd, 'wb') as fh:
            result = write(fh)
        if mode != 0o600:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return result


def replace_file(path: str, data: bytes | str, mode: int = 0o600,
                 temp_dir: str | None = None) -> None:
    """Replace ``path`` whole with ``data`` (text is written as UTF-8); see
    ``replace_file_with``."""
    payload = data.encode('utf-8') if isinstance(data, str) else data
    replace_file_with(path, lambda fh: fh.write(payload), mode, temp_dir)
