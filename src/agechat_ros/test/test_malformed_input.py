"""Malformed input to agechat_ros' conversions: refused with a ConversionError naming the reason.

Explicit cases for each check, then property tests (hypothesis): whatever the field values, a
conversion returns a value or raises ConversionError, never another exception (a node counts a
ConversionError as a dropped message; anything else would escape its callback).
"""

import array
import math

import numpy as np
import pytest
from agechat_msgs.msg import AgeEstimate, BargeIn, DialogueReply, FaceEmotion, Utterance
from audio_common_msgs.msg import AudioInfo
from builtin_interfaces.msg import Time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import CompressedImage, Image

from agechat_ros import ConversionError
from agechat_ros.audio import (
    MAX_CHUNK_BYTES,
    audio_info,
    check_audio_info,
    pcm_s16le_to_float,
)
from agechat_ros.avatar import barge_in_input, face_emotion_probabilities, reply_input
from agechat_ros.dialogue import age_from_msg, emotion_from_msg, utterance_from_msg
from agechat_ros.image import compressed_to_bgr, image_to_bgr

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _face(**fields) -> FaceEmotion:
    msg = FaceEmotion(face_found=True, face_count=1, emotion=3, emotion_label='happy')
    msg.confidence = 0.9
    probabilities = np.full(7, 0.1 / 6, np.float32)
    probabilities[3] = 0.9
    msg.probabilities = probabilities
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


def _age(**fields) -> AgeEstimate:
    msg = AgeEstimate(utterance_id='u1', group=0, group_label='child', confidence=0.8)
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


def _utterance(**fields) -> Utterance:
    msg = Utterance(utterance_id='u1', text='안녕')
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


@pytest.mark.parametrize(
    'fields,needle',
    [
        ({'confidence': math.nan}, 'confidence'),
        ({'confidence': math.inf}, 'confidence'),
        ({'confidence': -0.1}, 'confidence'),
        ({'confidence': 1.5}, 'confidence'),
        ({'probabilities': np.array([np.nan, 0, 0, 1, 0, 0, 0], np.float32)}, 'finite'),
        ({'probabilities': np.array([0, 0, 0, np.inf, 0, 0, 0], np.float32)}, 'finite'),
        ({'raw_probabilities': np.array([0, 0, 0, -1, 0, 0, 0], np.float32)}, 'negative'),
        ({'emotion_label': 'joy'}, 'joy'),
        ({'emotion_label': 'x' * 10_000}, 'one of'),
    ],
)
def test_bad_face_emotions_are_refused_by_both_consumers(fields, needle):
    for convert in (emotion_from_msg, face_emotion_probabilities):
        with pytest.raises(ConversionError, match=needle):
            convert(_face(**fields))


def test_good_face_emotions_still_convert():
    assert emotion_from_msg(_face()).label == 'happy'
    assert emotion_from_msg(_face(emotion_label=' HAPPY ')).label == 'happy'
    no_face = _face(face_found=False, confidence=0.0, probabilities=np.zeros(7, np.float32))
    assert not emotion_from_msg(no_face).face_found
    assert face_emotion_probabilities(_face())[2] == 'happy'


@pytest.mark.parametrize(
    'fields,needle',
    [
        ({'utterance_id': ''}, 'empty utterance_id'),
        ({'utterance_id': 'u' * 129}, 'longer than 128'),
        ({'utterance_id': 'u\x00\x07'}, 'control characters'),
        ({'confidence': math.nan}, 'confidence'),
        ({'group_label': 'teen'}, 'teen'),
        ({'group': 7, 'group_label': ''}, 'group 7'),
    ],
)
def test_bad_age_estimates_are_refused(fields, needle):
    with pytest.raises(ConversionError, match=needle):
        age_from_msg(_age(**fields))


