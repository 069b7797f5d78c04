"""Conversions for emotion_node: face-emotion results <-> agechat_msgs/FaceEmotion.

:func:`face_emotion_msg` builds the message from plain values (so this module does not depend on
emotion_node); :func:`face_emotion_to_dict` gives consumers (dialogue, avatar) a plain summary.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
from agechat_msgs.msg import FaceEmotion
from sensor_msgs.msg import RegionOfInterest

from agechat_ros import ConversionError

#: Class labels in FaceEmotion constant order.
LABELS = (
    FaceEmotion.LABEL_ANGRY,
    FaceEmotion.LABEL_DISGUST,
    FaceEmotion.LABEL_FEAR,
    FaceEmotion.LABEL_HAPPY,
    FaceEmotion.LABEL_SAD,
    FaceEmotion.LABEL_SURPRISE,
    FaceEmotion.LABEL_NEUTRAL,
)


def _probability_array(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float32).reshape(-1)
    if array.shape != (len(LABELS),) or not np.all(np.isfinite(array)):
        raise ConversionError(f'{name} must be {len(LABELS)} finite numbers, got {array.tolist()}')
    return array


def check_face_emotion_numbers(msg: FaceEmotion) -> None:
    """Raise ConversionError unless a FaceEmotion's confidence and probabilities are sane.

    The confidence must be finite and in [0, 1]; both probability vectors must be 7 finite,
    non-negative numbers (all zeros is allowed: no face). Labels are checked by the consumers.
    """
    confidence = float(msg.confidence)
    if not 0.0 <= confidence <= 1.0:  # also false for NaN
        raise ConversionError(f'FaceEmotion confidence {confidence} is outside [0, 1]')
    for name in ('probabilities', 'raw_probabilities'):
        values = np.asarray(getattr(msg, name), dtype=np.float64).reshape(-1)
        if values.shape != (len(LABELS),) or not np.all(np.isfinite(values)):
            raise ConversionError(f'FaceEmotion {name} must be 7 finite numbers, got {values}')
        if np.any(values < 0):
            raise ConversionError(f'FaceEmotion {name} must not be negative, got {values}')


def face_emotion_msg(
    header,
    face_found: bool,
    face_count: int,
    probabilities: Sequence[float],
    raw_probabilities: Sequence[float],
    box=(0, 0, 0, 0),
    processed_time=None,
    processing_ms: float = 0.0,
    emotion: int = None,
) -> FaceEmotion:
    """Return a FaceEmotion for one frame.

    `header` is the source image's header (stamp and frame kept). `emotion` defaults to the argmax
    of `probabilities` when a face was found and to NEUTRAL otherwise; `box` is (x, y, w, h) in
    pixels.
    """
    smoothed = _probability_array(probabilities, 'probabilities')
    raw = _probability_array(raw_probabilities, 'raw_probabilities')
    if emotion is None:
        emotion = int(np.argmax(smoothed)) if face_found else FaceEmotion.NEUTRAL
    if not 0 <= int(emotion) < len(LABELS):
        raise ConversionError(f'emotion index {emotion} is outside 0..{len(LABELS) - 1}')
    msg = FaceEmotion()
    msg.header = header
    msg.face_found = bool(face_found)
    msg.face_count = int(face_count)
    msg.emotion = int(emotion)
    msg.emotion_label = LABELS[int(emotion)]
    msg.confidence = float(min(1.0, max(0.0, smoothed[int(emotion)])))
    msg.probabilities = smoothed
    msg.raw_probabilities = raw if face_found else np.zeros(len(LABELS), np.float32)
    if face_found:
        x, y, w, h = (max(0, int(v)) for v in box)
        msg.face_region = RegionOfInterest(
            x_offset=x, y_offset=y, width=w, height=h, do_rectify=False
        )
    if processed_time is not None:
        msg.processed_time = processed_time
    msg.processing_ms = float(processing_ms)
    return msg


def face_emotion_to_dict(msg: FaceEmotion) -> Dict[str, object]:
    """Summarise a FaceEmotion: label, confidence, face_found and {label: probability}."""
    return {
        'face_found': bool(msg.face_found),
        'emotion': LABELS[msg.emotion] if msg.emotion < len(LABELS) else FaceEmotion.LABEL_NEUTRAL,
        'confidence': float(msg.confidence),
        'probabilities': {
            label: float(p) for label, p in zip(LABELS, msg.probabilities, strict=True)
        },
    }
