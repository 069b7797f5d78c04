"""Seeded generators of malformed agechat input, each message with the reason it must be dropped.

Every generator takes a ``random.Random`` and a count and returns ``(message, reason)`` pairs:
`reason` is the node's drop reason (the ``dropped_<reason>`` counter on /diagnostics). The same
seed always gives the same messages, so a failure can be replayed. What is *not* here is valid
input, however odd: text in any language and of any length (truncated), labels in another case
or with spaces around them, all-zero probabilities, unknown age groups or emotions on a reply
(spoken with the adult voice), and any SpeechState.
"""

from __future__ import annotations

import array
import math
import random
from typing import List, Tuple

import numpy as np
from agechat_msgs.msg import AgeEstimate, DialogueReply, FaceEmotion, Utterance
from agechat_msgs.srv import Chat
from audio_common_msgs.msg import AudioData, AudioInfo
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage, Image

from agechat_ros.audio import MAX_CHUNK_BYTES
from agechat_ros.image import MAX_PIXELS

EMOTIONS = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral']
AGE_GROUPS = ['child', 'adult', 'senior']
#: Labels no node knows. (No NUL character here or below: a ROS string ends at the first NUL
#: on the wire, so 'nul\x00' arrives as the valid 'nul'.)
UNKNOWN_LABELS = ['joy', 'teen', 'toddler', 'bored', 'HAPPY!', '행복', 'x' * 300, '\x7f', '😀']
#: Values a float32 field must not take.
BAD_FLOATS = [math.nan, math.inf, -math.inf, -0.5, 1.5, 1e30]
#: Ids no utterance has: empty, over-long, with control characters.
BAD_IDS = ['', 'u' * 129, 'x' * 5000, 'a\nb', 'tab\there', '\x07', 'del\x7f', '\x1b[2J']

Generated = List[Tuple[object, str]]


def _pick(rng: random.Random, choices):
    return choices[rng.randrange(len(choices))]


