"""dialogue_node over real DDS.

Utterance + age (+ emotion) in, one reply per utterance with its id, in the register of the age
group; label fallbacks; the typed-chat service and the `chat` client; bad input and bad
parameters.
"""

from __future__ import annotations

import math
import subprocess
import time

from agechat_msgs.msg import AgeEstimate, DialogueReply, FaceEmotion, Utterance
from agechat_msgs.srv import Chat
from diagnostic_msgs.msg import DiagnosticArray
from agechat_ros.time import ns_to_time, time_to_ns
from agechat_ros.testing import (
    SILENCE_WINDOW_S,
    activate,
    assert_refused,
    deactivate,
    NodeDiagnostics,
    find_executable,
    wait_until,
)

from dialogue_node.core.register import classify_register

GROUPS = {
    'child': AgeEstimate.GROUP_CHILD,
    'adult': AgeEstimate.GROUP_ADULT,
    'senior': AgeEstimate.GROUP_SENIOR,
}


def utterance(uid: str, text: str, speech_end_ns: int) -> Utterance:
    msg = Utterance(utterance_id=uid, text=text, language='ko', recognizer='test')
    msg.speech_end = ns_to_time(speech_end_ns)
    msg.header.stamp = msg.speech_end
    msg.vad_closed_time = ns_to_time(speech_end_ns + 300_000_000)
    msg.stt_done_time = ns_to_time(speech_end_ns + 400_000_000)
    return msg


def age(uid: str, group: str, label: str = None, unsure: bool = False) -> AgeEstimate:
    return AgeEstimate(
        utterance_id=uid,
        group=GROUPS.get(group, 0),
        group_label=label if label is not None else group,
        confidence=0.4 if unsure else 0.9,
        unsure=unsure,
    )


def face(label: str, stamp_ns: int) -> FaceEmotion:
    msg = FaceEmotion(face_found=True, face_count=1, emotion_label=label, confidence=0.8)
    msg.header.stamp = ns_to_time(stamp_ns)
    return msg


def start(graph, **parameters):
    node = graph.start_node('dialogue_node', 'dialogue_node', parameters=parameters or None)
    replies = graph.collect('/agechat/reply', DialogueReply)
    pubs = {
        'utt': graph.publisher('/agechat/utterance', Utterance),
        'age': graph.publisher('/agechat/age', AgeEstimate),
        'face': graph.publisher('/agechat/face_emotion', FaceEmotion),
    }
    for pub in pubs.values():
        graph.wait_for_subscribers(pub, timeout=60)
    graph.wait_for_publishers('/agechat/reply', timeout=60)
    return node, replies, pubs


