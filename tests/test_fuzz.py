"""Fuzzing every subscriber of the four nodes, and the Chat service, with malformed messages.

The messages come from the seeded generators in tests/fuzz_messages.py. For each node: at least
500 malformed messages in all; the node never dies; every one is counted on /diagnostics under
its drop reason (the counters grow by exactly the number sent, and by nothing else); and a valid
message afterwards still gets its normal result. Each node runs in a namespace of its own, so
that nothing one node publishes reaches another, with ``diagnostic_updater.period`` at 0.1 s so
that waiting for a counter takes a tenth of a second.

A subscription queue keeps only its depth of messages (EVENTS: 10), so messages go in bursts of
that size per topic, and the next burst waits until the counters show the last one taken. The
camera queue of emotion_node is one frame, best effort, by default; the test gives it a reliable
1000-frame queue through the standard ``qos_overrides`` parameters, so that no frame is lost.
"""

from __future__ import annotations

import array
import random
import threading
import time
from collections import Counter
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest
from agechat_msgs.msg import AgeEstimate, AvatarState, DialogueReply, FaceEmotion, SpeechState
from agechat_msgs.msg import Utterance
from agechat_msgs.srv import Chat
from audio_common_msgs.msg import AudioData, AudioInfo
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage, Image

import fuzz_messages as fuzz
from rclpy.serialization import deserialize_message, serialize_message

from agechat_ros import ConversionError, qos
from agechat_ros.audio import audio_info, check_audio_info, float_to_pcm_s16le, pcm_s16le_to_float
from agechat_ros.avatar import face_emotion_probabilities, reply_input
from agechat_ros.dialogue import age_from_msg, emotion_from_msg, utterance_from_msg
from agechat_ros.image import bgr_to_compressed, bgr_to_image, compressed_to_bgr, image_to_bgr
from agechat_ros.testing import Graph, NodeDiagnostics, domain_id, reliable_qos, wait_until

from age_node.core.synth import synthesize_speech
from dialogue_node.core.register import classify_register

SEED = 20261125
AGE_NS, EMOTION_NS, DIALOGUE_NS, AVATAR_NS = (
    '/fuzz_age',
    '/fuzz_emotion',
    '/fuzz_dialogue',
    '/fuzz_avatar',
)
#: The period of every node's /diagnostics here (the default is 1 s).
DIAGNOSTICS = {'diagnostic_updater': {'period': 0.1}}
#: What the test gives emotion_node's camera subscriptions instead of LATEST_FRAME.
RELIABLE_CAMERA = {'reliability': 'reliable', 'history': 'keep_last', 'depth': 1000}
#: A node takes a burst of messages within this time, or it is broken.
TAKEN_WITHIN_S = 20.0
MIN_BAD_PER_NODE = 500

Sent = List[Tuple[object, str]]


def _ns(ns: str) -> list:
    return ['-r', f'__ns:={ns}']


@pytest.fixture(scope='module')
def fuzz_graph(tmp_path_factory):
    """All four nodes under fuzz, started together (each in its namespace)."""
    graph = Graph(domain_id(), tmp_path_factory.mktemp('fuzz'))
    camera_overrides = {
        f'{EMOTION_NS}/{topic}': {'subscription': dict(RELIABLE_CAMERA)}
        for topic in ('image', 'image/compressed')
    }
    parameters = {
        # vosk with a two-word grammar: the espeak test turn is checked word for word
        'age': {
            'stt_engine': 'vosk',
            'stt_grammar': '안녕하세요|감사합니다',
            'end_silence_s': 0.5,
        },
        'emotion': {
            'use_compressed': True,
            'smoothing_s': 0.0,
            'qos_overrides': camera_overrides,
        },
        'dialogue': {
            'age_wait_s': 5.0,
            'emotion_time': 'stamp',
            'emotion_window_s': 1.0,
            'max_new_tokens': 8,
            'publish_chat_replies': False,
        },
        'avatar': {
            'width': 320,
            'height': 180,
            'fps': 10.0,
            'idle_animation': False,
            'user_smoothing_s': 0.0,
            'max_reply_chars': 40,
            'speaking_tail_ms': 100,
        },
    }
    namespaces = {
        'age': AGE_NS,
        'emotion': EMOTION_NS,
        'dialogue': DIALOGUE_NS,
        'avatar': AVATAR_NS,
    }
    graph.fuzz_nodes, graph.health = {}, {}
    for key, ns in namespaces.items():
        package = f'{key}_node'
        graph.fuzz_nodes[key] = graph.start_node(
            package, package, parameters={**parameters[key], **DIAGNOSTICS}, ros_args=_ns(ns)
        )
        graph.health[key] = NodeDiagnostics(graph, f'{ns}/{package}')
    yield graph
    graph.shutdown()


def _wait_up(graph, key: str, publishers=(), timeout: float = 90.0) -> None:
    """Wait until a node says it is active on /diagnostics, then for it on our `publishers`."""
    node, health = graph.fuzz_nodes[key], graph.health[key]
    wait_until(
        lambda: health.values.get('lifecycle_state') == 'active' or not node.alive(),
        timeout,
        f'{key} active',
    )
    assert node.alive(), node.log()[-3000:]
    for publisher in publishers:
        graph.wait_for_subscribers(publisher)


def _drops(values: Dict[str, str]) -> Counter:
    """Return the dropped_<reason> counters of a node's /diagnostics values by reason."""
    return Counter(
        {k[len('dropped_') :]: int(v) for k, v in values.items() if k.startswith('dropped_')}
    )


def _wait_drops(health: NodeDiagnostics, expected: Counter, node) -> Dict[str, str]:
    """Wait until the drop counters reach `expected`; check they are exactly it; return them."""
    values = health.wait_for(
        lambda v: all(_drops(v)[r] >= n for r, n in expected.items()) or not node.alive(),
        TAKEN_WITHIN_S,
        f'drops {dict(expected)}',
    )
    assert node.alive(), node.log()[-3000:]
    assert _drops(values) == expected, values
    return values


def send_counted(
    health: NodeDiagnostics,
    node,
    streams: Sequence[Tuple[object, Sent]],
    depth: int,
    expected: Counter,
) -> Counter:
    """Send each stream's malformed messages in bursts of `depth`, all streams side by side.

    After each burst the node's drop counters must grow by exactly what was sent (so a burst
    never overflows the queue). Return the new expected counters.
    """
    expected = Counter(expected)
    longest = max(len(items) for _, items in streams)
    for start in range(0, longest, depth):
        for publisher, items in streams:
            for msg, reason in items[start : start + depth]:
                publisher.publish(msg)
                expected[reason] += 1
        _wait_drops(health, expected, node)
    return expected


