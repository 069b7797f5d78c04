"""The engine (fallbacks, strict errors, bounded history, register check) and label pairing."""

import pytest

from dialogue_node.core.engine import (
    KIND_EMPTY,
    KIND_NOT_KOREAN,
    KIND_REGISTER,
    DialogueEngine,
    InputError,
)
from dialogue_node.core.labels import LabelError
from dialogue_node.core.model import GenerationSettings, Generator
from dialogue_node.core.pairing import (
    SOURCE_DEFAULT,
    SOURCE_ESTIMATE,
    SOURCE_LATEST,
    SOURCE_UNSURE,
    Pairer,
)
from dialogue_node.core.register import matches_age


@pytest.fixture
def engine(tiny_model, tokenizer):
    return DialogueEngine(
        Generator(tiny_model, tokenizer, GenerationSettings(max_new_tokens=8)),
        max_history_turns=2,
        max_input_chars=50,
        attempts=2,
    )


@pytest.mark.parametrize('age', ['child', 'adult', 'senior'])
def test_unanswerable_text_gets_a_fallback_in_the_register(engine, age):
    empty = engine.reply('  \x00😀 ', age)
    assert empty.kind == KIND_EMPTY and matches_age(empty.reply_text, age)
    english = engine.reply('hello robot', age)
    assert english.kind == KIND_NOT_KOREAN and matches_age(english.reply_text, age)


def test_strict_mode_raises_clear_errors(engine):
    with pytest.raises(InputError, match='empty'):
        engine.reply('', strict=True)
    with pytest.raises(InputError, match='Korean'):
        engine.reply('hello', strict=True)
    with pytest.raises(LabelError, match='child, adult, senior'):
        engine.reply('안녕', 'baby')
    with pytest.raises(LabelError, match='emotion'):
        engine.reply('안녕', 'child', 'confused')


def test_random_model_output_is_replaced_by_a_register_safe_reply(engine):
    """A random-weight model cannot produce 하십시오체: the engine falls back after retries."""
    result = engine.reply('오늘 날씨 ' * 40, 'senior', 'sad', conversation_id='c1')
    assert result.input_truncated and len(result.user_text) <= 50
    assert result.attempts == 2 and result.kind == KIND_REGISTER
    assert matches_age(result.reply_text, 'senior')


def test_history_is_bounded_and_per_conversation(engine):
    for i in range(4):
        engine.reply(f'안녕 {i}', 'child', conversation_id='a')
    engine.reply('배고파', 'child', conversation_id='b')
    history = engine.history('a')
    assert [u for u, _ in history] == ['안녕 2', '안녕 3']
    assert [u for u, _ in engine.history('b')] == ['배고파']
    assert engine.history('') == [] and engine.history('unknown') == []
    engine.reset('a')
    assert engine.history('a') == []


def test_history_times_out(engine):
    engine.history_timeout_s = 10.0
    engine.reply('안녕', 'child', conversation_id='t')
    import time

    assert engine.history('t', now_s=time.monotonic() + 11) == []


def test_age_paired_by_utterance_id_in_either_order():
    pairer = Pairer(age_wait_s=0.5)
    pairer.add_age('u1', 'senior', 0.9)  # age first
    pairer.add_utterance('u1', 'p1', now_ns=0)
    pairer.add_utterance('u2', 'p2', now_ns=0)
    ready = pairer.due(now_ns=1)
    assert [(p, a.label, a.source) for p, a in ready] == [('p1', 'senior', SOURCE_ESTIMATE)]
    pairer.add_age('u2', 'child', 0.7)  # age after, within the wait
    assert [(p, a.label, a.source) for p, a in pairer.due(now_ns=2)] == [
        ('p2', 'child', SOURCE_ESTIMATE)
    ]
    assert pairer.pending_count() == 0


def test_an_unsure_age_is_paired_as_the_default_adult():
    pairer = Pairer(age_wait_s=0.5)
    pairer.add_age('u1', 'senior', 0.41, unsure=True)
    pairer.add_utterance('u1', 'p1', now_ns=0)
    ((_, age),) = pairer.due(now_ns=1)
    assert (age.label, age.source, age.confidence) == ('adult', SOURCE_UNSURE, 0.41)
    pairer.add_utterance('u2', 'p2', now_ns=0)  # no estimate of its own: the latest, still adult
    ((_, age),) = pairer.due(now_ns=int(1e9))
    assert (age.label, age.source) == ('adult', SOURCE_LATEST)


def test_age_falls_back_to_latest_then_default():
    pairer = Pairer(age_wait_s=0.5)
    pairer.add_utterance('x', 'p', now_ns=0)
    assert pairer.due(now_ns=int(0.4e9)) == []
    ((payload, age),) = pairer.due(now_ns=int(0.5e9))
    assert (age.label, age.source, age.confidence) == ('adult', SOURCE_DEFAULT, 0.0)
    pairer.add_age('other', 'senior', 0.8)
    pairer.add_utterance('y', 'q', now_ns=0)
    ((payload, age),) = pairer.due(now_ns=int(1e9))
    assert (age.label, age.source) == ('senior', SOURCE_LATEST)


def test_emotion_nearest_in_time_within_window():
    pairer = Pairer(emotion_window_s=1.0)
    assert pairer.emotion_at(0).source == SOURCE_DEFAULT
    pairer.add_emotion('happy', 0.8, int(10.0e9))
    pairer.add_emotion('sad', 0.6, int(10.6e9))
    pairer.add_emotion('angry', 0.9, int(10.5e9), face_found=False)  # no face: ignored
    assert pairer.emotion_at(int(10.4e9)).label == 'sad'
    assert pairer.emotion_at(int(10.2e9)).label == 'happy'
    far = pairer.emotion_at(int(20e9))
    assert (far.label, far.source) == ('neutral', SOURCE_DEFAULT)