# -- age_node -------------------------------------------------------------------------------------
def bad_audio_chunks(
    rng: random.Random, count: int, channels: int = 1, huge: int = 2
) -> Generated:
    """Chunks of S16LE audio that are empty, not whole frames, or larger than MAX_CHUNK_BYTES."""
    frame = 2 * channels
    out: Generated = []
    for index in range(count):
        if index < huge:  # a few: each is 4 MiB on the wire
            out.append(
                (
                    AudioData(data=array.array('B', bytes(MAX_CHUNK_BYTES + frame))),
                    'malformed_audio',
                )
            )
        elif rng.random() < 0.15:
            out.append((AudioData(), 'empty_audio'))
        else:
            size = rng.randrange(1, 4000)
            size += 1 if size % frame == 0 else 0
            data = bytes(rng.getrandbits(8) for _ in range(min(size, 64))) * (size // 64 + 1)
            out.append((AudioData(data=array.array('B', data[:size])), 'malformed_audio'))
    return out


def bad_audio_infos() -> Generated:
    """AudioInfo messages age_node cannot use: other formats and codecs, odd rates and channels."""
    cases = [
        dict(sample_format='F32LE'),
        dict(sample_format=''),
        dict(sample_format='S24LE'),
        dict(coding_format='mp3'),
        dict(sample_rate=0),
        dict(sample_rate=7),
        dict(sample_rate=4_294_967_295),
        dict(channels=0),
        dict(channels=255),
    ]
    out: Generated = []
    for case in cases:
        info = AudioInfo(channels=1, sample_rate=16000, sample_format='S16LE', coding_format='pcm')
        for name, value in case.items():
            setattr(info, name, value)
        out.append((info, 'bad_audio_info'))
    return out


# -- emotion_node ---------------------------------------------------------------------------------
def _image(height: int, width: int, encoding: str, step: int, size: int) -> Image:
    msg = Image(height=height, width=width, encoding=encoding, step=step, is_bigendian=0)
    msg.header.frame_id = 'camera'
    msg.data = array.array('B', bytes(size))
    return msg


def huge_image() -> Image:
    """Return a grey frame one row over MAX_PIXELS, with all its data (16.8 MB on the wire)."""
    height, width = MAX_PIXELS // 4096 + 1, 4096
    return _image(height, width, 'mono8', width, height * width)


def bad_images(rng: random.Random, count: int, huge: int = 2) -> Generated:
    """Raw frames emotion_node must refuse: sizes, steps and data that disagree, encodings.

    The first `huge` frames are larger than MAX_PIXELS, with all their data.
    """
    out: Generated = [(huge_image(), 'bad_image') for _ in range(huge)]
    for _ in range(count - len(out)):
        height, width = rng.randrange(1, 200), rng.randrange(1, 200)
        kind = rng.randrange(7)
        if kind == 0:  # zero size
            msg = _image(_pick(rng, [0, height]), 0, 'rgb8', 0, rng.randrange(0, 100))
            msg.height = 0 if msg.width else msg.height
        elif kind == 1:  # data shorter than height * step
            msg = _image(height, width, 'rgb8', width * 3, rng.randrange(0, height * width * 3))
        elif kind == 2:  # step smaller than a row
            msg = _image(height, width, 'bgr8', rng.randrange(0, width * 3), height * width * 3)
        elif kind == 3:  # huge claimed size, little data
            msg = _image(rng.randrange(5000, 2**31), rng.randrange(5000, 2**31), 'rgb8', 0, 64)
            msg.step = msg.width * 3
        elif kind == 4:  # encodings without a conversion
            encoding = _pick(rng, ['16UC1', 'yuv422', 'bayer_rggb8', '32FC1', '', 'jpeg', 'rgb16'])
            msg = _image(height, width, encoding, width * 2, height * width * 2)
        elif kind == 5:  # a grey frame that claims to be colour
            msg = _image(height, width, 'rgba8', width, height * width)
        else:  # step and data huge relative to each other
            msg = _image(height, width, 'mono8', rng.randrange(2**20, 2**31), height * width)
        out.append((msg, 'bad_image'))
    return out


def huge_png() -> CompressedImage:
    """Return a black PNG just over MAX_PIXELS (small on the wire, 53 MB once decoded)."""
    import cv2

    side = math.isqrt(MAX_PIXELS) + 100
    ok, encoded = cv2.imencode('.png', np.zeros((side, side, 3), np.uint8))
    assert ok
    return CompressedImage(format='png', data=array.array('B', encoded.tobytes()))


def bad_compressed_images(rng: random.Random, count: int, huge: int = 1) -> Generated:
    """CompressedImage messages that do not decode: empty, garbage, headers with nothing behind.

    The first `huge` ones are valid PNGs larger than MAX_PIXELS.
    """
    headers = [b'', b'\xff\xd8\xff\xe0', b'\x89PNG\r\n\x1a\n', b'GIF89a', b'BM']
    out: Generated = [(huge_png(), 'bad_image') for _ in range(huge)]
    for _ in range(count - len(out)):
        msg = CompressedImage(format=_pick(rng, ['jpeg', 'png', 'tiff', '', 'rgb8; jpeg']))
        if rng.random() < 0.1:
            data = b''
        else:
            data = _pick(rng, headers) + bytes(
                rng.getrandbits(8) for _ in range(rng.randrange(50))
            )
        msg.data = array.array('B', data)
        out.append((msg, 'bad_image'))
    return out


# -- dialogue_node and avatar_node ----------------------------------------------------------------
def _probabilities(label: str) -> np.ndarray:
    values = np.full(7, 0.1 / 6, np.float32)
    values[EMOTIONS.index(label)] = 0.9
    return values


def face(label: str, stamp_ns: int = 0) -> FaceEmotion:
    """Return a valid FaceEmotion for `label` (a face, probabilities peaked at it)."""
    msg = FaceEmotion(face_found=True, face_count=1, emotion=EMOTIONS.index(label))
    msg.emotion_label, msg.confidence = label, 0.9
    msg.probabilities = msg.raw_probabilities = _probabilities(label)
    msg.header.stamp = Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return msg


def bad_face_emotions(rng: random.Random, count: int) -> Generated:
    """FaceEmotion messages both consumers refuse: unknown labels, NaN, out-of-range numbers."""
    out: Generated = []
    for _ in range(count):
        msg = face(_pick(rng, EMOTIONS))
        kind = rng.randrange(5)
        if kind == 0:
            msg.emotion_label = _pick(rng, UNKNOWN_LABELS)
        elif kind == 1:
            msg.emotion_label, msg.emotion = '', rng.randrange(7, 256)
        elif kind == 2:
            msg.confidence = _pick(rng, BAD_FLOATS)
        else:
            values = _probabilities(msg.emotion_label)
            values[rng.randrange(7)] = _pick(rng, [math.nan, math.inf, -math.inf, -0.25])
            if kind == 3:
                msg.probabilities = values
            else:
                msg.raw_probabilities = values
        out.append((msg, 'bad_face_emotion'))
    return out


def age(uid: str, group: str) -> AgeEstimate:
    """Return a valid AgeEstimate for utterance `uid`."""
    return AgeEstimate(
        utterance_id=uid, group=AGE_GROUPS.index(group), group_label=group, confidence=0.9
    )


def bad_age_estimates(rng: random.Random, count: int) -> Generated:
    """AgeEstimate messages dialogue_node refuses: labels, groups, confidences, ids."""
    out: Generated = []
    for index in range(count):
        msg = age(f'fuzz-{index}', _pick(rng, AGE_GROUPS))
        kind = rng.randrange(5)
        if kind == 0:
            msg.group_label = _pick(rng, UNKNOWN_LABELS)
        elif kind == 1:
            msg.group_label, msg.group = '', rng.randrange(3, 256)
        elif kind == 2:  # index and label contradict each other
            msg.group = (msg.group + rng.randrange(1, 3)) % 3
        elif kind == 3:
            msg.confidence = _pick(rng, BAD_FLOATS)
        else:
            msg.utterance_id = _pick(rng, BAD_IDS)
        out.append((msg, 'bad_age_estimate'))
    return out


def utterance(uid: str, text: str, speech_end_ns: int = 0) -> Utterance:
    """Return a valid Utterance."""
    msg = Utterance(utterance_id=uid, text=text, language='ko', recognizer='fuzz')
    msg.speech_end = Time(sec=speech_end_ns // 10**9, nanosec=speech_end_ns % 10**9)
    msg.header.stamp = msg.speech_end
    return msg


def bad_utterances(rng: random.Random, count: int) -> Generated:
    """Utterance messages that cannot be answered: ids no reply can carry, impossible instants."""
    out: Generated = []
    for index in range(count):
        msg = utterance(f'fuzz-{index}', _pick(rng, ['안녕', '', 'hello', '뭐 ' * 400]))
        if rng.random() < 0.7:
            msg.utterance_id = _pick(rng, BAD_IDS)
        else:
            name = _pick(rng, ['speech_end', 'vad_closed_time', 'stt_done_time'])
            setattr(msg, name, Time(sec=rng.randrange(2**31), nanosec=rng.randrange(10**9, 2**32)))
        out.append((msg, 'bad_utterance'))
    return out


def bad_replies(rng: random.Random, count: int) -> Generated:
    """DialogueReply messages with nothing to say (avatar_node's 'empty_reply')."""
    blanks = ['', ' ', '\n\t ', '😀🎉', '\x07\x1b', '...', '?!', '\u200b\u200b', '🙂 🙃 ' * 50]
    out: Generated = []
    for index in range(count):
        msg = DialogueReply(
            utterance_id=_pick(rng, [f'fuzz-{index}', *BAD_IDS]),
            reply_text=_pick(rng, blanks),
            age_group=_pick(rng, AGE_GROUPS + UNKNOWN_LABELS),
            emotion=_pick(rng, EMOTIONS + UNKNOWN_LABELS),
        )
        out.append((msg, 'empty_reply'))
    return out


def bad_chat_requests(rng: random.Random, count: int) -> List[Tuple[Chat.Request, str]]:
    """Chat requests dialogue_node refuses, each with a word its error text must contain."""
    korean = ['안녕', '배고파', '오늘 날씨 어때?']
    out = []
    for _ in range(count):
        kind = rng.randrange(5)
        if kind == 0:
            request, needle = (
                Chat.Request(text=_pick(rng, ['', ' ', '\n', '😀\x07', '🙂🙃'])),
                'empty',
            )
        elif kind == 1:
            text = _pick(rng, ['how are you', 'bonjour', 'привет', '你好', '12345', 'ok?'])
            request, needle = Chat.Request(text=text), 'Korean'
        elif kind == 2:
            label = _pick(rng, UNKNOWN_LABELS[:-2])
            request, needle = Chat.Request(text=_pick(rng, korean), age_group=label), 'senior'
        else:
            label = _pick(rng, UNKNOWN_LABELS[:-2])
            request, needle = Chat.Request(text=_pick(rng, korean), emotion=label), 'neutral'
        request.conversation_id = _pick(rng, ['', 'fuzz', 'x' * 300])
        out.append((request, needle))
    return out
