"""The node's face detector: BlazeFace short and full range.

Short range runs every frame and around every tracked face; a full-range search for new small
faces is spread over several frames.

Measured (README.md, `python -m emotion_node.bench`): short range alone finds close-ups (a face
filling the frame, a FER2013-style tight crop) but no face under ~100 px in a 640x480 frame; full
range finds faces down to ~20 px when it sees the frame in 240 px tiles, but costs ~4-8 ms per
tile; short range run on a crop 2.5x a known face's size re-finds that face down to 20 px in
~1 ms. Hence, for each frame:

1. short range on the whole frame (close-ups, large faces);
2. short range on a square window 2.5x the size of each face tracked in the previous frame;
3. one step of the *discovery sweep*: full range on the whole frame, then on each 240 px tile in
   turn (so the whole frame is searched for new small faces every `1 + tiles` steps).

Which windows (2) and whether a sweep step (3) run in a given frame is the caller's choice
(`detect(windows=..., sweep=...)`); the node's schedule is in :mod:`emotion_node.core.pipeline`.

:meth:`BlazeFaceDetector.sweep` runs all of it on one picture (a still image: the pipeline
evaluation, the hit-rate measurements).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from emotion_node.core.blazeface import MODELS, BlazeFace, Face, _faces, tiles

Box = Tuple[int, int, int, int]
SHORT_FILE, FULL_FILE = MODELS['short'], MODELS['full']
#: window around a tracked face, in face sides (the face then fills 40 % of short range's input)
TRACK_WINDOW = 2.5


def default_model_path(name: str) -> Path:
    """share/emotion_node/models/<name> when installed there, else the source tree's models/."""
    here = Path(__file__).resolve().parents[2] / 'models' / name
    try:
        from ament_index_python.packages import get_package_share_directory

        shared = Path(get_package_share_directory('emotion_node'), 'models', name)
        if shared.is_file() or not here.is_file():
            return shared
    except Exception:  # noqa: BLE001 - not in the ament index (running from the source tree)
        pass
    return here


class BlazeFaceDetector:
    """BlazeFace short + full range, as described in the module docstring."""

    def __init__(
        self,
        short_path=None,
        full_path=None,
        tile_px: int = 240,
        threads: int = 1,
        short_threshold: float = 0.5,
        full_threshold: float = 0.5,
        min_face_px: int = 20,
    ):
        self.short = BlazeFace(
            short_path or default_model_path(SHORT_FILE), 'short', threads, short_threshold
        )
        self.full = BlazeFace(
            full_path or default_model_path(FULL_FILE), 'full', threads, full_threshold
        )
        self.tile_px = int(tile_px)
        self.min_face_px = int(min_face_px)
        self._step = 0
        self._tiles: List[Box] = []
        self._shape = None

    def reset(self) -> None:
        """Restart the discovery sweep."""
        self._step = 0

    def _sweep_units(self, shape) -> List[Box]:
        if shape != self._shape:
            height, width = shape[:2]
            self._shape = shape
            self._tiles = [(0, 0, width, height)]
            if self.tile_px and max(width, height) > 1.2 * self.tile_px:
                self._tiles += tiles(width, height, self.tile_px, overlap=0.3)
        return self._tiles

    def _full_on(self, bgr, unit: Box):
        x, y, w, h = unit
        corners, scores, points = self.full.raw(bgr[y : y + h, x : x + w])
        if x or y:
            shift = np.array([x, y], np.float32)
            corners = (corners.reshape(-1, 2, 2) + shift).reshape(-1, 4)
            points = points + shift
        return corners, scores, points

    def _windows(self, bgr, boxes: Sequence[Box]):
        height, width = bgr.shape[:2]
        for x, y, w, h in boxes:
            side = int(TRACK_WINDOW * max(w, h))
            cx, cy = x + w / 2.0, y + h / 2.0
            x1 = int(np.clip(cx - side / 2, 0, max(0, width - side)))
            y1 = int(np.clip(cy - side / 2, 0, max(0, height - side)))
            crop = bgr[y1 : y1 + side, x1 : x1 + side]
            if min(crop.shape[:2]) < 8:
                continue
            corners, scores, points = self.short.raw(crop)
            shift = np.array([x1, y1], np.float32)
            yield (corners.reshape(-1, 2, 2) + shift).reshape(-1, 4), scores, points + shift

    def _merge(self, parts) -> List[Face]:
        if not parts:
            return []
        corners = np.concatenate([p[0] for p in parts]).reshape(-1, 4)
        scores = np.concatenate([p[1] for p in parts])
        points = np.concatenate([p[2] for p in parts]).reshape(-1, 6, 2)
        faces = _faces(corners, scores, points)
        return [f for f in faces if max(f.box[2], f.box[3]) >= self.min_face_px]

    def detect(
        self,
        bgr: np.ndarray,
        tracked: Sequence[Box] = (),
        windows: Optional[Sequence[bool]] = None,
        sweep: bool = True,
    ) -> List[Face]:
        """Faces of one video frame, best first: steps 1-3 of the module docstring.

        `windows[i]` (default all True) says whether step 2 runs around `tracked[i]` in this
        frame; `sweep` False skips step 3 (the discovery sweep then resumes where it stopped).
        The node's schedule (which faces and how often) is :class:`emotion_node.core.pipeline.
        EmotionPipeline`'s.
        """
        parts = [self.short.raw(bgr)]
        if windows is not None:
            tracked = [box for box, look in zip(tracked, windows, strict=True) if look]
        parts.extend(self._windows(bgr, tracked))
        if sweep:
            units = self._sweep_units(bgr.shape)
            parts.append(self._full_on(bgr, units[self._step % len(units)]))
            self._step = (self._step + 1) % len(units)
        return self._merge(parts)

    def sweep_length(self, shape) -> int:
        """Return the number of sweep steps (whole frame + tiles) of a frame of this shape."""
        return len(self._sweep_units(shape))

    def sweep(self, bgr: np.ndarray) -> List[Face]:
        """Return every face of a still picture.

        Short range, full range on the frame and every tile, then short range around each face
        found (refines the boxes).
        """
        parts = [self.short.raw(bgr)]
        parts.extend(self._full_on(bgr, unit) for unit in self._sweep_units(bgr.shape))
        first = self._merge(parts)
        parts.extend(self._windows(bgr, [f.int_box() for f in first]))
        return self._merge(parts)
