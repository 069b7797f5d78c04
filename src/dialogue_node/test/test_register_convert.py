"""The register converter (반말 ↔ 해요체 ↔ 하십시오체) and the kiwipiepy-assisted classifier.

Unit cases, our authored parallel fixture (all six directions, exact references), and — when
``../shared/data`` is there — the held-out (odd) half of SmileStyle and StyleKQC, with floors set
from the dev (even) half. The shared files are only read, never copied (SmileStyle is CC BY-NC:
evaluation only).
"""

import pytest

from dialogue_node.core.morphology import get_kiwi
from dialogue_node.core.register import (
    CASUAL,
    FORMAL,
    POLITE,
    classify_sentence,
    clause_registers,
)
from dialogue_node.core.register_convert import RegisterConverter, convert
from dialogue_node.core.register_data import (
    TEST,
    default_data_dir,
    missing_reason,
    read_fixture,
    smilestyle_rows,
)
from dialogue_node.core.register_eval import DIRECTIONS, FIXTURE, direction_name, evaluate

MISSING = missing_reason(default_data_dir())


@pytest.fixture(scope='module')
def kiwi():
    return get_kiwi()


# --- unit cases ------------------------------------------------------------------------------
CASES = [
    # the example, and imperatives becoming the target's polite imperative
    ('제습기를 돌려보세요.', CASUAL, '제습기를 돌려 봐.'),
    ('제습기를 돌려보세요.', FORMAL, '제습기를 돌려 보십시오.'),
    ('제습기를 돌려 봐.', POLITE, '제습기를 돌려 보세요.'),
    ('하지 마.', FORMAL, '하지 마십시오.'),
    ('푹 쉬십시오.', CASUAL, '푹 쉬어.'),
    ('조금만 기다려 줘.', POLITE, '조금만 기다려 주세요.'),
    ('배고프면 간식 먹어.', FORMAL, '배고프면 간식 드십시오.'),
    # statements, with the copula and 거예요 → 겁니다
    ('잘 먹고 잘 자는 게 중요해요.', CASUAL, '잘 먹고 잘 자는 게 중요해.'),
    ('많이 힘들었겠어요.', FORMAL, '많이 힘들었겠습니다.'),
    ('좋은 사람 만날 거예요.', FORMAL, '좋은 사람 만날 겁니다.'),
    ('저는 로봇이에요!', CASUAL, '나는 로봇이야!'),
    ('나는 대화하는 로봇이야.', POLITE, '저는 대화하는 로봇이에요.'),
    ('지금은 오후 세 시야.', POLITE, '지금은 오후 세 시예요.'),
    # questions stay questions; -시- where the listener is the subject
    ('같이 산책할까요?', FORMAL, '같이 산책하시겠습니까?'),
    ('같이 산책하시겠습니까?', CASUAL, '같이 산책할래?'),
    ('밥 먹었어?', FORMAL, '진지 드셨습니까?'),
    ('어디 있어?', POLITE, '어디 계세요?'),
    ('시간 있어?', POLITE, '시간 있으세요?'),
    ('뭐 하고 있어?', FORMAL, '무엇을 하고 계십니까?'),
    ('이거 맛있어?', POLITE, '이거 맛있어요?'),
    ('너는 뭐 좋아해?', POLITE, '뭐 좋아하세요?'),
    ('네 이름이 뭐야?', FORMAL, '성함이 무엇입니까?'),
    ('나이가 어떻게 되세요?', FORMAL, '연세가 어떻게 되십니까?'),
    ('어디 편찮으십니까?', CASUAL, '어디 아파?'),
    ('거기 정말 멋진 곳이지?', FORMAL, '거기 정말 멋진 곳이지 않습니까?'),
    # suggestions stay suggestions
    ('같이 놀자!', POLITE, '같이 놀아요!'),
    ('같이 놀자!', FORMAL, '같이 노시겠습니까?'),
    ('같이 갑시다.', CASUAL, '같이 가자.'),
    # the speaker: 저/제 ↔ 나/내, 드리다 ↔ 주다
    ('내가 도와줄게.', POLITE, '제가 도와 드릴게요.'),
    ('내가 도와줄게.', FORMAL, '제가 도와 드리겠습니다.'),
    ('무엇을 도와드릴까요?', CASUAL, '뭐를 도와 줄까?'),
    ('제 이름은 다솜이에요.', CASUAL, '내 이름은 다솜이야.'),
    # honoured third persons keep -시- for a child; simple words for children
    ('할머니께서 오셨어요.', CASUAL, '할머니께서 오셨어.'),
    ('식사하셨어요?', CASUAL, '밥 먹었어?'),
    ('이 약을 복용하세요.', CASUAL, '이 약을 먹어.'),
    # greetings and answers; 요 after other words
    ('안녕! 나는 다솜이야.', FORMAL, '안녕하십니까! 저는 다솜입니다.'),
    ('잘 자.', POLITE, '안녕히 주무세요.'),
    ('고마워요.', FORMAL, '감사합니다.'),
    ('응, 알겠어.', FORMAL, '네, 알겠습니다.'),
    ('저도요.', CASUAL, '나도.'),
    ('저도요.', FORMAL, '저도 그렇습니다.'),
    # other endings
    ('내일 비가 온대.', FORMAL, '내일 비가 온답니다.'),
    ('조심해야지.', FORMAL, '조심해야 합니다.'),
    ('인생이 꽤 기니까요.', FORMAL, '인생이 꽤 길기 때문입니다.'),
    ('결정했나봐요.', FORMAL, '결정했나 봅니다.'),
    ('2점 슛을 놓쳐서는 안 돼요.', FORMAL, '2점 슛을 놓쳐서는 안 됩니다.'),
]


