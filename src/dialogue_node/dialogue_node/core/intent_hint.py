"""Retrieval hint for the prompt.

A character-n-gram nearest-centroid intent matcher over the TRAINING questions (numpy only).

Each training question becomes a TF-IDF vector of its character 1-3-grams (spaces normalised);
an intent is the normalised mean of its questions' vectors. A question's hint is the intent with
the highest cosine similarity; the prompt carries that intent's first training question as text
(see :class:`dialogue_node.core.prompt.PromptCodec`). The matcher is stored in the checkpoint's
agechat.json (`intent_hints`), so inference needs no corpus file.
"""

from __future__ import annotations

from collections import Counter
from typing import Dict, List, Sequence

import numpy as np

NGRAM_SIZES = (1, 2, 3)


def char_ngrams(text: str, sizes: Sequence[int] = NGRAM_SIZES) -> Counter:
    """Count the character n-grams of `text`.

    Whitespace runs become one space, and the text is padded with a space at each end.
    """
    padded = ' ' + ' '.join(text.split()) + ' '
    counts: Counter = Counter()
    for n in sizes:
        for start in range(len(padded) - n + 1):
            gram = padded[start : start + n]
            if gram.strip():
                counts[gram] += 1
    return counts


class IntentMatcher:
    """Nearest-centroid intent of a question among the training questions of each intent."""

    def __init__(self, questions: Dict[str, List[str]]):
        if not questions or any(not qs for qs in questions.values()):
            raise ValueError('IntentMatcher needs at least one training question per intent')
        self.questions = {intent: list(qs) for intent, qs in questions.items()}
        self.intents = list(self.questions)
        rows = [
            (index, char_ngrams(q))
            for index, intent in enumerate(self.intents)
            for q in self.questions[intent]
        ]
        self.vocab: Dict[str, int] = {}
        for _, grams in rows:
            for gram in grams:
                self.vocab.setdefault(gram, len(self.vocab))
        matrix = np.zeros((len(rows), len(self.vocab)), dtype=np.float32)
        for row, (_, grams) in enumerate(rows):
            for gram, count in grams.items():
                matrix[row, self.vocab[gram]] = count
        doc_freq = (matrix > 0).sum(axis=0)
        self.idf = (np.log((1 + len(rows)) / (1 + doc_freq)) + 1).astype(np.float32)
        matrix *= self.idf
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        labels = np.array([index for index, _ in rows])
        centroids = np.stack([matrix[labels == i].mean(axis=0) for i in range(len(self.intents))])
        self.centroids = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)

    def predict(self, text: str) -> str:
        """Return the intent whose training questions are nearest to `text`."""
        vector = np.zeros(len(self.vocab), dtype=np.float32)
        for gram, count in char_ngrams(text).items():
            index = self.vocab.get(gram)
            if index is not None:
                vector[index] = count
        vector *= self.idf
        return self.intents[int(np.argmax(self.centroids @ vector))]

    def hint_text(self, intent: str) -> str:
        """Return the text put into the prompt for an intent: its first training question."""
        return self.questions[intent][0]

    def to_json(self) -> Dict[str, List[str]]:
        """Return what :meth:`from_json` needs (the training questions per intent)."""
        return self.questions

    @classmethod
    def from_json(cls, data: Dict[str, List[str]]) -> 'IntentMatcher':
        """Rebuild a matcher saved with :meth:`to_json`."""
        return cls(data)
