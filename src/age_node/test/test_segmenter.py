"""Streaming segmentation: the state machine on known probabilities, then silero-vad on speech."""

import numpy as np
import pytest

from age_node.core.segmenter import (
    FRAME,
    Audio,
    Cancel,
    Close,
    Open,
    Segmenter,
    SegmenterConfig,
    SileroVad,
)

FRAME_S = FRAME / 16000


class ScriptedProbability:
    """Returns the next value of a fixed list per frame (drives the state machine exactly)."""

    def __init__(self, values):
        self.values = list(values)
        self.calls = 0

    def __call__(self, frame):
        assert frame.shape == (FRAME,) and frame.dtype == np.float32
        value = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        return value


def run(probabilities, config, chunk=300):
    segmenter = Segmenter(config, ScriptedProbability(probabilities))
    audio = np.zeros(len(probabilities) * FRAME, dtype=np.float32)
    events = []
    for start in range(0, audio.size, chunk):
        events += segmenter.push(
            audio[start : start + chunk], arrival_ns=int((start + chunk) / 16000 * 1e9)
        )
    return events


def test_hysteresis_pre_roll_and_end_silence():
    config = SegmenterConfig(
        start_threshold=0.6,
        end_threshold=0.3,
        min_speech_s=0.1,
        end_silence_s=0.32,
        pre_roll_s=3 * FRAME_S,
    )
    probs = [0.1] * 10 + [0.4, 0.7] + [0.5] * 20 + [0.2] * 10 + [0.1] * 5
    events = run(probs, config)
    kinds = [type(e).__name__ for e in events]
    assert kinds.count('Open') == 1 and kinds.count('Close') == 1
    opened = events[0]
    assert (
        isinstance(opened, Open) and opened.samples.size == 4 * FRAME
    )  # 3 pre-roll frames + opening frame
    close = next(e for e in events if isinstance(e, Close))
    assert not close.truncated
    # speech frames: the opening one + 20 frames above end_threshold; 10 silence frames close it
    assert close.speech_samples == 4 * FRAME + 20 * FRAME
    assert sum(isinstance(e, Audio) for e in events) == 20 + 10
    assert close.speech_end_ns - close.speech_start_ns == pytest.approx(
        21 * FRAME_S * 1e9, abs=1e6
    )


def test_short_blip_is_cancelled_and_max_length_truncates():
    config = SegmenterConfig(
        min_speech_s=0.3, end_silence_s=0.2, max_utterance_s=1.0, pre_roll_s=0.0
    )
    events = run([0.9] * 3 + [0.0] * 20, config)
    assert [type(e) for e in events if not isinstance(e, Audio)] == [Open, Cancel]
    endless = run([0.9] * 100, config)
    closes = [e for e in endless if isinstance(e, Close)]
    assert len(closes) == 3 and all(c.truncated for c in closes)
    assert all(c.speech_samples <= 1.0 * 16000 + FRAME for c in closes)


def test_reset_cancels_open_utterance():
    segmenter = Segmenter(SegmenterConfig(), ScriptedProbability([0.9] * 50))
    events = segmenter.push(np.zeros(FRAME * 5, np.float32), 0)
    assert isinstance(events[0], Open) and segmenter.is_open
    assert [type(e) for e in segmenter.reset()] == [Cancel]
    assert not segmenter.is_open


def test_bad_config_is_refused():
    with pytest.raises(ValueError):
        SegmenterConfig(start_threshold=0.3, end_threshold=0.5).check()


def test_silero_finds_each_espeak_utterance(speech_with_pauses):
    audio, spans, _ = speech_with_pauses
    vad = SileroVad()
    segmenter = Segmenter(SegmenterConfig(), vad, vad.reset)
    closes = []
    for start in range(0, audio.size, 320):  # 20 ms chunks, as a microphone driver sends them
        for event in segmenter.push(audio[start : start + 320], int(start / 16 * 1e6)):
            if isinstance(event, Close):
                closes.append(event)
    assert len(closes) == len(spans) == 3
    for (begin, end), close in zip(spans, closes, strict=True):
        assert abs(close.speech_start_ns / 1e9 - begin / 16000) < 0.35  # silero needs a few frames
        assert abs(close.speech_end_ns / 1e9 - end / 16000) < 0.3


def test_silence_and_noise_only_open_nothing():
    vad = SileroVad()
    segmenter = Segmenter(SegmenterConfig(), vad, vad.reset)
    rng = np.random.default_rng(3)
    audio = np.concatenate(
        [np.zeros(16000, np.float32), rng.normal(0, 0.01, 32000).astype(np.float32)]
    )
    events = []
    for start in range(0, audio.size, 512):
        events += segmenter.push(audio[start : start + 512], start)
    assert events == []


def test_onnx_vad_matches_the_torch_model_and_needs_no_torch(speech_with_pauses):
    """The bundled ONNX file gives the TorchScript model's probabilities, and imports no torch."""
    import subprocess
    import sys

    import torch
    from silero_vad import load_silero_vad

    audio, _, _ = speech_with_pauses
    frames = audio[: audio.size // FRAME * FRAME].reshape(-1, FRAME)
    onnx_vad, torch_vad = SileroVad(), load_silero_vad(onnx=False)
    onnx_p = np.array([onnx_vad(frame) for frame in frames])
    with torch.inference_mode():
        torch_p = np.array([torch_vad(torch.from_numpy(f.copy()), 16000).item() for f in frames])
    assert (torch_p > 0.5).sum() > 50  # the comparison covers speech
    assert np.abs(onnx_p - torch_p).max() < 1e-4
    onnx_vad.reset()
    assert onnx_vad(frames[0]) == pytest.approx(onnx_p[0], abs=1e-6)

    script = (
        'import sys, numpy as np\n'
        'from age_node.core.segmenter import SileroVad\n'
        'vad = SileroVad()\n'
        'vad(np.zeros(512, np.float32))\n'
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'False'


def test_a_missing_vad_model_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match='make setup'):
        SileroVad(str(tmp_path / 'missing.onnx'))
