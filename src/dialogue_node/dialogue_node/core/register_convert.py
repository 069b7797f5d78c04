"""Conversion of Korean text between the three registers: 반말, 해요체, 하십시오체 + 높임말.

``convert(text, target)`` analyses each sentence with kiwipiepy (:mod:`.morphology`), rewrites the
endings that end its clauses (EF, or a connective ending that ends the sentence) into the target
register, and what must agree with them, then re-joins the changed words with ``Kiwi.join``
(words it did not change keep their original spelling and spacing):

- the final ending by its kind (statement, question, imperative, suggestion, promise, 네/구나,
  지/죠, 잖아, 는데, 거든, hearsay 대, 어야지 …): 먹어 / 먹어요 / 먹습니다, 가자 / 가요 /
  가시겠습니까?, 돌려 봐 / 돌려 보세요 / 돌려 보십시오, 할게 / 할게요 / 하겠습니다;
- the subject honorific -시- where the listener is the subject (imperatives, suggestions,
  questions without another subject, an explicit 너/당신), with the honorific verbs 드시다,
  주무시다, 계시다, 말씀하다 (and 편찮으시다 for the formal target); removed again for 반말
  unless the subject is an honoured third person (…께서);
- 저/제/저희 ↔ 나/내/우리 for the speaker, 드리다 ↔ 주다 when the speaker gives to the listener,
  너/네/당신 dropped (or 어르신 for the formal target) and 어르신/고객님 → 너 for 반말;
- for the formal (senior) target, nouns the listener owns: 나이 → 연세, 이름 → 성함, 집 → 댁,
  생일 → 생신, 밥 → 진지, 말 → 말씀; for 반말 (children) they are undone and a few formal words
  become simple ones (:data:`SIMPLE_WORDS_FOR_CHILDREN`);
- 요 after other words (저도요, 그게요) removed for 반말; greetings and answers (안녕 /
  안녕하세요 / 안녕하십니까, 응 / 네, 고마워 / 감사합니다 …) from a small table.

A sentence it cannot convert confidently (an ending it does not know, a form with no equivalent in
the target, a 너 with a particle it cannot place, or a result the register classifier does not
judge to be in the target register) is returned unchanged with ``ok=False`` and a reason, so that
a caller (the training-data builder) can drop it. Sentences already in the target register are
left as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from agechat_ros.labels import CASUAL, FORMAL, POLITE, REGISTERS
from dialogue_node.core.morphology import get_kiwi
from dialogue_node.core.register import clause_registers, ending_positions

Morph = Tuple[str, str]

# --- kinds of final endings ----------------------------------------------------------------
PLAIN = 'plain'  # 어 / 어요 / 습니다, 습니까 (and the copula 야 / 예요 / 입니다)
PLAIN_DA = 'plain-da'  # 해라체 -다 (좋다!, 간다)
QUESTION = 'question'  # 니, 냐, 나요, ㄴ가요 …
IMPERATIVE = 'imperative'  # 어라, 렴, 십시오
PROPOSE = 'propose'  # 자, ㅂ시다
CONFIRM = 'confirm'  # 지 / 죠
EXCLAIM = 'exclaim'  # 네 / 네요
GUN = 'gun'  # 구나 / 군요
REASON = 'reason'  # 거든 / 거든요
JANHA = 'janha'  # 잖아 / 잖아요
CONTRAST = 'contrast'  # 는데 / 는데요
PROMISE = 'promise'  # ㄹ게 / ㄹ게요
INTEND = 'intend'  # ㄹ래 / ㄹ래요
SUGGEST = 'suggest'  # ㄹ까 / ㄹ까요
HEARSAY = 'hearsay'  # ㄴ대 / ㄴ대요
MUST = 'must'  # 어야지 / 어야죠
RETRO = 'retro'  # 더라 / 더라고요
WONDER = 'wonder'  # ㄴ지 / ㄴ지요
LINK = 'link'  # a connective ending that ends the sentence: 어서 / 어서요 …
NOMINAL = 'nominal'  # chat-style ㅁ / 음 (있음)
YO_NOUN = 'yo-noun'  # 요 after a noun or particle: 커피요, 저도요

STATEMENT, ASK, COMMAND, LETS = 'statement', 'question', 'imperative', 'suggestion'

#: Kiwi EF forms (allomorphs folded, see :func:`_fold`) → (register, kind).
ENDINGS: Dict[str, Tuple[str, str]] = {}
# fmt: off
for _forms, _register, _kind in (
    (('어', '야', '아', '애'), CASUAL, PLAIN),
    (('다', 'ᆫ다', '는다', '단다', 'ᆫ단다', '는단다', '란다'), CASUAL, PLAIN_DA),
    (('니', '냐', '나', 'ᆫ가', '는가', '던가', '니야', '려나', 'ᆯ까나'), CASUAL, QUESTION),
    (('어라', '아라', '거라', '렴', '려무나', '라', '게나', '게'), CASUAL, IMPERATIVE),
    (('자', '자꾸나'), CASUAL, PROPOSE),
    (('지',), CASUAL, CONFIRM),
    (('네',), CASUAL, EXCLAIM),
    (('구나', '군', '는군', '는구나', '로구나', '더구나', '더군'), CASUAL, GUN),
    (('거든',), CASUAL, REASON),
    (('잖아',), CASUAL, JANHA),
    (('는데', 'ᆫ데', '데', '던데'), CASUAL, CONTRAST),
    (('ᆯ게',), CASUAL, PROMISE),
    (('ᆯ래',), CASUAL, INTEND),
    (('ᆯ까',), CASUAL, SUGGEST),
    (('ᆫ대', '는대', '대', '래', '냬'), CASUAL, HEARSAY),
    (('어야지', '아야지'), CASUAL, MUST),
    (('더라', '더라고'), CASUAL, RETRO),
    (('ᆫ지', '는지', 'ᆯ런지', 'ᆯ는지'), CASUAL, WONDER),
    (('ᆷ', '음'), CASUAL, NOMINAL),
    (('고', '구', '라고', '다고', 'ᆫ다고', '는다고', '냐고', '자고', '다구', '자구'), CASUAL, LINK),
    (('라니', '다니', 'ᆫ다니', '는다니'), CASUAL, LINK),
    (('어서', '아서', '니까', '니깐', '면서', '려고', '지만', '는걸', 'ᆫ걸', 'ᆯ걸'), CASUAL, LINK),
    (('어요', '아요', '에요', '예요', '이에요', '이예요', '세요'), POLITE, PLAIN),
    (('나요', 'ᆫ가요', '는가요', '던가요'), POLITE, QUESTION),
    (('죠', '지요'), POLITE, CONFIRM),
    (('네요',), POLITE, EXCLAIM),
    (('군요', '는군요', '로군요', '더군요'), POLITE, GUN),
    (('거든요',), POLITE, REASON),
    (('잖아요',), POLITE, JANHA),
    (('는데요', 'ᆫ데요', '데요', '던데요'), POLITE, CONTRAST),
    (('ᆯ게요',), POLITE, PROMISE),
    (('ᆯ래요',), POLITE, INTEND),
    (('ᆯ까요',), POLITE, SUGGEST),
    (('ᆫ대요', '는대요', '대요', '래요'), POLITE, HEARSAY),
    (('어야죠', '어야지요', '아야죠', '아야지요'), POLITE, MUST),
    (('더라고요', '더라구요'), POLITE, RETRO),
    (('ᆫ지요', '는지요', 'ᆯ런지요'), POLITE, WONDER),
    (('고요', '구요', '라고요', '다고요', 'ᆫ다고요', '는다고요', '니까요', '니깐요'), POLITE, LINK),
    (('어서요', '는걸요', 'ᆫ걸요', 'ᆯ걸요', '면서요', '려고요', '지만요'), POLITE, LINK),
    (('습니다', 'ᆸ니다', '습니까', 'ᆸ니까'), FORMAL, PLAIN),
    (('ᆸ시오', '십시오', 'ᆸ쇼', 'ᆸ시요', '시오'), FORMAL, IMPERATIVE),
    (('ᆸ시다', '십시다', '읍시다'), FORMAL, PROPOSE),
    (('ᆸ니다만',), FORMAL, CONTRAST),
    (('ᆫ답니다', '답니다', '랍니다', '는답니다'), FORMAL, HEARSAY),
    (('렵니까', '시렵니까'), FORMAL, INTEND),
):
    for _form in _forms:
        ENDINGS[_form] = (_register, _kind)
# fmt: on

# fmt: off
_FORMAL_QUESTION = ('습니까', 'ᆸ니까')
_PRED_TAGS = ('VV', 'VA', 'VX', 'VCP', 'VCN', 'XSV', 'XSA')
_NOUN_TAGS = ('NNG', 'NNP', 'NNB', 'NP', 'NR', 'SL', 'SN', 'XSN')
_SYMBOL_TAGS = ('SF', 'SP', 'SS', 'SSO', 'SSC', 'SE', 'SO', 'SW', 'SB', 'W_EMOJI')
_WH = {'뭐', '무엇', '어디', '언제', '누구', '누가', '왜', '어떻게', '몇', '무슨', '얼마', '어느'}
_WH |= {'어떤', '얼마나', '무얼', '뭘', '어때', '어땠'}

SPEAKER, LISTENER, HONOURED, OTHER = 'speaker', 'listener', 'honoured', 'other'
_SPEAKER_WORDS = {'나', '저', '우리', '저희'}
_LISTENER_WORDS = {'너', '니', '당신', '너희', '자네', '그쪽', '어르신', '고객님', '손님'}
_LISTENER_WORDS |= {'여러분'}
_HONOURED_WORDS = {
    '할머니', '할아버지', '선생님', '부모님', '어머니', '아버지', '어머님', '아버님', '사장님',
    '교수님', '의사 선생님', '분', '어른', '할머님', '할아버님',
}
_TIME_WORDS = {'오늘', '내일', '어제', '지금', '요즘', '이번', '주말', '아침', '저녁', '점심'}
_TIME_WORDS |= {'밤'}
_TIME_WORDS |= {'모레', '올해', '작년', '내년', '이따', '나중', '다음', '평소', '그때', '이제'}
_DEMONSTRATIVES = {'이거', '그거', '저거', '이것', '그것', '저것', '여기', '거기', '저기'}
_IMPERATIVE_ADVERBS = {'푹', '꼭', '빨리', '얼른', '어서', '천천히', '조심히', '제발', '부디'}

#: Honorific verb stems (they carry -시- themselves) and the plain verb each replaces.
HONORIFIC_VERBS = {'드시': '먹', '주무시': '자', '계시': '있', '잡수시': '먹'}
#: For the formal (senior) target: nouns the listener owns → their honorific word.
SENIOR_NOUNS = {'나이': '연세', '이름': '성함', '집': '댁', '생일': '생신', '말': '말씀'}
_PLAIN_NOUNS = {'연세': '나이', '성함': '이름', '댁': '집', '생신': '생일', '진지': '밥'}
_PLAIN_NOUNS['말씀'] = '말'
# fmt: on
#: Simple words for children (반말 target): (morphemes) → (morphemes). Documented in the README.
SIMPLE_WORDS_FOR_CHILDREN: Dict[Tuple[Morph, ...], Tuple[Morph, ...]] = {
    (('식사', 'NNG'), ('하', 'XSV')): (('밥', 'NNG'), ('먹', 'VV')),
    (('섭취', 'NNG'), ('하', 'XSV')): (('먹', 'VV'),),
    (('복용', 'NNG'), ('하', 'XSV')): (('먹', 'VV'),),
    (('취침', 'NNG'), ('하', 'XSV')): (('자', 'VV'),),
    (('시청', 'NNG'), ('하', 'XSV')): (('보', 'VV'),),
    (('구입', 'NNG'), ('하', 'XSV')): (('사', 'VV'),),
    (('구매', 'NNG'), ('하', 'XSV')): (('사', 'VV'),),
    (('사용', 'NNG'), ('하', 'XSV')): (('쓰', 'VV'),),
    (('이용', 'NNG'), ('하', 'XSV')): (('쓰', 'VV'),),
    (('휴식', 'NNG'), ('하', 'XSV')): (('쉬', 'VV'),),
    (('귀가', 'NNG'), ('하', 'XSV')): (('집', 'NNG'), ('에', 'JKB'), ('가', 'VV')),
    (('수면', 'NNG'),): (('잠', 'NNG'),),
    (('신체', 'NNG'),): (('몸', 'NNG'),),
    (('치아', 'NNG'),): (('이', 'NNG'),),
    (('감사', 'NNG'), ('하', 'XSV')): (('고맙', 'VA-I'),),
    (('감사', 'NNG'), ('하', 'XSA')): (('고맙', 'VA-I'),),
    (('죄송', 'NNG'), ('하', 'XSA')): (('미안', 'NNG'), ('하', 'XSA')),
}

#: Whole-sentence greetings and answers: one row per meaning, (반말, 해요체, 하십시오체) and the
#: other spellings recognised.
GREETINGS: Tuple[Tuple[Tuple[str, str, str], Tuple[str, ...]], ...] = (
    (('안녕', '안녕하세요', '안녕하십니까'), ('안녕안녕', '안녕하셨어요', '안녕하세요오')),
    (('잘 가', '안녕히 가세요', '안녕히 가십시오'), ('잘가', '잘 가요', '잘가요')),
    (('잘 있어', '안녕히 계세요', '안녕히 계십시오'), ('잘있어', '잘 있어요')),
    (('잘 자', '안녕히 주무세요', '안녕히 주무십시오'), ('잘자', '잘 자요', '잘자요')),
    (('고마워', '고마워요', '감사합니다'), ('고맙습니다', '감사해요', '감사해', '땡큐')),
    (('미안해', '미안해요', '죄송합니다'), ('미안', '죄송해요', '미안합니다')),
    (('반가워', '반가워요', '반갑습니다'), ('반갑다',)),
    (('응', '네', '네'), ('어', '엉', '예', 'ㅇㅇ')),
    (('아니', '아니요', '아닙니다'), ('아뇨', '아니야', '아니에요', '아냐')),
    (('괜찮아', '괜찮아요', '괜찮습니다'), ()),
    (('알겠어', '알겠어요', '알겠습니다'), ('알았어', '알았어요', '알겠다')),
    (('잘 먹겠습니다', '잘 먹겠습니다', '잘 먹겠습니다'), ()),
)
_GREETING_INDEX: Dict[str, Tuple[str, str, str]] = {}
for _row, _others in GREETINGS:
    for _spelling in _row[:2] + _row[2:] + _others:
        _GREETING_INDEX.setdefault(_spelling.replace(' ', ''), _row)
#: One-word answers inside a sentence ('네, 좋아요'): casual / polite / formal.
_ANSWER_WORDS = {'응': 0, '어': 0, '엉': 0, '네': 1, '예': 1, '아니': 2, '아니요': 2, '아뇨': 2}
_ANSWER_FORMS = (('응', '네', '네'), ('응', '네', '네'), ('아니', '아니요', '아니요'))

_SENTENCE_BREAK = re.compile(r'((?<=[.!?~…])\s+|\n+)')
_PUNCT_TAIL = re.compile(r'[\s.!?~…,]+$')


@dataclass(frozen=True)
class SentenceConversion:
    """One sentence's conversion: ``text`` is the source itself when ``ok`` is False."""

    source: str
    text: str
    ok: bool
    reason: str = ''
    changed: bool = False


