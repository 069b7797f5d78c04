"""Barge-in over real DDS: a real avatar_node cuts the reply it speaks when a BargeIn arrives.

The test plays age_node's part (it publishes agechat/barge_in) and listens like the speaker and a
3D client: SpeechState, the TTS audio chunks and AvatarState.
"""

from __future__ import annotations

import time

import pytest
from agechat_msgs.msg import AvatarState, BargeIn, DialogueReply, SpeechState
from audio_common_msgs.msg import AudioData

from agechat_ros import qos
from agechat_ros.testing import NodeDiagnostics, assert_refused, wait_until
from agechat_ros.time import time_to_ns

PARAMS = {
    'width': 640,
    'height': 360,
    'fps': 20.0,
    'speaking_tail_ms': 200,
    'max_pending_replies': 3,
    'max_reply_chars': 1000,
}
LONG = (
    '안녕하세요, 반가워요. 오늘은 날씨가 참 맑고 따뜻하네요. 점심은 맛있게 드셨어요? '
    '저는 이야기를 나누는 게 정말 즐거워요. 궁금한 것이 있으면 언제든지 물어보세요. '
    '천천히, 또박또박 대답해 드릴게요.'
)
SHORT = '네, 말씀하세요.'
#: Issue #15: the agent stops within 300 ms of the barge-in.
STOP_BUDGET_MS = 300.0
#: A chunk published just before the stop may still be on its way (different topics race).
IN_FLIGHT_CHUNKS = 1


def reply(uid: str, text: str) -> DialogueReply:
    return DialogueReply(utterance_id=uid, reply_text=text, user_text='테스트', age_group='adult')


def barge_in(graph, uid: str, probability: float = 0.9) -> BargeIn:
    msg = BargeIn(reply_utterance_id=uid, voice_probability=probability)
    msg.level_over_reference_db = 12.0
    now = graph.node.get_clock().now()
    msg.header.stamp = now.to_msg()
    msg.voice_onset_time = now.to_msg()
    return msg


class Probe:
    """The topics avatar_node speaks on, with the time each message arrived."""

    def __init__(self, graph, node_name='avatar_node'):
        self.graph = graph
        self.speech = graph.collect('agechat/speech_state', SpeechState, qos.LATCHED)
        self.audio = graph.collect('agechat/tts/audio', AudioData, qos.AUDIO_STREAM)
        self.states = graph.collect('agechat/avatar/state', AvatarState, qos.EVENTS)
        self.diagnostics = NodeDiagnostics(graph, node_name)
        self.replies = graph.publisher('agechat/reply', DialogueReply, qos.EVENTS)
        self.barge = graph.publisher('agechat/barge_in', BargeIn, qos.EVENTS)
        graph.wait_for_subscribers(self.replies, timeout=60)
        graph.wait_for_subscribers(self.barge, timeout=60)
        self.states.wait_for(3, 30)

    def speech_of(self, uid: str) -> list:
        return [m for m in self.speech.snapshot() if m.utterance_id == uid]

    def wait_speaking(self, uid: str, chunks: int = 15, timeout: float = 20.0) -> None:
        self.speech.wait_for(1, timeout, lambda ms: any(m.utterance_id == uid for m in ms))
        assert self.speech_of(uid)[0].speaking, self.speech_of(uid)
        self.audio.wait_for(chunks, timeout)

    def wait_end(self, uid: str, timeout: float = 30.0) -> SpeechState:
        self.speech.wait_for(
            1, timeout, lambda ms: any(m.utterance_id == uid and not m.speaking for m in ms)
        )
        return [m for m in self.speech_of(uid) if not m.speaking][0]

    def audio_times_ns(self) -> list:
        with self.audio._cond:
            return list(self.audio.receive_times_ns)

    def speech_received_ns(self, msg) -> int:
        with self.speech._cond:
            return self.speech.receive_times_ns[self.speech.messages.index(msg)]


