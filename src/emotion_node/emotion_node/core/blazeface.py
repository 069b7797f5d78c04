"""BlazeFace face detection (MediaPipe's short- and full-range models) run with LiteRT.

The two `.tflite` files ship inside the `mediapipe` 0.10.x wheel (Apache-2.0);
`scripts/setup.d/20-emotion-weights.sh` downloads that wheel with `pip download --no-deps` and
extracts only them (mediapipe itself is never installed). What MediaPipe's graph does around the
network is re-done here from its published configuration:

- the frame is letterboxed (aspect kept, zero padding) to the square input, RGB scaled to [-1, 1];
- SSD anchors: short range 128 px input, strides 8, 16, 16, 16 (2 anchors per cell of each layer:
  896); full range 192 px input, stride 4 (1 anchor per cell: 2304); anchor size fixed to 1;
- each anchor regresses (dx, dy, w, h) and 6 keypoints in input pixels; score = sigmoid(logit);
- boxes above `score_threshold` are merged by weighted non-maximum suppression (IoU 0.3).

Short range is trained for faces filling a good part of the picture (a person within ~2 m of a
phone camera); full range for smaller faces (~5 m). :class:`TiledBlazeFace` runs short range on
the whole frame *and* on overlapping tiles, so that small faces in a 640x480 scene become large in
the tile the network sees; README.md has the measured hit rates of each option.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple

import cv2
import numpy as np

MODELS = {
    'short': 'face_detection_short_range.tflite',
    'full': 'face_detection_full_range_sparse.tflite',
}
_CONFIG = {
    # input side, anchor strides, anchors per cell per layer
    'short': (128, (8, 16, 16, 16), 2),
    'full': (192, (4,), 1),
}
NMS_IOU = 0.3
CONTAINED = 0.6


@dataclass
class Face:
    """One detected face: box (x, y, w, h) in source pixels (floats), score, 6 keypoints (x, y)."""

    box: Tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray

    def int_box(self) -> Tuple[int, int, int, int]:
        """Return the box rounded to integer pixels."""
        x, y, w, h = self.box
        return int(round(x)), int(round(y)), max(1, int(round(w))), max(1, int(round(h)))


def anchors(variant: str) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1] (x, y), in the order the network emits its boxes."""
    side, strides, per_cell = _CONFIG[variant]
    out = []
    i = 0
    while i < len(strides):
        stride = strides[i]
        layers = 0
        while i < len(strides) and strides[i] == stride:
            layers += 1
            i += 1
        cells = int(np.ceil(side / stride))
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing='ij')
        centres = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, layers * per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float32)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x1, y1, x2, y2) box with (N, 4) boxes."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def weighted_nms(
    corners: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, iou: float = NMS_IOU
) -> List[Tuple[np.ndarray, float, np.ndarray]]:
    """Merge overlapping boxes (MediaPipe's WEIGHTED suppression).

    Each cluster (IoU > `iou` with its best box) becomes their score-weighted mean, scored by its
    best member.
    """
    order = np.argsort(-scores)
    corners, scores, keypoints = corners[order], scores[order], keypoints[order]
    remaining = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        members = remaining & (_iou(corners[i], corners) > iou)
        members[i] = True
        weights = scores[members][:, None]
        box = (corners[members] * weights).sum(0) / weights.sum()
        points = (keypoints[members] * weights[:, :, None]).sum(0) / weights.sum()
        out.append((box, float(scores[i]), points))
        remaining &= ~members
    return out


