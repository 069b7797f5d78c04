"""Which reply backend a path names, and where the shipped ones are.

- a directory with ``index.json`` (``models/retrieval``, the default): the retrieval composer
  (:class:`dialogue_node.core.composer.ReplyComposer`) — replies grounded in real answers;
- a GPT-2 checkpoint directory in KoGPT2 format (``models/embedded``): the generator
  (:class:`dialogue_node.core.model.Generator`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from dialogue_node.core.retrieval_data import BUILD_COMMAND, INDEX_FILE

ENGINES = ('retrieval', 'gpt2')


def shipped_model_dir(name: str) -> Path:
    """Return share/dialogue_node/models/<name> when installed, else the source tree's copy."""
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory('dialogue_node')) / 'models' / name
        if installed.exists():
            return installed
    except Exception:  # noqa: BLE001 - not installed (or no ament): the source tree
        pass
    return Path(__file__).resolve().parents[2] / 'models' / name


def default_path(engine: str) -> Path:
    """Return the shipped model of an engine ('retrieval' or 'gpt2')."""
    return shipped_model_dir('retrieval' if engine == 'retrieval' else 'embedded')


def engine_of(path) -> str:
    """Return 'retrieval' when `path` holds a retrieval index, else 'gpt2'."""
    return 'retrieval' if (Path(path) / INDEX_FILE).is_file() else 'gpt2'


def check_index(path) -> Path:
    """Return the index file; FileNotFoundError naming it and the build command when missing."""
    index = Path(path) / INDEX_FILE
    if not index.is_file():
        raise FileNotFoundError(
            f'retrieval index {index} is missing. Build it with `{BUILD_COMMAND}` '
            '(reads ../shared/data/dialogue/chatbot_data/ChatbotData.csv)'
        )
    return index


def load_backend(
    path=None,
    engine: Optional[str] = None,
    threads: int = 1,
    settings=None,
    dtype: str = 'float32',
):
    """Return a ReplyComposer or a Generator for `path` (default: the shipped retrieval index)."""
    engine = engine or (engine_of(path) if path else 'retrieval')
    path = Path(path) if path else default_path(engine)
    if engine == 'retrieval':
        from dialogue_node.core.composer import ReplyComposer
        from dialogue_node.core.retrieval import Retriever

        retriever = Retriever.from_file(check_index(path))
        if retriever.morpheme_weight:
            retriever.morpheme_vector('안녕')  # loads kiwipiepy now, not at the first reply
        return ReplyComposer(retriever)
    from dialogue_node.core.model import Generator, check_checkpoint

    check_checkpoint(path)
    return Generator.from_checkpoint(path, settings, dtype, threads)
