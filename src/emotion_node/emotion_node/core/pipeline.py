"""One camera frame in, the primary face's emotion out: detect, crop, classify, smooth.

:class:`EmotionPipeline` is the node's whole computation, without ROS, so it is tested and
benchmarked on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional, Tuple

import cv2
import numpy as np

from emotion_node.core.classifier import EmotionClassifier
from emotion_node.core.detector import HaarDetector, TrackingDetector
from emotion_node.core.spec import LABELS, NUM_CLASSES
from emotion_node.core.preprocess import crop_face
from emotion_node.core.smoothing import ProbabilitySmoother

NEUTRAL = LABELS.index('neutral')
DETECTORS = ('haar_tracking', 'haar')


@dataclass
class FrameResult:
    """What the node publishes for one frame."""

    face_found: bool
    face_count: int
    emotion: int
    confidence: float
    probabilities: np.ndarray
    raw_probabilities: np.ndarray
    box: Tuple[int, int, int, int] = (0, 0, 0, 0)
    processing_ms: float = 0.0
    timings_ms: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The emotion's label, e.g. 'happy'."""
        return LABELS[self.emotion]


class EmotionPipeline:
    """Face detection (Haar, optionally tracked) + FER2013 classifier + temporal smoothing."""

    def __init__(
        self,
        classifier: EmotionClassifier,
        detector: str = 'haar_tracking',
        min_face_px: int = 40,
        detect_width: int = 320,
        redetect_every: int = 10,
        smoothing_s: float = 0.3,
    ):
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got '{detector}'")
        self.classifier = classifier
        self.haar = HaarDetector(min_face_px=min_face_px, detect_width=detect_width)
        self.tracker = TrackingDetector(
            self.haar, redetect_every=redetect_every if detector == 'haar_tracking' else 1
        )
        rest = np.zeros(NUM_CLASSES)
        rest[NEUTRAL] = 1.0
        self.smoother = ProbabilitySmoother(smoothing_s, rest)

    def process(self, bgr: np.ndarray, t: Optional[float] = None) -> FrameResult:
        """Return the emotion of the largest face in a (H, W, 3) uint8 BGR frame taken at t (s)."""
        start = time.perf_counter()
        t = time.monotonic() if t is None else t
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        after_gray = time.perf_counter()
        detection = self.tracker.detect(gray)
        after_detect = time.perf_counter()
        raw = np.zeros(NUM_CLASSES, np.float32)
        box = (0, 0, 0, 0)
        if detection.primary is not None:
            box = detection.primary
            raw = self.classifier.probabilities(crop_face(gray, box)[None])[0]
            smoothed = self.smoother.update(raw, t)
        else:
            smoothed = self.smoother.decay(t)
        end = time.perf_counter()
        found = detection.primary is not None
        emotion = int(np.argmax(smoothed)) if found else NEUTRAL
        return FrameResult(
            face_found=found,
            face_count=len(detection.boxes),
            emotion=emotion,
            confidence=float(smoothed[emotion]),
            probabilities=smoothed,
            raw_probabilities=raw,
            box=box,
            processing_ms=(end - start) * 1e3,
            timings_ms={
                'gray': (after_gray - start) * 1e3,
                'detect': (after_detect - after_gray) * 1e3,
                'classify': (end - after_detect) * 1e3,
                'full_search': detection.full_search,
            },
        )

    def reset(self) -> None:
        """Forget the tracked face and the smoothing state."""
        self.tracker.reset()
        self.smoother.reset()


def annotate(bgr: np.ndarray, result: FrameResult) -> np.ndarray:
    """Return a copy of the frame with the primary face box and its label drawn (debug image)."""
    out = bgr.copy()
    if result.face_found:
        x, y, w, h = result.box
        cv2.rectangle(out, (x, y), (x + w, y + h), (0, 255, 0), 2)
        cv2.putText(
            out,
            f'{result.label} {result.confidence:.2f}',
            (x, max(12, y - 6)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            (0, 255, 0),
            2,
        )
    else:
        cv2.putText(out, 'no face', (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 255), 2)
    return out
