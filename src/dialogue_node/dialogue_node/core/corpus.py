"""agechat's Korean dialogue corpus.

Expansion of the authored text into paraphrases, the train / held-out split, JSON export and
sampling of (question, answer, age, emotion) training examples.

Run ``python -m dialogue_node.core.corpus --out src/dialogue_node/data/corpus.json`` to export it.
JSON format (also accepted by the training and evaluation CLIs with ``--corpus``)::

    {"version": 1,
     "intents": {"weather": {"questions": {"train": [...], "heldout": [...]},
                             "answers": {"child": [...], "adult": [...], "senior": [...]}}, ...},
     "emotion_openers": {"sad": {"child": [...], "adult": [...], "senior": [...]}, ...},
     "fallbacks": {"clarify": {"child": "...", ...}, "not_korean": {...}}}

A reply for emotion E is ``opener(E, age) + ' ' + answer(intent, age)``; neutral has no opener.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from dialogue_node.core import corpus_text
from dialogue_node.core.labels import AGE_GROUPS, EMOTIONS

#: Probability of each emotion when sampling training examples (neutral is the most common face).
EMOTION_WEIGHTS = {
    'neutral': 0.4,
    'angry': 0.1,
    'disgust': 0.1,
    'fear': 0.1,
    'happy': 0.1,
    'sad': 0.1,
    'surprise': 0.1,
}


@dataclass
class Example:
    """One training/evaluation example."""

    intent: str
    question: str
    answer: str
    age: str
    emotion: str
    history: List[Tuple[str, str]] = field(default_factory=list)


@dataclass
class Corpus:
    """Questions per intent and split, answers per intent and age, emotion openers, fallbacks."""

    questions: Dict[str, Dict[str, List[str]]]
    answers: Dict[str, Dict[str, List[str]]]
    emotion_openers: Dict[str, Dict[str, List[str]]]
    fallbacks: Dict[str, Dict[str, str]]

    @property
    def intents(self) -> List[str]:
        """Intent names, sorted."""
        return sorted(self.questions)

    def texts(self, include_heldout: bool = False) -> List[str]:
        """Return every text of the corpus, the tokenizer's training input.

        Held-out questions are included only when asked for.
        """
        out = []
        for intent in self.intents:
            out += self.questions[intent]['train']
            if include_heldout:
                out += self.questions[intent]['heldout']
            for age in AGE_GROUPS:
                out += self.answers[intent][age]
        for by_age in self.emotion_openers.values():
            for texts in by_age.values():
                out += texts
        for by_age in self.fallbacks.values():
            out += list(by_age.values())
        return out

    def to_json(self) -> dict:
        """Return the JSON document described in the module docstring."""
        return {
            'version': 1,
            'intents': {
                i: {'questions': self.questions[i], 'answers': self.answers[i]}
                for i in self.intents
            },
            'emotion_openers': self.emotion_openers,
            'fallbacks': self.fallbacks,
        }


def expand_questions(
    cores: Sequence[str], prefixes: Sequence[str] = corpus_text.QUESTION_PREFIXES
) -> List[str]:
    """Paraphrases of each question core: the core with each lead-in."""
    return [prefix + core for core in cores for prefix in prefixes]


def build_corpus() -> Corpus:
    """Build the corpus from the authored text in :mod:`corpus_text`."""
    questions, answers = {}, {}
    for name, intent in corpus_text.INTENTS.items():
        questions[name] = {
            'train': expand_questions(intent['train']),
            'heldout': expand_questions(intent['heldout']),
        }
        answers[name] = {age: list(intent[age]) for age in AGE_GROUPS}
    return Corpus(
        questions,
        answers,
        {e: {a: list(t) for a, t in d.items()} for e, d in corpus_text.EMOTION_OPENERS.items()},
        {k: dict(v) for k, v in corpus_text.FALLBACKS.items()},
    )


def load_corpus(path: Optional[str] = None) -> Corpus:
    """Load a corpus JSON file, or build the bundled corpus when `path` is None/empty."""
    if not path:
        return build_corpus()
    document = json.loads(Path(path).read_text(encoding='utf-8'))
    if document.get('version') != 1:
        raise ValueError(
            f'{path}: unsupported corpus version {document.get("version")!r} (expected 1)'
        )
    intents = document['intents']
    for name, intent in intents.items():
        missing = [a for a in AGE_GROUPS if not intent['answers'].get(a)]
        if missing or not intent['questions'].get('train'):
            raise ValueError(
                f'{path}: intent {name!r} lacks train questions or answers for {missing}'
            )
        intent['questions'].setdefault('heldout', [])
    return Corpus(
        {n: i['questions'] for n, i in intents.items()},
        {n: i['answers'] for n, i in intents.items()},
        document.get('emotion_openers', {}),
        document.get('fallbacks', dict(corpus_text.FALLBACKS)),
    )


def compose_answer(corpus: Corpus, intent: str, age: str, emotion: str, rng: random.Random) -> str:
    """Compose a reply: an emotion opener (unless neutral), then one of the intent's answers."""
    answer = rng.choice(corpus.answers[intent][age])
    openers = corpus.emotion_openers.get(emotion, {}).get(age)
    if emotion == 'neutral' or not openers:
        return answer
    return f'{rng.choice(openers)} {answer}'


def sample_example(
    corpus: Corpus,
    rng: random.Random,
    split: str = 'train',
    history_prob: float = 0.0,
    max_history: int = 2,
) -> Example:
    """Draw one example: a random intent, paraphrase, age, emotion, answer (+ optional history)."""
    intent = rng.choice(corpus.intents)
    question = rng.choice(corpus.questions[intent][split])
    age = rng.choice(AGE_GROUPS)
    emotion = rng.choices(list(EMOTION_WEIGHTS), weights=list(EMOTION_WEIGHTS.values()))[0]
    history = []
    if history_prob > 0 and rng.random() < history_prob:
        for _ in range(rng.randint(1, max_history)):
            other = rng.choice(corpus.intents)
            history.append(
                (
                    rng.choice(corpus.questions[other][split]),
                    rng.choice(corpus.answers[other][age]),
                )
            )
    return Example(
        intent, question, compose_answer(corpus, intent, age, emotion, rng), age, emotion, history
    )


def heldout_cases(corpus: Corpus) -> List[Tuple[str, str]]:
    """Every (intent, held-out question) pair, in a fixed order."""
    return [
        (intent, q)
        for intent in corpus.intents
        for q in corpus.questions[intent].get('heldout', [])
    ]


def main(argv=None) -> int:
    """CLI: export the bundled corpus as JSON and print its size."""
    parser = argparse.ArgumentParser(
        description='Export agechat\'s Korean dialogue corpus as JSON.'
    )
    parser.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    corpus = build_corpus()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(corpus.to_json(), ensure_ascii=False, indent=1) + '\n', encoding='utf-8'
    )
    n_train = sum(len(corpus.questions[i]['train']) for i in corpus.intents)
    n_held = sum(len(corpus.questions[i]['heldout']) for i in corpus.intents)
    n_answers = sum(len(corpus.answers[i][a]) for i in corpus.intents for a in AGE_GROUPS)
    print(
        f'{len(corpus.intents)} intents, {n_train} train + {n_held} held-out questions, '
        f'{n_answers} answers, {len(EMOTIONS) - 1} emotions with openers -> {args.out}'
    )
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
