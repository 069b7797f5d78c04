"""The authored corpus meets the issue's shape.

At least 30 intents, 15-30 paraphrases per intent, held-out questions worded differently from
every training question, several answers per age group.
"""

import json
import random

from dialogue_node.core.corpus import (
    build_corpus,
    heldout_cases,
    load_corpus,
    main,
    sample_example,
)
from dialogue_node.core.labels import AGE_GROUPS, EMOTIONS


def test_shape(corpus):
    assert len(corpus.intents) >= 30
    for intent in corpus.intents:
        questions = corpus.questions[intent]
        total = len(questions['train']) + len(questions['heldout'])
        assert 15 <= total <= 30, intent
        assert len(set(questions['train'] + questions['heldout'])) == total, intent
        for age in AGE_GROUPS:
            assert len(corpus.answers[intent][age]) >= 2, (intent, age)
    assert set(corpus.emotion_openers) == set(EMOTIONS) - {'neutral'}


def test_heldout_questions_never_appear_in_training(corpus):
    train = {q for i in corpus.intents for q in corpus.questions[i]['train']}
    held = [q for _, q in heldout_cases(corpus)]
    assert held and not train & set(held)
    # worded differently: no held-out question is a training question with a different lead-in
    cores = {q.split(', ')[-1].removeprefix('그런데 ') for q in train}
    assert not {q.split(', ')[-1].removeprefix('그런데 ') for q in held} & cores


def test_vocabulary_is_shared_across_intents(corpus):
    intents_with = {}
    for intent in corpus.intents:
        for word in {w for q in corpus.questions[intent]['train'] for w in q.split()}:
            intents_with.setdefault(word, set()).add(intent)
    shared = [w for w, s in intents_with.items() if len(s) >= 3]
    assert len(shared) >= 10


def test_sampling_composes_opener_and_answer(corpus):
    rng = random.Random(1)
    examples = [sample_example(corpus, rng, history_prob=0.5) for _ in range(300)]
    assert {e.emotion for e in examples} == set(EMOTIONS)
    sad = next(e for e in examples if e.emotion == 'sad')
    assert any(sad.answer.startswith(o) for o in corpus.emotion_openers['sad'][sad.age])
    assert any(e.history for e in examples) and all(len(e.history) <= 2 for e in examples)


def test_json_export_round_trip(tmp_path):
    path = tmp_path / 'corpus.json'
    assert main(['--out', str(path)]) == 0
    loaded = load_corpus(str(path))
    assert loaded.to_json() == build_corpus().to_json()
    assert json.loads(path.read_text())['version'] == 1
