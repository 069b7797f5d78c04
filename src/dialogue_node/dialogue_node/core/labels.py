"""Conditioning labels: the three age groups, the seven FER2013 emotions, and their validation."""

from __future__ import annotations

from agechat_ros.labels import AGE_GROUPS, DEFAULT_EMOTION, EMOTIONS
from agechat_ros.labels import DEFAULT_AGE_GROUP as DEFAULT_AGE

__all__ = [
    'AGE_GROUPS',
    'EMOTIONS',
    'DEFAULT_AGE',
    'DEFAULT_EMOTION',
    'LabelError',
    'normalize_age',
    'normalize_emotion',
]


class LabelError(ValueError):
    """An age group or emotion label that the model does not know; the text lists valid ones."""


def normalize_age(label: str, empty_means_default: bool = True) -> str:
    """Return the canonical age group for `label` (case/space-insensitive); '' gives 'adult'."""
    value = (label or '').strip().lower()
    if not value and empty_means_default:
        return DEFAULT_AGE
    if value not in AGE_GROUPS:
        raise LabelError(
            f"unknown age group '{label}'; use one of {', '.join(AGE_GROUPS)} (empty means adult)"
        )
    return value


def normalize_emotion(label: str, empty_means_default: bool = True) -> str:
    """Return the canonical emotion for `label` (case/space-insensitive); '' gives 'neutral'."""
    value = (label or '').strip().lower()
    if not value and empty_means_default:
        return DEFAULT_EMOTION
    if value not in EMOTIONS:
        raise LabelError(
            f"unknown emotion '{label}'; use one of {', '.join(EMOTIONS)} (empty means neutral)"
        )
    return value
