"""Training data: the manifest CSV, speaker-disjoint splits, the dataset and its augmentation.

Manifest format (UTF-8 CSV with a header row)::

    path,age,speaker_id[,split]
    clips/spk0001_00.wav,34,spk0001
    /data/aihub/F_0042/0003.wav,71.5,F_0042,test

`path` is a 16-bit PCM WAV (any sample rate; resampled to 16 kHz), absolute or relative to the
manifest's folder; `age` is the speaker's age in years (5-89); `speaker_id` groups the clips of
one person. `split` (train/val/test) is optional: without it, speakers are assigned by a hash of
their id (70/15/15), so a speaker never appears in two splits.
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch
import torchaudio

from age_node.core import ages
from age_node.core.audio_io import read_wav
from age_node.core.features import SAMPLE_RATE

SPLITS = ('train', 'val', 'test')


@dataclass
class Clip:
    """One manifest row."""

    path: Path
    age: float
    speaker_id: str
    split: str


def speaker_split(speaker_id: str, val_fraction: float = 0.15, test_fraction: float = 0.15) -> str:
    """Deterministic split of a speaker from a hash of its id (never depends on row order)."""
    digest = hashlib.sha1(speaker_id.encode('utf-8')).digest()
    u = int.from_bytes(digest[:8], 'big') / 2.0**64
    if u < test_fraction:
        return 'test'
    if u < test_fraction + val_fraction:
        return 'val'
    return 'train'


def read_manifest(path) -> List[Clip]:
    """Read and validate a manifest CSV; ValueError names the first bad row and what is wrong."""
    path = Path(path)
    clips = []
    with open(path, newline='', encoding='utf-8') as handle:
        reader = csv.DictReader(handle)
        missing = {'path', 'age', 'speaker_id'} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(
                f'{path}: missing column(s) {sorted(missing)}; '
                'expected path,age,speaker_id[,split]'
            )
        for line, row in enumerate(reader, start=2):
            try:
                age = float(row['age'])
            except ValueError:
                raise ValueError(f"{path}:{line}: age {row['age']!r} is not a number") from None
            if not (ages.MIN_AGE <= age <= ages.MAX_AGE + 0.999):
                raise ValueError(
                    f'{path}:{line}: age {age} is outside {ages.MIN_AGE}-{ages.MAX_AGE}'
                )
            speaker = row['speaker_id'].strip()
            if not speaker:
                raise ValueError(f'{path}:{line}: empty speaker_id')
            split = (row.get('split') or '').strip() or speaker_split(speaker)
            if split not in SPLITS:
                raise ValueError(f"{path}:{line}: split {split!r} is not one of {SPLITS}")
            wav = Path(row['path'])
            clips.append(
                Clip(wav if wav.is_absolute() else path.parent / wav, age, speaker, split)
            )
    if not clips:
        raise ValueError(f'{path}: no rows')
    per_speaker = {}
    for clip in clips:
        if per_speaker.setdefault(clip.speaker_id, clip.split) != clip.split:
            raise ValueError(f'{path}: speaker {clip.speaker_id} appears in two splits')
    return clips


def write_manifest(path, rows: Sequence[dict]) -> None:
    """Write manifest rows (dicts with path, age, speaker_id and optionally split)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = ['path', 'age', 'speaker_id'] + (['split'] if rows and 'split' in rows[0] else [])
    with open(path, 'w', newline='', encoding='utf-8') as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)


def soft_bin_targets(age_years: float, sigma_years: float = 3.5) -> np.ndarray:
    """Return a Gaussian over the age bins around the true age (neighbours share a little mass)."""
    centers = ages.BIN_CENTER_YEARS.astype(np.float64)
    weights = np.exp(-0.5 * ((centers - age_years) / sigma_years) ** 2)
    weights[ages.age_to_bin(age_years)] += 1.0
    return (weights / weights.sum()).astype(np.float32)


