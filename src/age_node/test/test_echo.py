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


@pytest.mark.parametrize('seed', [1, 2, 3])
def test_echo_only_replies_never_look_like_a_user(seed):
    """One room (a robot that stays put), 6 replies: no decision on echo alone."""
    canceller, detector = make_parts()
    room = echo_loop.random_config(random.Random(seed), seed)
    position = 0
    for i, (text, tts) in enumerate(replies_tts(6)):
        trial = echo_loop.make_trial(tts, room, text)
        assert play(canceller, detector, trial, position) == [], (i, room)
        position += trial.microphone.size // CHUNK + 30
    assert canceller.frames > 0 and canceller.reference_frames > canceller.frames // 3
    assert detector.voiced_frames == detector.guarded_frames  # a voiced frame was echo: guarded


def speech_onset_s(voice: np.ndarray) -> float:
    """First 32 ms frame where silero hears the voice alone (>= 0.5), in seconds."""
    vad = SileroVad()
    for start in range(0, voice.size - 512, 512):
        if vad(voice[start : start + 512]) >= 0.5:
            return start / 16000
    raise AssertionError('silero never hears this voice')


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_a_voice_over_the_reply_is_found_soon_after_it_starts(seed):
    canceller, detector = make_parts()
    room = echo_loop.random_config(random.Random(seed), seed)
    (_, first), (text, tts) = replies_tts(2)
    warm = echo_loop.make_trial(first, room)
    play(canceller, detector, warm, 0)  # the canceller has heard one reply before
    user = synthesize_speech('안녕하세요 반가워요 오늘 날씨 좋네요', 'adult', 20 + seed)
    user = echo_loop.scale_to_dbfs(user, -26.0)
    trial = echo_loop.make_trial(tts, room, text, user=user, user_onset_s=0.4)
    heard_s = 0.4 + speech_onset_s(user)  # silero hears the voice alone from here on
    assert heard_s < tts.size / 16000 - 0.5  # ... while the agent still speaks
    found = play(canceller, detector, trial, warm.microphone.size // CHUNK + 30)
    assert found, 'no barge-in'
    # not before the voice starts, and at most 0.2 s after silero hears the voice alone
    assert trial.user_onset_s - 0.05 < found[0] < heard_s + 0.2, (found, heard_s)


def test_erle_of_the_library_on_the_loop():
    from age_node.bargein import offline_erle

    figures = offline_erle(count=3)
    assert figures['erle_db_first_reply_min'] > 15.0, figures
    assert figures['erle_db_converged_mean'] > 20.0, figures


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match='barge_in_min_speech_s'):
        echo.BargeInConfig(min_speech_s=0.0).check()
    with pytest.raises(ValueError, match='webrtc'):
        echo.create_backend('duplex')


def test_speex_backend_cancels_too():
    """The alternative library (Debian's libspeexdsp, ctypes) runs and removes echo."""
    backend = echo.create_backend('speex')
    tts = replies_tts(1)[0][1]
    tts = np.concatenate([tts, tts, tts])
    mic = echo_loop.echo_of(tts, echo_loop.LoopConfig(delay_ms=30.0))[: tts.size]
    out = []
    for start in range(0, tts.size // 160 * 160, 160):
        far, near = (
            echo.to_int16(tts[start : start + 160]),
            echo.to_int16(mic[start : start + 160]),
        )
        out.append(backend.process(near, far))
    out = np.concatenate(out).astype(np.float32) / 32768.0
    third = out.size // 3
    assert echo.erle_db(mic[2 * third : 3 * third], out[2 * third : 3 * third]) > 15.0