@pytest.mark.parametrize(
    'fields,needle',
    [
        ({'utterance_id': ''}, 'empty utterance_id'),
        ({'utterance_id': 'x' * 500}, 'longer than 128'),
        ({'utterance_id': 'a\nb'}, 'control characters'),
        ({'speech_end': Time(sec=1, nanosec=1_000_000_000)}, 'speech_end.nanosec'),
        ({'stt_done_time': Time(sec=1, nanosec=4_000_000_000)}, 'stt_done_time.nanosec'),
    ],
)
def test_bad_utterances_are_refused(fields, needle):
    with pytest.raises(ConversionError, match=needle):
        utterance_from_msg(_utterance(**fields))


def test_any_text_is_a_valid_utterance():
    for text in ('', 'hello 😀\x07', '뭐 ' * 5000, '\x00'):
        assert utterance_from_msg(_utterance(text=text)).text == text


@pytest.mark.parametrize(
    'fields,needle',
    [
        ({'sample_rate': 0}, 'sample_rate=0'),
        ({'sample_rate': 999}, 'sample_rate=999'),
        ({'sample_rate': 384_001}, 'sample_rate=384001'),
        ({'sample_rate': 4_294_967_295}, '1000..384000 Hz'),
        ({'channels': 0}, 'channels=0'),
        ({'channels': 33}, 'channels=33'),
        ({'sample_format': 'U8'}, 'U8'),
        ({'coding_format': 'mp3'}, 'mp3'),
    ],
)
def test_bad_audio_info_is_refused(fields, needle):
    info = audio_info(16000)
    for name, value in fields.items():
        setattr(info, name, value)
    with pytest.raises(ConversionError, match=needle):
        check_audio_info(info)


def test_audio_info_limits_are_inclusive():
    check_audio_info(audio_info(384_000, channels=32))
    check_audio_info(audio_info(1000, channels=1))


@pytest.mark.parametrize('text', ['', ' \n\t', '...', '?!', '😀🎉', '\x00\x07', '\u200b'])
def test_replies_with_nothing_to_say_are_refused(text):
    with pytest.raises(ConversionError, match='nothing to say'):
        reply_input(DialogueReply(utterance_id='r', reply_text=text))


def test_replies_with_words_are_read():
    reply = reply_input(DialogueReply(utterance_id='r', reply_text='네.', age_group='teen'))
    assert (reply.text, reply.age_group, reply.age_group_known) == ('네.', 'adult', False)


@pytest.mark.parametrize(
    'probability, level, needle',
    [
        (float('nan'), 10.0, 'voice_probability nan'),
        (1.5, 10.0, 'voice_probability 1.5'),
        (-0.1, 10.0, 'is not in [0, 1]'),
        (0.9, float('nan'), 'level_over_reference_db is NaN'),
    ],
)
def test_bad_barge_ins_are_refused(probability, level, needle):
    msg = BargeIn(reply_utterance_id='r1', voice_probability=probability)
    msg.level_over_reference_db = level
    with pytest.raises(ConversionError) as raised:
        barge_in_input(msg)
    assert needle in str(raised.value) and "'r1'" in str(raised.value)


def test_barge_ins_are_read():
    msg = BargeIn(reply_utterance_id=' r1 ', voice_probability=1.0)
    msg.header.stamp = Time(sec=12, nanosec=5)
    msg.level_over_reference_db = float('-inf')  # no far-end reference: still a barge-in
    barge = barge_in_input(msg)
    assert (barge.reply_utterance_id, barge.stamp_ns) == ('r1', 12_000_000_005)
    assert barge_in_input(BargeIn()).reply_utterance_id == ''  # empty: whatever is spoken


def test_huge_audio_chunks_are_refused():
    assert pcm_s16le_to_float(bytes(MAX_CHUNK_BYTES)).size == MAX_CHUNK_BYTES // 2
    with pytest.raises(ConversionError, match='larger than'):
        pcm_s16le_to_float(bytes(MAX_CHUNK_BYTES + 2))


# -- properties ---------------------------------------------------------------------------------
_floats32 = st.floats(width=32, allow_nan=True, allow_infinity=True)
_text = st.text(max_size=300)
_uint8 = st.integers(0, 255)
_uint32 = st.integers(0, 2**32 - 1)
_time = st.builds(Time, sec=st.integers(-(2**31), 2**31 - 1), nanosec=_uint32)


def _converts_or_refuses(convert, msg) -> None:
    try:
        convert(msg)
    except ConversionError:
        pass


