"""Labelled Korean sentences for the register converter and classifier, read at run time.

Nothing here is copied into the repository: StyleKQC (CC BY-SA 4.0) and SmileStyle (CC BY-NC 4.0,
evaluation only) are read from the shared data folder (``../shared/data`` next to the repository,
or ``$AGECHAT_DATA``, or a path given by the caller). Our own authored sentences are a small
fixture of the tests (``src/dialogue_node/test/fixtures/register_sentences.tsv``).

Every source is split into two halves by a rule fixed before any row was read:

- SmileStyle: rows (0-based, header excluded) with all three of ``informal`` / ``formal`` /
  ``gentle`` filled; even row index = ``dev`` (read and tuned on), odd = ``test`` (held out).
- StyleKQC (``act/dev.tsv`` and ``act/test.tsv``): blocks of 10 consecutive rows; within a block
  rows 0-4 are honorific (요/니다), rows 5-9 casual (as inferred in the data README); even block
  index = ``dev``, odd = ``test``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

from agechat_ros.labels import CASUAL, FORMAL, POLITE

DEV, TEST = 'dev', 'test'
HALVES = (DEV, TEST)
#: Label of StyleKQC's rows 0-4 of a block: 해요체 or 하십시오체, the data does not say which.
HONORIFIC = 'honorific'
#: SmileStyle's parallel columns and the register each is written in (mostly, not always).
SMILESTYLE_COLUMNS = {'informal': CASUAL, 'formal': POLITE, 'gentle': FORMAL}
STYLEKQC_FILES = ('act/dev.tsv', 'act/test.tsv')


@dataclass(frozen=True)
class ParallelRow:
    """One meaning in several registers: ``texts[register]`` (a register may be missing)."""

    source: str
    index: int
    half: str
    texts: Dict[str, str]


@dataclass(frozen=True)
class LabelledSentence:
    """One sentence with its dataset label (casual / polite / formal / honorific)."""

    source: str
    index: int
    half: str
    text: str
    label: str


def default_data_dir() -> Path:
    """Return ``$AGECHAT_DATA`` or ``../shared/data`` next to this repository."""
    env = os.environ.get('AGECHAT_DATA')
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / 'src' / 'dialogue_node').is_dir():
            return parent.parent / 'shared' / 'data'
    return Path.cwd().parent / 'shared' / 'data'


def smilestyle_path(data_dir: Path) -> Path:
    """Return the path of SmileStyle's TSV under `data_dir`."""
    return Path(data_dir) / 'style' / 'smilestyle' / 'smilestyle_dataset.tsv'


def stylekqc_paths(data_dir: Path) -> List[Path]:
    """Return the paths of the StyleKQC files used here."""
    return [Path(data_dir) / 'style' / 'stylekqc' / name for name in STYLEKQC_FILES]


def missing_reason(data_dir: Optional[Path] = None) -> Optional[str]:
    """Return why the shared style data cannot be read, or None when it is all there."""
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    wanted = [smilestyle_path(data_dir)] + stylekqc_paths(data_dir)
    absent = [str(p) for p in wanted if not p.is_file()]
    if absent:
        return 'shared style data not found: ' + ', '.join(absent)
    return None


def _half(index: int) -> str:
    return DEV if index % 2 == 0 else TEST


def smilestyle_rows(data_dir: Path, half: Optional[str] = None) -> Iterator[ParallelRow]:
    """Yield SmileStyle's parallel rows (informal/formal/gentle all present) of one half."""
    with open(smilestyle_path(data_dir), encoding='utf-8', newline='') as handle:
        reader = csv.DictReader(handle, delimiter='\t', quoting=csv.QUOTE_NONE)
        for index, row in enumerate(reader):
            texts = {
                register: (row.get(column) or '').strip()
                for column, register in SMILESTYLE_COLUMNS.items()
            }
            if not all(texts.values()):
                continue
            if half is None or _half(index) == half:
                yield ParallelRow('smilestyle', index, _half(index), texts)


def stylekqc_sentences(data_dir: Path, half: Optional[str] = None) -> Iterator[LabelledSentence]:
    """Yield StyleKQC's sentences with their block label (honorific / casual) of one half."""
    for path in stylekqc_paths(data_dir):
        with open(path, encoding='utf-8', newline='') as handle:
            reader = csv.reader(handle, delimiter='\t', quoting=csv.QUOTE_NONE)
            next(reader, None)
            for index, row in enumerate(reader):
                if len(row) < 2 or not row[1].strip():
                    continue
                block, position = divmod(index, 10)
                label = HONORIFIC if position < 5 else CASUAL
                name = f'stylekqc/{path.parent.name}/{path.stem}'
                if half is None or _half(block) == half:
                    yield LabelledSentence(name, index, _half(block), row[1].strip(), label)


def read_fixture(path: Path) -> List[ParallelRow]:
    """Read our authored parallel sentences: a TSV with columns ``casual, polite, formal``.

    Its halves follow row parity too (the fixture is ours, written to test the rules, so
    neither half is held out); an empty cell means that register is not given for that row.
    """
    rows = []
    with open(path, encoding='utf-8', newline='') as handle:
        reader = csv.DictReader(
            (line for line in handle if not line.startswith('#')),
            delimiter='\t',
            quoting=csv.QUOTE_NONE,
        )
        for index, row in enumerate(reader):
            texts = {r: (row.get(r) or '').strip() for r in (CASUAL, POLITE, FORMAL)}
            rows.append(
                ParallelRow('fixture', index, _half(index), {r: t for r, t in texts.items() if t})
            )
    return rows
