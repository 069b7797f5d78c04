"""agechat_ros.emotion: FaceEmotion built from plain values, and back to a summary."""

from __future__ import annotations

import numpy as np
import pytest
from std_msgs.msg import Header

from agechat_msgs.msg import FaceEmotion
from agechat_ros import ConversionError
from agechat_ros.emotion import LABELS, face_emotion_msg, face_emotion_to_dict


def test_labels_follow_the_message_constants():
    assert LABELS[FaceEmotion.HAPPY] == 'happy' and LABELS[FaceEmotion.NEUTRAL] == 'neutral'


def test_message_from_a_face_result():
    header = Header(frame_id='cam')
    header.stamp.sec = 12
    probabilities = np.array([0.05, 0, 0.05, 0.7, 0.1, 0.05, 0.05], np.float32)
    msg = face_emotion_msg(
        header, True, 2, probabilities, probabilities, box=(10, 20, 30, 40), processing_ms=3.5
    )
    assert msg.header.stamp.sec == 12 and msg.header.frame_id == 'cam'
    assert msg.emotion == FaceEmotion.HAPPY and msg.emotion_label == 'happy'
    assert msg.confidence == pytest.approx(0.7) and msg.face_count == 2
    assert (
        msg.face_region.x_offset,
        msg.face_region.y_offset,
        msg.face_region.width,
        msg.face_region.height,
    ) == (10, 20, 30, 40)
    summary = face_emotion_to_dict(msg)
    assert summary['emotion'] == 'happy' and summary['probabilities']['happy'] == pytest.approx(
        0.7
    )


def test_no_face_is_neutral_with_zero_raw_probabilities():
    state = np.array([0.1, 0, 0, 0.3, 0, 0, 0.6], np.float32)
    msg = face_emotion_msg(Header(), False, 0, state, np.ones(7))
    assert not msg.face_found and msg.emotion == FaceEmotion.NEUTRAL
    assert not any(msg.raw_probabilities) and msg.face_region.width == 0


def test_malformed_values_are_refused():
    with pytest.raises(ConversionError, match='7 finite'):
        face_emotion_msg(Header(), True, 1, np.ones(6), np.ones(7))
    with pytest.raises(ConversionError, match='7 finite'):
        face_emotion_msg(Header(), True, 1, np.full(7, np.nan), np.ones(7))
    with pytest.raises(ConversionError, match='outside'):
        face_emotion_msg(Header(), True, 1, np.ones(7) / 7, np.ones(7) / 7, emotion=9)