def test_barge_in_stops_the_reply_drops_the_queue_and_the_next_reply_plays(graph):
    node = graph.start_node('avatar_node', 'avatar_node', parameters=dict(PARAMS))
    probe = Probe(graph)

    probe.replies.publish(reply('r1', LONG))
    probe.replies.publish(reply('r2', LONG))  # queued behind r1: the user takes the turn
    probe.diagnostics.wait_count('replies_received', 2)
    probe.wait_speaking('r1', chunks=25)

    # a barge-in for a reply not being spoken (too late, or queued) changes nothing
    probe.barge.publish(barge_in(graph, 'r0-already-over'))
    probe.barge.publish(barge_in(graph, 'r2'))
    probe.diagnostics.wait_count('barge_ins_stale', 2)
    assert [m.speaking for m in probe.speech_of('r1')] == [True]
    before = len(probe.audio.snapshot())
    time.sleep(0.3)
    assert len(probe.audio.snapshot()) > before + 5, 'a stale barge-in stopped the audio'

    sent = barge_in(graph, 'r1')
    probe.barge.publish(sent)
    end = probe.wait_end('r1', timeout=5.0)
    assert end.interrupted and not end.speaking
    stop_ms = (time_to_ns(end.header.stamp) - time_to_ns(sent.header.stamp)) / 1e6
    assert 0 <= stop_ms < STOP_BUDGET_MS, f'stopped {stop_ms:.1f} ms after the barge-in'
    received_ns = probe.speech_received_ns(end)
    seen_ms = (received_ns - time_to_ns(sent.header.stamp)) / 1e6
    assert seen_ms < STOP_BUDGET_MS, f'the stop arrived {seen_ms:.1f} ms after the barge-in'
    print(f'barge-in stop: {stop_ms:.1f} ms (node), {seen_ms:.1f} ms (received here)')
    # the times of the cut reply: received, first audio, and how much of it was played
    start = probe.speech_of('r1')[0]
    assert time_to_ns(end.first_audio_time) == time_to_ns(start.first_audio_time) > 0
    played_s = (time_to_ns(end.header.stamp) - time_to_ns(start.first_audio_time)) / 1e9
    assert end.audio_duration_s == pytest.approx(played_s, abs=0.25)

    time.sleep(1.5)  # r1 had seconds left and r2 was queued: any leak would show by now
    late = [t for t in probe.audio_times_ns() if t > received_ns]
    assert len(late) <= IN_FLIGHT_CHUNKS, f'{len(late)} audio chunks after the stop'
    assert probe.speech_of('r2') == [], 'the queued reply was spoken after the barge-in'
    values = probe.diagnostics.wait_count('replies_interrupted', 1)
    assert values.get('replies_dropped_barge_in') == '1', values
    assert 'replies_spoken' not in values  # neither r1 nor r2 ended normally

    # the mouth is closed and the agent not speaking from the next frame on
    after = [
        s
        for s in probe.states.snapshot()
        if time_to_ns(s.header.stamp) > time_to_ns(end.header.stamp) + 60_000_000
    ]
    assert len(after) >= 10
    assert all(
        not s.agent_speaking and s.mouth_open == 0.0 and s.utterance_id == '' for s in after
    )
    assert all(all(v.weight == 0.0 for v in s.agent_visemes) for s in after)

    # a barge-in now (nothing spoken) is stale, and the next reply is spoken normally
    probe.barge.publish(barge_in(graph, ''))
    probe.diagnostics.wait_count('barge_ins_stale', 3)
    probe.replies.publish(reply('r3', SHORT))
    r3_end = probe.wait_end('r3')
    assert [m.speaking for m in probe.speech_of('r3')] == [True, False]
    assert not r3_end.interrupted and r3_end.audio_duration_s > 0.5
    assert probe.speech_of('r2') == []
    assert node.alive()


def test_barge_in_with_an_empty_id_cuts_whatever_is_spoken_even_in_the_tail(graph):
    graph.start_node('avatar_node', 'avatar_node', parameters=dict(PARAMS, speaking_tail_ms=3000))
    probe = Probe(graph)
    probe.replies.publish(reply('t1', SHORT))
    probe.wait_speaking('t1', chunks=5)
    # wait until its audio has all gone out: it is now in the 3 s tail, still speaking
    wait_until(
        lambda: (
            probe.audio_times_ns() and time.time_ns() - probe.audio_times_ns()[-1] > 300_000_000
        ),
        20,
        'the end of the audio',
    )
    assert [m.speaking for m in probe.speech_of('t1')] == [True]
    sent = barge_in(graph, '')
    probe.barge.publish(sent)
    end = probe.wait_end('t1', timeout=2.0)  # well before the tail would have ended
    assert end.interrupted
    assert (time_to_ns(end.header.stamp) - time_to_ns(sent.header.stamp)) / 1e6 < STOP_BUDGET_MS
    time.sleep(3.2)
    assert [m.speaking for m in probe.speech_of('t1')] == [True, False]  # no second end


def test_barge_in_can_be_disabled_and_bad_barge_ins_are_dropped(graph):
    node = graph.start_node(
        'avatar_node', 'avatar_node', parameters=dict(PARAMS, accept_barge_in=False)
    )
    probe = Probe(graph)
    bad = barge_in(graph, '', probability=float('nan'))
    probe.barge.publish(bad)
    probe.diagnostics.wait_count('dropped_bad_barge_in', 1)

    probe.replies.publish(reply('d1', SHORT))
    probe.wait_speaking('d1', chunks=5)
    probe.barge.publish(barge_in(graph, 'd1'))
    probe.diagnostics.wait_count('barge_ins_ignored_disabled', 1)
    end = probe.wait_end('d1')
    assert not end.interrupted and end.audio_duration_s > 0.5  # played to its end

    # switched on at run time: the next reply is cut
    assert graph.set_parameters('avatar_node', accept_barge_in=True)[0].successful
    # a wrong type is refused by rclpy itself ('Wrong parameter type ...') before our checks
    assert_refused(graph.set_parameters('avatar_node', accept_barge_in='yes'), 'type')
    probe.replies.publish(reply('d2', LONG))
    probe.wait_speaking('d2', chunks=10)
    probe.barge.publish(barge_in(graph, 'd2'))
    assert probe.wait_end('d2', timeout=5.0).interrupted
    assert node.alive()


def test_a_wrongly_typed_accept_barge_in_fails_at_start(graph):
    node = graph.start_node('avatar_node', 'avatar_node', parameters={'accept_barge_in': 'yes'})
    wait_until(lambda: not node.alive(), 20, 'avatar_node to exit')
    assert node.popen.returncode == 2
    log = node.log()
    assert '[FATAL]' in log and 'accept_barge_in' in log, log
    assert 'Traceback' not in log
