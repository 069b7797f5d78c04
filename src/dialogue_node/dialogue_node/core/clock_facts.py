"""Time and date questions, answered from the clock (never invented).

:func:`clock_question` recognises asking for the current time ('지금 몇 시야?',
'시간 좀 알려 줄래?') or date/weekday ('오늘 며칠이야?', '무슨 요일이에요?');
'몇 시에 자야 해?' (a time *for* something) is not one.
:func:`clock_reply` says it in the register of the age group.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Optional

TIME, DATE = 'time', 'date'

_TIME_PATTERNS = (
    re.compile(r'몇\s*시(?!\s*(에|부터|까지|쯤에|간|면))'),
    re.compile(r'(지금|현재)\s*(시간|시각)'),
    re.compile(r'시간\s*(좀|이)?\s*(알려|말해|몇|얼마나\s*됐)'),
)
_DATE_PATTERNS = (
    re.compile(r'(오늘)\s*(이|은|이\s*)?\s*(며칠|몇\s*일|몇\s*월)'),
    re.compile(r'(오늘|지금)?\s*(무슨|몇)\s*요일'),
    re.compile(r'(오늘|지금)\s*(의\s*)?날짜'),
    re.compile(r'날짜\s*(좀|가|를)?\s*(알려|뭐|말해)'),
    re.compile(r'^\s*(며칠|몇\s*일)\s*(이야|이에요|이지|인가요|이니|입니까)'),
)
_WEEKDAYS = '월화수목금토일'
_ENDINGS = {
    'child': ('이야', '야'),
    'adult': ('이에요', '예요'),
    'senior': ('입니다', '입니다'),
}
_PREFIX = {'child': '', 'adult': '', 'senior': '어르신, '}


def clock_question(text: str) -> Optional[str]:
    """Return TIME or DATE when `text` asks for the current time or date, else None."""
    if any(p.search(text) for p in _DATE_PATTERNS):
        return DATE
    if any(p.search(text) for p in _TIME_PATTERNS):
        return TIME
    return None


def _copula(noun_phrase: str, age: str) -> str:
    after_consonant, after_vowel = _ENDINGS[age]
    last = noun_phrase[-1]
    has_final = '가' <= last <= '힣' and (ord(last) - 0xAC00) % 28 != 0
    if last.isdigit():
        has_final = last in '013678'  # 영 일 삼 육 칠 팔: final consonant when read
    return noun_phrase + (after_consonant if has_final else after_vowel)


def clock_reply(kind: str, age: str, now: Optional[_dt.datetime] = None) -> str:
    """Return the current time or date as a sentence in the register of `age`."""
    now = now or _dt.datetime.now()
    if kind == TIME:
        half = '오전' if now.hour < 12 else '오후'
        hour = now.hour % 12 or 12
        phrase = f'{half} {hour}시' + (f' {now.minute}분' if now.minute else '')
        return f'{_PREFIX[age]}지금은 {_copula(phrase, age)}.'
    phrase = f'{now.month}월 {now.day}일 {_WEEKDAYS[now.weekday()]}요일'
    return f'{_PREFIX[age]}오늘은 {_copula(phrase, age)}.'
