"""Conversions for dialogue_node: Utterance/AgeEstimate/FaceEmotion in, DialogueReply and Chat out.

Plain dataclasses carry the values to the node's pure core, which never sees a ROS message.
Malformed input raises :class:`agechat_ros.ConversionError` with a readable reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from agechat_msgs.msg import AgeEstimate, DialogueReply, FaceEmotion, Utterance

from agechat_ros import ConversionError
from agechat_ros.emotion import check_face_emotion_numbers
from agechat_ros.labels import AGE_GROUPS, EMOTIONS
from agechat_ros.time import ns_to_time, time_to_ns

AGE_LABELS = AGE_GROUPS  # indexed by AgeEstimate.GROUP_*
EMOTION_LABELS = EMOTIONS  # indexed by FaceEmotion.ANGRY..NEUTRAL
#: Longest utterance id accepted (age_node's ids are about 20 characters).
MAX_ID_CHARS = 128
NS_PER_S = 1_000_000_000


def check_utterance_id(utterance_id: str, what: str) -> None:
    """Raise ConversionError for an empty, over-long or unprintable utterance id."""
    if not utterance_id:
        raise ConversionError(f'{what} has an empty utterance_id: it cannot be paired')
    if len(utterance_id) > MAX_ID_CHARS:
        raise ConversionError(
            f'{what} utterance_id of {len(utterance_id)} characters is longer than {MAX_ID_CHARS}'
        )
    if not utterance_id.isprintable():
        raise ConversionError(f'{what} utterance_id {utterance_id!r} has control characters')


@dataclass
class UtteranceIn:
    """What dialogue_node needs from an Utterance."""

    utterance_id: str
    text: str
    speech_end_ns: int
    vad_closed_ns: int
    stt_done_ns: int


@dataclass
class AgeIn:
    """An age-group estimate for one utterance."""

    utterance_id: str
    group: str
    confidence: float
    unsure: bool = False  # the estimator's own low-confidence flag (AgeEstimate.unsure)


@dataclass
class EmotionIn:
    """A face-emotion result: label, confidence, image stamp and whether a face was seen."""

    label: str
    confidence: float
    stamp_ns: int
    face_found: bool


@dataclass
class ReplyOut:
    """Everything a DialogueReply carries (times in ns; 0 = not recorded)."""

    utterance_id: str
    user_text: str
    reply_text: str
    age_group: str
    age_confidence: float
    age_source: str
    emotion: str
    emotion_confidence: float
    emotion_source: str
    model: str
    new_tokens: int
    hit_token_cap: bool
    times_ns: dict = field(default_factory=dict)


def utterance_from_msg(msg: Utterance) -> UtteranceIn:
    """Values of an Utterance (text may be empty: the recogniser heard no words).

    Raises ConversionError for an empty, over-long or unprintable utterance id and for instants
    whose nanosec field is not below one second. Text of any length and language is valid input
    (the engine truncates it and answers non-Korean text with a fallback).
    """
    check_utterance_id(msg.utterance_id, 'Utterance')
    for name in ('speech_end', 'vad_closed_time', 'stt_done_time'):
        if getattr(msg, name).nanosec >= NS_PER_S:
            raise ConversionError(
                f'Utterance {name}.nanosec {getattr(msg, name).nanosec} is not below 1e9'
            )
    return UtteranceIn(
        utterance_id=msg.utterance_id,
        text=msg.text,
        speech_end_ns=time_to_ns(msg.speech_end),
        vad_closed_ns=time_to_ns(msg.vad_closed_time),
        stt_done_ns=time_to_ns(msg.stt_done_time),
    )


def age_from_msg(msg: AgeEstimate) -> AgeIn:
    """Return the age group of an AgeEstimate.

    ConversionError for an unknown label or group index, a confidence outside [0, 1] (or NaN),
    and an empty, over-long or unprintable utterance id (an estimate without its utterance's id
    cannot be paired).
    """
    check_utterance_id(msg.utterance_id, 'AgeEstimate')
    label = msg.group_label.strip().lower()
    if label:
        if label not in AGE_LABELS:
            raise ConversionError(
                f"AgeEstimate group_label '{msg.group_label}' is not one of "
                f"{', '.join(AGE_LABELS)}"
            )
        if msg.group < len(AGE_LABELS) and AGE_LABELS[msg.group] != label:
            raise ConversionError(
                f"AgeEstimate group {msg.group} ({AGE_LABELS[msg.group]}) contradicts "
                f"group_label '{msg.group_label}'"
            )
    elif msg.group < len(AGE_LABELS):
        label = AGE_LABELS[msg.group]
    else:
        raise ConversionError(
            f'AgeEstimate group {msg.group} is not 0 (child), 1 (adult) or 2 (senior)'
        )
    confidence = float(msg.confidence)
    if not 0.0 <= confidence <= 1.0:
        raise ConversionError(f'AgeEstimate confidence {confidence} is outside [0, 1]')
    return AgeIn(msg.utterance_id, label, confidence, bool(msg.unsure))


def emotion_from_msg(msg: FaceEmotion) -> EmotionIn:
    """Return the emotion of a FaceEmotion.

    ConversionError for an unknown label (or, without a label, class index), a confidence
    outside [0, 1] and probabilities that are not 7 finite non-negative numbers.
    """
    check_face_emotion_numbers(msg)
    label = msg.emotion_label.strip().lower()
    if not label and msg.emotion < len(EMOTION_LABELS):
        label = EMOTION_LABELS[msg.emotion]
    if label not in EMOTION_LABELS:
        raise ConversionError(
            f"FaceEmotion emotion_label '{msg.emotion_label}' is not one of "
            f"{', '.join(EMOTION_LABELS)}"
        )
    return EmotionIn(
        label, float(msg.confidence), time_to_ns(msg.header.stamp), bool(msg.face_found)
    )


def reply_to_msg(reply: ReplyOut, stamp_ns: int) -> DialogueReply:
    """Build a DialogueReply from the node's values; times not recorded stay zero."""
    msg = DialogueReply()
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.utterance_id = reply.utterance_id
    msg.user_text = reply.user_text
    msg.reply_text = reply.reply_text
    msg.age_group = reply.age_group
    msg.age_confidence = float(reply.age_confidence)
    msg.age_source = reply.age_source
    msg.emotion = reply.emotion
    msg.emotion_confidence = float(reply.emotion_confidence)
    msg.emotion_source = reply.emotion_source
    msg.model = reply.model
    msg.new_tokens = int(reply.new_tokens)
    msg.hit_token_cap = bool(reply.hit_token_cap)
    for name in (
        'speech_end',
        'vad_closed_time',
        'stt_done_time',
        'utterance_received_time',
        'generation_start_time',
        'generation_end_time',
    ):
        value: Optional[int] = reply.times_ns.get(name)
        if value:
            setattr(msg, name, ns_to_time(value))
    return msg
