"""Shared helpers for age_node's unit tests."""

from agechat_ros.testing import graph, pytest_runtest_makereport  # noqa: F401 - for the DDS tests

from pathlib import Path

import numpy as np
import pytest
import torch

from agechat_ros.files import korean_speech_manifest

#: Real Korean read speech (CC BY-NC-SA: tests only, never in the repository): ../shared beside
#: the clone.
KOREAN_MANIFEST = korean_speech_manifest()

torch.set_num_threads(1)


@pytest.fixture(scope='session')
def speech_with_pauses():
    """Three espeak-ng utterances, 1.2 s of low noise apart (16 kHz), with their audible spans."""
    from age_node.core.synth import synthesize_speech

    rng = np.random.default_rng(0)
    parts, spans = [], []
    texts = [
        ('안녕하세요', 'child', 11),
        ('감사합니다', 'adult', 12),
        ('안녕하세요', 'senior', 13),
    ]
    position = 0
    for text, group, seed in texts:
        gap = rng.normal(0, 0.002, 19200).astype(np.float32)
        speech = synthesize_speech(text, group, seed)
        parts += [gap, speech]
        loud = np.flatnonzero(
            np.abs(speech) > 0.05 * np.abs(speech).max()
        )  # espeak pads a little silence
        spans.append((position + gap.size + loud[0], position + gap.size + loud[-1]))
        position += gap.size + speech.size
    parts.append(rng.normal(0, 0.002, 19200).astype(np.float32))
    return np.concatenate(parts), spans, texts


@pytest.fixture(scope='session')
def korean_manifest() -> Path:
    """Return the real Korean speech manifest; skip (saying where it was looked for) without it."""
    if not KOREAN_MANIFEST.is_file():
        pytest.skip(f'real Korean speech not found at {KOREAN_MANIFEST}')
    return KOREAN_MANIFEST
