"""The float32 TFLite file the node runs, kept beside the weights it was exported from.

Importing PyTorch costs about 490 MB of resident memory per process here, while the node
classifies with LiteRT. So the TFLite export of the safetensors weights is made once (at setup time
by ``scripts/setup.d/20-emotion-weights.sh``, or by the first node start with new weights) and
cached as

    <weights folder>/<weights stem>.float32-<first 16 hex of the weights' sha256>.tflite

with the full sha256 and the export format version written into the model's description. At start
:func:`resolve_litert_model` hashes the weights and looks for a matching file beside the weights
(as given, then the symlink-resolved folder) and in the user cache folder; only when none matches
does it import torch, export, and write the file beside the weights (or in the cache folder when
that folder is read-only). Command line (what the setup script runs)::

    python -m emotion_node.core.litert_model \
        --ensure src/emotion_node/models/fer2013_mini_xception.safetensors
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from agechat_ros.files import atomic_output, sha256_of

#: Bumped whenever :mod:`emotion_node.core.tflite_export` writes a different graph (old files go
#: stale).
EXPORT_VERSION = 1
_STAMP_PREFIX = 'emotion_node-export-v'


@dataclass
class LiteRTModel:
    """Where the float32 TFLite model for some weights is and how it was obtained."""

    weights_sha256: str
    #: the file (None when it could not be written anywhere: then `content` holds the model)
    path: Optional[Path]
    #: 'cached' (found, torch not needed) or 'exported' (made now from the weights with torch)
    source: str
    content: Optional[bytes] = None


def weights_sha256(weights_path) -> str:
    """sha256 (hex) of the weights file; FileNotFoundError when it is missing."""
    return sha256_of(weights_path)


def stamp(sha256: str) -> str:
    """Return the text in the model description that ties a TFLite file to its weights."""
    return f'{_STAMP_PREFIX}{EXPORT_VERSION} weights_sha256={sha256}'


def tflite_name(weights_path, sha256: str) -> str:
    """File name of the export of these weights: `<stem>.float32-<sha16>.tflite`."""
    return f'{Path(weights_path).stem}.float32-{sha256[:16]}.tflite'


def user_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/agechat/emotion_node` (default `~/.cache/...`)."""
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base, 'agechat', 'emotion_node')


def is_current(tflite_path, sha256: str) -> bool:
    """Return True when the file exists and its description has this weights hash and version."""
    try:
        data = Path(tflite_path).read_bytes()
    except OSError:
        return False
    return data[4:8] == b'TFL3' and stamp(sha256).encode() in data


def _candidate_dirs(weights_path: Path, cache_dir: Optional[Path]) -> List[Path]:
    """Folders searched for an existing export, in order (duplicates removed)."""
    dirs = [
        weights_path.parent,
        weights_path.resolve().parent,
        Path(cache_dir) if cache_dir else user_cache_dir(),
    ]
    unique: List[Path] = []
    for folder in dirs:
        if folder not in unique:
            unique.append(folder)
    return unique


def find_current(
    weights_path, sha256: str = None, cache_dir: Optional[Path] = None
) -> Optional[Path]:
    """Return the existing export that matches the weights, or None (never imports torch)."""
    weights_path = Path(weights_path)
    sha256 = sha256 or weights_sha256(weights_path)
    for folder in _candidate_dirs(weights_path, cache_dir):
        candidate = folder / tflite_name(weights_path, sha256)
        if is_current(candidate, sha256):
            return candidate
    return None


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as out:
        out.write(data)


def export_for(
    weights_path,
    sha256: str = None,
    cache_dir: Optional[Path] = None,
    log: Callable[[str], None] = None,
) -> LiteRTModel:
    """Export the weights to float32 TFLite (imports torch) and cache the file.

    Written beside the weights when that folder is writable, else in `cache_dir` (default
    :func:`user_cache_dir`), else the system temp folder; when nothing is writable the model is
    returned in memory. Raises FileNotFoundError / ValueError for missing or foreign weights.
    """
    from emotion_node.core.model import load_weights
    from emotion_node.core.tflite_export import export_tflite

    weights_path = Path(weights_path)
    sha256 = sha256 or weights_sha256(weights_path)
    content = export_tflite(load_weights(weights_path), stamp=stamp(sha256))
    name = tflite_name(weights_path, sha256)
    folders = [
        weights_path.parent,
        Path(cache_dir) if cache_dir else user_cache_dir(),
        Path(tempfile.gettempdir(), 'agechat_emotion_node'),
    ]
    for folder in folders:
        try:
            _write_atomic(folder / name, content)
        except OSError as error:
            if log:
                log(f'cannot cache the TFLite export in {folder} ({error.strerror or error})')
            continue
        return LiteRTModel(sha256, folder / name, 'exported')
    return LiteRTModel(sha256, None, 'exported', content=content)


def resolve_litert_model(
    weights_path, cache_dir: Optional[Path] = None, log: Callable[[str], None] = None
) -> LiteRTModel:
    """Return the float32 TFLite model for these weights.

    That is the cached export when it is current, else a fresh export.
    """
    sha256 = weights_sha256(weights_path)
    found = find_current(weights_path, sha256, cache_dir)
    if found is not None:
        return LiteRTModel(sha256, found, 'cached')
    return export_for(weights_path, sha256, cache_dir, log)


def remove_stale(weights_path, sha256: str) -> List[Path]:
    """Delete exports of other weights (same stem) beside the weights; return what was removed."""
    weights_path = Path(weights_path)
    keep = tflite_name(weights_path, sha256)
    removed = []
    for old in weights_path.parent.glob(f'{weights_path.stem}.float32-*.tflite'):
        if old.name != keep:
            old.unlink()
            removed.append(old)
    return removed


def main(argv=None) -> int:
    """Export or check the cached TFLite model from the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        description='Export emotion weights to the cached float32 TFLite model.'
    )
    parser.add_argument(
        '--ensure',
        type=Path,
        required=True,
        metavar='WEIGHTS',
        help='safetensors weights; exported beside them unless a current export exists',
    )
    args = parser.parse_args(argv)
    try:
        sha256 = weights_sha256(args.ensure)
        for old in remove_stale(args.ensure, sha256):
            print(f'litert_model: removed stale {old}')
        current = args.ensure.parent / tflite_name(args.ensure, sha256)
        if is_current(current, sha256):
            return 0
        model = export_for(args.ensure, sha256, cache_dir=args.ensure.parent, log=print)
    except (OSError, ValueError) as error:
        print(f'litert_model: {error}', file=sys.stderr)
        return 1
    if model.path is None or model.path.parent != args.ensure.parent:
        print(f'litert_model: could not write beside {args.ensure}', file=sys.stderr)
        return 1
    print(f'litert_model: wrote {model.path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