def test_one_reply_per_utterance_in_the_register_of_its_age_group(graph):
    node, replies, pubs = start(graph, age_wait_s=3.0)
    health = NodeDiagnostics(graph, 'dialogue_node')
    now = time.time_ns()
    # The three topics race each other in the node's executor, so each step waits on /diagnostics
    # until the node has taken what it needs: a malformed message right behind a good one on the
    # same topic is counted as dropped only after the good one was handled.
    pubs['face'].publish(face('sad', now))
    pubs['face'].publish(face('confused', now))
    health.wait_count('dropped_bad_face_emotion', 1)
    # child: the age estimate reaches the node before the utterance
    pubs['age'].publish(age('u-child', 'child'))
    pubs['age'].publish(age('u-sentinel', 'teen', 'teen'))
    health.wait_count('dropped_bad_age_estimate', 1)
    pubs['utt'].publish(utterance('u-child', '오늘 날씨 어때?', now))
    # adult: the utterance reaches the node before its age estimate
    pubs['utt'].publish(utterance('u-adult', '배고파', now))
    health.wait_count('utterances', 2)
    pubs['age'].publish(age('u-adult', 'adult'))
    # senior: either order; the emotion window holds 'sad' for all three
    pubs['age'].publish(age('u-senior', 'senior'))
    pubs['utt'].publish(utterance('u-senior', '요즘 잠이 안 와', now))
    got = {m.utterance_id: m for m in replies.wait_for(3, timeout=60)}
    assert sorted(got) == ['u-adult', 'u-child', 'u-senior']
    for uid, reply in got.items():
        group = uid.split('-')[1]
        assert reply.age_group == group and reply.age_source == DialogueReply.SOURCE_ESTIMATE
        assert classify_register(reply.reply_text) == group, reply.reply_text
        assert reply.emotion == 'sad' and reply.emotion_source == DialogueReply.SOURCE_ESTIMATE
        assert reply.user_text and reply.model.startswith('agechat-retrieval')
        assert (
            time_to_ns(reply.speech_end) == now
            and time_to_ns(reply.vad_closed_time) == now + 300_000_000
        )
        assert time_to_ns(reply.stt_done_time) == now + 400_000_000
        received, start_ns, end_ns = (
            time_to_ns(reply.utterance_received_time),
            time_to_ns(reply.generation_start_time),
            time_to_ns(reply.generation_end_time),
        )
        assert 0 < received <= start_ns <= end_ns <= time_to_ns(reply.header.stamp)
    # exactly one reply per utterance: replies leave one worker in order, so once a later
    # utterance is answered, every reply to the three before it has been published
    # an unsure estimate of a child is answered as an adult (해요체), and says why
    pubs['age'].publish(age('u-last', 'child', unsure=True))
    pubs['utt'].publish(utterance('u-last', '고마워', now))
    replies.wait_for(4, timeout=60, predicate=lambda ms: ms[-1].utterance_id == 'u-last')
    assert sorted(m.utterance_id for m in replies.snapshot()) == [
        'u-adult',
        'u-child',
        'u-last',
        'u-senior',
    ]
    last = replies.snapshot()[-1]
    assert (last.age_group, last.age_source) == ('adult', DialogueReply.SOURCE_UNSURE)
    assert classify_register(last.reply_text) == 'adult', last.reply_text
    graph.assert_alive()


def test_label_fallbacks_bad_input_and_empty_text(graph):
    node, replies, pubs = start(graph, age_wait_s=0.3)
    health = NodeDiagnostics(graph, 'dialogue_node')
    now = time.time_ns()
    pubs['utt'].publish(
        utterance('u1', '안녕', now)
    )  # no age ever: default adult, no face: neutral
    first = replies.wait_for(1, timeout=30)[0]
    assert (first.age_group, first.age_source) == ('adult', DialogueReply.SOURCE_DEFAULT)
    assert (first.emotion, first.emotion_source) == ('neutral', DialogueReply.SOURCE_DEFAULT)
    pubs['age'].publish(age('u2', 'senior'))
    pubs['age'].publish(age('u2', 'teen', 'teen'))  # malformed: dropped, node keeps going
    pubs['face'].publish(face('confused', now))  # malformed: dropped
    # u2's age must be in before u2 (age_wait_s 0.3) and u3 (no age: the latest) arrive
    health.wait_for(
        lambda v: (
            int(v.get('dropped_bad_age_estimate', 0)) == 1
            and int(v.get('dropped_bad_face_emotion', 0)) == 1
        ),
        20,
        'the malformed age estimate and face emotion counted',
    )
    pubs['utt'].publish(utterance('u2', '', now))  # vosk heard nothing
    pubs['utt'].publish(utterance('u3', 'hello 😀\x07', now))  # no age for u3: the latest (senior)
    pubs['utt'].publish(utterance('u4', '뭐 ' * 500, now))  # very long: truncated
    got = {m.utterance_id: m for m in replies.wait_for(4, timeout=60)}
    assert got['u2'].age_group == 'senior' and got['u2'].model == 'rule (fallback:empty)'
    assert classify_register(got['u2'].reply_text) == 'senior'
    assert (got['u3'].age_group, got['u3'].age_source) == ('senior', DialogueReply.SOURCE_LATEST)
    assert (
        got['u3'].model == 'rule (fallback:not_korean)'
        and classify_register(got['u3'].reply_text) == 'senior'
    )
    assert len(got['u4'].user_text) <= 200 and got['u4'].reply_text
    graph.assert_alive()
    assert 'bad_age_estimate' in node.log() and 'bad_face_emotion' in node.log()


