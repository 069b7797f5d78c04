"""A rule-based classifier of Korean speech level (register) from sentence endings.

agechat answers children in 반말 (casual, e.g. -아/-어/-야/-자/-지), adults in 해요체
(polite, -요/-죠) and seniors in 하십시오체 (formal, -ㅂ니다/-습니다/-ㅂ니까/-십시오).
Each sentence is classified by its final word; vocatives ('어르신,') and one-word
interjections ('네.') carry no register and are skipped. A text has a register when all its
classified sentences agree, else it is 'mixed'.

Given a kiwipiepy analyser (``analyzer=``, e.g. :func:`dialogue_node.core.morphology.get_kiwi`),
the final word is found by morphology instead: the last sentence-final ending (EF, or a
connective ending that ends the sentence, or a final 요), so that an ending followed by an
afterthought ('어디인가요 삼성과 엘지 중에') or by laughter ('좋아요 ㅎㅎ') is judged, and a
sentence without any ending (a noun phrase: '좋은 아침!') carries no register. The surface rules
then judge the text up to that ending. Without an analyser (the default) nothing is loaded.
"""

from __future__ import annotations

import re
from typing import Any, List, Optional, Tuple

from agechat_ros.labels import CASUAL, FORMAL, POLITE, REGISTER_FOR_AGE

MIXED, UNKNOWN = 'mixed', 'unknown'

_SENTENCE_END = re.compile(r'(?<=[.!?~…])\s+|\n+')
_TRAILING = re.compile(r'[\s.!?~…,"\'’”)\]\u3131-\u318e^;:*+\-=_]+$')
_NEUTRAL_WORDS = {'네', '예', '아', '오', '와', '우와', '어머', '아이고', '저런', '음', '글쎄'}
_ADDRESS_TERMS = ('어르신', '할머니', '할아버지', '선생님', '고객님', '여러분')
_JONG_B = 17  # index of the final consonant ㅂ in a Hangul syllable


def _is_syllable(char: str) -> bool:
    return '\uac00' <= char <= '\ud7a3'


def _has_final_b(char: str) -> bool:
    return _is_syllable(char) and (ord(char) - 0xAC00) % 28 == _JONG_B


def split_sentences(text: str) -> List[str]:
    """Split a text after . ! ? ~ … (and at newlines)."""
    return [s.strip() for s in _SENTENCE_END.split(text or '') if s and s.strip()]


_SYMBOL_TAGS = ('SF', 'SP', 'SS', 'SSO', 'SSC', 'SE', 'SO', 'SW', 'SB', 'W_EMOJI')
#: Connective endings (EC) that end a spoken sentence ('밥 먹었니?', '비가 오는데').
_FINAL_EC = {
    '어', '아', '니', '나', '냐', '지', '야', '자', '네', '게', '고', '구', '라', '거든', '잖아',
    '는데', 'ᆫ데', '은데', '데', '던데', '니까', '니깐', '으니까', '으니', '어서', '아서', '라고',
    '다고', 'ᆫ다고', '는다고', '냐고', '자고', '면서', '으면서', '려고', '으려고', '더라고', '지만',
}  # fmt: skip
#: Endings kiwipiepy tags EC before a comma that end a clause there ('그랬구나, 많이 …').
_COMMA_FINAL_EC = {'구나', '군', '네', '지', '야', '어', '아', '니', '냐', '자', '잖아', '거든'}
_REGISTER_MARKS = ('요', '니다', '니까', '시오', '시다')
#: Connective endings that end a clause followed by an afterthought ('사지마 비싼 건').
_MID_FINAL_EC = {'어', '아', '니', '냐', '나', '지', '자', '야'}


def _is_symbol(token) -> bool:
    return token.tag in _SYMBOL_TAGS


def ending_positions(tokens) -> List[int]:
    """Return the indices of the kiwipiepy tokens that end a clause of one sentence.

    Every sentence-final ending (EF); the sentence's last morpheme when it is a connective
    ending that can end a sentence, or a 요 after a non-ending ('커피요'); and, when nothing
    else ends a clause, the last word-final connective ending followed by an afterthought.
    """
    ends = [
        i
        for i, token in enumerate(tokens)
        if token.tag == 'EF'
        or (
            token.tag == 'EC'
            and i + 1 < len(tokens)
            and tokens[i + 1].tag == 'SP'
            and tokens[i + 1].form.startswith(',')
            and (token.form in _COMMA_FINAL_EC or token.form.endswith(('요', '니다', '니까')))
        )
    ]
    rest = len(tokens) - 1
    while rest >= 0 and _is_symbol(tokens[rest]):
        rest -= 1
    if rest >= 0 and (not ends or ends[-1] < rest):
        final = tokens[rest]
        if final.tag == 'JX' and final.form == '요':
            before = tokens[rest - 1] if rest > 0 else None
            if before is not None and before.tag == 'EC':
                ends.append(rest - 1)
            elif not (before is not None and before.tag == 'EF'):
                ends.append(rest)
        elif final.tag == 'EC' and (final.form in _FINAL_EC or not ends):
            ends.append(rest)
    if not ends:
        for i in range(rest - 1, -1, -1):
            token, following = tokens[i], tokens[i + 1]
            word_final = following.start > token.start + token.len
            if token.tag != 'EC':
                continue
            before_comma = following.tag == 'SP' and (
                token.form in _FINAL_EC or token.form.endswith(('요', '니다', '니까'))
            )
            marked = token.form in _MID_FINAL_EC or token.form.endswith(_REGISTER_MARKS)
            if before_comma or (marked and word_final):
                if following.tag != 'VX':
                    ends.append(i)
                    break
    return ends