class BlazeFace:
    """One BlazeFace model ('short' or 'full') on a BGR image or a part of it."""

    def __init__(
        self,
        model_path,
        variant: str = 'short',
        threads: int = 1,
        score_threshold: float = 0.5,
    ):
        if variant not in _CONFIG:
            raise ValueError(f"variant must be one of {list(_CONFIG)}, got '{variant}'")
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(
                f'BlazeFace model not found: {path}\nrun `make setup` '
                '(scripts/setup.d/20-emotion-weights.sh extracts it from the mediapipe wheel)'
            )
        from ai_edge_litert.interpreter import Interpreter

        self.variant = variant
        self.side = _CONFIG[variant][0]
        self.score_threshold = float(score_threshold)
        self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self._interpreter.allocate_tensors()
        inputs = self._interpreter.get_input_details()
        if len(inputs) != 1 or tuple(inputs[0]['shape']) != (1, self.side, self.side, 3):
            raise ValueError(f'{path} is not a BlazeFace {variant}-range model')
        self._input = inputs[0]['index']
        outputs = sorted(self._interpreter.get_output_details(), key=lambda d: -d['shape'][-1])
        self._regressors, self._scores = outputs[0]['index'], outputs[1]['index']
        self._anchors = anchors(variant)
        if outputs[0]['shape'][1] != len(self._anchors):
            raise ValueError(
                f'{path}: {outputs[0]["shape"][1]} boxes, expected {len(self._anchors)}'
            )
        self._tensor = np.zeros((1, self.side, self.side, 3), np.float32)
        self._filled = None  # (width, height) of the picture in the letterbox

    def raw(self, bgr: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidates above the threshold before suppression, in `bgr` pixels.

        Returns (corners (N, 4) x1 y1 x2 y2, scores (N,), keypoints (N, 6, 2)).
        """
        height, width = bgr.shape[:2]
        scale = self.side / float(max(height, width))
        new_w, new_h = max(1, int(round(width * scale))), max(1, int(round(height * scale)))
        pad_x, pad_y = (self.side - new_w) // 2, (self.side - new_h) // 2
        small = cv2.cvtColor(
            cv2.resize(bgr, (new_w, new_h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB
        )
        tensor = self._tensor
        if (new_w, new_h) != self._filled:  # the letterbox padding stays zero between calls
            tensor.fill(0.0)
            self._filled = (new_w, new_h)
        region = tensor[0, pad_y : pad_y + new_h, pad_x : pad_x + new_w]
        np.multiply(small, 1.0 / 127.5, out=region, casting='unsafe')
        region -= 1.0
        self._interpreter.set_tensor(self._input, tensor)
        self._interpreter.invoke()
        logits = self._interpreter.get_tensor(self._scores)[0, :, 0]
        keep = logits > np.log(self.score_threshold / (1.0 - self.score_threshold))
        if not keep.any():
            return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 6, 2))
        reg = self._interpreter.get_tensor(self._regressors)[0][keep] / self.side
        anchor = self._anchors[keep]
        centre = reg[:, :2] + anchor
        half = reg[:, 2:4] / 2
        corners = np.concatenate([centre - half, centre + half], axis=1)
        points = reg[:, 4:16].reshape(-1, 6, 2) + anchor[:, None]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[keep], -100, 100)))
        # letterboxed input coordinates [0, 1] -> source pixels
        offset = np.array([pad_x, pad_y], np.float32)
        corners = (corners.reshape(-1, 2, 2) * self.side - offset) / scale
        points = (points * self.side - offset) / scale
        return corners.reshape(-1, 4), scores, points

    def detect(self, bgr: np.ndarray) -> List[Face]:
        """Faces in a BGR image, best first."""
        return _faces(*self.raw(bgr))


def _faces(corners, scores, keypoints) -> List[Face]:
    if len(scores) == 0:
        return []
    out, kept = [], []
    for box, score, points in weighted_nms(corners, scores, keypoints):
        # a box lying mostly inside a better one is a part of that face (an eye region, a cut
        # face at a tile border): dropped
        if kept and (_overlap_of_own(box, np.array(kept)) > CONTAINED).any():
            continue
        kept.append(box)
        x1, y1, x2, y2 = box
        out.append(Face((float(x1), float(y1), float(x2 - x1), float(y2 - y1)), score, points))
    return out


def _overlap_of_own(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection of one (x1, y1, x2, y2) box with each of `boxes`, over the box's own area."""
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    return iw * ih / max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)


def tiles(
    width: int, height: int, tile: int, overlap: float = 0.25
) -> List[Tuple[int, int, int, int]]:
    """Return square tiles (x, y, side, side) covering a frame, overlapping by `overlap`."""
    tile = int(min(tile, width, height))
    step = max(1, int(tile * (1.0 - overlap)))

    def starts(size: int) -> Sequence[int]:
        count = max(1, int(np.ceil((size - tile) / step)) + 1)
        if count == 1:
            return [max(0, (size - tile) // 2)]
        return [int(round(i * (size - tile) / (count - 1))) for i in range(count)]

    return [(x, y, tile, tile) for y in starts(height) for x in starts(width)]


class TiledBlazeFace:
    """BlazeFace on the whole frame plus on overlapping square tiles, merged by weighted NMS.

    The whole-frame pass finds close-ups and large faces; a tile of side `tile_px` shows a face of
    s source pixels at s * input/tile_px network pixels, so small faces become detectable.
    `tile_px` 0 disables tiling.
    """

    def __init__(self, detector: BlazeFace, tile_px: int = 0, overlap: float = 0.25):
        self.detector = detector
        self.tile_px = int(tile_px)
        self.overlap = float(overlap)

    def detect(self, bgr: np.ndarray) -> List[Face]:
        """Faces in a BGR frame, best first, boxes in frame pixels."""
        height, width = bgr.shape[:2]
        parts = [self.detector.raw(bgr)]
        if self.tile_px and max(width, height) > self.tile_px * 1.2:
            for x, y, w, h in tiles(width, height, self.tile_px, self.overlap):
                corners, scores, points = self.detector.raw(bgr[y : y + h, x : x + w])
                if len(scores):
                    shift = np.array([x, y], np.float32)
                    corners = (corners.reshape(-1, 2, 2) + shift).reshape(-1, 4)
                    # a face cut by the tile border is found whole by a neighbour or the full pass
                    inside = ((corners[:, 0] > x + 1) | (x == 0)) & (
                        (corners[:, 2] < x + w - 1) | (x + w >= width)
                    )
                    inside &= ((corners[:, 1] > y + 1) | (y == 0)) & (
                        (corners[:, 3] < y + h - 1) | (y + h >= height)
                    )
                    parts.append((corners[inside], scores[inside], points[inside] + shift))
        corners = np.concatenate([p[0] for p in parts]).reshape(-1, 4)
        scores = np.concatenate([p[1] for p in parts])
        points = np.concatenate([p[2] for p in parts]).reshape(-1, 6, 2)
        return _faces(corners, scores, points)
