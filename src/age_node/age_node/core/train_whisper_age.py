"""Training and evaluation of the Whisper age head (see :mod:`age_node.core.whisper_age`).

Used through ``python -m age_node.core.train`` (the CLI). Steps:

1. Encoder states of every clip (and of augmented copies of the training clips) are computed
   once with the recogniser's Whisper base encoder (int8, 1 thread, the 15 s window) and cached
   under ``~/.cache/agechat/age_node/age_states/`` (never committed); a second run reads them.
2. The head is trained with torch on the pooled states of the ``train`` speakers (torch at
   training time only). Losses: soft cross-entropy over the 17 age bins (exact ages: a Gaussian;
   bands: spread over the band) plus the group negative log-likelihood, each clip weighted so that
   every speaker counts once and the groups of each source weigh the same (a source's channel
   cannot stand in for a group). The configuration (linear or MLP, weight decay, with or
   without augmented copies) is chosen by balanced accuracy on the ``val`` speakers only.
3. A softmax temperature is fitted on the ``val`` speakers (group NLL); the head is exported with
   numpy-readable safetensors.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from tqdm import tqdm

from age_node.core import ages
from age_node.core.age_data import (
    SAMPLE_RATE,
    AgeClip,
    bin_targets,
    load_audio,
    trainable_source,
)
from age_node.core.whisper_age import (
    WINDOW_S,
    encode_window,
    pool_states,
    softmax,
    state_levels_db,
    trim_silence,
)

#: Optimiser settings of the head (see CONFIGS for how they were set).
HEAD_TRAINING = {'epochs': 15, 'lr': 1e-3, 'dropout': 0.5}
#: Augmented copies of each training clip (variants 'aug1', 'aug2', ...).
AUGMENTED_COPIES = 1
#: Probability that an unsure threshold applies: the group is reported 'unsure' below this
#: calibrated probability (fixed before training; the dialogue then speaks adult-polite).
UNSURE_BELOW = 0.5


def cache_dir() -> Path:
    """Return the folder of the cached encoder states (``$XDG_CACHE_HOME`` honoured)."""
    from age_node.core.whisper_model import WHISPER_BASE_FILES

    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    tag = f"{WHISPER_BASE_FILES['model.bin'][:12]}-int8-w{WINDOW_S:g}-trim"
    return Path(base, 'agechat', 'age_node', 'age_states', tag)


def _seed(path: Path, variant: str) -> int:
    digest = hashlib.sha1(f'{path.name}|{variant}'.encode()).digest()
    return int.from_bytes(digest[:8], 'big')


def _mp3_round_trip(audio: np.ndarray, bit_rate: int) -> np.ndarray:
    """Encode to MP3 at `bit_rate` and decode again (codec augmentation, PyAV)."""
    import av
    from faster_whisper.audio import decode_audio

    buffer = io.BytesIO()
    with av.open(buffer, 'w', format='mp3') as container:
        stream = container.add_stream('libmp3lame', rate=SAMPLE_RATE)
        stream.bit_rate = bit_rate
        stream.layout = 'mono'
        frame = av.AudioFrame.from_ndarray(audio[None, :], format='flt', layout='mono')
        frame.sample_rate = SAMPLE_RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    buffer.seek(0)
    return np.asarray(decode_audio(buffer, sampling_rate=SAMPLE_RATE), dtype=np.float32)


def augment(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Channel and loudness augmentation of one clip (16 kHz float32).

    Gain +-12 dB; with p=0.5 a band limit (4th-order Butterworth, 80-300 Hz to 3.4-7 kHz); with
    p=0.5 an MP3 round trip at 24-64 kbit/s; with p=0.6 white noise at 10-35 dB SNR; with p=0.5
    0-1 s of very low noise before and after.
    """
    from scipy.signal import butter, sosfilt

    x = np.asarray(audio, dtype=np.float32).copy()
    if rng.random() < 0.5:
        low, high = rng.uniform(80, 300), rng.uniform(3400, 7000)
        sos = butter(4, [low, high], btype='bandpass', fs=SAMPLE_RATE, output='sos')
        x = sosfilt(sos, x).astype(np.float32)
    if rng.random() < 0.5:
        x = _mp3_round_trip(np.clip(x, -1, 1), int(rng.choice([24000, 32000, 48000, 64000])))
    rms = float(np.sqrt(np.mean(np.square(x)))) or 1e-4
    if rng.random() < 0.6:
        snr = rng.uniform(10, 35)
        x = x + rng.normal(0, rms * 10 ** (-snr / 20), x.size).astype(np.float32)
    x = x * np.float32(10 ** (rng.uniform(-12, 12) / 20))
    if rng.random() < 0.5:
        floor = 10 ** (rng.uniform(-80, -60) / 20)
        pads = [rng.normal(0, floor, int(rng.uniform(0, 1) * SAMPLE_RATE)) for _ in range(2)]
        x = np.concatenate([pads[0], x, pads[1]]).astype(np.float32)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def with_silence(audio: np.ndarray, seconds: float) -> np.ndarray:
    """Return the clip with `seconds` of digital silence added before and after it."""
    pad = np.zeros(int(round(seconds * SAMPLE_RATE)), np.float32)
    return np.concatenate([pad, np.asarray(audio, np.float32), pad])


