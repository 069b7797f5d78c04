"""Shared fixtures of emotion_node's core tests: the converted weights and real face images."""

from __future__ import annotations

from agechat_ros.testing import graph, pytest_runtest_makereport  # noqa: F401 - for the DDS tests

from pathlib import Path

import cv2
import numpy as np
import pytest

from emotion_node.core.convert import default_reference_tflite_path, default_weights_path

cv2.setNumThreads(1)


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f'{path} is missing: run `make setup` (scripts/setup.d/20-emotion-weights.sh)')
    return path


@pytest.fixture(scope='session')
def weights_path() -> Path:
    return _require(default_weights_path())


@pytest.fixture(scope='session')
def reference_path() -> Path:
    return _require(default_reference_tflite_path())


@pytest.fixture(scope='session')
def lfw_faces() -> np.ndarray:
    """Return the 100 real face crops of skimage's lfw_subset, as (100, 64, 64) uint8."""
    from skimage import data

    crops = data.lfw_subset()[:100]
    return np.stack([cv2.resize((c * 255).round().astype(np.uint8), (64, 64)) for c in crops])


@pytest.fixture(scope='session')
def astronaut_frame() -> np.ndarray:
    """Return a 640x480 BGR frame with skimage's astronaut (a smiling face) in it."""
    from skimage import data

    face = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (400, 400))
    frame = np.full((480, 640, 3), 96, np.uint8)
    frame[40:440, 120:520] = face
    return frame
