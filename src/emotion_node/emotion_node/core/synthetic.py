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
from typing import List, Optional, Tuple

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
    #: the frame without its faces (moving_scene only)
    background: Optional[np.ndarray] = None


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


def moving_scene(
    seed: int = 5,
    faces_count: int = 4,
    frames: int = 120,
    min_px: int = 40,
    max_px: int = 120,
    width: int = 640,
    height: int = 480,
) -> List[Sample]:
    """Return a video of `faces_count` portraits drifting over a real texture (640x480, 30 FPS).

    Each face starts where :func:`scene` puts it and moves on a slow ellipse (amplitude 25 % of
    its width across, 15 % up and down, period 4-8 s: a person shifting in a chair), so the
    detector and the tracker work on frames that change; sample.boxes are the true face boxes.
    """
    rng = np.random.default_rng(seed)
    start = scene(rng, faces_count, min_px=min_px, max_px=max_px, width=width, height=height)
    by_name = {f.source: f for f in portraits()}
    empty = background(BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], width, height)
    motion = [(0.25 * box[2], 0.15 * box[2], rng.uniform(4, 8)) for box in start.boxes]
    out = []
    for i in range(frames):
        frame = empty.copy()
        sample = Sample(frame, background=empty)
        t = i / 30.0
        for (x, y, w, _h), name, (ax, ay, period) in zip(
            start.boxes, start.sources, motion, strict=True
        ):
            phase = 2 * np.pi * t / period
            nx = int(np.clip(x + ax * np.sin(phase), 0, width - w))
            ny = int(np.clip(y + ay * np.cos(phase) - ay, 0, height - w))
            sample.boxes.append(place(frame, by_name[name], nx, ny, w))
            sample.sources.append(name)
        out.append(sample)
    return out


#: Expressions of the `lfw_subset()` faces (index -> label), labelled by eye by one annotator (the
#: session that built this set) on 100 px upscaled copies, before any classifier output was
#: looked at. Only clear cases: "happy" = visible smile, "neutral" = closed or relaxed mouth and
#: no smile; the 35 others (talking, half-smiles, hands on the face, too dark) are left out.
#: LFW holds press photographs, so no other FER class is clear in it.
LFW_EXPRESSIONS = {
    **dict.fromkeys(
        (1, 2, 10, 11, 13, 18, 19, 21, 22, 23, 27, 31, 37, 38, 41, 45, 52, 53, 61, 69, 74, 75, 79),
        'happy',
    ),
    **dict.fromkeys((81, 85, 88, 91, 93, 94, 96), 'happy'),
    **dict.fromkeys(
        (3, 5, 6, 7, 14, 15, 17, 20, 25, 26, 28, 32, 35, 40, 42, 44, 46, 49, 54, 56, 57, 60),
        'neutral',
    ),
    **dict.fromkeys((62, 65, 66, 67, 70, 72, 73, 76, 80, 83, 90, 92, 98), 'neutral'),
}
#: the bundled portraits, labelled the same way (the cameraman's face is partly behind his camera)
PORTRAIT_EXPRESSIONS = {'astronaut': 'happy', 'grace_hopper': 'neutral', 'camera': 'neutral'}
#: face sizes (px, face box width) of the labelled 640x480 scenes: small, medium, a close-up
EMOTION_SCENE_SIZES = (96, 160, 320)


@dataclass
class LabelledFace:
    """A face picture with its expression, the tight face crop and where it came from."""

    face: FaceImage
    label: str
    group: str  # 'lfw' (tight 25x25 crop, no head outline) or 'portrait' (head and background)

    def crop(self) -> np.ndarray:
        """Return the ground-truth face crop (BGR): the face box of the picture."""
        x, y, w, h = self.face.box
        return self.face.image[y : y + h, x : x + w]


def labelled_faces() -> List[LabelledFace]:
    """Return the faces of :data:`LFW_EXPRESSIONS` and :data:`PORTRAIT_EXPRESSIONS`."""
    out = []
    for face in face_images():
        if face.source.startswith('lfw'):
            label = LFW_EXPRESSIONS.get(int(face.source[3:]))
            group = 'lfw'
        else:
            label, group = PORTRAIT_EXPRESSIONS.get(face.source), 'portrait'
        if label is not None:
            out.append(LabelledFace(face, label, group))
    return out


def emotion_scenes(
    sizes=EMOTION_SCENE_SIZES, seed: int = 3, width: int = 640, height: int = 480
) -> List[Tuple[Sample, LabelledFace, int]]:
    """Return every labelled face pasted into a 640x480 real texture at each of `sizes`.

    One face per frame at a random place (seeded); returns (sample, face, size) triples.
    """
    rng = np.random.default_rng(seed)
    out = []
    for labelled in labelled_faces():
        fx, fy, fw, fh = labelled.face.box
        for size in sizes:
            frame = background(BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], width, height)
            frame = frame.copy()
            box_h = int(round(fh * size / fw))
            x = int(rng.integers(0, max(1, width - size)))
            y = int(rng.integers(0, max(1, height - box_h)))
            box = place(frame, labelled.face, x, y, size)
            out.append((Sample(frame, [box], [labelled.face.source]), labelled, size))
    return out