def _final_ending_end(tokens) -> Optional[int]:
    """Return where the sentence's last clause ending ends (a character offset), or None."""
    ends = ending_positions(tokens)
    if not ends:
        return None
    last = ends[-1]
    end = tokens[last].start + tokens[last].len
    if last + 1 < len(tokens):
        following = tokens[last + 1]
        if following.tag == 'JX' and following.form == '요':
            end = following.start + following.len
    return end


def clause_registers(sentence: str, analyzer: Any) -> Tuple[Optional[str], List[Optional[str]]]:
    """Return the register of one sentence and of each of its clause endings (one analysis).

    The first value is what :func:`classify_sentence` returns with the analyser.
    """
    tokens = analyzer.tokenize(sentence)
    registers = []
    for index in ending_positions(tokens):
        end = tokens[index].start + tokens[index].len
        if index + 1 < len(tokens) and tokens[index + 1].tag == 'JX':
            if tokens[index + 1].form == '요':
                end = tokens[index + 1].start + tokens[index + 1].len
        registers.append(_classify_surface(sentence[:end]))
    return _classify_tokens(sentence, tokens), registers


def _classify_by_morphology(sentence: str, analyzer: Any) -> Optional[str]:
    return _classify_tokens(sentence, analyzer.tokenize(sentence))


def _classify_tokens(sentence: str, tokens) -> Optional[str]:
    end = _final_ending_end(tokens)
    if end is None:
        content = [t for t in tokens if t.tag not in _SYMBOL_TAGS]
        if content and content[-1].tag == 'IC':
            return _classify_surface(sentence)
        return None
    return _classify_surface(sentence[:end])


def classify_sentence(sentence: str, analyzer: Any = None) -> Optional[str]:
    """Register of one sentence (casual/polite/formal), or None when it carries none.

    With `analyzer` (a kiwipiepy ``Kiwi``) the final ending is located by morphology.
    """
    if analyzer is not None:
        return _classify_by_morphology(sentence, analyzer)
    return _classify_surface(sentence)


def _classify_surface(sentence: str) -> Optional[str]:
    core = _TRAILING.sub('', sentence.strip())
    if not core:
        return None
    words = core.split()
    if len(words) > 1 and words[-1].startswith(_ADDRESS_TERMS) and words[-2].endswith(','):
        # trailing vocative ('안녕하십니까, 어르신'): judge the part before it
        core = _TRAILING.sub('', ' '.join(words[:-1]))
        words = core.split()
    last = words[-1]
    if not _is_syllable(last[-1]):
        return None
    if len(words) == 1 and (last in _NEUTRAL_WORDS or last.startswith(_ADDRESS_TERMS)):
        return None
    if core.endswith(('요', '죠')):
        return POLITE
    if (
        (len(core) >= 3 and core[-2:] in ('니다', '니까', '시다', '시오', '시요'))
        and _has_final_b(core[-3])
    ) or core.endswith(('십시오', '시오', '읍시다', '십시다')):
        return FORMAL
    if len(core) >= 2 and core[-1] == '쇼' and _has_final_b(core[-2]):
        return FORMAL  # 주십쇼, a spoken 주십시오
    if core.endswith(_ADDRESS_TERMS) and len(words) == 1:
        return None
    return CASUAL


def classify_text(text: str, analyzer: Any = None) -> str:
    """Return the register of a whole reply: casual, polite or formal, 'mixed', or 'unknown'.

    'unknown' means that no sentence could be judged.
    """
    found = {
        r for r in (classify_sentence(s, analyzer) for s in split_sentences(text)) if r is not None
    }
    if not found:
        return UNKNOWN
    return found.pop() if len(found) == 1 else MIXED


def matches_age(text: str, age_group: str, analyzer: Any = None) -> bool:
    """Return True when the text is entirely in the register agechat uses for `age_group`."""
    return classify_text(text, analyzer) == REGISTER_FOR_AGE[age_group]


def classify_register(text: str, analyzer: Any = None) -> Optional[str]:
    """Return the age group whose register the whole text is in ('child'/'adult'/'senior').

    None when the text is mixed or has no judgeable sentence.
    """
    register = classify_text(text, analyzer)
    for age, expected in REGISTER_FOR_AGE.items():
        if register == expected:
            return age
    return None
