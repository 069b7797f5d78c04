"""The age CNN and its inference wrapper.

Architecture (the seed's baseline, completed): 4 conv blocks (3x3 conv, batch norm, ReLU, 2x2 max
pool) with 16/32/64/128 channels over the log-mel of the **whole** utterance, then mean+std
pooling over the valid time steps (any length), a small MLP and 17 logits for the five-year age
bins 5..85. Group probabilities are sums of bin probabilities after temperature scaling fitted on
validation speakers (calibration); the estimated age is the expectation over bin centres.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
from torch import nn

from age_node.core import ages
from age_node.core.ages import AgeResult
from age_node.core.features import SAMPLE_RATE, TIME_STRIDE, LogMel, N_MELS

MODEL_NAME = 'age_cnn'
CHANNELS = (16, 32, 64, 128)


class AgeCNN(nn.Module):
    """Log-mel (B, 1, 64, T) + frame lengths -> 17 age-bin logits."""

    def __init__(self, channels=CHANNELS, hidden: int = 128, dropout: float = 0.3):
        super().__init__()
        layers = []
        previous = 1
        for width in channels:
            layers += [
                nn.Conv2d(previous, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            previous = width
        self.conv = nn.Sequential(*layers)
        freq = N_MELS
        for _ in channels:
            freq = (freq + 1) // 2
        self.embed_dim = previous * freq
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(2 * self.embed_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, ages.NUM_BINS),
        )

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        """Return the age-bin logits, pooling mean and deviation over each clip's valid frames."""
        x = self.conv(features)  # (B, C, F', T')
        b, c, f, t = x.shape
        x = x.reshape(b, c * f, t)
        steps = torch.clamp((frame_lengths + TIME_STRIDE - 1) // TIME_STRIDE, 1, t)
        mask = (torch.arange(t)[None, :] < steps[:, None]).to(x.dtype)[:, None, :]
        count = mask.sum(dim=2)
        mean = (x * mask).sum(dim=2) / count
        var = (((x - mean[:, :, None]) * mask) ** 2).sum(dim=2) / count
        return self.head(torch.cat([mean, torch.sqrt(var + 1e-5)], dim=1))


def group_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Return the log [child, adult, senior] probabilities from the bin logits.

    Each group's value is the log-sum-exp over its bins.
    """
    log_probs = torch.log_softmax(logits, dim=-1)
    groups = torch.as_tensor(ages.BIN_GROUP)
    return torch.stack(
        [torch.logsumexp(log_probs[..., groups == g], dim=-1) for g in range(3)], dim=-1
    )


def save_model(path, model: AgeCNN, metadata: Dict) -> None:
    """Export weights as safetensors with JSON metadata (temperature, metrics, provenance)."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={'agechat': json.dumps(metadata, ensure_ascii=False)})


def load_metadata(path) -> Dict:
    """Return the JSON metadata stored in a safetensors age model."""
    from safetensors import safe_open

    with safe_open(str(path), framework='pt') as handle:
        return json.loads((handle.metadata() or {}).get('agechat', '{}'))


class AgeEstimator:
    """Loads an exported age model and estimates age from float32 16 kHz mono samples."""

    def __init__(self, path, max_seconds: float = 30.0):
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f'age model not found: {path}. '
                'Regenerate it with `python -m age_node.core.default_model` '
                f'(or train one on your data with `python -m age_node.core.train`).'
            )
        self.path = path
        self.metadata = load_metadata(path)
        self.temperature = float(self.metadata.get('temperature', 1.0))
        self.name = f"{MODEL_NAME}:{self.metadata.get('version', path.stem)}"
        self.model = AgeCNN()
        self.model.load_state_dict(load_file(str(path)))
        self.model.eval()
        self.features = LogMel()
        self.max_samples = int(max_seconds * SAMPLE_RATE)

    @torch.inference_mode()
    def predict(self, samples: np.ndarray) -> AgeResult:
        """Estimate the speaker's age from one whole utterance (16 kHz float32 mono)."""
        start = time.perf_counter()
        audio = np.nan_to_num(np.asarray(samples, dtype=np.float32))[-self.max_samples :]
        if audio.size < 1600:  # 100 ms: pad very short input so every conv block has something
            audio = np.pad(audio, (0, 1600 - audio.size))
        waveform = torch.from_numpy(np.ascontiguousarray(audio))[None, :]
        feats, lengths = self.features(waveform)
        logits = self.model(feats, lengths)[0] / self.temperature
        bins = torch.softmax(logits, dim=-1).numpy().astype(np.float64)
        groups = ages.group_probabilities(bins)
        groups = groups / groups.sum()
        group = int(np.argmax(groups))
        return AgeResult(
            bin_probabilities=bins.astype(np.float32),
            group_probabilities=groups.astype(np.float32),
            group=group,
            estimated_age_years=float(ages.expected_age(bins)),
            inference_ms=(time.perf_counter() - start) * 1000.0,
        )


def default_model_path() -> Optional[Path]:
    """Return the shipped default weights, or None when they are not found.

    They are looked for in share/age_node/models (installed) and src/age_node/models (source).
    """
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / 'models' / 'age_cnn.safetensors']
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.insert(
            0, Path(get_package_share_directory('age_node')) / 'models' / 'age_cnn.safetensors'
        )
    except Exception:  # noqa: BLE001 - not installed / no ament index: use the source tree
        pass
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return candidates[-1]