@PROPERTY
@given(
    label=st.one_of(_text, st.sampled_from(['happy', 'SAD ', '', 'neutral'])),
    index=_uint8,
    confidence=_floats32,
    probabilities=st.lists(_floats32, min_size=7, max_size=7),
    raw=st.lists(_floats32, min_size=7, max_size=7),
    found=st.booleans(),
    stamp=_time,
)
def test_any_face_emotion_converts_or_is_refused(
    label, index, confidence, probabilities, raw, found, stamp
):
    msg = FaceEmotion(face_found=found, emotion=index, emotion_label=label, confidence=confidence)
    msg.probabilities = np.array(probabilities, np.float32)
    msg.raw_probabilities = np.array(raw, np.float32)
    msg.header.stamp = stamp
    _converts_or_refuses(emotion_from_msg, msg)
    _converts_or_refuses(face_emotion_probabilities, msg)


@PROPERTY
@given(uid=_text, group=_uint8, label=_text, confidence=_floats32)
def test_any_age_estimate_converts_or_is_refused(uid, group, label, confidence):
    msg = AgeEstimate(utterance_id=uid, group=group, group_label=label, confidence=confidence)
    _converts_or_refuses(age_from_msg, msg)


@PROPERTY
@given(uid=_text, text=_text, end=_time, closed=_time, stt=_time)
def test_any_utterance_converts_or_is_refused(uid, text, end, closed, stt):
    msg = Utterance(utterance_id=uid, text=text)
    msg.speech_end, msg.vad_closed_time, msg.stt_done_time = end, closed, stt
    _converts_or_refuses(utterance_from_msg, msg)


@PROPERTY
@given(uid=_text, text=_text, age=_text, emotion=_text)
def test_any_reply_converts_or_is_refused(uid, text, age, emotion):
    msg = DialogueReply(utterance_id=uid, reply_text=text, age_group=age, emotion=emotion)
    _converts_or_refuses(reply_input, msg)


@PROPERTY
@given(uid=_text, probability=_floats32, level=_floats32)
def test_any_barge_in_converts_or_is_refused(uid, probability, level):
    msg = BargeIn(reply_utterance_id=uid, voice_probability=probability)
    msg.level_over_reference_db = level
    _converts_or_refuses(barge_in_input, msg)


@PROPERTY
@given(channels=_uint8, rate=_uint32, sample_format=_text, coding=_text)
def test_any_audio_info_is_accepted_or_refused(channels, rate, sample_format, coding):
    info = AudioInfo(
        channels=channels, sample_rate=rate, sample_format=sample_format, coding_format=coding
    )
    _converts_or_refuses(check_audio_info, info)


@PROPERTY
@given(data=st.binary(max_size=4000), channels=st.integers(-2, 300))
def test_any_audio_chunk_decodes_or_is_refused(data, channels):
    _converts_or_refuses(lambda d: pcm_s16le_to_float(d, channels), data)


@PROPERTY
@given(
    height=_uint32,
    width=_uint32,
    step=_uint32,
    encoding=st.one_of(
        _text, st.sampled_from(['rgb8', 'BGR8', 'mono8', 'bgra8', '16UC1', 'yuv422'])
    ),
    data=st.binary(max_size=5000),
)
def test_any_image_converts_or_is_refused(height, width, step, encoding, data):
    msg = Image(height=height, width=width, step=step, encoding=encoding)
    msg.data = array.array('B', data)
    _converts_or_refuses(image_to_bgr, msg)


@PROPERTY
@given(
    data=st.one_of(
        st.binary(max_size=3000),
        st.binary(max_size=200).map(lambda tail: b'\xff\xd8\xff\xe0' + tail),  # JPEG start
        st.binary(max_size=200).map(lambda tail: b'\x89PNG\r\n\x1a\n' + tail),
    ),
    fmt=_text,
)
def test_any_compressed_image_converts_or_is_refused(data, fmt):
    msg = CompressedImage(format=fmt)
    msg.data = array.array('B', data)
    _converts_or_refuses(compressed_to_bgr, msg)
