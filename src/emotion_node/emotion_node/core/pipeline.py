"""One camera frame in, every face's emotion out: detect, track, crop, classify, smooth.

:class:`EmotionPipeline` is the node's whole computation, without ROS, so it is tested and
benchmarked on its own. Every face gets a track (:mod:`emotion_node.core.tracking`: stable id,
hysteresis, smoothed box and emotion); the *attended* face's emotion is what agechat/face_emotion
carries, smoothed exactly as before (one smoother that decays to neutral when no face is seen).

Crops: fer feeds its weights the box of OpenCV's frontal-face Haar cascade, squared, plus 10 px per
side (:func:`~emotion_node.core.preprocess.crop_face`). A BlazeFace box sits lower on the face and
is a little smaller than that Haar box, so it is first mapped to the Haar box fer would have drawn
(:func:`haar_equivalent`, measured on the bundled portraits, tested), then cropped the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import cv2
import numpy as np

from emotion_node.core.classifier import EmotionClassifier
from emotion_node.core.detector import HaarDetector, TrackingDetector
from emotion_node.core.spec import LABELS, NUM_CLASSES
from emotion_node.core.preprocess import crop_face
from emotion_node.core.smoothing import ProbabilitySmoother
from emotion_node.core.tracking import FaceTracker, Track

NEUTRAL = LABELS.index('neutral')
DETECTORS = ('blazeface', 'haar_tracking', 'haar')
#: BlazeFace box -> fer's Haar box: side x HAAR_SIDE, centre moved up by HAAR_SHIFT x side
#: (astronaut: Haar 95 px centred 12 px above BlazeFace's 100 px; Grace Hopper: 222 px, 21 px
#: above BlazeFace's 196 px)
HAAR_SIDE, HAAR_SHIFT = 1.04, 0.11


def haar_equivalent(box) -> Tuple[int, int, int, int]:
    """Return the frontal-face Haar box fer would have found for a BlazeFace box (x, y, w, h)."""
    x, y, w, h = (float(v) for v in box)
    side = max(w, h) * HAAR_SIDE
    cx, cy = x + w / 2.0, y + h / 2.0 - HAAR_SHIFT * max(w, h)
    return (
        int(round(cx - side / 2)),
        int(round(cy - side / 2)),
        int(round(side)),
        int(round(side)),
    )


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
    #: confirmed tracks (REP-155 faces), each with .id, .int_box(), .probabilities, .score
    faces: List[Track] = field(default_factory=list)
    attended_id: str = ''

    @property
    def label(self) -> str:
        """The emotion's label, e.g. 'happy'."""
        return LABELS[self.emotion]


