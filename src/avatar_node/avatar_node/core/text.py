"""Reply text handling: cleaning, sentence chunking for streaming TTS, Hangul vowels to visemes."""

from __future__ import annotations

import re
import unicodedata
from typing import List, Optional, Tuple

#: VRM 1.0 viseme presets, in the order AvatarState lists them.
VISEMES = ('aa', 'ih', 'ou', 'ee', 'oh')

# Hangul syllables U+AC00..U+D7A3 are composed as (initial * 21 + medial) * 28 + final.
_HANGUL_FIRST, _HANGUL_LAST = 0xAC00, 0xD7A3
_MEDIALS = 'ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ'
#: Medial vowel (jungseong) -> viseme, by the mouth shape that ends the vowel.
VOWEL_VISEME = {
    'ㅏ': 'aa',
    'ㅑ': 'aa',
    'ㅘ': 'aa',
    'ㅐ': 'ee',
    'ㅒ': 'ee',
    'ㅔ': 'ee',
    'ㅖ': 'ee',
    'ㅙ': 'ee',
    'ㅚ': 'ee',
    'ㅞ': 'ee',
    'ㅓ': 'oh',
    'ㅕ': 'oh',
    'ㅗ': 'oh',
    'ㅛ': 'oh',
    'ㅝ': 'oh',
    'ㅜ': 'ou',
    'ㅠ': 'ou',
    'ㅡ': 'ou',
    'ㅟ': 'ih',
    'ㅢ': 'ih',
    'ㅣ': 'ih',
}
_LATIN_VISEME = {'a': 'aa', 'e': 'ee', 'i': 'ih', 'o': 'oh', 'u': 'ou', 'y': 'ih'}

# A sentence ends after . ! ? … (and their full-width forms) or a line break.
_SENTENCE_END = re.compile(r'(?<=[.!?…。！？~])\s+|\n+')
_CLAUSE_BREAK = re.compile(r'(?<=[,;:，、])\s+')


def clean_text(text: str) -> str:
    """Return text fit for TTS and captions.

    Control characters, emoji and symbols are removed and runs of spaces squeezed.
    """
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char == '\n':
            kept.append('\n')
        elif category.startswith('C') or category in ('So', 'Sk', 'Cs'):
            kept.append(' ')
        else:
            kept.append(char)
    lines = [' '.join(line.split()) for line in ''.join(kept).split('\n')]
    return '\n'.join(line for line in lines if line)


def split_sentences(text: str, max_chars: int = 120) -> List[str]:
    """Split text into sentences (each at most max_chars) so the first one can be spoken at once.

    Over-long sentences are cut at clause punctuation, then at spaces, then hard at max_chars.
    """
    pieces: List[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = sentence.strip()
        if not sentence:
            continue
        if len(sentence) <= max_chars:
            pieces.append(sentence)
            continue
        for clause in _CLAUSE_BREAK.split(sentence):
            pieces.extend(_cut(clause.strip(), max_chars))
    return [p for p in pieces if p]


def _cut(text: str, max_chars: int) -> List[str]:
    """Cut text into parts of at most max_chars, at spaces where possible."""
    parts = []
    while len(text) > max_chars:
        cut = text.rfind(' ', 0, max_chars + 1)
        if cut <= 0:
            cut = max_chars
        parts.append(text[:cut].strip())
        text = text[cut:].strip()
    if text:
        parts.append(text)
    return parts


def truncate(text: str, max_chars: int) -> Tuple[str, bool]:
    """Shorten text to at most max_chars, preferably at a sentence end; return (text, cut)."""
    if len(text) <= max_chars:
        return text, False
    head = text[:max_chars]
    ends = [m.end() for m in re.finditer(r'[.!?…。！？]', head)]
    if ends and ends[-1] >= max_chars // 3:
        return head[: ends[-1]].rstrip(), True
    space = head.rfind(' ')
    if space >= max_chars // 2:
        head = head[:space]
    return head.rstrip() + '…', True


def viseme_of(char: str) -> Optional[str]:
    """Return the viseme a character's vowel makes (Hangul syllables and Latin vowels), or None."""
    code = ord(char)
    if _HANGUL_FIRST <= code <= _HANGUL_LAST:
        medial = ((code - _HANGUL_FIRST) // 28) % 21
        return VOWEL_VISEME[_MEDIALS[medial]]
    if char in VOWEL_VISEME:
        return VOWEL_VISEME[char]
    return _LATIN_VISEME.get(char.lower())


def syllable_visemes(text: str) -> List[str]:
    """Return the visemes of the spoken syllables of text, in order (skipping vowel-less ones)."""
    return [v for v in (viseme_of(c) for c in text) if v is not None]