@pytest.mark.parametrize('source,target,expected', CASES)
def test_converts_labelled_cases(source, target, expected, kiwi):
    result = convert(source, target)
    assert result.ok, result.reasons
    assert result.text == expected
    judged = classify_sentence(result.text, kiwi)
    assert judged == target or (judged is None and target == CASUAL)  # 나도.: no ending


def test_questions_stay_questions_and_commands_stay_commands():
    for source in ('오늘 기분이 어때?', '어디 가?', '그 책 재미있었어?'):
        for target in (POLITE, FORMAL):
            assert convert(source, target).text.endswith('?')
    assert convert('푹 쉬어.', FORMAL).text.endswith('십시오.')
    assert convert('푹 쉬어.', POLITE).text.endswith('세요.')


def test_multi_sentence_text_keeps_punctuation_and_spacing():
    text = '안녕하세요!  저는 다솜이에요.\n오늘 기분이 어떠세요?'
    result = convert(text, CASUAL)
    assert result.ok and len(result.sentences) == 3
    assert result.text == '안녕!  나는 다솜이야.\n오늘 기분이 어때?'


def test_sentences_already_in_the_target_register_are_unchanged():
    for text, target in (
        ('식사하셨어요?', POLITE),
        ('반갑습니다.', FORMAL),
        ('같이 놀자!', CASUAL),
    ):
        result = convert(text, target)
        assert result.ok and result.text == text and not result.sentences[0].changed


def test_unconvertible_sentences_are_flagged_and_returned_unchanged():
    for text, target in (
        ('하필 같은 이름이라니.', FORMAL),  # no 하십시오체 form of -라니
        ('웃긴 복장을 만드는게 얼마나 재밌는데요!', FORMAL),  # 는데요 read as 데 + 요
        ('너도 딸이랑 같이 호박을 팔 계획이야?', POLITE),  # 너도: no 해요체 word for it
    ):
        result = convert(text, target)
        assert not result.ok and result.reasons
        assert result.text == text
    mixed = convert('응, 좋아. 하필 같은 이름이라니.', FORMAL)
    assert not mixed.ok and mixed.text.startswith('네, 좋습니다.')


def test_text_without_hangul_or_register_passes_through():
    assert convert('OK!', FORMAL).text == 'OK!' and convert('OK!', FORMAL).ok
    assert convert('', POLITE).text == '' and convert('', POLITE).ok
    assert convert('커피 한 잔.', CASUAL).text == '커피 한 잔.'


def test_unknown_target_is_refused():
    with pytest.raises(ValueError):
        convert('안녕', 'child')


# --- the classifier with kiwipiepy ------------------------------------------------------------
@pytest.mark.parametrize(
    'sentence,expected',
    [
        ('에어컨이 더 저렴한 곳은 어디인가요 삼성과 엘지 중에', POLITE),  # afterthought
        ('주문하지 마세요 최소 결제 금액이 이만원보다 많으면', POLITE),
        ('좋아요 ㅎㅎ', POLITE),
        ('저와 같이 물놀이 갑시다', FORMAL),  # ㅂ시다
        ('오늘 여덟시 일정에 송별회 넣어주십쇼', FORMAL),
        ('밥 먹었니?', CASUAL),
        ('좋은 아침이야, 데이브.', CASUAL),
        ('좋은 아침!', None),  # a noun phrase carries no register
        ('저도요.', POLITE),
    ],
)
def test_classifier_finds_the_ending_by_morphology(sentence, expected, kiwi):
    assert classify_sentence(sentence, kiwi) == expected


def test_surface_classifier_knows_bsida_and_sipsyo():
    assert classify_sentence('같이 갑시다.') == FORMAL
    assert classify_sentence('넣어주십쇼') == FORMAL
    assert classify_sentence('좋아요 ㅎㅎ') == POLITE


def test_clause_registers_sees_every_clause(kiwi):
    final, clauses = clause_registers('그랬구나, 많이 속상했겠어요.', kiwi)
    assert final == POLITE and clauses == [CASUAL, POLITE]