@dataclass
class Augment:
    """Waveform augmentation for training: gain, speed (pitch+tempo), tempo-only, noise, crop."""

    gain_db: float = 6.0
    speed: float = 0.04  # +-4 % resampling (small: pitch is an age cue)
    tempo: float = 0.08  # +-8 % time stretch of the features (handled by `stretch_frames`)
    noise_snr_db: Sequence[float] = (15.0, 45.0)
    max_seconds: float = 6.0

    def __call__(self, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return a randomly augmented copy of `audio`, drawing from `rng`."""
        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        if self.speed > 0:
            factor = 1.0 + rng.uniform(-self.speed, self.speed)
            new_rate = int(round(SAMPLE_RATE * factor / 100.0)) * 100
            if new_rate != SAMPLE_RATE:
                x = torchaudio.functional.resample(
                    x, SAMPLE_RATE, new_rate
                )  # played at 16 kHz: speed change
        if self.max_seconds and x.numel() > self.max_seconds * SAMPLE_RATE:
            length = int(self.max_seconds * SAMPLE_RATE)
            start = int(rng.integers(0, x.numel() - length + 1))
            x = x[start : start + length]
        x = x * float(10 ** (rng.uniform(-self.gain_db, self.gain_db) / 20.0))
        rms = float(torch.sqrt(torch.mean(x**2))) or 1e-4
        snr = rng.uniform(*self.noise_snr_db)
        x = x + torch.from_numpy(
            rng.normal(0, rms * 10 ** (-snr / 20.0), x.numel()).astype(np.float32)
        )
        return torch.clamp(x, -1.0, 1.0).numpy()


def load_clip(clip: Clip) -> np.ndarray:
    """Read a clip as 16 kHz float32 mono (WAV here; other formats through ffmpeg/PyAV)."""
    if Path(clip.path).suffix.lower() != '.wav':
        from age_node.core.age_data import load_audio

        return load_audio(clip.path)
    audio, rate = read_wav(clip.path)
    if rate != SAMPLE_RATE:
        audio = torchaudio.functional.resample(torch.from_numpy(audio), rate, SAMPLE_RATE).numpy()
    return audio


class ClipDataset(torch.utils.data.Dataset):
    """Clips of one split, held in memory; augmented on access when `augment` is set."""

    def __init__(
        self,
        clips: Sequence[Clip],
        augment: Optional[Augment] = None,
        seed: int = 0,
        max_seconds: float = 12.0,
    ):
        self.clips = list(clips)
        self.audio = [load_clip(c)[: int(max_seconds * SAMPLE_RATE)] for c in self.clips]
        self.augment = augment
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        """Return the number of clips."""
        return len(self.clips)

    def __getitem__(self, index: int):
        """Return (audio, soft bin targets, age in years) of clip `index`, augmented if set."""
        audio = self.audio[index]
        if self.augment is not None:
            audio = self.augment(audio, self.rng)
        clip = self.clips[index]
        return audio, soft_bin_targets(clip.age), clip.age


def collate(batch):
    """Pad waveforms to the longest; return (waveforms, lengths, soft targets, ages)."""
    lengths = torch.tensor([len(a) for a, _, _ in batch], dtype=torch.long)
    waveforms = torch.zeros(len(batch), int(lengths.max()))
    for i, (audio, _, _) in enumerate(batch):
        waveforms[i, : len(audio)] = torch.from_numpy(np.asarray(audio, dtype=np.float32))
    targets = torch.from_numpy(np.stack([t for _, t, _ in batch]))
    ages_years = torch.tensor([a for _, _, a in batch], dtype=torch.float32)
    return waveforms, lengths, targets, ages_years


def stretch_frames(features: torch.Tensor, lengths: torch.Tensor, factor: float):
    """Tempo augmentation on features: resample the time axis by `factor` (pitch unchanged)."""
    if math.isclose(factor, 1.0):
        return features, lengths
    frames = max(1, int(round(features.shape[-1] * factor)))
    stretched = torch.nn.functional.interpolate(
        features, size=(features.shape[-2], frames), mode='bilinear', align_corners=False
    )
    return stretched, torch.clamp((lengths.float() * factor).round().long(), 1, frames)
