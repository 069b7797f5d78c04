"""The shipped embedded checkpoint loads and answers held-out questions in each register."""

import json
from pathlib import Path

import pytest

from dialogue_node.core.corpus import heldout_cases
from dialogue_node.core.engine import KIND_MODEL, DialogueEngine
from dialogue_node.core.model import Generator
from dialogue_node.core.register import classify_register

EMBEDDED = Path(__file__).resolve().parents[1] / 'models' / 'embedded'


@pytest.fixture(scope='module')
def engine():
    if not (EMBEDDED / 'model.safetensors').is_file():
        pytest.fail(
            f'embedded model missing in {EMBEDDED}: '
            f'run python -m dialogue_node.core.train --out {EMBEDDED}'
        )
    return DialogueEngine(Generator.from_checkpoint(EMBEDDED, threads=1))


def test_metadata_describes_the_training(engine):
    meta = json.loads((EMBEDDED / 'agechat.json').read_text())
    assert meta['question_mode'] == 'chars' and meta['layers'] == 4 and meta['width'] == 256
    assert 3e6 < meta['parameters'] < 6e6
    assert meta['loss_curve'][-1][1] < meta['loss_curve'][0][1] / 10


def test_heldout_questions_are_answered_in_the_register_of_each_age(engine, corpus):
    cases = heldout_cases(corpus)[::16]  # a spread of intents
    for index, (_, question) in enumerate(cases):
        for age in ('child', 'adult', 'senior'):
            reply = engine.reply(question, age, ('neutral', 'sad', 'happy')[index % 3])
            assert reply.kind == KIND_MODEL and not reply.hit_cap and not reply.looping
            assert classify_register(reply.reply_text) == age, (question, age, reply.reply_text)


def test_same_seed_same_reply(engine):
    first = engine.reply('오늘 날씨 어때?', 'child', 'happy', seed=7).reply_text
    assert engine.reply('오늘 날씨 어때?', 'child', 'happy', seed=7).reply_text == first