def variant_audio(clip: AgeClip, variant: str) -> np.ndarray:
    """Return the audio of one variant of a clip: 'clean', 'augN' (augmented), 'silence0.5', ..."""
    audio = load_audio(clip.path)
    if variant == 'clean':
        return audio
    if variant.startswith('aug'):
        return augment(audio, np.random.default_rng(_seed(clip.path, variant)))
    if variant.startswith('silence'):
        return with_silence(audio, float(variant[len('silence') :]))
    raise ValueError(f'unknown variant {variant!r}')


class StateCache:
    """Encoder states of clips, computed once and kept as .npz (float16) in :func:`cache_dir`."""

    def __init__(self, whisper_model=None, folder: Optional[Path] = None):
        self.folder = Path(folder) if folder else cache_dir()
        self._whisper = whisper_model

    @property
    def whisper_model(self):
        """The Whisper model (loaded on first use: int8, 1 thread)."""
        if self._whisper is None:
            from faster_whisper import WhisperModel

            from age_node.core.whisper_model import check_whisper_model

            self._whisper = WhisperModel(
                str(check_whisper_model()), device='cpu', compute_type='int8', cpu_threads=1
            )
        return self._whisper

    def file(self, clip: AgeClip, variant: str) -> Path:
        """Where the states of (clip, variant) are cached."""
        key = hashlib.sha1(str(Path(clip.path).resolve()).encode()).hexdigest()[:20]
        return self.folder / variant / f'{key}.npz'

    def states(self, clip: AgeClip, variant: str = 'clean'):
        """Return (states (T, 512) float32, levels_db (T,)) of one clip variant."""
        target = self.file(clip, variant)
        if target.is_file():
            with np.load(target) as data:
                return data['states'].astype(np.float32), data['levels']
        audio = trim_silence(variant_audio(clip, variant))
        states = encode_window(self.whisper_model, audio)
        levels = state_levels_db(audio, states.shape[0])
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix('.tmp.npz')
        np.savez(temporary, states=states.astype(np.float16), levels=levels)
        temporary.replace(target)
        return states, levels

    def pooled(
        self, clips: Sequence[AgeClip], variant: str = 'clean', progress: bool = True
    ) -> np.ndarray:
        """Pooled features (N, 1024) of clips (computing missing states, with tqdm)."""
        out = []
        for clip in tqdm(clips, desc=f'encoder states ({variant})', disable=not progress):
            out.append(pool_states(*self.states(clip, variant)))
        return np.stack(out) if out else np.zeros((0, 1024), np.float32)


def clip_weights(clips: Sequence[AgeClip]) -> np.ndarray:
    """Training weights: each speaker counts once; inside each source the groups weigh equally.

    A source's total weight is its number of speakers (so a small source is not inflated).
    """
    speakers_in: Dict[tuple, set] = {}
    clips_of: Dict[str, int] = {}
    for clip in clips:
        speakers_in.setdefault((clip.source, clip.group), set()).add(clip.speaker_id)
        clips_of[clip.speaker_id] = clips_of.get(clip.speaker_id, 0) + 1
    source_speakers: Dict[str, int] = {}
    source_groups: Dict[str, int] = {}
    for (source, _), speakers in speakers_in.items():
        source_speakers[source] = source_speakers.get(source, 0) + len(speakers)
        source_groups[source] = source_groups.get(source, 0) + 1
    weights = np.array(
        [
            source_speakers[c.source]
            / source_groups[c.source]
            / len(speakers_in[(c.source, c.group)])
            / clips_of[c.speaker_id]
            for c in clips
        ]
    )
    return weights * len(weights) / weights.sum()