@dataclass(frozen=True)
class Conversion:
    """Result of :func:`convert`: the converted text and each sentence's outcome."""

    source: str
    target: str
    text: str
    sentences: Tuple[SentenceConversion, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """Return True when every sentence was converted confidently."""
        return all(s.ok for s in self.sentences)

    @property
    def reasons(self) -> List[str]:
        """Return why sentences were not converted (empty when ``ok``)."""
        return [s.reason for s in self.sentences if not s.ok]


class _NotConfident(Exception):
    """Raised inside a sentence's conversion: the sentence is returned with ok=False."""


def _base_tag(tag: str) -> str:
    return tag.split('-')[0]


def _fold(form: str) -> str:
    """Fold the allomorphs kiwipiepy keeps apart: 을까 → ㄹ까, 은데 → ㄴ데, 으세요 → 세요."""
    if form.startswith('을') and len(form) > 1:
        return 'ᆯ' + form[1:]
    if form.startswith('은') and len(form) > 1:
        return 'ᆫ' + form[1:]
    if form.startswith('으') and len(form) > 1:
        return form[1:]
    if form.startswith('읍'):
        return 'ᆸ' + form[1:]
    return form


def _has_final_consonant(text: str) -> bool:
    for char in reversed(text):
        if '\uac00' <= char <= '\ud7a3':
            return (ord(char) - 0xAC00) % 28 != 0
        if '\u11a8' <= char <= '\u11c2':
            return True
    return False


def _copula_before_gi(match) -> str:
    char = match.group(1)
    return char + ('이' if not _has_final_consonant(char) and char != '이' else '') + '기 때문'


def _lookup(form: str, yo_after: bool) -> Optional[Tuple[str, str]]:
    folded = _fold(form)
    found = ENDINGS.get(folded) or ENDINGS.get(form)
    if found is None and folded.endswith('요'):
        base = ENDINGS.get(folded[:-1])
        if base is not None:
            found = (POLITE, base[1])
    if found is not None and yo_after and found[0] == CASUAL:
        found = (POLITE, found[1])
    return found


@dataclass
class _Clause:
    """What is known of one clause while it is converted."""

    start: int  # first token of the clause
    end: int  # the ending token
    last: int  # last token belonging to the clause (a trailing 요, an afterthought)
    register: str
    kind: str
    stem: Optional[int]
    eps: List[str]
    mood: str
    subject: Optional[str]
    has_wh: bool
    sf: Optional[int]  # index of the SF token after the ending


class RegisterConverter:
    """Converts Korean text between 반말, 해요체 and 하십시오체 (see the module docstring)."""

    def __init__(self, kiwi=None, check: bool = True):
        self.kiwi = kiwi if kiwi is not None else get_kiwi()
        self.check = check

    # --- public API ----------------------------------------------------------------------
    def convert(self, text: str, target: str) -> Conversion:
        """Convert every sentence of `text` into `target` (casual / polite / formal)."""
        if target not in REGISTERS:
            raise ValueError(f'unknown register {target!r}: use one of {REGISTERS}')
        parts = _SENTENCE_BREAK.split(text or '')
        out: List[str] = []
        results: List[SentenceConversion] = []
        for index, part in enumerate(parts):
            if index % 2 == 1 or not part.strip():
                out.append(part)
                continue
            result = self.convert_sentence(part, target)
            results.append(result)
            out.append(result.text)
        return Conversion(text, target, ''.join(out), tuple(results))

    def convert_sentence(self, sentence: str, target: str) -> SentenceConversion:
        """Convert one sentence; unchanged with ``ok=False`` when not confident."""
        stripped = sentence.strip()
        lead = sentence[: len(sentence) - len(sentence.lstrip())]
        trail = sentence[len(sentence.rstrip()) :]
        greeting = self._greeting(stripped, target)
        if greeting is not None:
            changed = greeting != stripped
            return SentenceConversion(sentence, lead + greeting + trail, True, '', changed)
        tokens = self.kiwi.tokenize(stripped)
        try:
            text = _SentenceWork(self, stripped, tokens, target).run()
        except _NotConfident as error:
            return SentenceConversion(sentence, sentence, False, str(error))
        except (IndexError, KeyError, ValueError, TypeError) as error:  # a defect, never a crash
            reason = f'error: {type(error).__name__}: {error}'
            return SentenceConversion(sentence, sentence, False, reason)
        if text == stripped:
            return SentenceConversion(sentence, sentence, True)
        if self.check:
            judged, clauses = clause_registers(text, self.kiwi)
            if judged != target and not (judged is None and target == CASUAL):
                reason = f'check: result judged {judged}'
                return SentenceConversion(sentence, sentence, False, reason)
            others = {r for r in clauses if r is not None}
            if others - {target}:
                reason = f'check: a clause judged {sorted(others - {target})[0]}'
                return SentenceConversion(sentence, sentence, False, reason)
        return SentenceConversion(sentence, lead + text + trail, True, '', True)

    # --- greetings -----------------------------------------------------------------------
    def _greeting(self, sentence: str, target: str) -> Optional[str]:
        head, comma, rest = sentence.partition(',')
        candidate = head if comma else sentence
        core = _PUNCT_TAIL.sub('', candidate)
        row = _GREETING_INDEX.get(core.replace(' ', ''))
        if core in ('그래', '그래요', '그렇습니까', '그렇습니다') and not comma:
            asked = '?' in candidate[len(core) :]
            row = ('그래', '그래요', '그렇습니까' if asked else '그렇습니다')
        if comma and core in _ANSWER_WORDS:
            row = _ANSWER_FORMS[_ANSWER_WORDS[core]]
        if row is None:
            return None
        replaced = row[REGISTERS.index(target)] + candidate[len(core) :]
        if not comma:
            return replaced
        tail = self.convert_sentence(rest.lstrip(), target) if rest.strip() else None
        if tail is not None and not tail.ok:
            return None
        spacing = rest[: len(rest) - len(rest.lstrip())]
        return replaced + ',' + spacing + (tail.text if tail is not None else '')


class _SentenceWork:
    """The edits of one sentence: token index → replacement morphemes."""

    def __init__(self, converter: RegisterConverter, sentence: str, tokens, target: str):
        self.kiwi = converter.kiwi
        self.sentence = sentence
        self.tokens = list(tokens)
        self.target = target
        self.edits: Dict[int, List[Morph]] = {}
        self.copula_gi: set = set()  # words where kiwipiepy drops the copula: 하나(이)기 때문
        self.words = [(m.start(), m.end()) for m in re.finditer(r'\S+', sentence)]

    # --- helpers -------------------------------------------------------------------------
    def tag(self, i: int) -> str:
        return _base_tag(self.tokens[i].tag)

    def form(self, i: int) -> str:
        return self.tokens[i].form

    def word_of(self, i: int) -> int:
        token = self.tokens[i]
        for index, (start, end) in enumerate(self.words):
            if start <= token.start < end or (token.len == 0 and token.start == end):
                return index
        return len(self.words) - 1

    def same_word(self, i: int, j: int) -> bool:
        return self.word_of(i) == self.word_of(j)

    def current(self, i: int) -> List[Morph]:
        return self.edits.get(i, [(self.tokens[i].form, self.tokens[i].tag)])

    def replace(self, i: int, morphs: Sequence[Morph]) -> None:
        self.edits[i] = list(morphs)

    # --- the conversion ------------------------------------------------------------------
    def run(self) -> str:
        if not any('\uac00' <= c <= '\ud7a3' for c in self.sentence):
            return self.sentence
        ends = ending_positions(self.tokens)
        clauses = self._clauses(ends)
        for clause in clauses:
            self._convert_clause(clause)
        self._answer_words()
        if self.target == CASUAL:
            self._drop_vocatives()
        else:
            self._drop_casual_calls()
        return self._rebuild()

    def _clauses(self, ends: List[int]) -> List[_Clause]:
        clauses = []
        start = 0
        n = len(self.tokens)
        for position, end in enumerate(ends):
            last = end
            yo_after = end + 1 < n and self.tokens[end + 1].tag == 'JX'
            yo_after = yo_after and self.form(end + 1) == '요' and self.tag(end) != 'JX'
            if yo_after:
                last = end + 1
            if position == len(ends) - 1:
                last = n - 1
            clauses.append(self._analyse(start, end, last, yo_after))
            start = end + 1
        if not ends:
            # no ending: a noun phrase or interjection carries no register; only words change
            self._words_only(0, n - 1)
        return clauses

    def _analyse(self, start: int, end: int, last: int, yo_after: bool) -> _Clause:
        token = self.tokens[end]
        if token.form == '요' and token.tag in ('JX', 'EF'):  # 요 after a noun or particle
            found: Optional[Tuple[str, str]] = (POLITE, YO_NOUN)
        else:
            found = _lookup(token.form, yo_after)
        if found is None:
            raise _NotConfident(f'unknown ending {token.form}/{token.tag}')
        register, kind = found
        stem, eps = None, []
        i = end - 1
        while i >= start and self.tag(i) == 'EP':
            eps.insert(0, '시' if self.form(i) == '으시' else self.form(i))
            i -= 1
        if i >= start and self.tag(i) in _PRED_TAGS and token.form != '요':
            stem = i
        elif (
            eps and i >= start and self.tag(i) == 'EC' and _fold(self.form(i)) in ('어야', '아야')
        ):
            stem = i  # 먹어야겠다: the ending hangs on 어야 (하 contracted away)
        folded = _fold(token.form)
        if folded == '세요':
            eps = eps + ['시']
        sf = None
        j = end + 1
        while j < len(self.tokens) and self.tokens[j].tag == 'JX' and self.form(j) == '요':
            j += 1
        if j < len(self.tokens) and self.tokens[j].tag == 'SF':
            sf = j
        main = start  # wh-words of a sub-clause ('얼마나 되는지 봐 주세요') ask nothing
        for k in range(start, end):
            if self._boundary(k) or self.tag(k) == 'ETN':
                main = k + 1
        has_wh = any(
            self.form(k) in _WH or self.form(k).startswith(('뭐', '어디', '언제', '누구', '왜'))
            for k in range(main, end)
            if self.tag(k) in ('NP', 'MAG', 'MM', 'VA', 'NNG', 'IC')
        )
        clause = _Clause(start, end, last, register, kind, stem, eps, STATEMENT, None, has_wh, sf)
        clause.subject = self._subject(clause)
        clause.mood = self._mood(clause, folded)
        return clause

    def _boundary(self, k: int) -> bool:
        """Return True when token k is a connective ending that closes a sub-clause."""
        if self.tag(k) == 'ETM':
            return True
        if self.tag(k) != 'EC' or self.form(k) in ('게', '도록'):
            return False
        nxt = self.tokens[k + 1] if k + 1 < len(self.tokens) else None
        return nxt is None or _base_tag(nxt.tag) not in ('VX', 'VV')

    def _subject(self, clause: _Clause) -> Optional[str]:
        first = clause.start
        for k in range(clause.start, clause.end):
            if self._boundary(k):
                first = k + 1
        strong, topics, bare = [], [], []
        descriptive = clause.stem is not None and self.tag(clause.stem) in ('VA', 'VCP', 'XSA')
        for k in range(clause.start, clause.end):
            if self.tag(k) not in _NOUN_TAGS:
                continue
            person = self.form(k) in _SPEAKER_WORDS | _LISTENER_WORDS and self.tag(k) == 'NP'
            if k < first and not person:
                continue  # a noun of a sub-clause ('도움이 필요하면 말해 줘')
            nxt = self.tokens[k + 1] if k + 1 < clause.end else None
            if nxt is not None and nxt.tag == 'JKS':
                if k >= first:
                    strong.append((k, nxt.form))
            elif nxt is not None and nxt.tag == 'JX' and nxt.form in ('은', '는', 'ᆫ', '도', '만'):
                if nxt.form in ('도', '만') and not person:
                    continue
                if not person and not descriptive:
                    continue  # '이건 하지 마세요': a topic of an action verb is often its object
                if self.form(k) not in _TIME_WORDS:
                    topics.append((k, nxt.form))
            elif self.tag(k) == 'NP' and (nxt is None or not self.same_word(k, k + 1)):
                if nxt is not None and _base_tag(nxt.tag) in _NOUN_TAGS:
                    continue  # 우리 집: a possessive, not a subject
                if self.form(k) in _SPEAKER_WORDS | _LISTENER_WORDS:
                    bare.append((k, ''))
                elif self.form(k) in _DEMONSTRATIVES and clause.stem is not None:
                    if self.tag(clause.stem) in ('VA', 'VCP', 'XSA'):
                        bare.append((k, ''))
        chosen = strong[-1] if strong else (topics[0] if topics else (bare[0] if bare else None))
        if chosen is None:
            possession = clause.stem is not None and self.form(clause.stem) in ('있', '없')
            if (
                clause.stem is not None
                and self.tag(clause.stem) in ('VA', 'XSA')
                and not possession
            ):
                k = clause.stem - 1
                if (
                    k >= clause.start
                    and self.tag(k) in ('NNG', 'NNP')
                    and not self.same_word(k, clause.stem)
                ):
                    return OTHER  # 날씨 좋아?: a bare noun before an adjective is its subject
            return None
        k, particle = chosen
        word = self.form(k)
        if particle == '께서' or word in _HONOURED_WORDS:
            return HONOURED
        if word in _SPEAKER_WORDS:
            return SPEAKER
        if word in _LISTENER_WORDS:
            return LISTENER
        return OTHER

    def _mood(self, clause: _Clause, folded: str) -> str:
        kind = clause.kind
        if kind == IMPERATIVE:
            return COMMAND
        if kind == PROPOSE:
            return LETS
        if folded in _FORMAL_QUESTION or kind in (QUESTION, WONDER):
            return ASK
        mark = self.form(clause.sf) if clause.sf is not None else ''
        if '?' in mark:
            return ASK
        if folded in ('습니다', 'ᆸ니다'):
            return STATEMENT
        if kind == INTEND and not mark:
            return ASK  # '해줄래 …' without punctuation is a request
        if kind == CONFIRM and not mark and clause.has_wh:
            return ASK  # '언제였죠 …'
        if kind != PLAIN or clause.stem is None:
            return STATEMENT
        request = self.tag(clause.stem) == 'VX' and self.form(clause.stem) in ('말', '주')
        if not mark and clause.has_wh and not (request and folded == '세요'):
            return ASK
        tense = any(ep in ('었', '았', '겠', '었었', '였') for ep in clause.eps)
        if tense:
            return STATEMENT
        subject = clause.subject
        honorific = '시' in clause.eps or self.form(clause.stem) in HONORIFIC_VERBS
        request = self.tag(clause.stem) == 'VX' and self.form(clause.stem) in ('말', '주')
        if self.form(clause.stem) == '보' and clause.stem > 0:
            if _fold(self.form(clause.stem - 1)) in ('나', 'ᆫ가', '는가', '나요'):
                return STATEMENT  # 했나 봐요: 'it seems', never a request
        if folded == '세요' or (honorific and folded == '어요'):
            if request or subject in (None, LISTENER):
                return COMMAND
            return STATEMENT
        if subject in (SPEAKER, OTHER, HONOURED) and not (
            subject == SPEAKER and self.form_of_subject_is_we(clause)
        ):
            return STATEMENT
        stem_tag = self.tag(clause.stem)
        words = {self.form(k) for k in range(clause.start, clause.end)}
        main = clause.start  # the main clause: after the last sub-clause ending
        for k in range(clause.start, clause.stem):
            if self._boundary(k) or self.tag(k) == 'ETN':
                main = k + 1
        adverbs = {self.form(k) for k in range(main, clause.stem) if self.tag(k) == 'MAG'}
        if stem_tag in ('VV', 'VX', 'XSV') and (words & {'같이', '함께'} or subject == SPEAKER):
            return LETS
        if stem_tag in ('VV', 'VX', 'XSV'):
            stem_form = self.form(clause.stem)
            before = _fold(self.form(clause.stem - 1)) if clause.stem > 0 else ''
            auxiliary = (stem_tag == 'VX' or self.tag(clause.stem - 1) == 'EC') and (
                before in ('어', '아', '지')  # 해 봐 / 하지 마 (not 했나 봐: 'it seems')
            )
            if stem_form == '되':
                return STATEMENT  # 안 돼, 해도 돼
            if adverbs & _IMPERATIVE_ADVERBS or (
                auxiliary and stem_form in ('보', '주', '말', '오')
            ):
                return COMMAND
            conditional = any(
                self.tag(k) == 'EC'
                and _fold(self.form(k)) in ('면', '려면')
                and not self.same_word(k, clause.stem)
                and self.word_of(clause.stem) - self.word_of(k) >= 2
                for k in range(clause.start, clause.stem)
            ) and stem_form not in ('하', '좋')
            if conditional and clause.subject is None and stem_form != '되':
                return COMMAND  # advice: 배고프면 간식 먹어
            if stem_form == '보내' and '하루' in words:
                return COMMAND  # 좋은 하루 보내
            if stem_form in ('조심하', '힘내') or (
                stem_form == '하' and clause.stem > 0 and self.form(clause.stem - 1) == '조심'
            ):
                return COMMAND
            if stem_form == '내' and clause.stem > 0 and self.form(clause.stem - 1) == '힘':
                return COMMAND
        return STATEMENT

    def form_of_subject_is_we(self, clause: _Clause) -> bool:
        return any(self.form(k) == '우리' for k in range(clause.start, clause.end))

    # --- one clause ----------------------------------------------------------------------
    def _convert_clause(self, clause: _Clause) -> None:
        if clause.register == self.target:
            return
        target = self.target
        listener = clause.mood in (COMMAND,) or clause.subject == LISTENER
        if clause.mood == LETS and target == FORMAL:
            listener = True
        if clause.mood == ASK and clause.subject is None and clause.stem is not None:
            if self.form(clause.stem) in ('그렇', '이렇', '저렇', '그러'):
                pass  # 그런가? is about a situation, not the listener
            elif self.tag(clause.stem) in ('VV', 'VA', 'VX', 'XSV', 'XSA'):
                listener = clause.kind not in (SUGGEST,)
        clause_listener = listener
        self._words_in_clause(clause, clause_listener)
        if clause.kind == YO_NOUN:
            self._yo_noun(clause)
            return
        if clause.stem is None:
            raise _NotConfident(f'no predicate before {self.form(clause.end)}')
        apart = not self.same_word(clause.stem, clause.end)
        if apart and not (self.tag(clause.stem) == 'EC' and clause.eps):
            raise _NotConfident('ending apart from its predicate')
        stem = self.current(clause.stem)
        if stem[-1][0] == '바래' and _base_tag(stem[-1][1]) == 'VV':
            stem = stem[:-1] + [('바라', 'VV')]  # the common misspelling of 바라다 (to hope)
        eps = list(clause.eps)
        stem, eps = self._honorific(clause, stem, eps, clause_listener)
        ending, mark = self._ending(clause, stem, eps)
        if apart:  # '해야 겠네요': the ending's word is rebuilt on its own
            new = self._compose([(ep, 'EP') for ep in eps] + ending)
            self.replace(clause.stem + 1, new)
            for k in range(clause.stem + 2, clause.end + 1):
                self.replace(k, [])
        else:
            new = self._compose(stem + [(ep, 'EP') for ep in eps] + ending)
            self.replace(clause.stem, new)
            for k in range(clause.stem + 1, clause.end + 1):
                self.replace(k, [])
        if clause.end + 1 <= clause.last and self.tokens[clause.end + 1].tag == 'JX':
            if self.form(clause.end + 1) == '요':
                self.replace(clause.end + 1, [])
        if mark is not None and clause.sf is not None:
            old = self.form(clause.sf)
            if old in ('.', '!'):
                self.replace(clause.sf, [(mark, 'SF')])

    def _honorific(self, clause, stem: List[Morph], eps: List[str], listener: bool):
        """Add or remove -시- (and the honorific verbs) for the target register."""
        target = self.target
        form, tag = stem[-1]
        base = _base_tag(tag)
        if target == CASUAL:
            if clause.subject == HONOURED:
                return stem, eps
            eps = [ep for ep in eps if ep not in ('시', '으시')]
            if form in HONORIFIC_VERBS:
                stem = stem[:-1] + [(HONORIFIC_VERBS[form], 'VV' if base == 'VV' else base)]
            elif form == '편찮':
                stem = stem[:-1] + [('아프', 'VA')]
            elif form == '드리' and base == 'VV' and self._after_noun(clause.stem):
                stem = stem[:-1] + [('하', 'XSV')]
            elif form == '드리' and base in ('VV', 'VX') and not self._recipient_honoured(clause):
                stem = stem[:-1] + [('주', base)]
            return stem, eps
        if form == '주' and base in ('VV', 'VX') and self._offer(clause):
            stem = stem[:-1] + [('드리', base)]
            return stem, eps
        has_si = '시' in eps or form in HONORIFIC_VERBS
        if not listener or has_si or clause.register != CASUAL:
            return stem, eps  # an honorific source already chose where -시- goes
        if clause.kind == SUGGEST or (clause.mood == LETS and target == POLITE):
            return stem, eps
        if base == 'VV' and form == '먹':
            return stem[:-1] + [('드시', 'VV')], eps
        if base == 'VV' and form == '자' and not self._speaker_in(clause):
            return stem[:-1] + [('주무시', 'VV')], eps
        if form == '있' and base in ('VX', 'VV', 'VA') and self._is_presence(clause, base):
            return stem[:-1] + [('계시', 'VX' if base == 'VX' else 'VV')], eps
        if form == '아프' and target == FORMAL:
            return stem[:-1] + [('편찮', 'VA')], ['시'] + eps
        if form == '하' and base == 'XSV' and clause.stem > 0:
            before = self.current(clause.stem - 1)
            if before and before[-1] == ('말', 'NNG'):
                self.replace(clause.stem - 1, before[:-1] + [('말씀', 'NNG')])
        return stem, ['시'] + eps

    def _after_noun(self, k: int) -> bool:
        return k > 0 and self.same_word(k - 1, k) and _base_tag(self.tokens[k - 1].tag) == 'NNG'

    def _recipient_honoured(self, clause) -> bool:
        return any(
            self.tag(k) == 'JKB' and self.form(k) == '께' for k in range(clause.start, clause.end)
        )

    @staticmethod
    def _offer(clause) -> bool:
        """Return True when the speaker offers something to the listener (줄게 → 드릴게요)."""
        if clause.mood == COMMAND or clause.subject in (LISTENER, OTHER, HONOURED):
            return False
        return clause.kind in (PROMISE, SUGGEST) or clause.subject == SPEAKER

    def _speaker_in(self, clause) -> bool:
        return any(
            self.form(k) in _SPEAKER_WORDS and self.tag(k) == 'NP'
            for k in range(clause.start, clause.end)
        )

    def _is_presence(self, clause, base: str) -> bool:
        """Return True for 있다 'be somewhere' (→ 계시다), not 'have' (→ 있으시다)."""
        if base == 'VX':
            return True
        k = clause.stem - 1
        if k >= clause.start and self.tag(k) == 'JKS':
            return False
        if (
            k >= clause.start
            and self.tag(k) in ('NNG', 'NNP')
            and not self.same_word(k, clause.stem)
        ):
            return False
        for j in range(clause.start, clause.stem):
            if self.tag(j) == 'JKB' and self.form(j) in ('에', '에서'):
                return True
            if self.form(j) in ('어디', '여기', '거기', '저기', '집', '댁') and self.tag(j) in (
                'NP',
                'NNG',
            ):
                return True
        return clause.mood == COMMAND or self.form(clause.stem - 1) in ('잘', '안녕히')

    def _ending(self, clause: _Clause, stem: List[Morph], eps: List[str]):
        """Return the morphemes of the new ending (EF and what it needs) and a new SF mark."""
        target, mood = self.target, clause.mood
        folded = _fold(self.form(clause.end))
        copula = _base_tag(stem[-1][1]) in ('VCP', 'VCN')
        stem_tag = _base_tag(stem[-1][1])
        speaker_will = (
            '겠' in eps
            and stem_tag in ('VV', 'VX', 'XSV')
            and stem[-1][0] not in ('알', '모르')
            and clause.subject in (None, SPEAKER)
            and mood == STATEMENT
        )
        if target in (CASUAL, POLITE) and speaker_will and clause.register == FORMAL:
            eps.remove('겠')
            return [('ᆯ게' if target == CASUAL else 'ᆯ게요', 'EF')], None
        offer_question = (
            target == CASUAL
            and mood == ASK
            and '겠' in eps
            and clause.register != CASUAL
            and clause.kind == PLAIN
        )
        if offer_question and ('시' in clause.eps or stem[-1][0] in HONORIFIC_VERBS):
            eps.remove('겠')  # 산책하시겠습니까? / 드시겠어요? → 산책할래? / 먹을래?
            return [('ᆯ래', 'EF')], None
        if target == CASUAL:
            return self._casual_ending(clause, folded, copula), None
        if target == POLITE:
            return self._polite_ending(clause, folded, copula, stem, eps), None
        return self._formal_ending(clause, folded, eps, stem)

    def _casual_ending(self, clause: _Clause, folded: str, copula: bool) -> List[Morph]:
        kind, mood = clause.kind, clause.mood
        token = self.tokens[clause.end]
        if clause.register == POLITE and not folded.endswith(('요', '죠')) and kind != PLAIN:
            if kind != QUESTION or folded not in ('ᆫ가', '는가', '나'):
                return [(token.form, token.tag)]  # 싶은데 + 요, 해서 + 요: the 요 goes
        if kind in (PLAIN, QUESTION, PLAIN_DA, IMPERATIVE, PROPOSE, WONDER) or (
            kind == CONTRAST and folded == 'ᆸ니다만'
        ):
            if kind == WONDER:
                return [(folded[:-1] if folded.endswith('요') else folded, 'EF')]
            if mood == LETS:
                return [('자', 'EF')]
            return [('야' if copula and not clause.eps else '어', 'EF')]
        simple = {
            CONFIRM: '지',
            EXCLAIM: '네',
            REASON: '거든',
            JANHA: '잖아',
            PROMISE: 'ᆯ게',
            INTEND: 'ᆯ래',
            SUGGEST: 'ᆯ까',
            MUST: '어야지',
            RETRO: '더라',
        }
        if kind in simple:
            return [(simple[kind], 'EF')]
        if kind == GUN:
            return [
                ({'군요': '구나', '는군요': '는구나', '더군요': '더라'}.get(folded, '구나'), 'EF')
            ]
        if kind in (CONTRAST, HEARSAY, LINK) and folded.endswith('요'):
            return [(folded[:-1], 'EC' if kind == LINK else 'EF')]
        if kind == HEARSAY:  # 온답니다 → 온대
            return [({'답니다': '대', '랍니다': '래'}.get(folded, folded[:-3] + '대'), 'EF')]
        raise _NotConfident(f'no casual form for {folded}')

    def _polite_ending(self, clause, folded, copula, stem, clause_eps) -> List[Morph]:
        kind, mood = clause.kind, clause.mood
        if kind in (PLAIN, QUESTION, PLAIN_DA, IMPERATIVE, PROPOSE):
            if copula and mood != COMMAND and not clause_eps:
                if _base_tag(stem[-1][1]) == 'VCN':
                    return [('에요', 'EF')]
                before = self._text_before(clause.stem)
                return [('예요' if not _has_final_consonant(before) else '에요', 'EF')]
            return [('어요', 'EF')]
        simple = {
            CONFIRM: '죠',
            EXCLAIM: '네요',
            REASON: '거든요',
            JANHA: '잖아요',
            PROMISE: 'ᆯ게요',
            INTEND: 'ᆯ래요',
            SUGGEST: 'ᆯ까요',
            MUST: '어야죠',
            RETRO: '더라고요',
        }
        if kind in simple:
            return [(simple[kind], 'EF')]
        if kind == GUN:
            polite = {'구나': '군요', '는구나': '는군요', '군': '군요', '는군': '는군요'}
            return [(polite.get(folded, '군요'), 'EF')]
        if kind in (CONTRAST, HEARSAY, WONDER):
            if folded == 'ᆸ니다만':
                return [('는데요', 'EF')]
            if kind == HEARSAY and folded.endswith('니다'):
                return [
                    ({'답니다': '대요', '랍니다': '래요'}.get(folded, folded[:-3] + '대요'), 'EF')
                ]
            return [(folded + '요', 'EF')]
        if kind == LINK:
            return [(self.form(clause.end), 'EC'), ('요', 'JX')]
        raise _NotConfident(f'no polite form for {folded}')

    @staticmethod
    def _add_si(stem: List[Morph], eps: List[str]) -> None:
        """Add -시- in place: 먹 → 드시, 자 → 주무시 (they carry it), else the EP 시."""
        form, tag = stem[-1]
        if _base_tag(tag) == 'VV' and form in ('먹', '자'):
            stem[-1] = ({'먹': '드시', '자': '주무시'}[form], 'VV')
        else:
            eps.insert(0, '시')

    def _formal_ending(self, clause: _Clause, folded: str, eps: List[str], stem: List[Morph]):
        kind, mood = clause.kind, clause.mood
        stem_form = stem[-1][0]
        honorific_stem = stem_form in HONORIFIC_VERBS
        statement, question = [('ᆸ니다', 'EF')], [('ᆸ니까', 'EF')]
        if mood == COMMAND:
            if '시' not in eps and not honorific_stem:
                self._add_si(stem, eps)
            return [('ᆸ시오', 'EF')], None
        if mood == LETS:
            if '시' not in eps and not honorific_stem:
                self._add_si(stem, eps)
            eps.append('겠')
            return question, '?'
        if kind == GUN and stem_form in ('그렇', '그러'):
            if '시' not in eps and clause.register == CASUAL:
                self._add_si(stem, eps)
            return question, '?'  # 그랬구나 → 그러셨습니까?
        if kind == CONFIRM and mood == ASK and not clause.has_wh:
            return [('지', 'EC'), ('않', 'VX'), ('습니까', 'EF')], None
        if kind == JANHA and stem_form == '아니':
            return question, '?'  # 아니잖아요 → 아닙니까? (never 아니지 않습니까)
        if kind == JANHA:
            return [('지', 'EC'), ('않', 'VX'), ('습니까', 'EF')], '?'
        if kind == PROMISE:
            eps.append('겠')
            return statement, None
        if kind == INTEND:
            eps.append('겠')
            if mood == ASK and '시' not in eps and clause.subject in (None, LISTENER):
                if not honorific_stem and clause.register == CASUAL and stem_form != '되':
                    self._add_si(stem, eps)
            return (question if mood == ASK else statement), None
        if kind == SUGGEST:
            if clause.subject == SPEAKER or stem_form == '드리':
                return [('어도', 'EC'), ('되', 'VV'), ('겠', 'EP'), ('습니까', 'EF')], None
            action = _base_tag(stem[-1][1]) in ('VV', 'VX', 'XSV') and stem_form != '되'
            if clause.subject in (None, LISTENER) and '시' not in eps and not honorific_stem:
                if action:  # 같이 산책할까요? → 산책하시겠습니까? (never 되시겠습니까)
                    self._add_si(stem, eps)
            eps.append('겠')
            return question, None
        if kind == MUST:
            return [('어야', 'EC'), ('하', 'VV'), ('ᆸ니다', 'EF')], None
        if kind == HEARSAY:
            base = folded[:-1] if folded.endswith('요') else folded
            formal = {'ᆫ대': 'ᆫ답니다', '는대': '는답니다', '대': '답니다', '래': '랍니다'}
            if base not in formal:
                raise _NotConfident(f'no formal form for {folded}')
            return [(formal[base], 'EF')], None
        if kind in (PLAIN, QUESTION, PLAIN_DA, EXCLAIM, GUN, REASON, CONTRAST, CONFIRM, WONDER):
            return (question if mood == ASK else statement), None
        if kind == RETRO and mood != ASK:
            return statement, None
        if kind == LINK and _fold(folded.rstrip('요')) in ('니까', '니깐', '어서', '아서'):
            if clause.stem is not None and _base_tag(stem[-1][1]) == 'VCP':
                self.copula_gi.add(self.word_of(clause.stem))
            because = [('기', 'ETN'), ('때문', 'NNB'), ('이', 'VCP'), ('ᆸ니다', 'EF')]
            return because, None  # 적으니까요 → 적기 때문입니다
        raise _NotConfident(f'no formal form for {folded}')

    def _text_before(self, stem_index: int) -> str:
        """Return the text of the morphemes before the copula in its word (친구 of 친구야)."""
        word = self.word_of(stem_index)
        morphs = []
        for k in range(stem_index):
            if self.word_of(k) == word:
                morphs.extend(self.current(k))
        if not morphs:
            return '학'  # the copula starts its own word ('몇도 입니까'): write 이에요
        return self.kiwi.join(morphs)

    @staticmethod
    def _compose(morphs: List[Morph]) -> List[Morph]:
        """Merge 시 + 어요 into 세요 (kiwipiepy would write the old-fashioned 셔요)."""
        out: List[Morph] = []
        for form, tag in morphs:
            if form == '어요' and tag == 'EF' and out and out[-1] == ('시', 'EP'):
                out[-1] = ('세요', 'EF')
                continue
            out.append((form, tag))
        return out

    def _yo_noun(self, clause: _Clause) -> None:
        end = clause.end
        before = end - 1
        copula = before >= clause.start and self.tag(before) == 'VCP'
        afterthought = clause.start > 0  # another clause ended before this fragment
        if self.target == CASUAL or afterthought:
            self.replace(end, [])  # 저도요 → 나도; '…추천해 주세요 녹색으로요' → '… 녹색으로'
            if copula:
                self.replace(before, [])
            return
        if self.form(before) == '데' and before >= 1 and self.tag(before - 1) == 'ETM':
            raise _NotConfident('는데요 read as 데 + 요')  # 재밌는데요
        if copula and before >= 1 and self.form(before - 1) == '데':
            raise _NotConfident('는데요 read as 데 + 이요')  # 재밌는데요
        if copula:
            self.replace(end, [('ᆸ니다', 'EF')])
            return
        if before >= 0 and self.tag(before) in ('NNG', 'NNP', 'NNB', 'NP', 'NR'):
            self.replace(end, [('이', 'VCP'), ('ᆸ니다', 'EF')])
            return
        if before >= 1 and self.form(before) == '도' and self.tag(before - 1) == 'NP':
            self.replace(end, [('그렇', 'VA-I'), ('습니다', 'EF')])  # 저도요 → 저도 그렇습니다
            return
        raise _NotConfident('요 after a particle has no formal form')

    # --- words of a clause ---------------------------------------------------------------
    def _words_in_clause(self, clause: _Clause, listener: bool) -> None:
        start, last, end = clause.start, clause.last, clause.end
        target = self.target
        honoured = clause.subject == HONOURED or any(
            self.tag(k) == 'JKS' and self.form(k) == '께서' for k in range(start, end)
        )
        recipient_honoured = any(
            self.tag(k) == 'JKB' and self.form(k) == '께' for k in range(start, end)
        )
        offer = self._offer(clause)
        k = start
        while k <= last:
            token = self.tokens[k]
            tag, form = _base_tag(token.tag), token.form
            nxt = self.tokens[k + 1] if k + 1 < len(self.tokens) else None
            if k == clause.stem or (k > end and tag in ('EF', 'EP')):
                k += 1
                continue
            if (
                tag == 'JX'
                and form == '요'
                and k != end
                and not (k == end + 1 and target == POLITE)
            ):
                if target != POLITE and k != end + 1:
                    self.replace(k, [])
                k += 1
                continue
            if target == CASUAL:
                k = self._casual_word(k, tag, form, honoured, recipient_honoured)
            else:
                k = self._honorific_word(k, tag, form, nxt, clause, listener, offer)
            k += 1

    def _words_only(self, start: int, last: int) -> None:
        for k in range(start, last + 1):
            tag, form = self.tag(k), self.form(k)
            if tag == 'JX' and form == '요' and self.target != POLITE:
                self.replace(k, [])
            elif self.target == CASUAL and tag == 'NP' and form in ('저', '저희'):
                self.replace(k, [({'저': '나', '저희': '우리'}[form], 'NP')])
            elif self.target != CASUAL and tag == 'NP' and form == '나':
                self.replace(k, [('저', 'NP')])

    def _casual_word(self, k, tag, form, honoured, recipient_honoured) -> int:
        if tag == 'NP' and form in ('저', '저희'):
            self.replace(k, [({'저': '나', '저희': '우리'}[form], 'NP')])
        elif tag == 'NP' and form == '무엇':
            self.replace(k, [('뭐', 'NP')])
        elif tag in ('NNG', 'NP') and form in _PLAIN_NOUNS and not honoured:
            self.replace(k, [(_PLAIN_NOUNS[form], 'NNG')])
        elif tag in ('NNG', 'NP') and form in ('어르신', '고객님', '손님', '당신'):
            nxt = self.tokens[k + 1] if k + 1 < len(self.tokens) else None
            if nxt is not None and nxt.tag in ('JKS', 'JX', 'JKO', 'JKB', 'JKG'):
                particle = {'께서': '가', '께': '한테'}.get(nxt.form, nxt.form)
                self.replace(k, [('너', 'NP')])
                self.replace(k + 1, [(particle, nxt.tag)])
                return k + 1
        elif tag in ('VV', 'VX') and form in HONORIFIC_VERBS and not honoured:
            self.replace(k, [(HONORIFIC_VERBS[form], tag)])
        elif (
            tag == 'VV'
            and form == '드리'
            and k > 0
            and self.same_word(k - 1, k)
            and (_base_tag(self.tokens[k - 1].tag) == 'NNG')
        ):
            self.replace(k, [('하', 'XSV')])  # 부탁드리다 → 부탁하다, 말씀드리다 → 말하다
        elif tag in ('VV', 'VX') and form == '드리' and not recipient_honoured:
            self.replace(k, [('주', tag)])
        elif tag == 'EP' and form in ('시', '으시') and not honoured:
            self.replace(k, [])
        elif tag == 'JKB' and form == '께' and not recipient_honoured:
            self.replace(k, [('한테', 'JKB')])
        else:
            for pattern, simple in SIMPLE_WORDS_FOR_CHILDREN.items():
                span = len(pattern)
                here = tuple(
                    (self.form(j), self.tokens[j].tag)
                    for j in range(k, min(k + span, len(self.tokens)))
                )
                if len(here) == span and here == pattern:
                    if span == 2 and not self.same_word(k, k + 1):
                        continue
                    if span == 1:
                        self.replace(k, list(simple))
                        return k
                    # the last morpheme may be the clause's predicate: it keeps the new stem
                    self.replace(k, list(simple[:-1]))
                    for j in range(k + 1, k + span - 1):
                        self.replace(j, [])
                    self.replace(k + span - 1, [simple[-1]])
                    return k + span - 1
        return k

    def _honorific_word(self, k, tag, form, nxt, clause, listener, offer) -> int:
        target = self.target
        if tag == 'NP' and form == '나':
            self.replace(k, [('저', 'NP')])
        elif tag in ('NP', 'IC') and form == '뭐' and target == FORMAL and nxt is not None:
            if nxt.tag in ('SP', 'SF'):
                return k
            bare = nxt is None or not self.same_word(k, k + 1)
            verb = clause.stem is not None and self.tag(clause.stem) in ('VV', 'XSV', 'VX')
            self.replace(k, [('무엇', 'NP')] + ([('을', 'JKO')] if bare and verb else []))
        elif tag == 'NP' and form == '우리' and clause.mood != LETS:
            together = any(
                self.form(j) in ('같이', '함께') for j in range(clause.start, clause.end)
            )
            if not together:
                self.replace(k, [('저희', 'NP')])
        elif tag == 'NP' and form in ('너', '니', '당신', '너희', '자네'):
            return self._listener_pronoun(k, form, nxt, clause)
        elif tag in ('VV', 'VX') and form == '주' and offer:
            self.replace(k, [('드리', tag)])
        elif target == FORMAL and tag in ('NNG', 'NP') and form in SENIOR_NOUNS:
            years = any(self.form(j) == '살' for j in range(clause.start, clause.end + 1))
            if self._listener_owns(k, clause, listener) and not (
                (form == '말' and not (nxt is not None and nxt.form == '하' and listener))
                or (form == '나이' and years)
            ):
                self.replace(k, [(SENIOR_NOUNS[form], 'NNG')])
        elif (
            target == FORMAL and tag == 'NNG' and form == '밥' and listener and clause.mood != LETS
        ):
            if any(self.form(j) in ('먹', '드시') for j in range(k, clause.end)):
                self.replace(k, [('진지', 'NNG')])
        elif target == POLITE and tag in ('NNG', 'NP') and form in ('진지', '연세'):
            self.replace(k, [(_PLAIN_NOUNS[form], 'NNG')])
        elif target == FORMAL and tag == 'NNG' and form == '미안' and nxt is not None:
            if nxt.form == '하':
                self.replace(k, [('죄송', 'NNG')])
        elif tag == 'VV' and listener and k < (clause.stem or 0) and form in ('먹', '자'):
            following = self.tokens[k + 1] if k + 1 < len(self.tokens) else None
            if following is not None and following.tag == 'EC':
                self.replace(k, [({'먹': '드시', '자': '주무시'}[form], 'VV')])
        return k

    def _listener_owns(self, k: int, clause: _Clause, listener: bool) -> bool:
        if k > 0 and _base_tag(self.tokens[k - 1].tag) in _NOUN_TAGS:
            if self.form(k - 1) not in _LISTENER_WORDS:
                return False  # 이효리 제주도 집: someone else's
        if (
            k > 0
            and self.tag(k - 1) == 'JKG'
            and self.form(k - 2 if k > 1 else 0)
            in (
                '나',
                '저',
                '우리',
                '저희',
            )
        ):
            return False
        if (
            k > 0
            and self.tag(k - 1) == 'JKG'
            and self.form(k - 2 if k > 1 else 0)
            in (
                '너',
                '당신',
            )
        ):
            return True
        if self._speaker_in(clause):
            return False
        return listener or clause.mood == ASK

    def _listener_pronoun(self, k: int, form: str, nxt, clause: _Clause) -> int:
        particle = nxt.form if nxt is not None and nxt.tag.startswith('J') else ''
        drop = particle in ('', '은', '는', 'ᆫ', '이', '가', '의', '를', '을', 'ᆯ')
        stop = clause.stem if clause.stem is not None else clause.end
        if any(self._boundary(j) for j in range(k + 1, stop)):
            drop = False  # '너가 범인이라는 사실을 …': the pronoun belongs to a sub-clause
        if form == '너희':
            self.replace(k, [('여러분', 'NP')])
            return k
        if drop and (nxt is None or not nxt.tag.startswith('J') or self.same_word(k, k + 1)):
            self.replace(k, [])
            if particle:
                self.replace(k + 1, [])
                return k + 1
            return k
        if self.target == FORMAL:
            honour = {'한테': '께', '에게': '께', '이': '께서', '가': '께서'}.get(
                particle, particle
            )
            self.replace(k, [('어르신', 'NNG')])
            if particle:
                self.replace(k + 1, [(honour, nxt.tag)])
                return k + 1
            return k
        raise _NotConfident(f'listener pronoun {form}{particle}')

    def _answer_words(self) -> None:
        index = REGISTERS.index(self.target)
        for k, token in enumerate(self.tokens):
            if token.tag != 'IC' or token.form not in _ANSWER_WORDS or k in self.edits:
                continue
            following = self.tokens[k + 1] if k + 1 < len(self.tokens) else None
            if following is None or following.tag != 'SP':
                continue
            new = _ANSWER_FORMS[_ANSWER_WORDS[token.form]][index]
            if new != token.form:
                self.replace(k, [(new, 'IC')])

    def _drop_casual_calls(self) -> None:
        """Drop a leading '야' / '얘' (a call to a child or friend) for 해요체/하십시오체."""
        if self.tokens and self.tokens[0].tag == 'IC' and self.tokens[0].form in ('야', '얘'):
            self.replace(0, [])
            if len(self.tokens) > 1 and self.tokens[1].tag == 'SP' and self.same_word(0, 1):
                self.replace(1, [])

    def _drop_vocatives(self) -> None:
        for k, token in enumerate(self.tokens):
            if token.form not in ('어르신', '고객님', '손님', '여러분') or k in self.edits:
                continue
            following = self.tokens[k + 1] if k + 1 < len(self.tokens) else None
            if following is not None and following.tag == 'SP' and self.same_word(k, k + 1):
                self.replace(k, [])
                self.replace(k + 1, [])

    # --- text again ----------------------------------------------------------------------
    def _rebuild(self) -> str:
        if not self.edits:
            return self.sentence
        by_word: Dict[int, List[int]] = {}
        for k in range(len(self.tokens)):
            by_word.setdefault(self.word_of(k), []).append(k)
        pieces: List[Tuple[str, str]] = []  # (separator before, word text)
        previous_end = 0
        for index, (start, end) in enumerate(self.words):
            separator = self.sentence[previous_end:start]
            previous_end = end
            ks = by_word.get(index, [])
            if not any(k in self.edits for k in ks):
                pieces.append((separator, self.sentence[start:end]))
                continue
            pieces.append((separator, self._word_text(start, end, ks)))
        out = ''
        for separator, text in pieces:
            if not text:
                continue
            out += (separator if out else '') + text
        return out

    def _word_text(self, start: int, end: int, ks: List[int]) -> str:
        """Re-join one changed word; leading and trailing symbols keep their spelling."""
        content = [k for k in ks if self.tokens[k].tag not in _SYMBOL_TAGS]
        if not content:
            return ''.join(f for k in ks for f, _ in self.current(k))
        first, last = content[0], content[-1]
        prefix = self.sentence[start : self.tokens[first].start]
        tail_start = self.tokens[last].start + self.tokens[last].len
        suffix = self.sentence[tail_start:end]
        for k in ks:
            if k > last and k in self.edits and self.tokens[k].tag == 'SF':
                old = self.tokens[k]
                offset = old.start - tail_start
                new = ''.join(f for f, _ in self.edits[k])
                suffix = suffix[:offset] + new + suffix[offset + old.len :]
        morphs = [m for k in ks if first <= k <= last for m in self.current(k)]
        if not morphs:
            return '' if not prefix.strip() and not suffix.strip(' ,') else prefix + suffix
        text = self.kiwi.join(morphs)
        for i in range(1, len(morphs) - 1):
            if morphs[i] == ('이', 'VCP') and morphs[i + 1][0] in ('ᆸ니다', 'ᆸ니까'):
                # kiwipiepy contracts 어디 + 입니까 to 어딥니까; the written form keeps 입니
                text = self.kiwi.join(morphs[:i]) + self.kiwi.join(morphs[i:])
                break
        # keep the original spelling of the unchanged start of the word ('오마이걸' + 이에요)
        edited = [k for k in ks if first <= k <= last and k in self.edits]
        if edited and edited[0] > first:
            head = [(self.form(k), self.tokens[k].tag) for k in ks if first <= k < edited[0]]
            joined_head = self.kiwi.join(head)
            if text.startswith(joined_head):
                original_head = self.sentence[
                    self.tokens[first].start : self.tokens[edited[0]].start
                ]
                same = original_head.replace(' ', '') == joined_head.replace(' ', '')
                if same and original_head and not original_head[-1].isspace():
                    text = original_head + text[len(joined_head) :]
        text = text.replace('거입니', '겁니').replace('그렀', '그랬')
        if self.word_of(ks[0]) in self.copula_gi:
            text = re.sub(r'([가-힣])기 때문', _copula_before_gi, text, count=1)
        text = re.sub(r'마 (주|줘|드)', r'말아 \1', text)  # kiwipiepy writes 말아 주 as 마 주
        if any(f in HONORIFIC_VERBS for f, _ in morphs) and text.endswith('셔요'):
            text = text[:-2] + '세요'
        return prefix + text + suffix


_DEFAULT: Optional[RegisterConverter] = None


def default_converter() -> RegisterConverter:
    """Return the process-wide converter (loads kiwipiepy on first use)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = RegisterConverter()
    return _DEFAULT


def convert(text: str, target: str) -> Conversion:
    """Convert `text` into the `target` register (casual / polite / formal)."""
    return default_converter().convert(text, target)
