"""Retrieval of real answers: a character n-gram TF-IDF index over the training questions.

The index (``models/retrieval/index.json``, built offline by :mod:`.retrieval_data`) holds the
training questions of ChatbotData (MIT) and the authored persona questions; each points to an
answer stored in three registers (casual 반말, polite 해요체, formal 하십시오체 + 높임말) made
by the register converter when the index was built. Serving needs numpy/scipy, and kiwipiepy for
the query's morphemes when the index has them.

A question is a TF-IDF vector of its character 1-3-grams (:func:`intent_hint.char_ngrams`,
sublinear term frequency, L2-normalised). When the index also stores each question's content
morphemes (``"m"``, kiwipiepy analyses made at build time; :func:`morphology.content_morphemes`),
the query is analysed too and the score of a training question is the weighted mean of the two
cosines: ``(1 - w) * char + w * morpheme`` with ``w = meta.morpheme_weight``. Morphemes let the
content words count more than shared endings ('나도 위로 받고 싶다' is not '나도 상 받고 싶다')
and match a stem across its inflections; on the validation questions the fused score found the
reference answer at rank 1 for 47 % of the questions whose answer is indexed, char n-grams alone
for 40 %. :meth:`Retriever.search` returns the top-k distinct answers with their best question's
score.
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

    def __init__(self, payload: dict, ngram_sizes: Sequence[int] = NGRAM_SIZES, analyser=None):
        self.payload = payload
        self.meta = payload.get('meta', {})
        self.questions = [q['q'] for q in payload['questions']]
        self.question_answer = np.array([q['a'] for q in payload['questions']], dtype=np.int64)
        self.answers = payload['answers']
        self.ngram_sizes = tuple(ngram_sizes)
        self.vocab: Dict[str, int] = {}
        self.matrix, self.idf = _tfidf_matrix(
            [char_ngrams(text, self.ngram_sizes) for text in self.questions], self.vocab, True
        )
        morphemes = [q.get('m') for q in payload['questions']]
        self.morpheme_weight = float(self.meta.get('morpheme_weight', 0.0))
        if self.morpheme_weight and any(m is None for m in morphemes):
            raise ValueError(
                'the index sets morpheme_weight but not every question has its morphemes ("m"); '
                'rebuild it with the build command in its metadata'
            )
        self.morpheme_vocab: Dict[str, int] = {}
        self.morpheme_matrix = self.morpheme_idf = None
        self._analyser = analyser
        if self.morpheme_weight:
            self.morpheme_matrix, self.morpheme_idf = _tfidf_matrix(
                [dict.fromkeys(m, 1) for m in morphemes], self.morpheme_vocab, False
            )

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
        """Return the normalised character n-gram query vector of `text` (vocabulary-sized)."""
        return _query_vector(char_ngrams(text, self.ngram_sizes), self.vocab, self.idf, True)

    def morpheme_vector(self, text: str) -> np.ndarray:
        """Return the normalised content-morpheme query vector of `text` (kiwipiepy)."""
        from dialogue_node.core.morphology import content_morphemes, get_kiwi

        if self._analyser is None:
            self._analyser = get_kiwi()
        keys = content_morphemes(text, self._analyser)
        return _query_vector(dict.fromkeys(keys, 1), self.morpheme_vocab, self.morpheme_idf, False)

    def scores(self, text: str) -> np.ndarray:
        """Return the score of every indexed question for `text` (see the module docstring)."""
        scores = self.matrix @ self.vector(text)
        if self.morpheme_weight:
            weight = self.morpheme_weight
            scores = (1 - weight) * scores + weight * (
                self.morpheme_matrix @ self.morpheme_vector(text)
            )
        return scores

    def search(self, text: str, k: int = 8) -> List[Hit]:
        """Return up to `k` distinct answers, best first (score of the best question of each)."""
        scores = self.scores(text)
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


def _tfidf_matrix(counts: Sequence[dict], vocab: Dict[str, int], sublinear: bool):
    """Return (row-normalised TF-IDF csr matrix, idf) of term counts; fills `vocab`."""
    from scipy import sparse

    rows, cols, vals = [], [], []
    for row, terms in enumerate(counts):
        for term, count in terms.items():
            rows.append(row)
            cols.append(vocab.setdefault(term, len(vocab)))
            vals.append(1.0 + math.log(count) if sublinear else 1.0)
    matrix = sparse.csr_matrix(
        (vals, (rows, cols)), shape=(len(counts), len(vocab)), dtype=np.float32
    )
    df = np.bincount(matrix.indices, minlength=len(vocab))
    idf = (np.log((1 + len(counts)) / (1 + df)) + 1).astype(np.float32)
    matrix = matrix.multiply(idf[None, :]).tocsr()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1))).ravel()
    norms[norms == 0] = 1.0
    return (sparse.diags(1.0 / norms.astype(np.float32)) @ matrix).tocsr(), idf


def _query_vector(terms: dict, vocab: Dict[str, int], idf: np.ndarray, sublinear: bool):
    """Return the L2-normalised TF-IDF vector of a query's term counts (unknown terms ignored)."""
    vector = np.zeros(len(vocab), dtype=np.float32)
    for term, count in terms.items():
        index = vocab.get(term)
        if index is not None:
            vector[index] = 1.0 + math.log(count) if sublinear else 1.0
    vector *= idf
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector
