"""Every node is a managed node with honest parameters, driven over DDS as `ros2` would.

For each node: it comes up active by itself (autostart); `deactivate` stops it listening and
publishing (a privacy switch) and /diagnostics says so; `activate` brings normal results back.
Parameter descriptors carry ranges and read-only flags; a run-time parameter takes effect on the
next message; a read-only, out-of-range or invalid value is refused with a reason.
"""

from __future__ import annotations

import math
import time

import numpy as np
from agechat_msgs.msg import AvatarState, DialogueReply, FaceEmotion, Utterance
from agechat_msgs.srv import Chat
from audio_common_msgs.msg import AudioData
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from test_age_node import BASE_PARAMS, gap, send
from test_avatar_node import SMALL, make_reply
from test_dialogue_node import utterance

from age_node.core.synth import synthesize_speech
from agechat_ros import qos
from agechat_ros.image import bgr_to_image
from ros_graph import wait_until

#: How long a node that should stay silent is watched (an absence needs a window).
SILENCE_WINDOW_S = 2.0


def astronaut_frame() -> np.ndarray:
    """Return a 320x240 BGR frame with skimage's smiling astronaut (as test_emotion_node uses)."""
    import cv2
    from skimage import data

    face = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (200, 200))
    frame = np.full((240, 320, 3), 96, np.uint8)
    frame[20:220, 60:260] = face
    return frame


def lifecycle_label(diagnostics, node: str) -> str:
    """Return the newest `lifecycle_state` a node reported on /diagnostics ('' if none yet)."""
    for message in reversed(diagnostics.snapshot()):
        for status in message.status:
            if status.name.endswith(node):
                values = {kv.key: kv.value for kv in status.values}
                if 'lifecycle_state' in values:
                    return values['lifecycle_state']
    return ''


def deactivate(graph, node: str, diagnostics, publisher) -> None:
    """Deactivate `node`, check its state everywhere and that it stopped listening."""
    assert graph.lifecycle_state(node) == 'active'
    assert graph.change_state(node, 'deactivate')
    assert graph.lifecycle_state(node) == 'inactive'
    wait_until(
        lambda: lifecycle_label(diagnostics, node) == 'inactive', 10, 'inactive on /diagnostics'
    )
    wait_until(lambda: publisher.get_subscription_count() == 0, 10, f'{node} to stop listening')


def activate(graph, node: str, diagnostics, publisher) -> None:
    """Activate `node` again and wait until it listens."""
    assert graph.change_state(node, 'activate')
    assert graph.lifecycle_state(node) == 'active'
    wait_until(
        lambda: lifecycle_label(diagnostics, node) == 'active', 10, 'active on /diagnostics'
    )
    graph.wait_for_subscribers(publisher)


def assert_refused(results, *fragments: str) -> None:
    """Check that a SetParameters answer is a refusal whose reason names each fragment."""
    (result,) = results
    assert not result.successful
    for fragment in fragments:
        assert fragment in result.reason, result.reason


def test_dialogue_node_lifecycle_and_run_time_parameters(graph):
    graph.start_node('dialogue_node', 'dialogue_node', parameters={'age_wait_s': 0.0})
    replies = graph.collect('/agechat/reply', DialogueReply)
    diagnostics = graph.collect('/diagnostics', DiagnosticArray)
    utterances = graph.publisher('/agechat/utterance', Utterance)
    graph.wait_for_subscribers(utterances, timeout=60)

    described = graph.describe_parameters(
        'dialogue_node', 'max_new_tokens', 'temperature', 'model_path'
    )
    tokens_range = described['max_new_tokens'].integer_range[0]
    assert (tokens_range.from_value, tokens_range.to_value) == (1, 256)
    assert not described['max_new_tokens'].read_only and described['max_new_tokens'].description
    assert described['temperature'].floating_point_range[0].to_value == 2.0
    assert described['model_path'].read_only

    deactivate(graph, 'dialogue_node', diagnostics, utterances)
    answer = graph.call(Chat, '/agechat/chat', Chat.Request(text='안녕', age_group='child'))
    assert not answer.success and 'inactive' in answer.error
    utterances.publish(utterance('u-while-inactive', '오늘 날씨 어때?', time.time_ns()))
    time.sleep(SILENCE_WINDOW_S)
    assert replies.snapshot() == []

    activate(graph, 'dialogue_node', diagnostics, utterances)
    utterances.publish(utterance('u-active', '오늘 날씨 어때?', time.time_ns()))
    (reply,) = replies.wait_for(1, timeout=30)
    assert reply.utterance_id == 'u-active' and reply.reply_text

    assert graph.set_parameters('dialogue_node', max_new_tokens=3)[0].successful
    answer = graph.call(Chat, '/agechat/chat', Chat.Request(text='안녕', age_group='child'))
    assert answer.success and 1 <= answer.reply.new_tokens <= 3
    assert_refused(graph.set_parameters('dialogue_node', max_new_tokens=1000), 'max_new_tokens')
    assert_refused(graph.set_parameters('dialogue_node', model_path='/tmp'), 'read-only')
    assert_refused(graph.set_parameters('dialogue_node', temperature=math.nan), 'temperature')
    assert_refused(graph.set_parameters('dialogue_node', emotion_time='never'), 'one of')
    graph.assert_alive()


