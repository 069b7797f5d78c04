"""Minimal WAV I/O (16-bit PCM) with the standard library, so no extra audio package is needed."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Tuple

import numpy as np


def write_wav(path, samples: np.ndarray, sample_rate: int) -> None:
    """Write float samples in [-1, 1] as a mono 16-bit PCM WAV file."""
    ints = np.clip(
        np.round(np.nan_to_num(np.asarray(samples, np.float32)) * 32767.0), -32768, 32767
    ).astype('<i2')
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), 'wb') as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(int(sample_rate))
        out.writeframes(ints.tobytes())


def read_wav(path) -> Tuple[np.ndarray, int]:
    """Read a 16-bit PCM WAV file; return (mono float32 samples, sample rate).

    Channels are averaged.
    """
    with wave.open(str(path), 'rb') as src:
        if src.getsampwidth() != 2:
            raise ValueError(
                f'{path}: only 16-bit PCM WAV is supported '
                f'(sample width {src.getsampwidth()} bytes)'
            )
        channels, rate = src.getnchannels(), src.getframerate()
        data = (
            np.frombuffer(src.readframes(src.getnframes()), dtype='<i2').astype(np.float32)
            / 32768.0
        )
    if channels > 1:
        data = data[: data.size // channels * channels].reshape(-1, channels).mean(axis=1)
    return data, rate
