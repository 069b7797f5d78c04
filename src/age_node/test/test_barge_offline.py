"""Barge-in figures offline on held-out speakers, through the node's own BargeInListener.

20 echo-only replies and 20 replies with a real Korean voice from speakers never looked at
while the detector was chosen (core/barge_eval.py's seeded split), 5 rooms of the loop
(delay 20-80 ms, RT60 0.2-0.5 s, echo -12..-3 dB, noise -65..-50 dBFS), user at -26 dBFS.
Exact timing (no DDS): the latency is the decision with zero compute and transport time.
"""

from __future__ import annotations

import pytest

from age_node.core import barge_eval
from agechat_ros.files import korean_speech_manifest


@pytest.fixture(scope='module')
def manifest():
    path = korean_speech_manifest()
    if not path.is_file():
        pytest.skip(f'needs real Korean speech at {path}')
    return path


def test_the_split_is_seeded_and_disjoint(manifest):
    dev, held_out = barge_eval.split_speakers(manifest)
    assert len(dev) == barge_eval.DEV_SPEAKERS and len(held_out) >= 15
    assert not set(dev) & set(held_out)
    assert (dev, held_out) == barge_eval.split_speakers(manifest)


def test_held_out_speakers_over_the_reply(manifest):
    _, held_out = barge_eval.split_speakers(manifest)
    clips = barge_eval.clips_of(manifest, held_out, 20, seed=3, max_s=8.0)
    assert len(clips) == 20 and {c.speaker for c in clips} <= set(held_out)
    results = barge_eval.run_rooms(clips, rooms=5, replies_per_room=8, seed=3)
    figures = barge_eval.figures(results)
    print({k: v for k, v in figures.items() if k != 'speakers'})
    assert figures['echo_replies'] == 20 and figures['user_trials'] == 20
    assert figures['false_barge_ins'] == 0, figures
    assert figures['barge_ins_before_the_voice'] == 0, figures
    assert figures['barge_in_recall'] >= 0.95, [r.latency_ms for r in results]


def test_echo_alone_never_decides_even_on_the_first_reply():
    """No real voice needed: 4 rooms x 3 echo-only replies, the first right after the start."""
    results = barge_eval.run_rooms([], rooms=4, replies_per_room=3, seed=9)
    assert len(results) == 12 and all(r.kind == 'echo' for r in results)
    assert barge_eval.figures(results)['false_barge_ins'] == 0
