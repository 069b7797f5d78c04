"""Retrieval engine: the ChatbotData split, the shipped index, the composer, the prompts CLI."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest

from dialogue_node.core import chatbot_data, composer
from dialogue_node.core.backend import check_index, default_path, load_backend
from dialogue_node.core.clock_facts import DATE, TIME, clock_question, clock_reply
from dialogue_node.core.composer import KIND_CLOCK, KIND_RETRIEVED, KIND_SAY_LESS, ReplyComposer
from dialogue_node.core.corpus_text import EMOTION_OPENERS
from dialogue_node.core.engine import KIND_MODEL, DialogueEngine
from dialogue_node.core.evaluate import main as evaluate_main
from dialogue_node.core.register import classify_register, matches_age
from dialogue_node.core.retrieval import Retriever

AGES = ('child', 'adult', 'senior')
INDEX_DIR = default_path('retrieval')
DATA = chatbot_data.default_data_dir()
needs_data = pytest.mark.skipif(
    not (DATA / chatbot_data.CHATBOT_CSV).is_file(),
    reason=f'ChatbotData not found at {DATA / chatbot_data.CHATBOT_CSV} (../shared/data)',
)


@pytest.fixture(scope='module')
def retriever():
    return Retriever.from_file(check_index(INDEX_DIR))


@pytest.fixture(scope='module')
def parts():
    return chatbot_data.split_pairs(chatbot_data.load_pairs(DATA))


def fixed_clock():
    return dt.datetime(2026, 3, 5, 15, 7)  # a Thursday


@pytest.fixture(scope='module')
def engine(retriever):
    return DialogueEngine(ReplyComposer(retriever, clock=fixed_clock), max_history_turns=2)


# -- split -------------------------------------------------------------------------------------
@needs_data
def test_split_is_by_question_deterministic_and_large_enough(parts):
    again = chatbot_data.split_pairs(chatbot_data.load_pairs(DATA))
    assert [p.row for p in again['heldout']] == [p.row for p in parts['heldout']]
    assert len(parts['heldout']) >= 500 and len(parts['validation']) >= 500
    key = chatbot_data.normalize_question
    heldout = {key(p.question) for p in parts['heldout']}
    known = {key(p.question) for p in parts['train'] + parts['validation']}
    assert not heldout & known
    assert not any('위로봇' in p.answer for part in parts.values() for p in part)


@needs_data
def test_near_identical_questions_stay_on_one_side(parts):
    pairs = parts['train'][:3000] + parts['heldout']
    groups = chatbot_data.question_groups(pairs)
    side = {}
    for pair, group in zip(pairs, groups, strict=True):
        side.setdefault(group, set()).add(pair in parts['heldout'])
    assert all(len(sides) == 1 for sides in side.values())


# -- shipped index ----------------------------------------------------------------------------
def test_shipped_index_is_small_and_describes_its_sources(retriever):
    size = (INDEX_DIR / 'index.json').stat().st_size
    assert size < 4_000_000
    meta = retriever.meta
    assert meta['sources'][0]['licence'] == 'MIT' and 0.2 < meta['threshold'] < 0.7
    assert meta['threshold_selection']['validation_questions'] >= 500
    assert len(retriever.questions) > 9000
    assert retriever.name.startswith('agechat-retrieval')


def test_the_score_fuses_char_ngrams_and_content_morphemes(retriever):
    import numpy as np

    from dialogue_node.core.morphology import content_morphemes

    weight = retriever.morpheme_weight
    assert 0 < weight < 1 and all('m' in q for q in retriever.payload['questions'])
    text = '엄마한테 혼나서 속상해'
    fused = retriever.scores(text)
    char = retriever.matrix @ retriever.vector(text)
    morph = retriever.morpheme_matrix @ retriever.morpheme_vector(text)
    assert np.allclose(fused, (1 - weight) * char + weight * morph, atol=1e-6)
    assert morph.max() > 0 and fused.max() <= 1.0 + 1e-6
    # a stem matches across its inflections; endings and particles carry no weight
    assert '혼나/VV' in content_morphemes('엄마한테 혼났어') and '혼나/VV' in content_morphemes(
        text
    )
    assert content_morphemes('졸려서') == content_morphemes('졸리다') == ['졸리/VV']


def test_an_index_that_lost_its_morphemes_is_refused(retriever):
    payload = {
        'questions': [{'q': '안녕', 'a': 0}],
        'answers': [{'label': 0, 'polite': '안녕하세요.'}],
        'meta': {'morpheme_weight': 0.5},
    }
    with pytest.raises(ValueError, match='rebuild'):
        Retriever(payload)
    payload['meta'] = {}
    assert Retriever(payload).search('안녕', 1)[0].question == '안녕'  # char n-grams only


@needs_data
def test_shipped_index_holds_no_heldout_question(retriever, parts):
    key = chatbot_data.normalize_question
    indexed = {key(q) for q in retriever.questions}
    assert not indexed & {key(p.question) for p in parts['heldout']}


def test_answers_in_the_index_are_in_their_register(retriever):
    registers = {'casual': 'child', 'polite': 'adult', 'formal': 'senior'}
    for answer in retriever.answers[::97]:
        for register, age in registers.items():
            texts = answer['choices'][register] if 'choices' in answer else [answer.get(register)]
            for text in texts:
                assert text is None or classify_register(text) == age, (register, text)


def test_missing_index_names_the_build_command(tmp_path):
    with pytest.raises(FileNotFoundError, match='dialogue_node.core.retrieval_data'):
        load_backend(tmp_path, 'retrieval')


# -- replies ----------------------------------------------------------------------------------
@pytest.mark.parametrize('age', AGES)
def test_replies_are_real_answers_in_the_register_of_the_age(engine, retriever, age):
    for text in [
        '여행 가고 싶어',
        '오늘 너무 우울해',
        '배고파',
        '시험 망쳤어',
        '여자친구가 생겼어',
    ]:
        reply = engine.reply(text, age, 'neutral')
        assert reply.kind == KIND_MODEL and classify_register(reply.reply_text) == age, reply
        assert reply.source in (KIND_RETRIEVED, KIND_SAY_LESS)
        if reply.source == KIND_RETRIEVED:
            assert reply.score >= retriever.threshold and reply.matched_question


def test_persona_answers_come_from_the_authored_persona(engine):
    assert '다솜' in engine.reply('너 이름이 뭐야?', 'child').reply_text
    assert '로봇' in engine.reply('너 몇 살이야?', 'senior').reply_text


def test_time_and_date_come_from_the_clock(engine):
    assert clock_question('지금 몇 시야?') == TIME and clock_question('오늘 며칠이야?') == DATE
    assert clock_question('무슨 요일이에요?') == DATE
    assert clock_question('몇 시에 자야 해?') is None and clock_question('배고파') is None
    reply = engine.reply('지금 몇 시야?', 'adult')
    assert reply.source == KIND_CLOCK and reply.reply_text == '지금은 오후 3시 7분이에요.'
    assert engine.reply('오늘 며칠이야?', 'child').reply_text == '오늘은 3월 5일 목요일이야.'
    senior = engine.reply('오늘 무슨 요일입니까?', 'senior').reply_text
    assert '목요일입니다' in senior and matches_age(senior, 'senior')
    for age in AGES:
        for kind in (TIME, DATE):
            for hour in (0, 9, 12, 23):
                text = clock_reply(kind, age, dt.datetime(2026, 12, 31, hour, 30))
                assert classify_register(text) == age, text


@pytest.mark.parametrize('age', AGES)
def test_unsure_says_less_in_the_register(engine, age):
    reply = engine.reply('쀍뛣 퉯퀣', age)
    assert reply.source == KIND_SAY_LESS and matches_age(reply.reply_text, age)
    assert reply.reply_text.endswith('?') or '들어' in reply.reply_text


def test_every_say_less_part_is_in_its_register():
    for age in AGES:
        for table in (composer.ACKNOWLEDGE, composer.MIDDLE, composer.FOLLOW_UP):
            for texts in table.values():
                for text in texts[age]:
                    assert not text or matches_age(text, age), (age, text)


def test_a_sad_face_gets_comfort(engine):
    reply = engine.reply('헤어졌어', 'adult', 'sad')
    openers = EMOTION_OPENERS['sad']['adult']
    assert any(reply.reply_text.startswith(o) for o in openers), reply.reply_text
    happy = engine.reply('헤어졌어', 'adult', 'happy')
    assert not any(happy.reply_text.startswith(o) for o in EMOTION_OPENERS['happy']['adult'])


def test_sad_answers_are_preferred_for_a_sad_face(retriever):
    plain = ReplyComposer(retriever, openers=False)
    hits = retriever.search('오늘 기분이 별로야', 8)
    ranked = plain._ranked(hits, 'sad')
    near = [h for h in hits if h.score >= hits[0].score - composer.MARGIN]
    if any(h.label == composer.SAD_LABEL for h in near):
        assert ranked[0].label == composer.SAD_LABEL


def test_same_seed_same_reply_and_no_repeat_within_a_conversation(retriever):
    engine = DialogueEngine(ReplyComposer(retriever), max_history_turns=2)
    first = engine.reply('배고파', 'child', seed=3).reply_text
    assert engine.reply('배고파', 'child', seed=3).reply_text == first
    one = engine.reply('배고파', 'child', conversation_id='c').reply_text
    two = engine.reply('배고파', 'child', conversation_id='c').reply_text
    assert one != two


# -- evaluation CLI -------------------------------------------------------------------------
def test_evaluate_cli_on_any_prompts_file(tmp_path, capsys):
    prompts = tmp_path / 'prompts.tsv'
    prompts.write_text(
        'prompt\tage_group\temotion\n'
        '오늘 너무 우울해\tadult\tsad\n'
        '엄마한테 혼났어\tchild\tneutral\n'
        '지금 몇 시예요?\tsenior\thappy\n',
        encoding='utf-8',
    )
    out = tmp_path / 'replies.tsv'
    assert evaluate_main(['--prompts', str(prompts), '--out', str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary['replies'] == 3 and summary['register_accuracy'] == 1.0
    for key in ('distinct_1', 'distinct_2', 'distinct_reply_ratio', 'repeated_replies'):
        assert key in summary
    # speed is the bench's (make bench); here only that the timings are reported
    assert summary['latency_ms_p95'] >= summary['first_sentence_ms_p95'] >= 0
    with Path(out).open(encoding='utf-8') as handle:
        rows = list(csv.DictReader(handle, delimiter='\t'))
    assert [r['age_group'] for r in rows] == ['adult', 'child', 'senior']
    assert rows[2]['source'] == KIND_CLOCK and all(r['register_ok'] == '1' for r in rows)
    assert all(r['reply'] and float(r['latency_ms']) >= 0 for r in rows)


def test_register_variants_of_an_answer():
    from dialogue_node.core.retrieval_data import register_variants

    forms = register_variants('제습기를 돌려보세요.')
    assert forms == {
        'casual': '제습기를 돌려 봐.',
        'polite': '제습기를 돌려보세요.',
        'formal': '제습기를 돌려 보십시오.',
    }