def train_head(
    features: np.ndarray,
    targets: np.ndarray,
    groups: np.ndarray,
    weights: np.ndarray,
    hidden: int = 0,
    weight_decay: float = 1e-2,
    epochs: int = 60,
    lr: float = 3e-3,
    seed: int = 0,
    dropout: float = 0.2,
) -> Dict[str, np.ndarray]:
    """Fit the head with torch (full-batch AdamW); return its tensors for :class:`AgeHead`."""
    import torch

    torch.manual_seed(seed)
    mean = features.mean(0)
    scale = features.std(0) + 1e-4
    x = torch.from_numpy(((features - mean) / scale).astype(np.float32))
    t = torch.from_numpy(targets.astype(np.float32))
    g = torch.from_numpy(groups.astype(np.int64))
    w = torch.from_numpy(weights.astype(np.float32))
    bin_group = torch.as_tensor(ages.BIN_GROUP)
    dim = x.shape[1]
    if hidden:
        model = torch.nn.Sequential(
            torch.nn.Dropout(dropout),
            torch.nn.Linear(dim, hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(dropout),
            torch.nn.Linear(hidden, ages.NUM_BINS),
        )
    else:
        model = torch.nn.Sequential(torch.nn.Dropout(dropout), torch.nn.Linear(dim, ages.NUM_BINS))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    batch = 128
    for _ in range(epochs):
        model.train()
        order = torch.randperm(x.shape[0], generator=generator)
        for start in range(0, x.shape[0], batch):
            idx = order[start : start + batch]
            logits = model(x[idx])
            log_probs = torch.log_softmax(logits, -1)
            bin_loss = -(t[idx] * log_probs).sum(-1)
            group_log = torch.stack(
                [torch.logsumexp(log_probs[:, bin_group == k], -1) for k in range(3)], -1
            )
            group_loss = -group_log.gather(1, g[idx, None])[:, 0]
            loss = ((bin_loss + group_loss) * w[idx]).sum() / w[idx].sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    tensors = {'feature_mean': mean, 'feature_scale': scale}
    if hidden:
        tensors['hidden_weight'] = linears[0].weight.detach().numpy()
        tensors['hidden_bias'] = linears[0].bias.detach().numpy()
    tensors['out_weight'] = linears[-1].weight.detach().numpy()
    tensors['out_bias'] = linears[-1].bias.detach().numpy()
    return {k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()}


def group_nll(logits: np.ndarray, groups: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the true groups at a temperature."""
    probs = ages.group_probabilities(softmax(logits / temperature))
    return float(-np.mean(np.log(np.maximum(probs[np.arange(len(groups)), groups], 1e-12))))


def fit_temperature(logits: np.ndarray, groups: np.ndarray) -> float:
    """Grid search of the temperature minimising the group NLL (validation speakers)."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 120))
    return float(min(grid, key=lambda temp: group_nll(logits, groups, float(temp))))


def balanced_accuracy(groups: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the groups present."""
    recalls = [np.mean(predicted[groups == k] == k) for k in range(3) if np.any(groups == k)]
    return float(np.mean(recalls)) if recalls else float('nan')


def clip_table(clips: Sequence[AgeClip]) -> Dict[str, np.ndarray]:
    """Targets, groups and weights of clips as arrays."""
    return {
        'targets': np.stack([bin_targets(c) for c in clips]),
        'groups': np.array([c.group for c in clips]),
        'weights': clip_weights(clips),
    }


def is_trainable(clip: AgeClip) -> bool:
    """Return True for clips of a licence that allows shipped weights (see age_data)."""
    return trainable_source(clip.source)


#: Configurations compared on the validation speakers. The first grid (linear / MLP 256, weight
#: decay 1e-2 / 1e-1, 60 epochs) overfitted the training speakers (train balanced accuracy 0.95,
#: val 0.50); this grid was set after those validation numbers (never the test split):
#: stronger weight decay, dropout 0.5, 15 epochs at lr 1e-3, mean-only or mean+std pooling.
#: With one augmented copy per clip (see `augment`) the best validation score did not improve
#: (0.618 vs 0.618 without the extra set, 0.639 vs 0.656 with it), so the shipped grid leaves
#: augmentation out (`augmented: True` configurations can still be passed).
CONFIGS = tuple(
    {'features': features, 'hidden': 0, 'weight_decay': wd, 'augmented': False}
    for features in (512, 1024)
    for wd in (1.0, 10.0)
)
#: Seeds whose validation scores are averaged per configuration (the val split is small); the
#: shipped linear head is the average of the heads of these seeds.
SELECTION_SEEDS = (0, 1, 2)


def train_whisper_head(
    clips: Sequence[AgeClip],
    cache: Optional[StateCache] = None,
    configs: Sequence[Dict] = CONFIGS,
    progress: bool = True,
    seed: int = 0,
) -> Dict:
    """Choose a configuration on val, retrain it, fit the temperature; return tensors + log."""
    cache = cache or StateCache()
    train = [c for c in clips if c.split == 'train' and is_trainable(c)]
    val = [c for c in clips if c.split == 'val' and is_trainable(c)]
    if not train or not val:
        raise ValueError('the manifest needs train and val speakers of a trainable source')
    started = time.time()
    x_train = cache.pooled(train, 'clean', progress)
    x_aug = [
        cache.pooled(train, f'aug{k + 1}', progress)
        for k in range(AUGMENTED_COPIES if any(c['augmented'] for c in configs) else 0)
    ]
    x_val = cache.pooled(val, 'clean', progress)
    table = clip_table(train)
    val_groups = np.array([c.group for c in val])
    tried: List[Dict] = []
    best = None
    from age_node.core.whisper_age import AgeHead

    def fit(config, fit_seed):
        parts = [x_train] + (x_aug if config['augmented'] else [])
        copies = len(parts)
        return train_head(
            np.concatenate(parts)[:, : config['features']],
            np.tile(table['targets'], (copies, 1)),
            np.tile(table['groups'], copies),
            np.tile(table['weights'], copies),
            hidden=config['hidden'],
            weight_decay=config['weight_decay'],
            seed=fit_seed,
            **HEAD_TRAINING,
        )

    for config in configs:
        scores = []
        for fit_seed in SELECTION_SEEDS:
            logits = AgeHead(fit(config, seed + fit_seed)).logits(x_val)
            predicted = ages.group_probabilities(softmax(logits)).argmax(1)
            scores.append(balanced_accuracy(val_groups, predicted))
        score = float(np.mean(scores))
        tried.append(dict(config, val_balanced_accuracy=round(score, 4)))
        if progress:
            tqdm.write(f'{config}: val balanced accuracy {score:.3f} (seeds {scores})')
        if best is None or score > best[0]:
            best = (score, config)
    score, config = best
    heads = [fit(config, seed + fit_seed) for fit_seed in SELECTION_SEEDS]
    if config['hidden']:
        tensors = heads[0]
    else:  # linear heads on the same standardisation: the mean head = the mean of their logits
        tensors = {k: np.mean([h[k] for h in heads], axis=0) for k in heads[0]}
    logits = AgeHead(tensors).logits(x_val)
    averaged = balanced_accuracy(val_groups, ages.group_probabilities(softmax(logits)).argmax(1))
    temperature = fit_temperature(logits, val_groups)
    return {
        'tensors': tensors,
        'config': config,
        'temperature': temperature,
        'val_balanced_accuracy': score,
        'val_balanced_accuracy_averaged_head': averaged,
        'val_group_nll': group_nll(logits, val_groups, temperature),
        'val_group_nll_uncalibrated': group_nll(logits, val_groups, 1.0),
        'tried': tried,
        'train_clips': len(train),
        'train_speakers': len({c.speaker_id for c in train}),
        'val_clips': len(val),
        'val_speakers': len({c.speaker_id for c in val}),
        'train_seconds': round(time.time() - started, 1),
        'unsure_below': UNSURE_BELOW,
    }


def _extract_main(argv=None) -> int:
    """Fill the state cache: python -m age_node.core.train_whisper_age MANIFEST VARIANT SPLIT."""
    import sys

    from age_node.core.age_data import load_split

    args = list(sys.argv[1:] if argv is None else argv)
    manifest, variant, split = args[0], args[1], args[2]
    clips = load_split(manifest, split)
    StateCache().pooled(clips, variant)
    print(json.dumps({'clips': len(clips), 'variant': variant, 'split': split}))
    return 0


if __name__ == '__main__':
    raise SystemExit(_extract_main())
