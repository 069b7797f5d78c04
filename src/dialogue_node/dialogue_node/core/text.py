"""Cleaning of user text before it reaches the tokenizer.

Unicode normalisation, control characters and emoji removed, whitespace collapsed, length capped.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_SPACES = re.compile(r'\s+')


@dataclass
class CleanText:
    """Result of :func:`clean_user_text`."""

    text: str
    truncated: bool
    removed_chars: int
    has_korean: bool


def is_hangul(char: str) -> bool:
    """Return True for Hangul syllables and jamo."""
    code = ord(char)
    return 0xAC00 <= code <= 0xD7A3 or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F


def _keep(char: str) -> bool:
    if char.isspace():
        return True
    category = unicodedata.category(char)
    # C*: control/format/unassigned/private; So: symbols incl. emoji; Sk/Mn: leftovers of emoji
    # sequences
    if category[0] == 'C' or category in ('So', 'Sk', 'Cs'):
        return False
    if category == 'Mn' and not is_hangul(char):
        return False
    return True


def clean_user_text(text: str, max_chars: int) -> CleanText:
    """NFKC-normalise, drop control characters and emoji, collapse spaces, cut to `max_chars`."""
    normalized = unicodedata.normalize('NFKC', text or '')
    kept = ''.join(c for c in normalized if _keep(c))
    removed = len(normalized) - len(kept)
    kept = _SPACES.sub(' ', kept).strip()
    truncated = len(kept) > max_chars
    if truncated:
        cut = kept[:max_chars]
        space = cut.rfind(' ')
        kept = (cut[:space] if space > max_chars // 2 else cut).strip()
    return CleanText(
        text=kept,
        truncated=truncated,
        removed_chars=removed,
        has_korean=any(is_hangul(c) for c in kept),
    )
