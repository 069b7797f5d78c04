"""File helpers shared by the packages' cores (no rclpy).

Model file hashes, atomic writes, and where the shared real data lives.
"""

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


def shared_data_dir() -> Path:
    """Return the folder of the real (third-party) data.

    That is ``$AGECHAT_DATA``, else ``../shared/data`` beside the repository (found from
    ``$AGECHAT_REPO`` or from this file's real location). The folder may be absent (a user's
    fresh clone): callers check and skip or fail saying so.
    """
    if os.environ.get('AGECHAT_DATA'):
        return Path(os.environ['AGECHAT_DATA'])
    if os.environ.get('AGECHAT_REPO'):
        return Path(os.environ['AGECHAT_REPO']).resolve().parent / 'shared' / 'data'
    for parent in Path(__file__).resolve().parents:
        if (parent / 'src' / 'agechat_ros').is_dir():
            return parent.parent / 'shared' / 'data'
    return Path.cwd().parent / 'shared' / 'data'


def korean_speech_manifest() -> Path:
    """Return the path of the real Korean read-speech manifest (it may not exist).

    CC BY-NC-SA: tests, demo and evaluation only; under :func:`shared_data_dir`.
    """
    return shared_data_dir() / 'speech' / 'korean' / 'manifest.csv'
