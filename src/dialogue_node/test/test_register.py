"""The rule-based register classifier on labelled sentences, and the corpus against it."""

import pytest

from dialogue_node.core.corpus_text import EMOTION_OPENERS, FALLBACKS, INTENTS
from dialogue_node.core.register import (
    CASUAL,
    FORMAL,
    MIXED,
    POLITE,
    REGISTER_FOR_AGE,
    UNKNOWN,
    classify_sentence,
    classify_text,
    matches_age,
    split_sentences,
)

LABELLED = [
    ('밥 먹었어?', CASUAL),
    ('같이 놀자!', CASUAL),
    ('정말 멋지다!', CASUAL),
    ('나도 네 친구야.', CASUAL),
    ('어디 갈까?', CASUAL),
    ('괜찮아, 누구나 실수할 수 있어.', CASUAL),
    ('재미있겠지~', CASUAL),
    ('식사하셨어요?', POLITE),
    ('좋은 하루 보내세요.', POLITE),
    ('그렇죠?', POLITE),
    ('저는 로봇이에요!', POLITE),
    ('비가 올 것 같네요', POLITE),
    ('무엇을 도와드릴까요?', POLITE),
    ('반갑습니다.', FORMAL),
    ('진지는 드셨습니까?', FORMAL),
    ('푹 쉬십시오.', FORMAL),
    ('저는 다솜입니다.', FORMAL),
    ('다음에 또 뵙겠습니다!', FORMAL),
    ('안녕하십니까, 어르신!', FORMAL),
    ('도와드리겠습니다', FORMAL),
]


@pytest.mark.parametrize('sentence,expected', LABELLED)
def test_labelled_sentences(sentence, expected):
    assert classify_sentence(sentence) == expected


def test_sentences_without_register_are_skipped():
    assert classify_sentence('어르신!') is None
    assert classify_sentence('네.') is None
    assert classify_sentence('OK') is None
    assert classify_text('어르신, 반갑습니다.') == FORMAL
    assert classify_text('네. 좋아요!') == POLITE
    assert classify_text('') == UNKNOWN and classify_text('hello!') == UNKNOWN


def test_mixed_register_is_detected():
    assert classify_text('안녕하세요! 반가워.') == MIXED
    assert classify_text('감사합니다. 또 만나요.') == MIXED
    assert not matches_age('안녕! 반갑습니다.', 'child')


def test_split_sentences():
    assert split_sentences('안녕! 오늘 어때? 좋아요.') == ['안녕!', '오늘 어때?', '좋아요.']


def test_every_authored_reply_is_in_its_age_register():
    texts = [
        (age, a) for intent in INTENTS.values() for age in REGISTER_FOR_AGE for a in intent[age]
    ]
    texts += [
        (age, a) for by_age in EMOTION_OPENERS.values() for age, lst in by_age.items() for a in lst
    ]
    texts += [(age, a) for by_age in FALLBACKS.values() for age, a in by_age.items()]
    wrong = [(age, t, classify_text(t)) for age, t in texts if not matches_age(t, age)]
    assert not wrong
    assert len(texts) > 300


def test_classify_register_names_the_age_group():
    from dialogue_node.core.register import classify_register

    assert classify_register('같이 놀자!') == 'child'
    assert classify_register('어르신, 반갑습니다.') == 'senior'
    assert classify_register('식사하셨어요?') == 'adult'
    assert classify_register('안녕하세요! 반가워.') is None and classify_register('') is None