def _speech(text: str, group: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    speech = synthesize_speech(text, group, seed, sample_rate=16000)
    noise = [rng.normal(0, 0.002, int(s * 16000)).astype(np.float32) for s in (0.8, 1.2)]
    return np.concatenate([noise[0], speech, noise[1]])


def _send_audio(publisher, samples: np.ndarray, speedup: float = 4.0) -> None:
    pcm = float_to_pcm_s16le(samples)
    step = 640
    for start in range(0, len(pcm), step):
        publisher.publish(AudioData(data=array.array('B', pcm[start : start + step])))
        time.sleep(0.02 / speedup)  # the pace of a microphone, sped up


# -- age_node ----------------------------------------------------------------------------------
def test_age_node_counts_every_bad_chunk_and_audio_info_and_still_hears_a_turn(fuzz_graph):
    graph, health = fuzz_graph, fuzz_graph.health['age']
    node = graph.fuzz_nodes['age']
    utterances = graph.collect(f'{AGE_NS}/agechat/utterance', Utterance)
    estimates = graph.collect(f'{AGE_NS}/agechat/age', AgeEstimate)
    audio = graph.publisher(f'{AGE_NS}/audio', AudioData, qos.AUDIO_STREAM)
    info = graph.publisher(f'{AGE_NS}/audio_info', AudioInfo, qos.LATCHED)
    state = graph.publisher(f'{AGE_NS}/agechat/speech_state', SpeechState, qos.LATCHED)
    _wait_up(graph, 'age', (audio, info, state))
    rng = random.Random(SEED)

    # 520 chunks (2 of them 4 MiB) in one burst: the audio queue holds 1000
    chunks = fuzz.bad_audio_chunks(rng, 520)
    expected = send_counted(health, node, [(audio, chunks)], qos.AUDIO_STREAM.depth, Counter())
    # AudioInfo is latched with depth 1: one at a time
    infos = fuzz.bad_audio_infos()
    expected = send_counted(health, node, [(info, infos)], 1, expected)
    # any SpeechState is valid (an id of any length): taken, and the node says so
    state.publish(SpeechState(speaking=False, utterance_id='x' * 5000))
    health.wait_for(lambda v: v.get('agent_speaking') == 'False', 20, 'the SpeechState taken')

    assert utterances.snapshot() == [] and estimates.snapshot() == []
    info.publish(audio_info(16000))
    _send_audio(audio, _speech('감사합니다', 'adult', 12))
    (heard,) = utterances.wait_for(1, timeout=30)
    (estimate,) = estimates.wait_for(1, timeout=10)
    assert heard.utterance_id == estimate.utterance_id and heard.text.split()[-1] == '감사합니다'
    assert estimate.group_label in fuzz.AGE_GROUPS
    values = health.wait_for(lambda v: v.get('utterances') == '1', 10, 'the turn counted')
    assert _drops(values) == expected, 'a valid message was counted as dropped'
    assert sum(expected.values()) >= MIN_BAD_PER_NODE and node.alive()


# -- emotion_node ------------------------------------------------------------------------------
def _face_frame() -> np.ndarray:
    import cv2
    from skimage import data

    face = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (200, 200))
    frame = np.full((240, 320, 3), 96, np.uint8)
    frame[20:220, 60:260] = face
    return frame


def test_emotion_node_counts_every_bad_frame_and_still_reads_a_face(fuzz_graph):
    graph, health = fuzz_graph, fuzz_graph.health['emotion']
    node = graph.fuzz_nodes['emotion']
    results = graph.collect(f'{EMOTION_NS}/agechat/face_emotion', FaceEmotion)
    raw = graph.publisher(f'{EMOTION_NS}/image', Image, reliable_qos(1000))
    compressed = graph.publisher(
        f'{EMOTION_NS}/image/compressed', CompressedImage, reliable_qos(1000)
    )
    _wait_up(graph, 'emotion', (raw, compressed))
    rng = random.Random(SEED + 1)
    streams = [
        (raw, fuzz.bad_images(rng, 400)),
        (compressed, fuzz.bad_compressed_images(rng, 150)),
    ]
    expected = send_counted(health, node, streams, RELIABLE_CAMERA['depth'], Counter())
    assert expected == Counter(bad_image=550)
    assert results.snapshot() == []  # no FaceEmotion for a bad frame

    frame = _face_frame()
    for second, (publisher, msg) in enumerate(
        [
            (raw, bgr_to_image(frame, encoding='rgb8')),
            (compressed, bgr_to_compressed(frame, fmt='png')),
        ],
        start=1,
    ):
        msg.header.stamp = Time(sec=second)
        publisher.publish(msg)
        (good,) = results.wait_for(second, timeout=20)[second - 1 :]
        assert good.header.stamp.sec == second
        assert good.face_found and good.emotion_label == 'happy', good
    values = health.wait_for(lambda v: v.get('frames_processed') == '2', 10, 'two frames')
    assert _drops(values) == expected and node.alive()