def test_age_node_lifecycle_and_run_time_parameters(graph):
    graph.start_node('age_node', 'age_node', parameters=BASE_PARAMS)
    utterances = graph.collect('/agechat/utterance', Utterance)
    diagnostics = graph.collect('/diagnostics', DiagnosticArray)
    audio = graph.publisher('/audio', AudioData, qos.AUDIO_STREAM)
    graph.wait_for_subscribers(audio, timeout=60)
    speech = np.concatenate([gap(0.8), synthesize_speech('안녕하세요', 'adult', 12), gap(1.2)])

    deactivate(graph, 'age_node', diagnostics, audio)
    send(audio, speech)
    time.sleep(SILENCE_WINDOW_S)
    assert utterances.snapshot() == []

    activate(graph, 'age_node', diagnostics, audio)
    send(audio, speech)
    (heard,) = utterances.wait_for(1, timeout=30)
    assert not heard.truncated and heard.duration_s > 1.0

    # the same speech, cut at 1 s from the next chunk on
    assert graph.set_parameters('age_node', max_utterance_s=1.0)[0].successful
    send(audio, speech)
    heard = utterances.wait_for(2, timeout=30)[-1]
    assert heard.truncated and heard.duration_s <= 1.05
    assert_refused(graph.set_parameters('age_node', stt_engine='none'), 'read-only')
    assert_refused(graph.set_parameters('age_node', vad_end_threshold=0.9), 'vad_end_threshold')
    assert_refused(graph.set_parameters('age_node', end_silence_s=0.0), 'end_silence_s')
    graph.assert_alive()


def test_emotion_node_lifecycle_and_run_time_parameters(graph):
    frame = astronaut_frame()
    graph.start_node('emotion_node', 'emotion_node', parameters={'smoothing_s': 0.0})
    results = graph.collect('/agechat/face_emotion', FaceEmotion)
    diagnostics = graph.collect('/diagnostics', DiagnosticArray)
    camera = graph.publisher('/image', Image, qos_profile_sensor_data)
    graph.wait_for_subscribers(camera, timeout=60)
    image = bgr_to_image(frame)

    def show(count: int, period_s: float = 0.05) -> None:
        for _ in range(count):
            image.header.stamp = graph.node.get_clock().now().to_msg()
            camera.publish(image)
            time.sleep(period_s)

    wait_until(lambda: show(1) or bool(results.snapshot()), 30, 'a first face emotion')
    deactivate(graph, 'emotion_node', diagnostics, camera)
    results.clear()
    show(20)
    time.sleep(SILENCE_WINDOW_S / 2)
    assert results.snapshot() == []

    activate(graph, 'emotion_node', diagnostics, camera)
    wait_until(lambda: show(1) or bool(results.snapshot()), 30, 'face emotions again')
    assert results.snapshot()[-1].emotion_label == 'happy'

    # at most 2 frames per second from now on: 40 frames in 2 s give about 4
    assert graph.set_parameters('emotion_node', max_rate_hz=2.0)[0].successful
    results.clear()
    show(40)
    assert 1 <= len(results.snapshot()) <= 6, len(results.snapshot())
    assert_refused(graph.set_parameters('emotion_node', detector='haar'), 'read-only')
    assert_refused(graph.set_parameters('emotion_node', smoothing_s=100.0), 'smoothing_s')
    graph.assert_alive()


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
