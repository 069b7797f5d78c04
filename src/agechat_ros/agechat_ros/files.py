"""File helpers shared by the packages' cores (no rclpy): model file hashes, atomic writes."""

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator


def sha256_of(path) -> str:
    """Return the sha256 (hex) of a file, read in 1 MiB blocks; FileNotFoundError if missing."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_output(path) -> Iterator[BinaryIO]:
    """Open a temporary file beside `path` for writing; on success it replaces `path` (mode 644).

    Readers never see a half-written file; on an exception the temporary file is removed and
    `path` is left as it was.
    """
    target = Path(path)
    handle, tmp = tempfile.mkstemp(prefix=f'.{target.name}.', suffix='.part', dir=target.parent)
    try:
        with os.fdopen(handle, 'wb') as out:
            yield out
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
