"""One camera frame in, every face's emotion out: detect, track, crop, classify, smooth.

:class:`EmotionPipeline` is the node's whole computation, without ROS, so it is tested and
benchmarked on its own. Every face gets a track (:mod:`emotion_node.core.tracking`: stable id,
hysteresis, smoothed box and emotion); the *attended* face's emotion is what agechat/face_emotion
carries, smoothed exactly as before (one smoother that decays to neutral when no face is seen).

Crops: fer feeds its weights the box of OpenCV's frontal-face Haar cascade, squared, plus 10 px per
side (:func:`~emotion_node.core.preprocess.crop_face`). A BlazeFace box sits lower on the face and
is a little smaller than that Haar box, so it is first mapped to the Haar box fer would have drawn
(:func:`haar_equivalent`, measured on the bundled portraits, tested), then cropped the same way.

**Schedule** (what keeps 4 faces at camera rate on one core; README.md has the measurements).
With BlazeFace, every frame runs short range on the whole frame; the rest is spread:

- `track_every` N: the short-range search around a tracked face (a ~1.5 ms model run each) runs
  for each confirmed face at least every N frames, spread so that about 1/N of the faces are
  searched per frame; a face found by the whole-frame pass (large faces, every frame) counts as
  looked for and needs no window. Tentative faces and faces missed at their last search are
  searched every frame, and so is a face whose region changed since it was last found (mean
  change of a 16x16 grey thumbnail > `carry_max_change` grey levels: it left, the light changed,
  it moves fast). A face not searched in a frame is carried by the tracker (box, id and
  hysteresis counters kept), so a face that vanishes is still missed at once and dropped after
  `drop_after` frames as without the schedule.
- `sweep_every` N: the full-range discovery step (~6 ms) runs on every Nth frame while a face is
  present, on every frame while none is.
- `classify_hz` R: each present face is classified at most R times per second of frame time (a
  new face at once); in between, its last probabilities are held (the smoothing time constant,
  0.3 s, is longer than the hold). 0 = every face every frame.

Measured on :func:`~emotion_node.core.synthetic.moving_scene`: a 42-120 px face drifting
1-2 px per frame changes its thumbnail by at most 16 grey levels from one frame to the next; the
textures left where a face was differ from it by 36-150; hence the default 20.
1, 1, 0 is the unscheduled pipeline (every search, every frame).
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
#: limits of the schedule parameters (see the module docstring)
MAX_EVERY = 30
MAX_CLASSIFY_HZ = 1000.0
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
        track_every: int = 1,
        sweep_every: int = 1,
        classify_hz: float = 0.0,
        carry_max_change: float = 20.0,
    ):
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got '{detector}'")
        self.track_every = _every('track_every', track_every)
        self.sweep_every = _every('sweep_every', sweep_every)
        if (
            isinstance(classify_hz, bool)
            or not isinstance(classify_hz, (int, float))
            or not 0.0 <= classify_hz <= MAX_CLASSIFY_HZ
        ):
            raise ValueError(
                f'classify_hz must be a number in 0..{MAX_CLASSIFY_HZ:g} (classifications per '
                f'second per face, 0 = every frame), got {classify_hz!r}'
            )
        self.classify_period = 1.0 / classify_hz if classify_hz > 0 else 0.0
        if (
            isinstance(carry_max_change, bool)
            or not isinstance(carry_max_change, (int, float))
            or not 0.0 <= carry_max_change <= 255.0
        ):
            raise ValueError(
                'carry_max_change must be a number in 0..255 (mean grey-level change of a face '
                f'region that still lets the tracker carry it), got {carry_max_change!r}'
            )
        self.carry_max_change = float(carry_max_change)
        self._frame = 0
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
        """(boxes, scores, full_search, searched) of one frame; boxes as the classifier crops them.

        `searched`: per track of :attr:`faces` whether it was looked for (None: all were).
        """
        if self.blazeface is not None:
            tracks = self.faces.tracks
            gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if gray is None else gray
            windows = self._windows_due(tracks, gray)
            sweep = (
                self.sweep_every == 1
                or not any(t.seen or t.carried for t in tracks)
                or self._frame % self.sweep_every == 0
            )
            found = self.blazeface.detect(
                bgr, [t.extra['detected'] for t in tracks], windows=windows, sweep=sweep
            )
            return [f.int_box() for f in found], [f.score for f in found], sweep, windows
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if gray is None else gray
        detection = self.tracker.detect(gray)
        boxes = list(detection.boxes)
        return boxes, [1.0] * len(boxes), detection.full_search, None

    def _windows_due(self, tracks: List[Track], gray: np.ndarray) -> List[bool]:
        """Which tracks get their short-range search this frame (module docstring: track_every)."""
        if self.track_every == 1:
            return [True] * len(tracks)
        # a face region that changed since the face was last found (it left, the light went
        # off, it moves fast) is searched for now, never carried
        changed = [self._changed(t, gray) for t in tracks]
        age = [t.extra.get('unsearched', 0) for t in tracks]
        # tentative, just missed, or not searched for track_every - 1 frames: now
        due = [
            not t.confirmed or t.misses > 0 or a >= self.track_every - 1 or c
            for t, a, c in zip(tracks, age, changed, strict=True)
        ]
        # spread the rest: up to 1/track_every of the faces per frame, oldest first (a face the
        # whole-frame pass found in the last frame has age 0 and waits)
        budget = -(-len(tracks) // self.track_every) - sum(due)  # ceil(n / N) - due
        waiting = sorted(
            (i for i, d in enumerate(due) if not d and age[i] > 0), key=lambda i: -age[i]
        )
        chosen = set(waiting[: max(0, budget)])
        return [due[i] or i in chosen for i in range(len(tracks))]

    def _changed(self, track: Track, gray: np.ndarray) -> bool:
        before = track.extra.get('patch')
        now = _patch(gray, track.extra['detected'])
        if before is None or now is None:
            return True
        return float(np.abs(now - before).mean()) > self.carry_max_change

    def _classify_due(self, track: Track, t: float) -> bool:
        last = track.extra.get('classified_t')
        if track.raw_probabilities is None or last is None or not self.classify_period:
            return True
        # 1 ms slack: 3 frames of 1/30 s are a 10 Hz period despite float rounding
        return not 0.0 <= t - last < self.classify_period - 1e-3

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
        boxes, scores, full_search, searched = self.detect(bgr, gray)
        after_detect = time.perf_counter()
        self._frame += 1
        self.faces.update(boxes, scores, frame_shape=bgr.shape, searched=searched)
        present = self.faces.present
        for track in present:
            if track.seen:
                track.extra['unsearched'] = 0
                if self.track_every > 1:
                    track.extra['patch'] = _patch(gray, track.extra['detected'])
            else:
                track.extra['unsearched'] = track.extra.get('unsearched', 0) + 1
        due = [tr for tr in present if self._classify_due(tr, t)]
        if due:
            crops = np.stack([crop_face(gray, self.crop_box(tr.extra['detected'])) for tr in due])
            probabilities = self.classifier.probabilities(crops)
            for track, raw_face in zip(due, probabilities, strict=True):
                track.raw_probabilities = raw_face
                track.extra['classified_t'] = t
        for track in self.faces.tracks:
            if track.seen or track.carried:  # held between classifications
                track.probabilities = track.smoother.update(track.raw_probabilities, t)
            elif track.probabilities is not None:
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
            face_count=len(present),
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
                'windows': 0 if searched is None else int(sum(searched)),
                'classified': len(due),
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
        self._frame = 0
        self.faces.reset()
        self.smoother.reset()


#: side of the grey thumbnail of a face region compared by carry_max_change
PATCH_PX = 16


def _patch(gray: np.ndarray, box) -> Optional[np.ndarray]:
    """Return a PATCH_PX grey thumbnail (float32) of a box of the frame, None when outside it."""
    x, y, w, h = (int(v) for v in box)
    x1, y1 = max(0, x), max(0, y)
    region = gray[y1 : y + h, x1 : x + w]
    if region.size == 0:
        return None
    return cv2.resize(region, (PATCH_PX, PATCH_PX), interpolation=cv2.INTER_AREA).astype(
        np.float32
    )


def _every(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_EVERY:
        raise ValueError(
            f'{name} must be an integer in 1..{MAX_EVERY} (1 = every frame), got {value!r}'
        )
    return value


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
