"""Face crop, detector, smoothing and the whole frame pipeline on real and bad frames."""

from __future__ import annotations

import numpy as np
import pytest

from emotion_node.core.classifier import EmotionClassifier
from emotion_node.core.detector import HaarDetector, TrackingDetector
from emotion_node.core.model import LABELS
from emotion_node.core.pipeline import EmotionPipeline, annotate
from emotion_node.core.preprocess import crop_face, normalize, to_square
from emotion_node.core.smoothing import ProbabilitySmoother

HAPPY, NEUTRAL, SAD = LABELS.index('happy'), LABELS.index('neutral'), LABELS.index('sad')


@pytest.fixture(scope='module')
def classifier(weights_path):
    return EmotionClassifier.from_file(weights_path)


def test_to_square_grows_the_short_side_around_the_centre():
    assert to_square((10, 20, 30, 50)) == (0, 20, 50, 50)
    assert to_square((10, 20, 50, 30)) == (10, 10, 50, 50)


def test_crop_face_offsets_and_pads_like_fer():
    gray = np.zeros((100, 100), np.uint8)
    gray[40:60, 40:60] = 200  # the "face" box (40, 40, 20, 20)
    gray[-2:] = 50  # padding colour: mean of the two bottom rows
    crop = crop_face(gray, (40, 40, 20, 20))
    assert crop.shape == (64, 64) and crop.dtype == np.uint8
    # 10 px offset each side: the 20 px box fills the middle half of the 40 px crop
    assert crop[32, 32] == 200 and crop[2, 2] == 0
    corner = crop_face(gray, (0, 0, 20, 20))  # reaches 10 px beyond the frame: padded with 50
    assert corner[1, 1] == 50 and corner[40, 40] == 0
    np.testing.assert_allclose(normalize(np.array([0, 255], np.uint8)), [-1.0, 1.0])


def test_crop_outside_the_frame_is_refused():
    with pytest.raises(ValueError, match='outside'):
        crop_face(np.zeros((50, 50), np.uint8), (500, 500, 10, 10))


def test_haar_finds_the_astronaut_at_reduced_resolution(astronaut_frame):
    import cv2

    gray = cv2.cvtColor(astronaut_frame, cv2.COLOR_BGR2GRAY)
    boxes = HaarDetector(min_face_px=40, detect_width=320).detect(gray)
    assert len(boxes) >= 1
    x, y, w, h = max(boxes, key=lambda b: b[2] * b[3])
    # the astronaut's face sits in the upper middle of the pasted 400x400 picture
    # (x 120..520, y 40..440)
    assert 200 < x + w / 2 < 420 and 60 < y + h / 2 < 260 and 50 < w < 160


def test_tracking_follows_a_moving_face_and_redetects(astronaut_frame):
    import cv2

    tracker = TrackingDetector(HaarDetector(min_face_px=40, detect_width=320), redetect_every=5)
    full, centres = 0, []
    for shift in range(0, 60, 4):
        gray = cv2.cvtColor(np.roll(astronaut_frame, shift, axis=1), cv2.COLOR_BGR2GRAY)
        detection = tracker.detect(gray)
        assert detection.primary is not None
        full += detection.full_search
        centres.append(detection.primary[0] + detection.primary[2] / 2)
    assert full == 3  # 15 frames, a full search every 5
    assert centres[-1] - centres[0] == pytest.approx(56, abs=12)  # it moved with the face
    blank = np.zeros(astronaut_frame.shape[:2], np.uint8)
    assert tracker.detect(blank).primary is None


def test_smoother_converges_decays_to_neutral_and_resets():
    rest = np.eye(7)[NEUTRAL]
    smoother = ProbabilitySmoother(0.3, rest)
    happy = np.eye(7)[HAPPY]
    first = smoother.update(happy, 0.0)
    assert first[HAPPY] == pytest.approx(1.0)  # first frame: no history to blend
    smoother.update(np.eye(7)[SAD], 1 / 30)  # one odd frame does not flip the label
    assert smoother.state.argmax() == HAPPY
    state = smoother.decay(1 / 30 + 0.3)  # one time constant without a face
    assert state[NEUTRAL] == pytest.approx(1 - np.exp(-1), abs=0.02)
    assert smoother.update(happy, 0.0)[HAPPY] == pytest.approx(1.0)  # time went back: reset
    off = ProbabilitySmoother(0.0, rest)
    off.update(happy, 0.0)
    assert off.update(np.eye(7)[SAD], 0.01)[SAD] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        ProbabilitySmoother(-1, rest)


def test_pipeline_astronaut_is_happy_with_high_confidence(classifier, astronaut_frame):
    pipeline = EmotionPipeline(classifier)
    result = pipeline.process(astronaut_frame, t=0.0)
    assert result.face_found and result.face_count >= 1
    assert result.label == 'happy' and result.confidence > 0.9
    assert result.raw_probabilities[HAPPY] > 0.9
    np.testing.assert_allclose(result.probabilities.sum(), 1.0, atol=1e-5)
    assert annotate(astronaut_frame, result).shape == astronaut_frame.shape


def test_pipeline_without_face_and_on_odd_frames(classifier, astronaut_frame):
    pipeline = EmotionPipeline(classifier, smoothing_s=0.2)
    pipeline.process(astronaut_frame, t=0.0)
    for i, frame in enumerate(
        [
            np.zeros((480, 640, 3), np.uint8),
            np.full((480, 640, 3), 255, np.uint8),
            np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8),
            np.zeros((1, 1, 3), np.uint8),
            np.zeros((3000, 20, 3), np.uint8),
        ]
    ):
        result = pipeline.process(frame, t=0.1 * (i + 1))
        assert not result.face_found and result.emotion == NEUTRAL
        assert not result.raw_probabilities.any()
    assert result.probabilities[NEUTRAL] > 0.9  # decayed towards neutral
    with pytest.raises(ValueError):
        EmotionPipeline(classifier, detector='nope')