# -- avatar_node -------------------------------------------------------------------------------
class LatestState:
    """The newest AvatarState (the avatar renders 10 of them a second here; keep one)."""

    def __init__(self, graph, topic: str):
        self.msg = None
        self.cond = threading.Condition()
        graph.node.create_subscription(AvatarState, topic, self._on, qos.EVENTS)

    def _on(self, msg) -> None:
        with self.cond:
            self.msg = msg
            self.cond.notify_all()

    def wait_user_emotion(self, label: str, timeout: float = 10.0) -> None:
        """Block until the user avatar shows `label`."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.msg is None or self.msg.user_emotion != label:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f'the user avatar never showed {label}')
                self.cond.wait(remaining)


def test_avatar_node_counts_every_bad_face_and_reply_and_still_speaks(fuzz_graph):
    graph, health = fuzz_graph, fuzz_graph.health['avatar']
    node = graph.fuzz_nodes['avatar']
    state = LatestState(graph, f'{AVATAR_NS}/agechat/avatar/state')
    speech = graph.collect(f'{AVATAR_NS}/agechat/speech_state', SpeechState, qos.LATCHED)
    faces = graph.publisher(f'{AVATAR_NS}/agechat/face_emotion', FaceEmotion)
    replies = graph.publisher(f'{AVATAR_NS}/agechat/reply', DialogueReply)
    _wait_up(graph, 'avatar', (faces, replies))
    rng = random.Random(SEED + 3)
    streams = [(faces, fuzz.bad_face_emotions(rng, 440)), (replies, fuzz.bad_replies(rng, 80))]
    expected = send_counted(health, node, streams, qos.EVENTS.depth, Counter())
    assert expected == Counter(bad_face_emotion=440, empty_reply=80)

    # valid, if odd: over-long, unknown age group; spoken cut to max_reply_chars
    replies.publish(
        DialogueReply(
            utterance_id='after-fuzz', reply_text='안녕하세요, 반가워요. ' * 40, age_group='teen'
        )
    )
    speech.wait_for(
        1, 30, lambda ms: any(m.utterance_id == 'after-fuzz' and not m.speaking for m in ms)
    )
    assert any(m.utterance_id == 'after-fuzz' and m.speaking for m in speech.snapshot())
    faces.publish(fuzz.face('surprise'))
    state.wait_user_emotion('surprise')
    values = health.wait_for(
        lambda v: v.get('replies_spoken') == '1' and v.get('face_emotions_received') == '1',
        20,
        'the reply spoken and the face taken',
    )
    assert values['replies_truncated'] == '1' and values['unknown_age_group'] == '1'
    assert _drops(values) == expected and node.alive()


# -- dialogue_node -----------------------------------------------------------------------------
class Replies:
    """dialogue_node's replies by id."""

    def __init__(self, graph, topic: str):
        self.by_id = {}
        self.cond = threading.Condition()
        graph.node.create_subscription(DialogueReply, topic, self._on, reliable_qos(100))

    def _on(self, msg) -> None:
        with self.cond:
            self.by_id[msg.utterance_id] = msg
            self.cond.notify_all()

    def wait(self, uid: str, timeout: float, alive) -> DialogueReply:
        """Block until the reply to `uid` arrived (or the node died)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while uid not in self.by_id:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not alive():
                    raise TimeoutError(f'no reply to {uid}' + ('' if alive() else ': node died'))
                self.cond.wait(min(remaining, 0.2))
            return self.by_id[uid]


def _call(client, request, timeout: float = 30.0):
    done = threading.Event()
    future = client.call_async(request)
    future.add_done_callback(lambda _: done.set())
    assert done.wait(timeout), 'no response from the chat service'
    return future.result()


def test_dialogue_node_counts_every_bad_message_and_chat_request_and_still_replies(fuzz_graph):
    graph, health = fuzz_graph, fuzz_graph.health['dialogue']
    node = graph.fuzz_nodes['dialogue']
    topics = {
        'utt': (f'{DIALOGUE_NS}/agechat/utterance', Utterance),
        'age': (f'{DIALOGUE_NS}/agechat/age', AgeEstimate),
        'face': (f'{DIALOGUE_NS}/agechat/face_emotion', FaceEmotion),
    }
    pubs = {key: graph.publisher(topic, kind) for key, (topic, kind) in topics.items()}
    replies = Replies(graph, f'{DIALOGUE_NS}/agechat/reply')
    client = graph.node.create_client(Chat, f'{DIALOGUE_NS}/agechat/chat')
    _wait_up(graph, 'dialogue', pubs.values())
    graph.wait_for_service(client)
    rng = random.Random(SEED + 4)
    streams = [
        (pubs['utt'], fuzz.bad_utterances(rng, 200)),
        (pubs['age'], fuzz.bad_age_estimates(rng, 200)),
        (pubs['face'], fuzz.bad_face_emotions(rng, 200)),
    ]
    expected = send_counted(health, node, streams, qos.EVENTS.depth, Counter())
    refused = fuzz.bad_chat_requests(rng, 100)
    for request, needle in refused:
        response = _call(client, request)
        assert not response.success and needle in response.error, (request, response.error)
    expected['bad_chat_request'] += len(refused)
    _wait_drops(health, expected, node)
    assert expected == Counter(
        bad_utterance=200, bad_age_estimate=200, bad_face_emotion=200, bad_chat_request=100
    )
    assert replies.by_id == {}  # no reply to a bad utterance

    # a valid turn afterwards: a reply in the register of its age group, with its emotion
    pubs['face'].publish(fuzz.face('happy', 5000 * 10**9))
    health.wait_for(lambda v: v.get('face_emotions') == '1', 10, 'the face taken')
    pubs['age'].publish(fuzz.age('after-fuzz', 'child'))
    pubs['utt'].publish(fuzz.utterance('after-fuzz', '오늘 학교에서 축구 했어!', 5000 * 10**9))
    reply = replies.wait('after-fuzz', timeout=60, alive=node.alive)
    assert (reply.age_group, reply.age_source) == ('child', 'estimate'), reply
    assert (reply.emotion, reply.emotion_source) == ('happy', 'estimate'), reply
    assert reply.reply_text and classify_register(reply.reply_text) == 'child', reply.reply_text
    ok = _call(client, Chat.Request(text='심심해', age_group='senior'))
    assert ok.success and classify_register(ok.reply.reply_text) == 'senior', ok
    values = health.wait_for(lambda v: v.get('replies') == '1', 10, 'the reply counted')
    assert _drops(values) == expected and node.alive()
    assert sum(expected.values()) >= MIN_BAD_PER_NODE


def _over_the_wire(msg):
    """Return `msg` as a subscriber gets it (CDR-serialized and read back)."""
    return deserialize_message(serialize_message(msg), type(msg))


def test_every_generated_message_is_refused_after_the_wire():
    # what the nodes drop, checked without DDS: the generators send nothing that is valid
    rng = random.Random(SEED)
    refusers = {
        'malformed_audio': pcm_s16le_to_float,
        'bad_audio_info': check_audio_info,
        'bad_face_emotion': lambda m: (emotion_from_msg(m), face_emotion_probabilities(m)),
        'bad_age_estimate': age_from_msg,
        'bad_utterance': utterance_from_msg,
        'empty_reply': reply_input,
    }
    generated = [
        *fuzz.bad_audio_chunks(rng, 300),
        *fuzz.bad_audio_infos(),
        *fuzz.bad_face_emotions(rng, 300),
        *fuzz.bad_age_estimates(rng, 300),
        *fuzz.bad_utterances(rng, 300),
        *fuzz.bad_replies(rng, 300),
        *fuzz.bad_images(rng, 300),
        *fuzz.bad_compressed_images(rng, 100),
    ]
    for msg, reason in generated:
        received = _over_the_wire(msg)
        if reason == 'empty_audio':
            assert len(received.data) == 0
            continue
        if reason == 'bad_image':
            convert = image_to_bgr if isinstance(msg, Image) else compressed_to_bgr
        else:
            convert = refusers[reason]
        with pytest.raises(ConversionError):
            convert(bytes(received.data) if reason == 'malformed_audio' else received)


def test_generators_are_deterministic():
    def text(make):  # repr, as NaN != NaN
        return [repr(m) for m, _ in make(random.Random(1), 50)]

    for make in (fuzz.bad_age_estimates, fuzz.bad_utterances, fuzz.bad_face_emotions):
        assert text(make) == text(make)
