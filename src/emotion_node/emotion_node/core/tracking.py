"""Track-by-detection of several faces with hysteresis, stable short ids and per-face smoothing.

Each frame's detections are matched to the existing tracks greedily by IoU (best pair first, IoU
> `min_iou`). A new track is *tentative*; it is *confirmed* (published, e.g. on REP-155's
`/humans/faces/tracked`) once it was matched in `appear_after` frames in a row, and removed after
`drop_after` consecutive frames without a match (REP-155's hri_face_detect convention: 4 and 4).
A confirmed track keeps its id for its whole life; ids are 5 random lowercase letters (as
hri_face_detect's), drawn from a generator seeded from the OS (or `seed`, for reproducible tests)
and never reused within a tracker, so a restarted node does not hand out its old ids again.

A detector that does not look for every face in every frame (emotion_node's BlazeFace schedule,
`track_every`) passes `searched`: a track that was not looked for this frame and not found is
*carried*: it keeps its box, id and counters (neither a hit nor a miss) and stays *present*. So
`appear_after` and `drop_after` count the frames in which the face was searched for.

Every track keeps an exponentially smoothed box (`box_alpha` weight of the new detection) and its
own :class:`~emotion_node.core.smoothing.ProbabilitySmoother` of the emotion probabilities.

**Attended face** (the one the dialogue listens to, published as agechat/face_emotion): among the
tracks present in this frame (matched or carried), confirmed ones first, the one with the highest
`area * (1 - 0.5 * d)`, where d is the distance of the box centre from the frame centre divided by
half the frame diagonal; the current attended face keeps its place unless another scores 1.5x
higher. Largest-and-central is what a user addressing the robot looks like (close, in front); the
bonus for the incumbent stops the attention flipping between two similar faces. Mouth movement
was not used: BlazeFace gives one mouth keypoint, not the lips' opening.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from emotion_node.core.smoothing import ProbabilitySmoother

Box = Tuple[int, int, int, int]
ATTENTION_STICKINESS = 1.5


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    """One face followed over frames."""

    id: str
    box: np.ndarray  # smoothed (x, y, w, h), float
    smoother: ProbabilitySmoother
    score: float = 0.0
    hits: int = 1  # consecutive matched frames
    misses: int = 0  # consecutive frames without a match
    confirmed: bool = False
    seen: bool = True  # matched in the latest frame
    carried: bool = False  # not searched for in the latest frame (kept as it was)
    raw_probabilities: Optional[np.ndarray] = None
    probabilities: Optional[np.ndarray] = None
    #: 'detected': this frame's detector box the track was matched with
    extra: Dict = field(default_factory=dict)

    def int_box(self) -> Box:
        """Return the smoothed box rounded to integer pixels."""
        x, y, w, h = self.box
        return int(round(x)), int(round(y)), max(1, int(round(w))), max(1, int(round(h)))


class FaceTracker:
    """Hysteresis tracker of face boxes (see the module docstring)."""

    def __init__(
        self,
        rest: np.ndarray,
        appear_after: int = 4,
        drop_after: int = 4,
        min_iou: float = 0.2,
        box_alpha: float = 0.6,
        smoothing_s: float = 0.3,
        seed: Optional[int] = None,
    ):
        if appear_after < 1 or drop_after < 1:
            raise ValueError('appear_after and drop_after must be >= 1')
        self.rest = np.asarray(rest, dtype=np.float64)
        self.appear_after, self.drop_after = int(appear_after), int(drop_after)
        self.min_iou, self.box_alpha = float(min_iou), float(box_alpha)
        self.smoothing_s = float(smoothing_s)
        self.tracks: List[Track] = []
        self.attended: Optional[Track] = None
        self._random = random.Random(seed)
        self._used: set = set()

    def reset(self) -> None:
        """Forget every track (ids are not reused afterwards either)."""
        self.tracks, self.attended = [], None

    def _new_id(self) -> str:
        while True:
            new = ''.join(self._random.choice(string.ascii_lowercase) for _ in range(5))
            if new not in self._used:
                self._used.add(new)
                return new

    def update(
        self,
        boxes: Sequence[Box],
        scores: Sequence[float] = (),
        frame_shape=None,
        searched: Optional[Sequence[bool]] = None,
    ) -> List[Track]:
        """Match this frame's detections; return the tracks seen in this frame (new included).

        `searched[i]` (one per track in :attr:`tracks` before this call; default all True) tells
        whether the detector looked for track i in this frame; an unmatched track that was not
        looked for is carried (see the module docstring).
        """
        scores = list(scores) or [1.0] * len(boxes)
        if searched is not None and len(searched) != len(self.tracks):
            raise ValueError(f'searched has {len(searched)} entries for {len(self.tracks)} tracks')
        pairs = sorted(
            (
                (iou(tuple(t.box), b), ti, bi)
                for ti, t in enumerate(self.tracks)
                for bi, b in enumerate(boxes)
            ),
            reverse=True,
        )
        used_t, used_b = set(), set()
        for overlap, ti, bi in pairs:
            if overlap <= self.min_iou:
                break
            if ti in used_t or bi in used_b:
                continue
            used_t.add(ti)
            used_b.add(bi)
            track = self.tracks[ti]
            track.box = (
                self.box_alpha * np.asarray(boxes[bi], float) + (1 - self.box_alpha) * track.box
            )
            track.score = float(scores[bi])
            track.extra['detected'] = tuple(int(v) for v in boxes[bi])
            track.hits += 1
            track.misses = 0
            track.seen = True
            track.carried = False
            if track.hits >= self.appear_after:
                track.confirmed = True
        for ti, track in enumerate(self.tracks):
            if ti not in used_t:
                track.seen = False
                track.carried = searched is not None and not searched[ti]
                if not track.carried:
                    track.hits = 0
                    track.misses += 1
        self.tracks = [
            t
            for t in self.tracks
            if t.seen or t.carried or (t.confirmed and t.misses < self.drop_after)
        ]
        for bi, box in enumerate(boxes):
            if bi not in used_b:
                track = Track(
                    self._new_id(),
                    np.asarray(box, float),
                    ProbabilitySmoother(self.smoothing_s, self.rest),
                    score=float(scores[bi]),
                    confirmed=self.appear_after <= 1,
                )
                track.extra['detected'] = tuple(int(v) for v in box)
                self.tracks.append(track)
        seen = [t for t in self.tracks if t.seen]
        self.attended = self._attend(self.present, frame_shape)
        return seen

    @property
    def present(self) -> List[Track]:
        """Tracks seen or carried in the latest frame (the faces believed in view)."""
        return [t for t in self.tracks if t.seen or t.carried]

    @property
    def confirmed(self) -> List[Track]:
        """Tracks that are published: confirmed and not yet dropped."""
        return [t for t in self.tracks if t.confirmed]

    def _attend(self, seen: List[Track], frame_shape) -> Optional[Track]:
        if not seen:
            return None
        pool = [t for t in seen if t.confirmed] or seen

        def value(track: Track) -> float:
            x, y, w, h = track.box
            if frame_shape is None:
                return w * h
            height, width = frame_shape[:2]
            d = np.hypot(x + w / 2 - width / 2, y + h / 2 - height / 2) / (
                0.5 * np.hypot(width, height)
            )
            return w * h * (1.0 - 0.5 * min(1.0, d))

        best = max(pool, key=value)
        current = self.attended
        if (
            current is not None
            and current is not best
            and current in pool
            and value(best) < ATTENTION_STICKINESS * value(current)
        ):
            return current
        return best