class EmotionPipeline:
    """Face detection (BlazeFace, or Haar) + tracking + FER2013 classifier + temporal smoothing."""

    def __init__(
        self,
        classifier: EmotionClassifier,
        detector: str = 'blazeface',
        min_face_px: int = 40,
        detect_width: int = 320,
        redetect_every: int = 10,
        smoothing_s: float = 0.3,
        appear_after: int = 4,
        drop_after: int = 4,
        tile_px: int = 240,
        threads: int = 1,
        blazeface_paths: Tuple = (None, None),
    ):
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got '{detector}'")
        self.classifier = classifier
        self.detector_name = detector
        self.blazeface = self.haar = self.tracker = None
        if detector == 'blazeface':
            from emotion_node.core.faces import BlazeFaceDetector

            self.blazeface = BlazeFaceDetector(
                *blazeface_paths, tile_px=tile_px, threads=threads, min_face_px=min_face_px
            )
        else:
            self.haar = HaarDetector(min_face_px=min_face_px, detect_width=detect_width)
            self.tracker = TrackingDetector(
                self.haar, redetect_every=redetect_every if detector == 'haar_tracking' else 1
            )
        rest = np.zeros(NUM_CLASSES)
        rest[NEUTRAL] = 1.0
        self.smoother = ProbabilitySmoother(smoothing_s, rest)
        self.faces = FaceTracker(
            rest, appear_after=appear_after, drop_after=drop_after, smoothing_s=smoothing_s
        )

    def detect(self, bgr: np.ndarray, gray: np.ndarray = None):
        """(boxes, scores, full_search) of one frame; boxes as the classifier crops them."""
        if self.blazeface is not None:
            found = self.blazeface.detect(bgr, [t.extra['detected'] for t in self.faces.tracks])
            return [f.int_box() for f in found], [f.score for f in found], True
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if gray is None else gray
        detection = self.tracker.detect(gray)
        return list(detection.boxes), [1.0] * len(detection.boxes), detection.full_search

    def crop_box(self, box) -> Tuple[int, int, int, int]:
        """Return the box handed to fer's crop rule for a detector box."""
        return haar_equivalent(box) if self.blazeface is not None else tuple(box)

    def still_faces(self, bgr: np.ndarray) -> List[Tuple[Tuple[int, int, int, int], float]]:
        """Return every face of a still picture (whole search) as (box, score), best first."""
        if self.blazeface is not None:
            return [(f.int_box(), f.score) for f in self.blazeface.sweep(bgr)]
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        return [
            (tuple(b), 1.0) for b in sorted(self.haar.detect(gray), key=lambda b: -b[2] * b[3])
        ]

    def process(self, bgr: np.ndarray, t: Optional[float] = None) -> FrameResult:
        """Return the attended face's emotion (and every tracked face) of a BGR frame at t."""
        start = time.perf_counter()
        t = time.monotonic() if t is None else t
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        after_gray = time.perf_counter()
        boxes, scores, full_search = self.detect(bgr, gray)
        after_detect = time.perf_counter()
        seen = self.faces.update(boxes, scores, frame_shape=bgr.shape)
        if seen:
            crops = np.stack([crop_face(gray, self.crop_box(tr.extra['detected'])) for tr in seen])
            probabilities = self.classifier.probabilities(crops)
            for track, raw_face in zip(seen, probabilities, strict=True):
                track.raw_probabilities = raw_face
                track.probabilities = track.smoother.update(raw_face, t)
        for track in self.faces.tracks:
            if not track.seen and track.probabilities is not None:
                track.probabilities = track.smoother.decay(t)
        attended = self.faces.attended
        raw = np.zeros(NUM_CLASSES, np.float32)
        box = (0, 0, 0, 0)
        if attended is not None:
            box = attended.extra['detected']
            raw = attended.raw_probabilities
            smoothed = self.smoother.update(raw, t)
        else:
            smoothed = self.smoother.decay(t)
        end = time.perf_counter()
        found = attended is not None
        emotion = int(np.argmax(smoothed)) if found else NEUTRAL
        return FrameResult(
            face_found=found,
            face_count=len(boxes),
            emotion=emotion,
            confidence=float(smoothed[emotion]),
            probabilities=smoothed,
            raw_probabilities=raw,
            box=tuple(int(v) for v in box),
            processing_ms=(end - start) * 1e3,
            timings_ms={
                'gray': (after_gray - start) * 1e3,
                'detect': (after_detect - after_gray) * 1e3,
                'classify': (end - after_detect) * 1e3,
                'full_search': full_search,
            },
            faces=self.faces.confirmed,
            attended_id=attended.id if attended is not None and attended.confirmed else '',
        )

    def classify_still(self, bgr: np.ndarray):
        """Return (box, probabilities) of the largest face of a still picture, no smoothing.

        (None, None) when there is no face (the pipeline evaluation).
        """
        faces = self.still_faces(bgr)
        if not faces:
            return None, None
        box = max(faces, key=lambda f: f[0][2] * f[0][3])[0]
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        return box, self.classifier.probabilities(crop_face(gray, self.crop_box(box))[None])[0]

    def reset(self) -> None:
        """Forget the tracked faces and the smoothing state."""
        if self.tracker is not None:
            self.tracker.reset()
        if self.blazeface is not None:
            self.blazeface.reset()
        self.faces.reset()
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
