"""A rule-based classifier of Korean speech level (register) from sentence endings.

agechat answers children in 반말 (casual, e.g. -아/-어/-야/-자/-지), adults in 해요체
(polite, -요/-죠) and seniors in 하십시오체 (formal, -ㅂ니다/-습니다/-ㅂ니까/-십시오).
Each sentence is classified by its final word; vocatives ('어르신,') and one-word
interjections ('네.') carry no register and are skipped. A text has a register when all its
classified sentences agree, else it is 'mixed'.
"""

from __future__ import annotations

import re
from typing import List, Optional

from agechat_ros.labels import CASUAL, FORMAL, POLITE, REGISTER_FOR_AGE

MIXED, UNKNOWN = 'mixed', 'unknown'

_SENTENCE_END = re.compile(r'(?<=[.!?~…])\s+|\n+')
_TRAILING = re.compile(r'[\s.!?~…,"\'’”)\]]+$')
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


def classify_sentence(sentence: str) -> Optional[str]:
    """Register of one sentence (casual/polite/formal), or None when it carries none."""
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
        len(core) >= 3 and core[-2:] in ('니다', '니까') and _has_final_b(core[-3])
    ) or core.endswith(('십시오', '시오', '읍시다', '십시다')):
        return FORMAL
    if core.endswith(_ADDRESS_TERMS) and len(words) == 1:
        return None
    return CASUAL


def classify_text(text: str) -> str:
    """Return the register of a whole reply: casual, polite or formal, 'mixed', or 'unknown'.

    'unknown' means that no sentence could be judged.
    """
    found = {r for r in (classify_sentence(s) for s in split_sentences(text)) if r is not None}
    if not found:
        return UNKNOWN
    return found.pop() if len(found) == 1 else MIXED


def matches_age(text: str, age_group: str) -> bool:
    """Return True when the text is entirely in the register agechat uses for `age_group`."""
    return classify_text(text) == REGISTER_FOR_AGE[age_group]


def classify_register(text: str) -> Optional[str]:
    """Return the age group whose register the whole text is in ('child'/'adult'/'senior').

    None when the text is mixed or has no judgeable sentence.
    """
    register = classify_text(text)
    for age, expected in REGISTER_FOR_AGE.items():
        if register == expected:
            return age
    return None