def test_chat_service_and_terminal_client(graph):
    start(graph)
    ok = graph.call(
        Chat,
        '/agechat/chat',
        Chat.Request(text='심심해', age_group='child', emotion='happy'),
        timeout=60,
    )
    assert ok.success and ok.error == ''
    assert classify_register(ok.reply.reply_text) == 'child'
    assert ok.reply.age_source == DialogueReply.SOURCE_REQUEST and ok.reply.emotion == 'happy'
    assert time_to_ns(ok.reply.speech_end) == 0 and time_to_ns(ok.reply.generation_end_time) > 0
    senior = graph.call(
        Chat,
        '/agechat/chat',
        Chat.Request(text='여행 가고 싶어', age_group='senior', conversation_id='c'),
    )
    assert senior.success and classify_register(senior.reply.reply_text) == 'senior'
    for request, needle in [
        (Chat.Request(text=''), 'empty'),
        (Chat.Request(text='😀\x00'), 'empty'),
        (Chat.Request(text='how are you'), 'Korean'),
        (Chat.Request(text='안녕', age_group='teen'), 'child, adult, senior'),
        (Chat.Request(text='안녕', emotion='bored'), 'neutral'),
    ]:
        refused = graph.call(Chat, '/agechat/chat', request)
        assert not refused.success and needle in refused.error, refused.error
    long = graph.call(
        Chat, '/agechat/chat', Chat.Request(text='오늘 날씨 ' * 300, age_group='adult')
    )
    assert long.success and len(long.reply.user_text) <= 200
    assert classify_register(long.reply.reply_text) == 'adult'
    chat = subprocess.run(
        [str(find_executable('dialogue_node', 'chat')), '--age', 'senior', '--once', '배고파'],
        env=graph.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert chat.returncode == 0, chat.stderr
    assert classify_register(chat.stdout.strip()) == 'senior', chat.stdout
    refused = subprocess.run(
        [str(find_executable('dialogue_node', 'chat')), '--once', ''],
        env=graph.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and 'empty' in refused.stderr
    graph.assert_alive()


def test_bad_parameters_and_missing_model_stop_the_node_with_a_message(graph):
    bad = graph.start_node(
        'dialogue_node',
        'dialogue_node',
        name='bad_params',
        parameters={'top_p': 5.0, 'emotion_time': 'sometimes'},
    )
    missing = graph.start_node(
        'dialogue_node',
        'dialogue_node',
        name='no_model',
        parameters={'engine': 'gpt2', 'model_path': '/nonexistent/kogpt2'},
    )
    no_index = graph.start_node(
        'dialogue_node',
        'dialogue_node',
        name='no_index',
        parameters={'model_path': '/nonexistent/index'},
    )
    wait_until(
        lambda: not bad.alive() and not missing.alive() and not no_index.alive(),
        60,
        'the three nodes to exit',
    )
    assert bad.popen.returncode == 2 and 'top_p' in bad.log() and 'emotion_time' in bad.log()
    assert missing.popen.returncode == 2
    assert '/nonexistent/kogpt2' in missing.log() and 'dialogue_node.core.train' in missing.log()
    assert no_index.popen.returncode == 2 and '/nonexistent/index' in no_index.log()
    assert 'dialogue_node.core.retrieval_data' in no_index.log()


def test_dialogue_node_lifecycle_and_run_time_parameters(graph):
    # the GPT-2 engine, so that the token cap is exercised (the default retrieval engine
    # generates no tokens)
    graph.start_node(
        'dialogue_node', 'dialogue_node', parameters={'age_wait_s': 0.0, 'engine': 'gpt2'}
    )
    replies = graph.collect('/agechat/reply', DialogueReply)
    diagnostics = graph.collect('/diagnostics', DiagnosticArray)
    utterances = graph.publisher('/agechat/utterance', Utterance)
    graph.wait_for_subscribers(utterances, timeout=60)

    described = graph.describe_parameters(
        'dialogue_node', 'max_new_tokens', 'temperature', 'model_path', 'engine'
    )
    tokens_range = described['max_new_tokens'].integer_range[0]
    assert (tokens_range.from_value, tokens_range.to_value) == (1, 256)
    assert not described['max_new_tokens'].read_only and described['max_new_tokens'].description
    assert described['temperature'].floating_point_range[0].to_value == 2.0
    assert described['model_path'].read_only and described['engine'].read_only

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