# --- our authored fixture: all six directions with exact references ---------------------------
#: Measured on the fixture (both parity halves; the rules were written with it in view, so it is
#: not held out): kept 0.97-1.00, exact 0.58-0.88, similarity 0.88-0.98 per direction.
FIXTURE_FLOORS = {'kept': 0.95, 'exact': 0.5, 'similarity': 0.85}


@pytest.fixture(scope='module')
def fixture_report(kiwi):
    return evaluate(sources=('fixture',), kiwi=kiwi)


def test_fixture_has_enough_authored_sentences():
    rows = read_fixture(FIXTURE)
    assert len(rows) >= 40
    assert all(len(row.texts) == 3 for row in rows)
    assert sum(text.endswith('?') for row in rows for text in row.texts.values()) >= 30


@pytest.mark.parametrize('half', ['dev', 'test'])
@pytest.mark.parametrize('direction', [direction_name(a, b) for a, b in DIRECTIONS])
def test_fixture_directions_meet_their_floors(fixture_report, half, direction):
    row = fixture_report['directions'][f'fixture/{half}'][direction]
    assert row['n'] >= 30
    assert row['kept'] >= FIXTURE_FLOORS['kept'], row
    assert row['register_accuracy_unflagged'] == 1.0, row
    assert row['exact'] >= FIXTURE_FLOORS['exact'], row
    assert row['similarity'] >= FIXTURE_FLOORS['similarity'], row
    assert row['similarity'] > row['baseline_similarity'], row


# --- SmileStyle and StyleKQC, the held-out (odd) half ------------------------------------------
#: Floors = the dev (even) half's figures minus 0.03, fixed before the test half was evaluated.
#: dev kept: smilestyle 0.98-1.00, stylekqc 0.96-1.00; dev similarity (smilestyle, kept outputs):
#: casual->formal 0.90, casual->polite 0.92, formal->casual 0.90, formal->polite 0.86,
#: polite->casual 0.97, polite->formal 0.91.
SHARED_FLOORS = {
    'smilestyle': {
        'casual->formal': (0.96, 0.87),
        'casual->polite': (0.95, 0.89),
        'formal->casual': (0.97, 0.87),
        'formal->polite': (0.96, 0.83),
        'polite->casual': (0.96, 0.94),
        'polite->formal': (0.96, 0.88),
    },
    'stylekqc': {
        'casual->formal': (0.95, None),
        'casual->polite': (0.93, None),
        'formal->casual': (0.95, None),
        'formal->polite': (0.97, None),
        'polite->casual': (0.94, None),
        'polite->formal': (0.96, None),
    },
}


@pytest.fixture(scope='module')
def shared_report(kiwi):
    if MISSING:
        pytest.skip(MISSING)
    return evaluate(halves=(TEST,), sources=('smilestyle', 'stylekqc'), samples=0, kiwi=kiwi)


@pytest.mark.parametrize('source', ['smilestyle', 'stylekqc'])
@pytest.mark.parametrize('direction', [direction_name(a, b) for a, b in DIRECTIONS])
def test_shared_test_half_meets_dev_floors(shared_report, source, direction):
    row = shared_report['directions'][f'{source}/test'][direction]
    kept_floor, similarity_floor = SHARED_FLOORS[source][direction]
    assert row['n'] >= 300, row
    assert row['kept'] >= kept_floor, row
    assert row['register_accuracy_unflagged'] >= 0.95, row
    if similarity_floor is not None:
        assert row['similarity'] >= similarity_floor, row
        assert row['similarity'] > row['baseline_similarity'] + 0.03, row


def test_classifier_agrees_with_the_shared_labels(shared_report):
    counts = shared_report['classifier']

    def agreement(key, agree='agree'):
        total = sum(counts[key].values())
        return counts[key].get(agree, 0) / total

    # dev half: 0.97 (SmileStyle informal), 0.96 (StyleKQC casual), 0.97 (StyleKQC honorific)
    assert agreement('smilestyle/casual', CASUAL) >= 0.94
    assert agreement('stylekqc/casual') >= 0.93
    assert agreement('stylekqc/honorific') >= 0.94


def test_no_conversion_raised_an_internal_error(kiwi):
    if MISSING:
        pytest.skip(MISSING)
    converter = RegisterConverter(kiwi)
    for row in list(smilestyle_rows(default_data_dir(), TEST))[:300]:
        for text in row.texts.values():
            for target in (CASUAL, POLITE, FORMAL):
                for sentence in converter.convert(text, target).sentences:
                    assert not sentence.reason.startswith('error:'), sentence


def test_fixture_is_our_own_text():
    if MISSING:
        pytest.skip(MISSING)
    shared = {text for row in smilestyle_rows(default_data_dir()) for text in row.texts.values()}
    ours = {text for row in read_fixture(FIXTURE) for text in row.texts.values()}
    # set phrases ('감사합니다.', '어디 아파?') occur everywhere; longer sentences must be ours
    assert not {text for text in ours & shared if len(text) > 8}
