"""Input cleaning and label validation."""

import pytest

from dialogue_node.core.labels import LabelError, normalize_age, normalize_emotion
from dialogue_node.core.text import clean_user_text


def test_control_characters_and_emoji_are_removed():
    clean = clean_user_text('안녕\x00하세요 😀😀\u200b  반가워 ☀\x07', 100)
    assert clean.text == '안녕하세요 반가워'
    assert clean.removed_chars >= 5 and clean.has_korean and not clean.truncated


def test_long_text_is_truncated_at_a_word_boundary():
    clean = clean_user_text('오늘 날씨 ' * 100, 50)
    assert clean.truncated and len(clean.text) <= 50 and not clean.text.endswith(' ')


def test_non_korean_and_empty():
    assert not clean_user_text('hello there', 100).has_korean
    assert clean_user_text(' \n\t😀 ', 100).text == ''


def test_labels():
    assert normalize_age('') == 'adult' and normalize_age(' Senior ') == 'senior'
    assert normalize_emotion('') == 'neutral' and normalize_emotion('SAD') == 'sad'
    with pytest.raises(LabelError, match='child, adult, senior'):
        normalize_age('teen')
    with pytest.raises(LabelError, match='neutral'):
        normalize_emotion('bored')
