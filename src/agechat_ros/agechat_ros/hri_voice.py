"""Conversions for age_node's REP-155 (ROS4HRI) voice topics: values -> hri_msgs / std_msgs.

agechat has no speaker change detection, so every utterance belongs to one voice,
:data:`ANONYMOUS_SPEAKER` (the id ROS4HRI's asr_vosk uses for the same case). Topic names are
REP-155's: ``/humans/voices/tracked`` and ``/humans/voices/<id>/<what>``. The voice's age on
``/humans/voices/<id>/softbiometrics`` is an agechat extension (REP-155 defines soft biometrics for
faces only); its ``age`` is the middle year of the estimated group (:data:`GROUP_YEARS`), because
the group, not a year, is what the age model is calibrated for.
"""

from __future__ import annotations

import locale as _locale
import re

import numpy as np
from hri_msgs.msg import IdsList, LiveSpeech, SoftBiometrics

from agechat_ros import ConversionError
from agechat_ros.audio import float_to_audio_data
from agechat_ros.labels import AGE_GROUP_YEARS, AGE_GROUPS
from agechat_ros.time import ns_to_time

#: The one voice agechat reports (no speaker change detection).
ANONYMOUS_SPEAKER = 'anonymous_speaker'
#: REP-155's namespace of voices.
VOICES = '/humans/voices'
TRACKED_TOPIC = f'{VOICES}/tracked'
#: Years published as SoftBiometrics.age for each age group: the middle of its range, rounded up.
GROUP_YEARS = {group: (low + high + 1) // 2 for group, (low, high) in AGE_GROUP_YEARS.items()}


def voice_topic(voice_id: str, what: str) -> str:
    """Return ``/humans/voices/<voice_id>/<what>``; ConversionError for an unusable id."""
    if not re.fullmatch(r'[A-Za-z][A-Za-z0-9_]*', voice_id):
        raise ConversionError(f'voice id {voice_id!r} is not a valid ROS name token')
    return f'{VOICES}/{voice_id}/{what}'


def locale_of(language: str) -> str:
    """Return the REP-155 locale (``ko_KR``) of a language tag (``ko``, ``ko-KR``, ``ko_KR``).

    A bare language gets its usual region from Python's locale alias table; '' stays ''.
    """
    tag = language.strip().replace('-', '_')
    if not tag:
        return ''
    name = _locale.normalize(tag).split('.')[0].split('@')[0]
    language_part, _, region = name.partition('_')
    return f'{language_part.lower()}_{region.upper()}' if region else language_part.lower()


def make_ids_list(ids, stamp_ns: int, frame_id: str = '') -> IdsList:
    """Return an IdsList of `ids` stamped `stamp_ns`."""
    msg = IdsList()
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.header.frame_id = frame_id
    msg.ids = [str(i) for i in ids]
    return msg


def make_live_speech(
    text: str, final: bool, confidence: float, locale: str, stamp_ns: int, frame_id: str = ''
) -> LiveSpeech:
    """Return a LiveSpeech: a partial fills `incremental` only, a final both (as asr_vosk)."""
    confidence = float(confidence)
    if not np.isfinite(confidence):
        raise ConversionError(f'confidence must be finite, got {confidence!r}')
    msg = LiveSpeech()
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.header.frame_id = frame_id
    msg.incremental = text
    msg.final = text if final else ''
    msg.confidence = float(np.clip(confidence, 0.0, 1.0))
    msg.locale = locale
    return msg


def make_voice_softbiometrics(
    group: int, confidence: float, stamp_ns: int, frame_id: str = ''
) -> SoftBiometrics:
    """Return the voice's SoftBiometrics: the group's years, its confidence, gender undefined."""
    if not 0 <= int(group) < len(AGE_GROUPS):
        raise ConversionError(f'age group index must be 0..{len(AGE_GROUPS) - 1}, got {group!r}')
    confidence = float(confidence)
    if not np.isfinite(confidence):
        raise ConversionError(f'confidence must be finite, got {confidence!r}')
    msg = SoftBiometrics()
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.header.frame_id = frame_id
    msg.age = GROUP_YEARS[AGE_GROUPS[int(group)]]
    msg.age_confidence = float(np.clip(confidence, 0.0, 1.0))
    msg.gender = SoftBiometrics.UNDEFINED
    msg.gender_confidence = 0.0
    return msg


def make_voice_audio(samples: np.ndarray):
    """Return the utterance's audio as audio_common_msgs/AudioData (S16LE mono, 16 kHz)."""
    return float_to_audio_data(samples)
