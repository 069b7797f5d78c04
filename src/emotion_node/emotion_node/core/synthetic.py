"""Labelled test images made from what ships offline (scikit-image's and matplotlib's data).

They serve the detector's hit rates, the pipeline evaluation and the node tests.

Face sources (all real photographs bundled with scikit-image):
- `lfw_subset()`: 100 tight 25x25 grey face crops from Labeled Faces in the Wild;
- `astronaut()` (Eileen Collins) and `camera()` (the cameraman), cut around the head;
- matplotlib's sample photograph of Grace Hopper, cut around the head.

- :func:`closeups`: one face filling >= 60 % of the frame side (a user leaning into a webcam; a
  FER2013-style tight crop is the limit case, face = whole frame);
- :func:`scene`: a 640x480 frame of a real texture (brick, grass, gravel, ...) with 1-4 faces of
  20-200 px pasted at random sizes and places, never overlapping; the ground-truth boxes are the
  pasted face boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import List, Tuple

import cv2
import numpy as np

Box = Tuple[int, int, int, int]
BACKGROUNDS = ('brick', 'grass', 'gravel', 'coffee', 'rocket', 'hubble_deep_field', 'chelsea')


@dataclass
class FaceImage:
    """A face picture (BGR) and the face box inside it (x, y, w, h)."""

    image: np.ndarray
    box: Box
    source: str


@lru_cache(maxsize=1)
def face_images() -> Tuple[FaceImage, ...]:
    """Return the 100 LFW crops (face = whole crop) and the bundled portraits (head + context)."""
    from skimage import data

    out = []
    for i, crop in enumerate(data.lfw_subset()[:100]):
        grey = (crop * 255).round().astype(np.uint8)
        out.append(FaceImage(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), (0, 0, 25, 25), f'lfw{i}'))
    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    # head region and the face box inside it (found by BlazeFace and checked by eye)
    out.append(FaceImage(astronaut[40:240, 125:325].copy(), (53, 41, 94, 94), 'astronaut'))
    camera = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)
    out.append(FaceImage(camera[70:270, 120:320].copy(), (60, 51, 84, 84), 'camera'))
    try:  # matplotlib's sample photograph of Grace Hopper (shipped with matplotlib)
        from matplotlib import cbook

        grace = cv2.imread(str(cbook.get_sample_data('grace_hopper.jpg', asfileobj=False)))
        if grace is not None:
            out.append(FaceImage(grace[40:400, 90:450].copy(), (84, 99, 196, 196), 'grace_hopper'))
    except ImportError:
        pass
    return tuple(out)


def portraits() -> Tuple[FaceImage, ...]:
    """Return the portraits with head and background around the face (not the tight LFW crops)."""
    return tuple(f for f in face_images() if not f.source.startswith('lfw'))


@lru_cache(maxsize=None)
def background(name: str, width: int = 640, height: int = 480) -> np.ndarray:
    """Return a real texture from scikit-image, resized to width x height (BGR)."""
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return cv2.resize(cv2.cvtColor(image[:, :, :3], cv2.COLOR_RGB2BGR), (width, height))


def place(frame: np.ndarray, face: FaceImage, x: int, y: int, size: int) -> Box:
    """Paste `face` scaled so its face box is `size` px wide with its corner at (x, y).

    Returns the face box in the frame; the part outside the frame is cut.
    """
    fx, fy, fw, fh = face.box
    scale = size / float(fw)
    image = cv2.resize(
        face.image,
        (
            max(1, int(round(face.image.shape[1] * scale))),
            max(1, int(round(face.image.shape[0] * scale))),
        ),
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
    )
    ox, oy = x - int(round(fx * scale)), y - int(round(fy * scale))
    height, width = frame.shape[:2]
    x1, y1 = max(0, ox), max(0, oy)
    x2, y2 = min(width, ox + image.shape[1]), min(height, oy + image.shape[0])
    if x2 > x1 and y2 > y1:
        frame[y1:y2, x1:x2] = image[y1 - oy : y2 - oy, x1 - ox : x2 - ox]
    return x, y, size, int(round(fh * scale))


@dataclass
class Sample:
    """A frame and its ground-truth face boxes."""

    frame: np.ndarray
    boxes: List[Box] = field(default_factory=list)
    sources: List[str] = field(default_factory=list)


def closeups(count: int, seed: int = 0, side: int = 240) -> List[Sample]:
    """Return `count` side x side frames, each filled by one face (60-100 % of the side)."""
    rng = np.random.default_rng(seed)
    faces = face_images()
    out = []
    for i in range(count):
        face = faces[i % len(faces)]
        fraction = rng.uniform(0.6, 1.0)
        size = int(round(side * fraction))
        frame = np.empty((side, side, 3), np.uint8)
        frame[:] = face.image[-2:].reshape(-1, 3).mean(0).astype(np.uint8)
        x = int(rng.integers(0, side - size + 1))
        y = int(rng.integers(0, side - size + 1))
        box = place(frame, face, x, y, size)
        out.append(Sample(frame, [box], [face.source]))
    return out


def fer_style_crops(size: int = 48) -> List[Sample]:
    """Return the 100 LFW faces as FER2013-style tight grey crops (face = whole frame)."""
    out = []
    for face in face_images()[:100]:
        frame = cv2.resize(face.image, (size, size), interpolation=cv2.INTER_LINEAR)
        out.append(Sample(frame, [(0, 0, size, size)], [face.source]))
    return out


def scene(
    rng: np.random.Generator,
    faces_count: int,
    min_px: int = 20,
    max_px: int = 200,
    width: int = 640,
    height: int = 480,
    faces=None,
) -> Sample:
    """Return a frame on a real texture with `faces_count` non-overlapping faces.

    Face sizes are log-uniform in [min_px, max_px]; `faces` defaults to :func:`portraits`.
    """
    faces = portraits() if faces is None else faces
    frame = background(BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], width, height).copy()
    sample = Sample(frame)
    taken: List[Box] = []
    for _ in range(faces_count):
        face = faces[int(rng.integers(len(faces)))]
        size = int(round(np.exp(rng.uniform(np.log(min_px), np.log(max_px)))))
        for _attempt in range(50):
            x = int(rng.integers(0, width - size))
            y = int(rng.integers(0, height - int(size * face.box[3] / face.box[2]) - 1))
            # keep 30 % of the face side free around each face so the pasted pictures do not cover
            # each other
            margin = int(0.6 * size)
            if all(
                x + size + margin < bx
                or bx + bw + margin < x
                or y + size + margin < by
                or by + bh + margin < y
                for bx, by, bw, bh in taken
            ):
                break
        else:
            continue
        box = place(frame, face, x, y, size)
        taken.append(box)
        sample.boxes.append(box)
        sample.sources.append(face.source)
    return sample


def matches(found: Box, truth: Box) -> bool:
    """Tell whether a detection hits a true face.

    Its centre lies in the true box and its width is within a factor of 2 of the true width.
    """
    fx, fy, fw, fh = found
    tx, ty, tw, th = truth
    cx, cy = fx + fw / 2.0, fy + fh / 2.0
    return tx <= cx <= tx + tw and ty <= cy <= ty + th and 0.5 <= fw / float(tw) <= 2.0


def hit_rate(samples: List[Sample], detect, min_px: int = 0) -> Tuple[float, int]:
    """Fraction of true faces (at least `min_px` wide) matched by a detection; and their count."""
    hits = total = 0
    for sample in samples:
        boxes = detect(sample.frame)
        for truth in sample.boxes:
            if truth[2] < min_px:
                continue
            total += 1
            hits += any(matches(b, truth) for b in boxes)
    return (hits / total if total else float('nan')), total
