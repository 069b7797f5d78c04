"""Fine-tune and evaluate the mini-Xception (pure PyTorch, progress bars with tqdm).

:func:`train` fine-tunes from given weights (or from scratch) with Adam and cross-entropy, random
horizontal flips and small shifts as augmentation, and returns the per-epoch losses.
:func:`evaluate` returns accuracy, per-class recall and the confusion matrix;
:func:`save_confusion_png` draws the matrix with matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from emotion_node.core.model import LABELS, NUM_CLASSES, MiniXception
from emotion_node.core.preprocess import normalize


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train`."""

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    augment: bool = True
    seed: int = 0
    freeze_batchnorm: bool = False


@dataclass
class TrainHistory:
    """Mean training loss (and validation accuracy when given) per epoch."""

    loss: List[float] = field(default_factory=list)
    val_accuracy: List[float] = field(default_factory=list)


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and a shift of up to 4 px (zero-padded), per sample."""
    flip = torch.rand(batch.shape[0], generator=generator) < 0.5
    batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    dx, dy = (int(v) for v in torch.randint(-4, 5, (2,), generator=generator))
    if dx or dy:
        padded = F.pad(batch, (4, 4, 4, 4), value=-1.0)
        batch = padded[..., 4 + dy : 4 + dy + batch.shape[-2], 4 + dx : 4 + dx + batch.shape[-1]]
    return batch


def train(
    model: MiniXception,
    faces: np.ndarray,
    labels: np.ndarray,
    config: Optional[TrainConfig] = None,
    val_faces: Optional[np.ndarray] = None,
    val_labels: Optional[np.ndarray] = None,
    progress: bool = True,
) -> TrainHistory:
    """Fine-tune `model` in place on uint8 faces (N, 64, 64) with labels (N,); return the history.

    `config` None trains with the defaults of :class:`TrainConfig`.
    """
    if config is None:
        config = TrainConfig()
    if len(faces) != len(labels) or len(faces) == 0:
        raise ValueError(
            f'need as many labels as faces (> 0), got {len(faces)} faces and {len(labels)} labels'
        )
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    inputs = torch.from_numpy(normalize(faces))[:, None]
    targets = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    history = TrainHistory()
    for epoch in range(config.epochs):
        model.train()
        if config.freeze_batchnorm:
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.eval()
        order = torch.randperm(len(inputs), generator=generator)
        total, count = 0.0, 0
        bar = tqdm(
            range(0, len(order), config.batch_size),
            desc=f'epoch {epoch + 1}/{config.epochs}',
            disable=not progress,
            leave=False,
        )
        for start in bar:
            index = order[start : start + config.batch_size]
            batch = inputs[index]
            if config.augment:
                batch = _augment(batch, generator)
            loss = F.cross_entropy(model(batch), targets[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss) * len(index)
            count += len(index)
            bar.set_postfix(loss=f'{total / count:.4f}')
        history.loss.append(total / count)
        if val_faces is not None and val_labels is not None:
            history.val_accuracy.append(
                evaluate(model, val_faces, val_labels, progress=False)['accuracy']
            )
        if progress:
            extra = (
                f', val accuracy {history.val_accuracy[-1]:.4f}' if history.val_accuracy else ''
            )
            tqdm.write(f'epoch {epoch + 1}: loss {history.loss[-1]:.4f}{extra}')
    model.eval()
    return history


def predict(
    model: MiniXception, faces: np.ndarray, batch_size: int = 256, progress: bool = True
) -> np.ndarray:
    """(N, 7) probabilities for uint8 faces (N, 64, 64)."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in tqdm(
            range(0, len(faces), batch_size), desc='predict', disable=not progress, leave=False
        ):
            batch = torch.from_numpy(normalize(faces[start : start + batch_size]))[:, None]
            out.append(torch.softmax(model(batch), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, NUM_CLASSES), np.float32)


def metrics(
    true: np.ndarray, predicted: np.ndarray, num_classes: int = NUM_CLASSES
) -> Dict[str, object]:
    """Return the accuracy, per-class recall and confusion matrix [true][pred].

    The recall of a class absent from `true` is None.
    """
    true, predicted = np.asarray(true, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    if true.shape != predicted.shape or true.size == 0:
        raise ValueError('true and predicted labels must be non-empty and of the same length')
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (true, predicted), 1)
    support = confusion.sum(axis=1)
    recall = {
        LABELS[c]: (float(confusion[c, c] / support[c]) if support[c] else None)
        for c in range(num_classes)
    }
    return {
        'accuracy': float(np.trace(confusion) / true.size),
        'count': int(true.size),
        'per_class_recall': recall,
        'support': {LABELS[c]: int(support[c]) for c in range(num_classes)},
        'confusion_matrix': confusion.tolist(),
    }


def evaluate(
    model: MiniXception, faces: np.ndarray, labels: np.ndarray, progress: bool = True
) -> Dict[str, object]:
    """:func:`metrics` of the model's argmax predictions on uint8 faces."""
    return metrics(labels, predict(model, faces, progress=progress).argmax(axis=1))


def save_confusion_png(confusion, path, title: str = 'FER2013 mini-Xception') -> None:
    """Write the confusion matrix (rows = true class, columns = predicted) as a PNG."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    matrix = np.asarray(confusion)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, float), where=rows > 0)
    figure, axes = plt.subplots(figsize=(6.5, 5.5))
    image = axes.imshow(share, cmap='Blues', vmin=0, vmax=1)
    for (i, j), value in np.ndenumerate(matrix):
        axes.text(
            j,
            i,
            str(value),
            ha='center',
            va='center',
            color='white' if share[i, j] > 0.5 else 'black',
        )
    axes.set_xticks(range(len(LABELS)), LABELS, rotation=45, ha='right')
    axes.set_yticks(range(len(LABELS)), LABELS)
    axes.set_xlabel('predicted')
    axes.set_ylabel('true')
    axes.set_title(title)
    figure.colorbar(image, ax=axes, label='share of the true class')
    figure.tight_layout()
    figure.savefig(str(path), dpi=100)
    plt.close(figure)
