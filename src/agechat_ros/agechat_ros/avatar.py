"""Conversions for avatar_node: avatar/speech state <-> agechat_msgs AvatarState/SpeechState.

Inputs (DialogueReply, FaceEmotion, BargeIn) are validated here and turned into plain Python
values; anything malformed raises :class:`agechat_ros.ConversionError` with a sentence that says
what was wrong, for :meth:`agechat_ros.health.NodeHealth.drop`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterable, Mapping, Tuple

import numpy as np
from agechat_msgs.msg import (
    AvatarState,
    BargeIn,
    DialogueReply,
    ExpressionWeight,
    FaceEmotion,
    SpeechState,
)

from agechat_ros import ConversionError
from agechat_ros.emotion import check_face_emotion_numbers
from agechat_ros.labels import AGE_GROUPS, EMOTIONS
from agechat_ros.time import time_to_ns

FER_LABELS = EMOTIONS


@dataclass
class ReplyInput:
    """What avatar_node needs from a DialogueReply."""

    utterance_id: str
    text: str
    age_group: str  # one of AGE_GROUPS ('adult' when the reply's was empty or unknown)
    emotion: str  # a FaceEmotion label ('neutral' when empty or unknown)
    age_group_known: bool  # False when the reply carried an unknown age_group text
    emotion_known: bool


def reply_input(msg: DialogueReply) -> ReplyInput:
    """Read a DialogueReply.

    Raises ConversionError when there is nothing to say: a reply_text that is empty or has no
    letter or digit (blanks, punctuation, emoji, control characters).
    """
    text = msg.reply_text or ''
    if not text.strip():
        raise ConversionError(
            f"reply '{msg.utterance_id}' has an empty reply_text; nothing to say"
        )
    if not any(char.isalnum() for char in text):
        raise ConversionError(
            f"reply '{msg.utterance_id}' has no letter or digit in its reply_text; nothing to say"
        )
    age = (msg.age_group or DialogueReply.AGE_ADULT).strip().lower()
    emotion = (msg.emotion or FaceEmotion.LABEL_NEUTRAL).strip().lower()
    return ReplyInput(
        utterance_id=msg.utterance_id,
        text=text,
        age_group=age if age in AGE_GROUPS else DialogueReply.AGE_ADULT,
        emotion=emotion if emotion in FER_LABELS else FaceEmotion.LABEL_NEUTRAL,
        age_group_known=age in AGE_GROUPS,
        emotion_known=emotion in FER_LABELS,
    )


@dataclass
class BargeInInput:
    """What avatar_node needs from a BargeIn."""

    reply_utterance_id: str  # '' = whatever is being spoken
    stamp_ns: int  # header.stamp: when age_node decided it (ROS time)


def barge_in_input(msg: BargeIn) -> BargeInInput:
    """Read a BargeIn.

    Raises ConversionError for a voice_probability that is not a number in [0, 1] or a
    level_over_reference_db that is not a number (NaN).
    """
    probability = float(msg.voice_probability)
    if not (math.isfinite(probability) and 0.0 <= probability <= 1.0):
        raise ConversionError(
            f"barge-in for reply '{msg.reply_utterance_id}': voice_probability {probability} "
            'is not in [0, 1]'
        )
    if math.isnan(float(msg.level_over_reference_db)):
        raise ConversionError(
            f"barge-in for reply '{msg.reply_utterance_id}': level_over_reference_db is NaN"
        )
    return BargeInInput(
        reply_utterance_id=(msg.reply_utterance_id or '').strip(),
        stamp_ns=time_to_ns(msg.header.stamp),
    )


def face_emotion_probabilities(msg: FaceEmotion) -> Tuple[np.ndarray, bool, str]:
    """(7 class probabilities summing to 1, face_found, label) of a FaceEmotion.

    Raises ConversionError for an unknown label, an out-of-range class index, a confidence
    outside [0, 1], or probabilities that are not finite / negative. All-zero probabilities with
    a face fall back to the label.
    """
    check_face_emotion_numbers(msg)
    label = (msg.emotion_label or '').strip().lower()
    if label not in FER_LABELS:
        raise ConversionError(
            f"unknown emotion label '{msg.emotion_label}'; expected one of {', '.join(FER_LABELS)}"
        )
    if msg.emotion >= len(FER_LABELS):
        raise ConversionError(
            f'emotion index {msg.emotion} is out of range 0..{len(FER_LABELS) - 1}'
        )
    probabilities = np.asarray(msg.probabilities, dtype=np.float64)
    if probabilities.shape != (len(FER_LABELS),) or not np.all(np.isfinite(probabilities)):
        raise ConversionError(f'probabilities must be 7 finite numbers, got {list(probabilities)}')
    if np.any(probabilities < 0):
        raise ConversionError(f'probabilities must not be negative, got {list(probabilities)}')
    total = float(probabilities.sum())
    if total <= 0:
        probabilities = np.zeros(len(FER_LABELS))
        probabilities[FER_LABELS.index(label)] = 1.0
        total = 1.0
    return (probabilities / total).astype(np.float32), bool(msg.face_found), label


def expression_weights(weights: Mapping[str, float], names: Iterable[str]) -> list:
    """Return ExpressionWeight messages for `names` in order.

    Missing names weigh 0; values are clipped to [0, 1].
    """
    result = []
    for name in names:
        value = float(weights.get(name, 0.0))
        value = 0.0 if not math.isfinite(value) else min(1.0, max(0.0, value))
        result.append(ExpressionWeight(name=name, weight=value))
    return result


def weights_dict(items: Iterable[ExpressionWeight]) -> Dict[str, float]:
    """{name: weight} of a list of ExpressionWeight messages."""
    return {item.name: float(item.weight) for item in items}


def avatar_state(
    stamp,
    frame_id: str,
    user_emotion: str,
    user_face_found: bool,
    user_weights: Mapping[str, float],
    agent_emotion: str,
    agent_weights: Mapping[str, float],
    speaking: bool,
    mouth_open: float,
    visemes: Mapping[str, float],
    utterance_id: str,
    caption: str,
    expression_names: Iterable[str],
    viseme_names: Iterable[str],
) -> AvatarState:
    """Build an AvatarState message."""
    msg = AvatarState()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.user_emotion = user_emotion
    msg.user_face_found = bool(user_face_found)
    expression_names = list(expression_names)
    msg.user_expressions = expression_weights(user_weights, expression_names)
    msg.agent_emotion = agent_emotion
    msg.agent_expressions = expression_weights(agent_weights, expression_names)
    msg.agent_speaking = bool(speaking)
    msg.mouth_open = float(min(1.0, max(0.0, mouth_open)))
    msg.agent_visemes = expression_weights(visemes, viseme_names)
    msg.utterance_id = utterance_id
    msg.caption = caption
    return msg


def speech_state(
    stamp,
    speaking: bool,
    utterance_id: str,
    reply_received_time,
    first_audio_time,
    audio_duration_s: float,
    interrupted: bool = False,
) -> SpeechState:
    """Build a SpeechState message (interrupted: a speaking=false cut short by a barge-in)."""
    msg = SpeechState()
    msg.header.stamp = stamp
    msg.speaking = bool(speaking)
    msg.utterance_id = utterance_id
    msg.reply_received_time = reply_received_time
    msg.first_audio_time = first_audio_time
    msg.audio_duration_s = float(audio_duration_s)
    msg.interrupted = bool(interrupted)
    return msg
