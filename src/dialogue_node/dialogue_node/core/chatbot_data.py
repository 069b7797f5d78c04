"""ChatbotData (songys/Chatbot_data, MIT): loading and the split by question.

The split is made before anything else looks at the data, and is deterministic:

1. every question is normalised (NFKC, lower case, spaces and punctuation removed);
2. questions that are identical after normalisation, or near-identical (cosine >= 0.8 of their
   TF-IDF character 2-3-grams, e.g. '3박4일 놀러가고 싶다' / '3박4일 정도 놀러가고 싶다'), are
   joined into one group (union-find), so near-duplicates never straddle the split;
3. a group goes to a part by the SHA-1 of its smallest normalised question: bucket (0-99) < 5 →
   ``heldout`` (never used for training or tuning), 5-9 → ``validation`` (carved from the
   training data; the retriever's threshold is chosen on it), else ``train``.

Pairs whose answer speaks as ChatbotData's own persona ('위로봇') are dropped: our robot has its
own authored persona answers (:data:`PERSONA_INTENTS` of the authored corpus).
"""

from __future__ import annotations

import csv
import hashlib
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

CHATBOT_CSV = Path('dialogue') / 'chatbot_data' / 'ChatbotData.csv'
HELDOUT_BUCKETS = range(0, 5)
VALIDATION_BUCKETS = range(5, 10)
NEAR_DUPLICATE_COSINE = 0.8
#: ChatbotData's own robot ('위로봇'): its self-descriptions are replaced by our persona.
FOREIGN_PERSONA = ('위로봇', '위로해드리는 로봇', '위로해 드리는 로봇')
#: Authored intents of :mod:`corpus_text` used as the robot's persona answers.
PERSONA_INTENTS = ('name', 'age', 'help')
#: ChatbotData labels.
LABELS = {0: 'daily', 1: 'sad', 2: 'love'}

_NON_WORD = re.compile(r'[\s\W_]+', re.UNICODE)


@dataclass(frozen=True)
class Pair:
    """One question-answer pair of ChatbotData (`row` = its 1-based data row)."""

    row: int
    question: str
    answer: str
    label: int


def normalize_question(text: str) -> str:
    """Return the key used to find duplicate questions (no spaces, punctuation or case)."""
    return _NON_WORD.sub('', unicodedata.normalize('NFKC', text).lower())


def default_data_dir() -> Path:
    """Return ../shared/data as seen from the repository (or the working directory)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.parent / 'shared' / 'data'
        if candidate.is_dir():
            return candidate
    return Path('../shared/data')


def load_pairs(data_dir=None) -> List[Pair]:
    """Read ChatbotData.csv (malformed labels such as '2   ' are stripped)."""
    path = Path(data_dir or default_data_dir()) / CHATBOT_CSV
    if not path.is_file():
        raise FileNotFoundError(
            f'{path} is missing: ChatbotData (MIT, songys/Chatbot_data) is expected under '
            '../shared/data/dialogue/chatbot_data/ (or pass --data DIR)'
        )
    pairs = []
    with path.open(encoding='utf-8', newline='') as handle:
        for row, record in enumerate(csv.DictReader(handle), start=1):
            question, answer = record['Q'].strip(), record['A'].strip()
            if not question or not answer:
                continue
            try:
                label = int(str(record.get('label', '0')).strip() or 0)
            except ValueError:
                label = 0
            pairs.append(Pair(row, question, answer, label))
    return pairs


def _ngram_matrix(texts: Sequence[str]):
    """L2-normalised TF-IDF of character 2-3-grams (scipy CSR)."""
    from scipy import sparse

    vocab: Dict[str, int] = {}
    rows, cols, vals = [], [], []
    for index, text in enumerate(texts):
        counts: Dict[int, int] = defaultdict(int)
        for n in (2, 3):
            for start in range(len(text) - n + 1):
                counts[vocab.setdefault(text[start : start + n], len(vocab))] += 1
        for col, count in counts.items():
            rows.append(index)
            cols.append(col)
            vals.append(float(count))
    matrix = sparse.csr_matrix(
        (vals, (rows, cols)), shape=(len(texts), max(1, len(vocab))), dtype=np.float32
    )
    df = np.bincount(matrix.indices, minlength=matrix.shape[1])
    idf = np.log((1 + len(texts)) / (1 + df)).astype(np.float32) + 1
    matrix = matrix.multiply(idf[None, :]).tocsr()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1))).ravel()
    norms[norms == 0] = 1
    return sparse.diags(1 / norms) @ matrix


def question_groups(pairs: Sequence[Pair], cosine: float = NEAR_DUPLICATE_COSINE) -> List[int]:
    """Return a group id per pair: identical or near-identical questions share one."""
    keys = [normalize_question(p.question) or p.question for p in pairs]
    distinct = sorted(set(keys))
    index = {k: i for i, k in enumerate(distinct)}
    parent = list(range(len(distinct)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    matrix = _ngram_matrix(distinct)
    transposed = matrix.T.tocsc()
    for start in range(0, len(distinct), 1000):
        block = (matrix[start : start + 1000] @ transposed).tocoo()
        for i, j, value in zip(block.row, block.col, block.data, strict=True):
            i += start
            if i < j and value >= cosine:
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return [find(index[k]) for k in keys]


def _bucket(text: str) -> int:
    return int(hashlib.sha1(text.encode('utf-8')).hexdigest(), 16) % 100


def split_pairs(pairs: Sequence[Pair]) -> Dict[str, List[Pair]]:
    """Split by question group into ``train``, ``validation`` and ``heldout`` (see module doc).

    Pairs speaking as ChatbotData's own persona are left out of every part.
    """
    groups = question_groups(pairs)
    members: Dict[int, List[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    parts: Dict[str, List[Pair]] = {'train': [], 'validation': [], 'heldout': []}
    for group_members in members.values():
        key = min(normalize_question(pairs[i].question) for i in group_members)
        bucket = _bucket(key)
        part = (
            'heldout'
            if bucket in HELDOUT_BUCKETS
            else 'validation'
            if bucket in VALIDATION_BUCKETS
            else 'train'
        )
        for i in group_members:
            if not any(f in pairs[i].answer for f in FOREIGN_PERSONA):
                parts[part].append(pairs[i])
    for part in parts.values():
        part.sort(key=lambda p: p.row)
    return parts


def persona_entries() -> List[dict]:
    """Return the robot's authored persona (name, age, what it can do) as retrieval entries.

    Each training question of the intent is an entry whose answers are the intent's authored
    answers per register (casual / polite / formal); the held-out questions are not used.
    """
    from dialogue_node.core import corpus_text
    from dialogue_node.core.register import REGISTER_FOR_AGE

    entries = []
    for intent in PERSONA_INTENTS:
        spec = corpus_text.INTENTS[intent]
        answers = {REGISTER_FOR_AGE[age]: list(spec[age]) for age in ('child', 'adult', 'senior')}
        for question in spec['train']:
            entries.append({'question': question, 'answers': answers, 'source': 'persona'})
    return entries
