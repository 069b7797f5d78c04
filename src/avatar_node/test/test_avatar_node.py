"""avatar_node over real DDS.

Replies become Korean speech (audio chunks + speaking state), the agent's mouth follows the audio,
the user avatar mirrors face emotions (state and pixels), and bad input or a missing voice never
crashes the node.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from agechat_msgs.msg import AvatarState, DialogueReply, FaceEmotion, SpeechState
from audio_common_msgs.msg import AudioData, AudioInfo
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image

from agechat_ros import qos
from agechat_ros.audio import pcm_s16le_to_float
from agechat_ros.avatar import weights_dict
from agechat_ros.image import image_to_bgr
from agechat_ros.time import time_to_ns
from agechat_ros.testing import (
    SILENCE_WINDOW_S,
    activate,
    assert_refused,
    deactivate,
    wait_until,
)

FER = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral']
SMALL = {'width': 640, 'height': 360, 'fps': 15.0, 'speaking_tail_ms': 200}

SHORT = '안녕하세요, 반가워요.'
LONG = (
    '안녕하세요, 반가워요. 오늘은 날씨가 참 맑고 따뜻하네요. '
    '점심은 맛있게 드셨어요? 저는 이야기를 나누는 게 정말 즐거워요.'
)


def make_reply(uid: str, text: str, age: str = 'adult', emotion: str = 'neutral') -> DialogueReply:
    return DialogueReply(
        utterance_id=uid, reply_text=text, user_text='테스트', age_group=age, emotion=emotion
    )


def make_face(label: str, found: bool = True) -> FaceEmotion:
    index = FER.index(label) if label in FER else 6
    probabilities = np.full(7, 0.15 / 6, np.float32)
    probabilities[index] = 0.85
    msg = FaceEmotion(
        face_found=found,
        face_count=1 if found else 0,
        emotion=index,
        emotion_label=label,
        confidence=0.85,
    )
    msg.probabilities = probabilities
    return msg


class Latest:
    """Keeps only the newest message of a topic, and arrival times (images are too big to keep)."""

    def __init__(self, graph, topic, msg_type, profile):
        self.msg, self.times, self._lock = None, [], threading.Lock()
        graph.node.create_subscription(msg_type, topic, self._on, profile)

    def _on(self, msg):
        with self._lock:
            self.msg = msg
            self.times.append(time.monotonic())

    def get(self):
        with self._lock:
            return self.msg, len(self.times)


def start_avatar(graph, **parameters):
    params = dict(SMALL)
    params.update(parameters)
    return graph.start_node('avatar_node', 'avatar_node', parameters=params)


def speak_and_wait(
    graph, pub, speech, audio, uid, text, age='adult', emotion='neutral', timeout=40.0
):
    """Publish a reply and wait until it has been spoken; return (its speech states, its PCM)."""
    audio.clear()
    pub.publish(make_reply(uid, text, age, emotion))
    states = speech.wait_for(
        1, timeout, lambda ms: any(m.utterance_id == uid and not m.speaking for m in ms)
    )
    chunks = audio.snapshot()
    pcm = (
        np.concatenate([pcm_s16le_to_float(bytes(c.data)) for c in chunks])
        if chunks
        else np.zeros(0)
    )
    return [m for m in states if m.utterance_id == uid], pcm


def test_reply_is_spoken_and_the_agent_mouth_follows_the_audio(graph):
    node = start_avatar(graph)
    info = graph.collect('agechat/tts/audio_info', AudioInfo, qos.LATCHED)
    speech = graph.collect('agechat/speech_state', SpeechState, qos.LATCHED)
    audio = graph.collect('agechat/tts/audio', AudioData, qos.AUDIO_STREAM)
    states = graph.collect('agechat/avatar/state', AvatarState, qos.EVENTS)
    pub = graph.publisher('agechat/reply', DialogueReply, qos.EVENTS)
    graph.wait_for_subscribers(pub)
    graph.wait_for_publishers('agechat/tts/audio')

    (audio_info,) = info.wait_for(1, 20)
    assert (audio_info.sample_rate, audio_info.channels, audio_info.sample_format) == (
        22050,
        1,
        'S16LE',
    )
    speech.wait_for(1, 20)  # latched idle state at start
    assert speech.snapshot()[-1].speaking is False
    states.wait_for(5, 20)

    short_states, short_pcm = speak_and_wait(graph, pub, speech, audio, 'short', SHORT)
    long_states, long_pcm = speak_and_wait(graph, pub, speech, audio, 'long', LONG)
    senior_states, senior_pcm = speak_and_wait(
        graph, pub, speech, audio, 'senior', SHORT, age='senior'
    )
    child_states, child_pcm = speak_and_wait(
        graph, pub, speech, audio, 'child', SHORT, age='child'
    )

    for name, seq, pcm in (('short', short_states, short_pcm), ('long', long_states, long_pcm)):
        assert [m.speaking for m in seq] == [True, False], name
        start, end = seq
        received, first = time_to_ns(start.reply_received_time), time_to_ns(start.first_audio_time)
        assert 0 < received <= first < received + 1_000_000_000, (
            f'{name}: first audio 1 s or more after the reply'
        )
        assert time_to_ns(end.first_audio_time) == first
        duration = len(pcm) / 22050
        assert end.audio_duration_s == pytest.approx(duration, abs=0.03), name
        assert np.sqrt(np.mean(pcm**2)) > 0.03, f'{name}: TTS audio is silent'
        # speaking goes false only after the audio has played (real-time pacing) plus the tail
        assert time_to_ns(end.header.stamp) - first >= (duration + 0.15) * 1e9, name
    short_duration, long_duration = len(short_pcm) / 22050, len(long_pcm) / 22050
    assert 0.8 < short_duration < 6.0
    assert long_duration > 2.5 * short_duration, 'audio length does not grow with the text'
    # the voice adapts to the listener: seniors get slower speech than children
    assert len(senior_pcm) > 1.2 * len(child_pcm), (len(senior_pcm), len(child_pcm))

    # the agent's mouth moves with the envelope while speaking, and is shut when idle
    all_states = states.snapshot()
    talking = [s for s in all_states if s.agent_speaking and s.utterance_id == 'long']
    assert len(talking) >= 15
    mouth = np.array([s.mouth_open for s in talking])
    assert mouth.max() > 0.5 and (mouth < 0.2).sum() >= 2 and mouth.std() > 0.1, mouth.round(2)
    visemes = {v.name for s in talking for v in s.agent_visemes if v.weight > 0.05}
    assert {v.name for v in talking[0].agent_visemes} == {'aa', 'ih', 'ou', 'ee', 'oh'}
    assert len(visemes) >= 3, visemes
    assert all(s.caption.startswith('안녕하세요') for s in talking)
    idle = [s for s in all_states if not s.agent_speaking]
    assert idle and all(s.mouth_open == 0.0 for s in idle)
    # rendering keeps its rate while speaking (state is published once per rendered frame)
    stamps = [time_to_ns(s.header.stamp) / 1e9 for s in talking]
    speaking_fps = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert speaking_fps > 0.75 * SMALL['fps'], speaking_fps
    assert node.alive()


def _user_region(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    return frame[int(0.15 * height) : int(0.6 * height), : width // 2].astype(np.float32)


def test_face_emotion_moves_the_user_avatar_in_state_and_pixels(graph):
    start_avatar(graph, idle_animation=False, user_smoothing_s=0.1)
    states = graph.collect('agechat/avatar/state', AvatarState, qos.EVENTS)
    image = Latest(graph, 'agechat/avatar/image', Image, qos.SENSOR_DATA)
    pub = graph.publisher('agechat/face_emotion', FaceEmotion, qos.EVENTS)
    graph.wait_for_subscribers(pub)
    wait_until(lambda: image.get()[1] > 3, 20, 'avatar images')

    frames = {}
    for label, vrm, level in (
        ('happy', 'happy', 0.8),
        ('sad', 'sad', 0.8),
        ('angry', 'angry', 0.8),
        ('happy', 'happy', 0.8),
    ):
        states.clear()
        deadline = time.monotonic() + 15
        while True:
            pub.publish(make_face(label))
            latest = states.snapshot()[-1:] or [None]
            if (
                latest[0] is not None
                and weights_dict(latest[0].user_expressions).get(vrm, 0) > level
            ):
                break
            assert time.monotonic() < deadline, f'user expression never reached {vrm} > {level}'
            time.sleep(0.1)
        assert latest[0].user_emotion == label and latest[0].user_face_found
        time.sleep(0.6)  # let the smoothing settle, then take a frame rendered after it
        settled_ns = time.time_ns()
        wait_until(
            lambda settled_ns=settled_ns: (
                image.get()[0] is not None and time_to_ns(image.get()[0].header.stamp) > settled_ns
            ),
            10,
            'a frame rendered after the expression settled',
        )
        frames.setdefault(label, []).append(image_to_bgr(image.get()[0]))

    happy_a, happy_b = frames['happy']
    sad, angry = frames['sad'][0], frames['angry'][0]
    assert happy_a.shape == (360, 640, 3)

    def diff(a, b):
        return float(np.abs(_user_region(a) - _user_region(b)).mean())

    same = diff(happy_a, happy_b)
    assert same < 0.5, f'the same emotion rendered differently ({same:.2f})'
    for name, other in (('sad', sad), ('angry', angry)):
        assert diff(happy_a, other) > 1.0 + 4 * same, (
            f'happy and {name} look alike on the user avatar'
        )
    assert diff(sad, angry) > 0.5
    # the agent side (idle, no reply) does not change with the user's emotion
    right = np.s_[int(0.15 * 360) : int(0.6 * 360), 320:]
    assert float(np.abs(happy_a[right].astype(float) - sad[right].astype(float)).mean()) < 0.5

    # no face: the user avatar relaxes towards neutral and says so
    for _ in range(5):
        pub.publish(make_face('neutral', found=False))
    states.wait_for(1, 10, lambda ms: not ms[-1].user_face_found)


def _diagnostic_values(msgs) -> dict:
    values = {}
    for array in msgs:
        for status in array.status:
            if 'avatar_node' in status.name:
                values.update({kv.key: kv.value for kv in status.values})
    return values


def test_bad_input_is_dropped_and_the_node_keeps_going(graph):
    node = start_avatar(graph, max_reply_chars=40, max_pending_replies=1, speaking_tail_ms=100)
    diagnostics = graph.collect('/diagnostics', DiagnosticArray)
    speech = graph.collect('agechat/speech_state', SpeechState, qos.LATCHED)
    states = graph.collect('agechat/avatar/state', AvatarState, qos.EVENTS)
    replies = graph.publisher('agechat/reply', DialogueReply, qos.EVENTS)
    faces = graph.publisher('agechat/face_emotion', FaceEmotion, qos.EVENTS)
    graph.wait_for_subscribers(replies)
    graph.wait_for_subscribers(faces)

    replies.publish(make_reply('empty', ''))
    replies.publish(make_reply('blank', '   \n\t '))
    replies.publish(make_reply('emoji', '😀🎉'))
    bad_faces = [make_face('joy'), make_face('happy'), make_face('happy')]
    bad_faces[1].probabilities = np.array([np.nan, 0, 0, 1, 0, 0, 0], np.float32)
    bad_faces[2].emotion = 42
    for msg in bad_faces:
        faces.publish(msg)
    long_text = '아주 긴 대답입니다. ' * 500  # 6,000 characters
    replies.publish(make_reply('long', long_text, age='toddler', emotion='bored'))
    replies.publish(make_reply('queued', '네.'))
    replies.publish(
        make_reply('overflow', '네.')
    )  # max_pending_replies=1: refused while 'long' waits/plays

    values = _diagnostic_values(
        diagnostics.wait_for(
            1,
            30,
            lambda ms: (
                int(_diagnostic_values(ms).get('dropped_empty_reply', 0)) >= 3
                and int(_diagnostic_values(ms).get('dropped_bad_face_emotion', 0)) >= 3
                and int(_diagnostic_values(ms).get('dropped_queue_full', 0)) >= 1
            ),
        )
    )
    assert values['replies_truncated'] == '1' and values['unknown_age_group'] == '1'
    seq = speech.wait_for(
        1, 30, lambda ms: any(m.utterance_id == 'long' and not m.speaking for m in ms)
    )
    long_end = [m for m in seq if m.utterance_id == 'long' and not m.speaking][0]
    assert 1.0 < long_end.audio_duration_s < 12.0, (
        'the very long reply was not cut to max_reply_chars'
    )
    assert not any(m.utterance_id in ('empty', 'blank', 'emoji') for m in speech.snapshot())

    # still alive and still working after all of it
    faces.publish(make_face('surprise'))
    states.wait_for(1, 10, lambda ms: ms[-1].user_emotion == 'surprise')
    assert node.alive()


@pytest.mark.parametrize(
    'parameters,env,needle',
    [
        ({'voice': 'zz'}, None, "voice 'zz' is missing"),
        ({'voice': 'ko+nosuchvariant'}, None, "variant 'nosuchvariant' is missing"),
        (
            {},
            {'ESPEAK_DATA_PATH': '/nonexistent/espeak-ng-data'},
            'espeak-ng data (phontab) not found',
        ),
        (
            {'font_path': '/nonexistent/font.ttf'},
            None,
            "font_path '/nonexistent/font.ttf' does not exist",
        ),
        ({'fps': 0.0, 'rate_wpm': [160, 170]}, None, 'rate_wpm'),
    ],
    ids=[
        'unknown-voice',
        'unknown-variant',
        'missing-espeak-data',
        'missing-font',
        'bad-parameters',
    ],
)
def test_missing_voice_or_bad_parameters_fail_at_start_with_a_clear_message(
    graph, parameters, env, needle
):
    node = graph.start_node('avatar_node', 'avatar_node', parameters=parameters or None, env=env)
    wait_until(lambda: not node.alive(), 20, 'avatar_node to exit')
    assert node.popen.returncode == 2
    log = node.log()
    assert '[FATAL]' in log and needle in log, log
    assert 'Traceback' not in log


def test_local_playback_receives_the_spoken_pcm(graph, tmp_path):
    played = tmp_path / 'played.raw'
    start_avatar(graph, playback=True, playback_command=f'tee {played}')
    speech = graph.collect('agechat/speech_state', SpeechState, qos.LATCHED)
    audio = graph.collect('agechat/tts/audio', AudioData, qos.AUDIO_STREAM)
    pub = graph.publisher('agechat/reply', DialogueReply, qos.EVENTS)
    graph.wait_for_subscribers(pub)
    _, pcm = speak_and_wait(graph, pub, speech, audio, 'play', SHORT)
    wait_until(
        lambda: played.exists() and played.stat().st_size >= 2 * len(pcm),
        5,
        'the player to get the PCM',
    )
    assert played.stat().st_size == 2 * len(pcm)


def test_pyttsx3_save_to_file_backend_speaks_over_dds(graph):
    start_avatar(graph, tts_backend='pyttsx3')
    speech = graph.collect('agechat/speech_state', SpeechState, qos.LATCHED)
    audio = graph.collect('agechat/tts/audio', AudioData, qos.AUDIO_STREAM)
    pub = graph.publisher('agechat/reply', DialogueReply, qos.EVENTS)
    graph.wait_for_subscribers(pub)
    seq, pcm = speak_and_wait(graph, pub, speech, audio, 'file', SHORT)
    assert [m.speaking for m in seq] == [True, False]
    assert len(pcm) / 22050 > 0.8 and np.sqrt(np.mean(pcm**2)) > 0.03
    assert seq[1].audio_duration_s == pytest.approx(len(pcm) / 22050, abs=0.03)


def test_avatar_node_lifecycle_and_run_time_parameters(graph):
    graph.start_node('avatar_node', 'avatar_node', parameters=dict(SMALL))
    states = graph.collect('/agechat/avatar/state', AvatarState, qos.EVENTS)
    audio = graph.collect('/agechat/tts/audio', AudioData, qos.AUDIO_STREAM)
    diagnostics = graph.collect('/diagnostics', DiagnosticArray)
    replies = graph.publisher('/agechat/reply', DialogueReply)
    graph.wait_for_subscribers(replies, timeout=60)
    states.wait_for(3, timeout=30)

    deactivate(graph, 'avatar_node', diagnostics, replies)
    replies.publish(make_reply('r-inactive', '안녕하세요, 반가워요.'))
    states.clear()
    audio.clear()
    time.sleep(SILENCE_WINDOW_S)
    assert states.snapshot() == [] and audio.snapshot() == []

    activate(graph, 'avatar_node', diagnostics, replies)
    replies.publish(make_reply('r-active', '안녕하세요, 반가워요.'))
    audio.wait_for(5, timeout=30)
    states.wait_for(1, 30, lambda ms: any(m.utterance_id == 'r-active' for m in ms))

    # 5 frames per second from the next frame on
    assert graph.set_parameters('avatar_node', fps=5.0)[0].successful
    states.clear()
    time.sleep(2.0)
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in states.snapshot()]
    assert len(stamps) >= 4
    assert 0.15 <= float(np.median(np.diff(stamps))) <= 0.4
    assert_refused(graph.set_parameters('avatar_node', voice='en'), 'read-only')
    assert_refused(graph.set_parameters('avatar_node', fps=0.0), 'fps')
    assert_refused(graph.set_parameters('avatar_node', rate_wpm=[100, 100]), 'rate_wpm')
    graph.assert_alive()
