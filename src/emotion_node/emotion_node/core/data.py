"""Training and evaluation data, as uint8 64x64 faces and labels.

- FER2013 CSV: header `emotion,pixels,Usage`; `emotion` is the class index (LABELS order),
  `pixels` 48*48 space-separated grey values, `Usage` Training / PublicTest / PrivateTest. Faces
  are resized to 64x64 (bilinear), as the mini-Xception was trained.
- Image folder: `root/<label>/*.png|jpg|...`, one sub-folder per class named by its label (e.g.
  `happy`); images are face crops, read grey and resized to 64x64.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from emotion_node.core.spec import INPUT_SIZE, LABELS

FER_SIDE = 48
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


class DataError(ValueError):
    """The data set is malformed; the text says where."""


def _resize(face: np.ndarray) -> np.ndarray:
    if face.shape == (INPUT_SIZE, INPUT_SIZE):
        return face
    return cv2.resize(face, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)


def load_fer_csv(
    path, usage: Optional[Sequence[str]] = None, limit: int = 0
) -> Tuple[np.ndarray, np.ndarray]:
    """Faces (N, 64, 64) uint8 and labels (N,) int64 from a FER2013-format CSV.

    `usage` keeps only rows whose Usage is listed (None = all); `limit` > 0 stops after that many
    rows.
    """
    faces, labels = [], []
    with open(path, newline='') as handle:
        reader = csv.DictReader(handle)
        missing = {'emotion', 'pixels'} - set(reader.fieldnames or [])
        if missing:
            raise DataError(
                f'{path}: missing column(s) {sorted(missing)}; expected emotion,pixels,Usage'
            )
        for line, row in enumerate(reader, start=2):
            if usage is not None and row.get('Usage') not in usage:
                continue
            try:
                label = int(row['emotion'])
                pixels = np.array(row['pixels'].split(), dtype=np.int64)
            except ValueError as error:
                raise DataError(f'{path}:{line}: {error}') from error
            if not 0 <= label < len(LABELS):
                raise DataError(f'{path}:{line}: emotion {label} is outside 0..{len(LABELS) - 1}')
            if pixels.size != FER_SIDE * FER_SIDE or pixels.min() < 0 or pixels.max() > 255:
                raise DataError(
                    f'{path}:{line}: pixels must be {FER_SIDE * FER_SIDE} values in 0..255'
                )
            faces.append(_resize(pixels.astype(np.uint8).reshape(FER_SIDE, FER_SIDE)))
            labels.append(label)
            if limit and len(labels) >= limit:
                break
    if not labels:
        raise DataError(f'{path}: no rows' + (f' with Usage in {list(usage)}' if usage else ''))
    return np.stack(faces), np.array(labels, dtype=np.int64)


def load_image_folder(root) -> Tuple[np.ndarray, np.ndarray]:
    """Faces (N, 64, 64) uint8 and labels (N,) from `root/<label>/<image>` (labels from LABELS)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f'{root}: not a folder')
    unknown = [p.name for p in root.iterdir() if p.is_dir() and p.name not in LABELS]
    if unknown:
        raise DataError(
            f'{root}: sub-folder(s) {unknown} are not class labels; use {list(LABELS)}'
        )
    faces, labels = [], []
    for index, label in enumerate(LABELS):
        folder = root / label
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise DataError(f'{path}: not a readable image')
            faces.append(_resize(image))
            labels.append(index)
    if not labels:
        raise DataError(f'{root}: no images in any of the class folders {list(LABELS)}')
    return np.stack(faces), np.array(labels, dtype=np.int64)


def load_dataset(
    path, usage: Optional[Sequence[str]] = None, limit: int = 0
) -> Tuple[np.ndarray, np.ndarray]:
    """Load a FER2013 CSV file or an image folder, by what `path` is."""
    path = Path(path)
    if path.is_dir():
        return load_image_folder(path)
    if path.suffix.lower() == '.csv':
        return load_fer_csv(path, usage=usage, limit=limit)
    raise DataError(
        f'{path}: expected a FER2013 .csv file or a folder with one sub-folder per class'
    )


def write_fer_csv(path, faces: np.ndarray, labels: np.ndarray, usage: Sequence[str]) -> None:
    """Write faces (N, 48, 48) uint8 in the FER2013 CSV format (used to make test data)."""
    with open(path, 'w', newline='') as handle:
        writer = csv.writer(handle)
        writer.writerow(['emotion', 'pixels', 'Usage'])
        for face, label, use in zip(faces, labels, usage, strict=True):
            writer.writerow([int(label), ' '.join(str(int(v)) for v in face.reshape(-1)), use])
