"""Retrieval of real answers: a character n-gram TF-IDF index over the training questions.

The index (``models/retrieval/index.json``, built offline by :mod:`.retrieval_data`) holds the
training questions of ChatbotData (MIT) and the authored persona questions; each points to an
answer stored in three registers (casual 반말, polite 해요체, formal 하십시오체 + 높임말) made
by the register converter when the index was built. Serving needs numpy/scipy only (no kiwipiepy).

A question is a TF-IDF vector of its character 1-3-grams (:func:`intent_hint.char_ngrams`,
sublinear term frequency, L2-normalised); the score of a training question is the cosine.
:meth:`Retriever.search` returns the top-k distinct answers with their best question's score.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from dialogue_node.core.intent_hint import char_ngrams

NGRAM_SIZES = (1, 2, 3)


@dataclass(frozen=True)
class Hit:
    """One retrieved answer: the score of its nearest training question."""

    score: float
    answer_id: int
    question: str
    label: int
    source: str


class Retriever:
    """Top-k answers of the training questions nearest to a text (cosine of char n-grams)."""

    def __init__(self, payload: dict, ngram_sizes: Sequence[int] = NGRAM_SIZES):
        from scipy import sparse

        self.payload = payload
        self.meta = payload.get('meta', {})
        self.questions = [q['q'] for q in payload['questions']]
        self.question_answer = np.array([q['a'] for q in payload['questions']], dtype=np.int64)
        self.answers = payload['answers']
        self.ngram_sizes = tuple(ngram_sizes)
        self.vocab: Dict[str, int] = {}
        rows, cols, vals = [], [], []
        for row, text in enumerate(self.questions):
            for gram, count in char_ngrams(text, self.ngram_sizes).items():
                rows.append(row)
                cols.append(self.vocab.setdefault(gram, len(self.vocab)))
                vals.append(1.0 + math.log(count))
        matrix = sparse.csr_matrix(
            (vals, (rows, cols)), shape=(len(self.questions), len(self.vocab)), dtype=np.float32
        )
        df = np.bincount(matrix.indices, minlength=len(self.vocab))
        self.idf = (np.log((1 + len(self.questions)) / (1 + df)) + 1).astype(np.float32)
        matrix = matrix.multiply(self.idf[None, :]).tocsr()
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1))).ravel()
        norms[norms == 0] = 1.0
        self.matrix = (sparse.diags(1.0 / norms.astype(np.float32)) @ matrix).tocsr()

    @classmethod
    def from_file(cls, path) -> 'Retriever':
        """Load an index.json written by :mod:`.retrieval_data`."""
        return cls(json.loads(Path(path).read_text(encoding='utf-8')))

    @property
    def threshold(self) -> float:
        """Score under which a retrieved answer is not trusted (chosen on validation)."""
        return float(self.meta.get('threshold', 0.0))

    @property
    def name(self) -> str:
        """Name of the index (its metadata)."""
        return str(self.meta.get('name', 'retrieval'))

    def vector(self, text: str) -> np.ndarray:
        """Return the normalised query vector of `text` (dense, vocabulary-sized)."""
        vector = np.zeros(len(self.vocab), dtype=np.float32)
        for gram, count in char_ngrams(text, self.ngram_sizes).items():
            index = self.vocab.get(gram)
            if index is not None:
                vector[index] = 1.0 + math.log(count)
        vector *= self.idf
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector

    def search(self, text: str, k: int = 8) -> List[Hit]:
        """Return up to `k` distinct answers, best first (score = cosine of the best question)."""
        scores = self.matrix @ self.vector(text)
        if not scores.size or not np.any(scores > 0):
            return []
        order = np.argsort(-scores, kind='stable')[: max(k * 4, 32)]
        hits: List[Hit] = []
        seen = set()
        for row in order:
            score = float(scores[row])
            if score <= 0:
                break
            answer_id = int(self.question_answer[row])
            if answer_id in seen:
                continue
            seen.add(answer_id)
            answer = self.answers[answer_id]
            hits.append(
                Hit(
                    score,
                    answer_id,
                    self.questions[row],
                    int(answer.get('label', 0)),
                    answer.get('source', ''),
                )
            )
            if len(hits) >= k:
                break
        return hits

    def answer_text(self, answer_id: int, register: str, choice: int = 0) -> Optional[str]:
        """Return an answer in a register (None when its conversion was dropped).

        Authored persona answers have several choices per register; `choice` picks one.
        """
        answer = self.answers[answer_id]
        if 'choices' in answer:
            options = answer['choices'].get(register) or []
            return options[choice % len(options)] if options else None
        return answer.get(register)
