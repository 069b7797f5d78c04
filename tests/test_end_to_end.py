"""End to end: the launched graph, the demo bag replayed into it, its outputs checked per turn.

The graph is launched from the launch file and its outputs are recorded into a bag.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rosbags.highlevel import AnyReader

from agechat_ros.labels import addressed_group
from agechat_tools.graph_run import REPO, ensure_demo_bag, run_graph_on_bag
from agechat_tools.report import read_run


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    bag = ensure_demo_bag(REPO / 'out' / 'cache' / 'demo_bag')
    script = json.loads((bag / 'script.json').read_text())
    out = tmp_path_factory.mktemp('e2e')
    run = run_graph_on_bag(bag, out, show_progress=False)
    try:
        data = read_run(run.output_bag, script, run.replay_start_ns)
    except Exception:
        print((out / 'launcher.log').read_text())
        raise
    yield run, data, script
    if any(s.get('starts', 1) > 1 for s in run.launch_status.values()):
        for log in sorted(Path(run.log_dir).glob('*.log')):
            print(f'===== {log.name}\n{log.read_text()[-5000:]}')


def test_one_utterance_per_scripted_turn(demo_run):
    run, data, script = demo_run
    assert len(data.turns) == len(script['turns']), [t.text for t in data.turns]
    matched = [t.scripted_text for t in data.turns]
    assert sorted(matched) == sorted(turn['text'] for turn in script['turns']), (
        'each utterance overlaps its own turn'
    )


def test_each_utterance_has_an_age_estimate_and_one_reply_with_its_id(demo_run):
    run, data, script = demo_run
    with AnyReader([run.output_bag]) as reader:
        ids = {'/agechat/utterance': [], '/agechat/age': [], '/agechat/reply': []}
        for connection, _, raw in reader.messages():
            if connection.topic in ids:
                ids[connection.topic].append(
                    reader.deserialize(raw, connection.msgtype).utterance_id
                )
    assert len(set(ids['/agechat/utterance'])) == len(ids['/agechat/utterance'])
    assert sorted(ids['/agechat/age']) == sorted(ids['/agechat/utterance'])
    assert sorted(ids['/agechat/reply']) == sorted(ids['/agechat/utterance'])


def test_replies_are_in_the_register_of_the_age_group(demo_run):
    from dialogue_node.core.register import classify_register

    _, data, _ = demo_run
    for turn in data.turns:
        assert turn.reply, f'{turn.utterance_id}: empty reply'
        assert turn.reply_age_group == addressed_group(turn.age_group, turn.age_unsure), (
            'reply must be conditioned on the estimated age group (adult when unsure)'
        )
        assert classify_register(turn.reply) == turn.reply_age_group, (
            turn.reply,
            turn.reply_age_group,
        )


def test_age_groups_match_the_script(demo_run):
    _, data, _ = demo_run
    wrong = [
        (t.expected_age_group, t.age_group, round(t.age_confidence, 2))
        for t in data.turns
        if t.age_group != t.expected_age_group
    ]
    assert len(wrong) <= 1, f'scripted vs estimated: {wrong}'


def test_face_emotions_published_throughout(demo_run):
    run, data, script = demo_run
    assert len(data.emotions) >= 0.5 * script['frames'], (len(data.emotions), script['frames'])
    times = sorted(e[0] for e in data.emotions)
    span_s = (times[-1] - times[0]) / 1e9
    assert span_s >= 0.9 * script['duration_s']
    assert max((b - a) / 1e9 for a, b in zip(times, times[1:], strict=False)) < 2.0, (
        'a gap of over 2 s without face emotions'
    )
    assert any(e[3] for e in data.emotions), 'no face was ever found'


def test_each_reply_was_spoken_and_animated(demo_run):
    _, data, _ = demo_run
    assert data.tts_chunks, 'no TTS audio'
    for turn in data.turns:
        assert turn.times.get('first_audio'), f'{turn.utterance_id}: no first TTS audio'
        assert turn.tts_duration_s > 0.3
    assert len(data.avatar_frames) >= 5 * data.turns[-1].tts_duration_s


def test_no_node_died(demo_run):
    run, _, _ = demo_run
    assert sorted(run.launch_status) == [
        'age_node',
        'avatar_node',
        'dialogue_node',
        'emotion_node',
    ]
    for name, status in run.launch_status.items():
        assert status['starts'] == 1, f'{name} was restarted: exit codes {status["exit_codes"]}'
        assert status['exit_codes'] == [0], f'{name} exit codes {status["exit_codes"]}'
