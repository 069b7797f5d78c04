"""Echo canceller + barge-in detector on the simulated loop, offline (no ROS), exact timing."""

from __future__ import annotations

import random

import numpy as np
import pytest

from age_node.bargein import CHUNK, CHUNK_NS, replies_tts
from age_node.core import echo, echo_loop
from age_node.core.segmenter import SileroVad
from age_node.core.synth import synthesize_speech

T0 = 10**15
BACKEND = 'webrtc'


def make_parts():
    canceller = echo.EchoCanceller(echo.create_backend(BACKEND), 60.0)
    vad = SileroVad()
    detector = echo.BargeInDetector(
        echo.BargeInConfig(),
        vad,
        lambda i, n: canceller.reference_level_db(i - canceller.reference_delay, n),
        vad.reset,
    )
    return canceller, detector


def play(canceller, detector, trial, position: int, lead: int = 3):
    """Feed one reply in arrival order (TTS `lead` chunks ahead); return the decisions (s)."""
    detector.reset()
    found = []
    n_tts = -(-trial.tts.size // CHUNK)
    for k in range(-lead, trial.microphone.size // CHUNK):
        j = k + lead
        if j < n_tts:
            chunk = trial.tts[j * CHUNK : (j + 1) * CHUNK]
            canceller.add_reference(chunk, T0 + (position + j - lead) * CHUNK_NS)
        if k >= 0:
            mic = trial.microphone[k * CHUNK : (k + 1) * CHUNK]
            out, index = canceller.process(mic, T0 + (position + k + 1) * CHUNK_NS - 62_500)
            decision = detector.push(out, index, canceller.last_input)
            if decision is not None:
                found.append(decision.onset_index / 16000 - T0 / 1e9 - position * 0.02)
    return found


def test_timeline_keeps_chunks_contiguous_and_moves_back_to_the_least_late():
    timeline = echo._Timeline(keep_s=1.0)
    ones = np.ones(320, np.int16)
    assert timeline.place(ones, 1000) == 1000
    assert timeline.place(2 * ones, 1400) == 1320  # 80 samples late: appended
    assert timeline.place(3 * ones, 1600) == 1600  # 40 early: all moved back by 40
    assert timeline.read(960, 10).tolist() == [1] * 10
    assert timeline.place(ones, 20000) == 20000  # a gap: a new segment
    assert timeline.read(19990, 20).tolist() == [0] * 10 + [1] * 10


def test_echo_only_replies_never_look_like_a_user():
    canceller, detector = make_parts()
    rng = random.Random(3)
    position = 0
    for i, (text, tts) in enumerate(replies_tts(8)):
        trial = echo_loop.make_trial(tts, echo_loop.random_config(rng, 100 + i), text)
        assert play(canceller, detector, trial, position) == [], (i, trial.config)
        position += trial.microphone.size // CHUNK + 30
    assert canceller.frames > 0 and canceller.reference_frames > canceller.frames // 3


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_a_voice_over_the_reply_is_found_near_its_onset(seed):
    canceller, detector = make_parts()
    rng = random.Random(seed)
    (text, tts), (_, second) = replies_tts(2)
    warm = echo_loop.make_trial(second, echo_loop.random_config(rng, 50 + seed))
    play(canceller, detector, warm, 0)  # the canceller has heard one reply before
    user = synthesize_speech('안녕하세요 반가워요', 'adult', 20 + seed)
    trial = echo_loop.make_trial(
        tts, warm.config, text, user=user, user_onset_s=0.7, user_dbfs=-26.0
    )
    found = play(canceller, detector, trial, warm.microphone.size // CHUNK + 30)
    assert found, 'no barge-in'
    assert abs(found[0] - trial.user_onset_s) < 0.2, (found, trial.user_onset_s)


def test_erle_of_the_library_on_the_loop():
    from age_node.bargein import offline_erle

    figures = offline_erle(count=3)
    assert figures['erle_db_first_reply_min'] > 15.0, figures
    assert figures['erle_db_converged_mean'] > 20.0, figures


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match='barge_in_min_speech_s'):
        echo.BargeInConfig(min_speech_s=0.0).check()
    with pytest.raises(ValueError, match='webrtc'):
        echo.create_backend('speex')
