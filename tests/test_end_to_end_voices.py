"""End to end on real voices: a bag built from real Korean recordings replayed into the graph.

The bag's turns are real read Korean speech from ``../shared/data/speech/korean`` (CC BY-NC-SA:
tests and demo only, never in the repository; the test skips, saying where it looked, without
it). The graph runs as launched, with its default recogniser (Whisper). Checked: every turn is
heard as one utterance, what was heard matches what was said (CER <= 0.2 over the turns, the
issue's floor), and every utterance gets an age estimate and one reply in the register of the
estimated group. The age groups themselves are not checked here: the age model's accuracy on real
voices is measured by age_node's evaluation, not by five clips.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agechat_ros.files import korean_speech_manifest
from agechat_ros.labels import addressed_group
from agechat_tools.graph_run import (
    VOICES_E2E_BAG,
    VOICES_E2E_OPTIONS,
    ensure_demo_bag,
    run_graph_on_bag,
)
from agechat_tools.report import heard_vs_said_cer, read_run

#: Turns in the bag (one speaker each, chosen by the manifest alone: see turns_from_voices).
TURNS = VOICES_E2E_OPTIONS['turns']
CER_FLOOR = 0.2


@pytest.fixture(scope='module')
def voices_run(tmp_path_factory):
    manifest = korean_speech_manifest()
    if not manifest.is_file():
        pytest.skip(f'real Korean voices not found at {manifest} (../shared/data is not here)')
    bag = ensure_demo_bag(VOICES_E2E_BAG, voices=manifest.parent, **VOICES_E2E_OPTIONS)
    script = json.loads((bag / 'script.json').read_text())
    assert script['voices'] == 'recorded'
    out = tmp_path_factory.mktemp('e2e_voices')
    run = run_graph_on_bag(bag, out, show_progress=False)
    data = read_run(run.output_bag, script, run.replay_start_ns)
    yield run, data, script
    if any(s.get('starts', 1) > 1 for s in run.launch_status.values()) or len(data.turns) != TURNS:
        for log in sorted(Path(run.log_dir).glob('*.log')):
            print(f'===== {log.name}\n{log.read_text()[-5000:]}')


def test_every_recorded_turn_is_heard_once(voices_run):
    _, data, script = voices_run
    said = [turn['text'] for turn in script['turns']]
    assert len(data.turns) == len(said), [(t.scripted_text, t.text) for t in data.turns]
    assert sorted(t.scripted_text for t in data.turns) == sorted(said)


def test_heard_text_matches_what_was_said(voices_run):
    _, data, _ = voices_run
    pairs = [(t.scripted_text, t.text, round(t.stt_cer, 3)) for t in data.turns]
    assert all(t.stt_cer is not None for t in data.turns), pairs
    assert heard_vs_said_cer(data.turns) <= CER_FLOOR, pairs


def test_whisper_heard_it(voices_run):
    run, _, _ = voices_run
    from rosbags.highlevel import AnyReader

    with AnyReader([run.output_bag]) as reader:
        connections = [c for c in reader.connections if c.topic == '/agechat/utterance']
        recognizers = {
            reader.deserialize(raw, c.msgtype).recognizer
            for c, _, raw in reader.messages(connections=connections)
        }
    assert recognizers and all(name.startswith('whisper') for name in recognizers), recognizers


def test_every_turn_is_answered_in_the_register_of_its_estimated_group(voices_run):
    from dialogue_node.core.register import classify_register

    _, data, _ = voices_run
    for turn in data.turns:
        assert turn.age_group, f'{turn.utterance_id}: no age estimate'
        assert turn.reply, f'{turn.utterance_id} ({turn.text!r}): no reply'
        addressed = addressed_group(turn.age_group, turn.age_unsure)  # unsure: adult, 해요체
        assert turn.reply_age_group == addressed, (turn.age_group, turn.age_unsure)
        assert classify_register(turn.reply) == addressed, (turn.reply, addressed)
        assert turn.times.get('first_audio'), f'{turn.utterance_id}: the reply was not spoken'


def test_no_node_died(voices_run):
    run, _, _ = voices_run
    for name, status in run.launch_status.items():
        assert status['starts'] == 1, f'{name} was restarted: exit codes {status["exit_codes"]}'
        assert status['exit_codes'] == [0], f'{name} exit codes {status["exit_codes"]}'
