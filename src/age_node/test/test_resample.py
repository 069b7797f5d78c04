"""Streaming resampling: chunked output equals the one-shot output and keeps frequencies."""

import numpy as np
import pytest

from age_node.core.resample import StreamResampler


@pytest.mark.parametrize('rate', [44100, 48000, 22050, 8000])
def test_chunked_equals_one_shot_and_keeps_a_tone(rate):
    t = np.arange(rate * 2) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    whole = StreamResampler(rate).process(tone)
    chunked_resampler = StreamResampler(rate)
    sizes = np.random.default_rng(1).integers(1, 2000, size=400)
    pieces, start = [], 0
    for size in sizes:
        pieces.append(chunked_resampler.process(tone[start : start + size]))
        start += size
    pieces.append(chunked_resampler.process(tone[start:]))
    chunked = np.concatenate(pieces)
    assert abs(whole.size - 32000) <= 2
    assert chunked.size == whole.size
    assert np.allclose(chunked, whole, atol=1e-5)
    spectrum = np.abs(np.fft.rfft(whole[4000:20000]))
    peak_hz = np.argmax(spectrum) * 16000 / 16000
    assert peak_hz == pytest.approx(440, abs=2)


def test_passthrough_and_bad_rate():
    x = np.random.default_rng(0).normal(size=1000).astype(np.float32)
    assert np.array_equal(StreamResampler(16000).process(x), x)
    with pytest.raises(ValueError):
        StreamResampler(10)
