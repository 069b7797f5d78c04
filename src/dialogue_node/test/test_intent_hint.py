"""The retrieval intent hint.

Built from training questions only, put into the prompt by PromptCodec, saved with the checkpoint
and restored by Generator.from_checkpoint.
"""

import json

import pytest

from dialogue_node.core.intent_hint import IntentMatcher, char_ngrams
from dialogue_node.core.prompt import PromptCodec


@pytest.fixture(scope='module')
def matcher(corpus):
    return IntentMatcher({i: corpus.questions[i]['train'] for i in corpus.intents})


def test_char_ngrams_normalise_whitespace():
    assert char_ngrams('가  나', (1,)) == char_ngrams('가 나', (1,))
    assert char_ngrams('가나', (2,))['가나'] == 1


def test_matcher_finds_the_intent_of_training_questions(matcher, corpus):
    pairs = [(i, q) for i in corpus.intents for q in corpus.questions[i]['train']]
    accuracy = sum(matcher.predict(q) == i for i, q in pairs) / len(pairs)
    assert accuracy > 0.95, accuracy


def test_matcher_refuses_an_intent_without_questions():
    with pytest.raises(ValueError):
        IntentMatcher({'weather': []})


def test_prompt_carries_the_hint_before_the_labels(tokenizer, matcher, corpus):
    plain = PromptCodec(tokenizer, 'chars')
    hinted = PromptCodec(tokenizer, 'chars', matcher)
    question = corpus.questions[corpus.intents[0]]['train'][3]
    hint = [hinted.usr_id] + hinted.encode_question(matcher.hint_text(corpus.intents[0]))
    base = plain.prompt_ids(question, 'adult', 'neutral')
    ids = hinted.prompt_ids(question, 'adult', 'neutral')
    assert ids == base[:-4] + hint + base[-4:]
    ids, labels = hinted.training_example(question, '네, 그렇습니다.', 'adult', 'neutral')
    assert labels[: len(base) + len(hint)] == [-100] * (len(base) + len(hint))
    assert len(hinted.prompt_ids(question * 20, 'adult', 'neutral', max_tokens=40)) == 40


def test_matcher_round_trips_through_json(matcher, corpus):
    again = IntentMatcher.from_json(json.loads(json.dumps(matcher.to_json(), ensure_ascii=False)))
    for intent in corpus.intents:
        question = corpus.questions[intent]['train'][-1]
        assert again.predict(question) == matcher.predict(question)
