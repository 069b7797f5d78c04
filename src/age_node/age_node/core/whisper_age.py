"""Age from the Whisper encoder (+ a GE2E speaker embedding) -> a small numpy head. No torch.

The speech recogniser's own Whisper base encoder (CTranslate2, int8) turns an utterance into
512-dimensional states, one per 20 ms. :func:`pool_states` averages them over the frames that
hold the voice (mean and standard deviation), so padding and silence around the speech do not
enter the estimate, and a small head (:class:`AgeHead`, standardisation then a linear layer or a
one-hidden-layer MLP) maps the 1024 numbers, and with the shipped head (metadata ``inputs``
``['whisper', 'ge2e']``) also the 256 of the GE2E speaker embedding of the trimmed voice
(:mod:`age_node.core.speaker_encoder`, onnxruntime), to the 17 five-year age bins. Group
probabilities are sums of bin probabilities after temperature scaling. Inference is numpy and
onnxruntime (weights read by ``safetensors.numpy``), so age_node never imports torch; training
is in :mod:`age_node.core.train_whisper_age`.

When the recogniser is Whisper, the utterance has already been encoded for the transcript
(:meth:`WhisperRecognizer.transcribe_with_encoding`): :meth:`WhisperAgeEstimator.predict` takes
that encoding and only pools and runs the head (well under a millisecond). Otherwise it runs the
encoder itself, on the same window the head was trained with.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict

import numpy as np

from age_node.core import ages
from age_node.core.ages import AgeResult

MODEL_KIND = 'whisper_age_head'
MODEL_NAME = 'whisper_age'
DEFAULT_MODEL_FILE = 'age_whisper_head.safetensors'
SAMPLE_RATE = 16000
#: Samples per encoder state (Whisper: 10 ms mel hop, then a stride-2 convolution).
SAMPLES_PER_STATE = 320
#: Encoder window the head is trained with [s]; equal to the recogniser's default window so the
#: transcript's encoding can be reused.
WINDOW_S = 15.0
#: At most this much audio goes into the window (the recogniser's margin).
MAX_AUDIO_S = 14.0
#: States whose 20 ms of audio is quieter than the loudest part of the utterance (its 95th
#: percentile) by more than this, or below the absolute floor, are not pooled (silence).
VOICE_RANGE_DB = 30.0
VOICE_FLOOR_DBFS = -70.0
MIN_POOLED_STATES = 5
#: Audio kept before the first and after the last voiced state when silence is trimmed [s].
TRIM_MARGIN_S = 0.1
#: The recogniser's encoding is reused only when the utterance has at most this much silence
#: before its voice (the VAD's pre-roll is 0.2 s); else the voice is encoded again, trimmed.
REUSE_MAX_LEADING_S = 0.35


def state_levels_db(audio: np.ndarray, states: int) -> np.ndarray:
    """Return the level (dBFS) of the audio under each of the first `states` encoder states."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    padded = np.zeros(states * SAMPLES_PER_STATE, np.float32)
    used = min(audio.size, padded.size)
    padded[:used] = audio[:used]
    power = np.mean(np.square(padded.reshape(states, SAMPLES_PER_STATE), dtype=np.float64), 1)
    return (10.0 * np.log10(power + 1e-12)).astype(np.float32)


def voice_mask(levels_db: np.ndarray) -> np.ndarray:
    """Return the states to pool: within VOICE_RANGE_DB of the loud part and above the floor."""
    levels = np.asarray(levels_db, dtype=np.float64)
    if levels.size == 0:
        return np.zeros(0, bool)
    reference = float(np.percentile(levels, 95))
    mask = (levels >= reference - VOICE_RANGE_DB) & (levels > VOICE_FLOOR_DBFS)
    if mask.sum() < min(MIN_POOLED_STATES, levels.size):
        mask = np.ones(levels.size, bool)  # too little voice: pool everything there is
    return mask


def trim_silence(audio: np.ndarray) -> np.ndarray:
    """Cut the silence before the first and after the last voiced 20 ms (see :func:`voice_mask`).

    :data:`TRIM_MARGIN_S` is kept on each side. The encoder's states depend on where the voice
    sits in the window (absolute positions), so the same voice with more or less silence around it
    is encoded the same way only once that silence is gone.
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    states = audio_states(audio.size)
    voiced = np.flatnonzero(voice_mask(state_levels_db(audio, states)))
    if voiced.size == 0:
        return audio
    margin = int(TRIM_MARGIN_S * SAMPLE_RATE)
    start = max(0, int(voiced[0]) * SAMPLES_PER_STATE - margin)
    end = min(audio.size, (int(voiced[-1]) + 1) * SAMPLES_PER_STATE + margin)
    return audio[start:end]


def leading_silence_s(audio: np.ndarray) -> float:
    """Return the seconds of silence before the first voiced 20 ms of `audio`."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    voiced = np.flatnonzero(voice_mask(state_levels_db(audio, audio_states(audio.size))))
    return float(voiced[0]) * SAMPLES_PER_STATE / SAMPLE_RATE if voiced.size else 0.0


def pool_states(states: np.ndarray, levels_db: np.ndarray) -> np.ndarray:
    """Mean and standard deviation of the voiced encoder states -> (2 * 512,) float32."""
    states = np.asarray(states, dtype=np.float32)
    mask = voice_mask(levels_db[: states.shape[0]])
    chosen = states[: mask.size][mask].astype(np.float64)
    if chosen.shape[0] == 0:
        chosen = np.zeros((1, states.shape[1]))
    return np.concatenate([chosen.mean(0), chosen.std(0)]).astype(np.float32)


def audio_states(n_samples: int) -> int:
    """Return the number of encoder states that cover `n_samples` of audio (at least 1)."""
    return max(1, -(-int(n_samples) // SAMPLES_PER_STATE))


def encode_window(whisper_model, audio: np.ndarray, window_s: float = WINDOW_S) -> np.ndarray:
    """Encode audio (16 kHz) in a `window_s` window; return the states under it (T, 512).

    `whisper_model` is a ``faster_whisper.WhisperModel``; the log-mel is faster-whisper's.
    """
    from faster_whisper.audio import pad_or_trim

    audio = np.asarray(audio, dtype=np.float32).reshape(-1)[: int(MAX_AUDIO_S * SAMPLE_RATE)]
    extractor = whisper_model.feature_extractor
    frames = int(round(window_s * extractor.sampling_rate)) // extractor.hop_length
    features = pad_or_trim(extractor(audio), frames)
    encoded = np.asarray(whisper_model.encode(features))[0]
    return np.array(encoded[: audio_states(audio.size)], dtype=np.float32)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


class AgeHead:
    """Standardise -> [Linear -> ReLU] -> Linear to 17 bin logits (numpy)."""

    def __init__(self, tensors: Dict[str, np.ndarray]):
        self.mean = tensors['feature_mean'].astype(np.float32)
        self.scale = tensors['feature_scale'].astype(np.float32)
        self.hidden = None
        if 'hidden_weight' in tensors:
            self.hidden = (tensors['hidden_weight'], tensors['hidden_bias'])
        self.out = (tensors['out_weight'], tensors['out_bias'])

    def logits(self, pooled: np.ndarray) -> np.ndarray:
        """Bin logits (..., 17) of pooled features (..., 1024).

        A head trained on the first D features only (D = 512: the mean, without the standard
        deviation) reads those.
        """
        x = np.asarray(pooled, dtype=np.float32)[..., : self.mean.size]
        x = (x - self.mean) / self.scale
        if self.hidden is not None:
            x = _relu(x @ self.hidden[0].T + self.hidden[1])
        return x @ self.out[0].T + self.out[1]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (float64)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def result_from_logits(
    logits: np.ndarray, temperature: float, unsure_below: float, started: float
) -> AgeResult:
    """Build an AgeResult from one clip's bin logits (temperature-scaled)."""
    bins = softmax(np.asarray(logits) / temperature)
    groups = ages.group_probabilities(bins)
    groups = groups / groups.sum()
    group = int(np.argmax(groups))
    return AgeResult(
        bin_probabilities=bins.astype(np.float32),
        group_probabilities=groups.astype(np.float32),
        group=group,
        estimated_age_years=float(ages.expected_age(bins)),
        inference_ms=(time.perf_counter() - started) * 1000.0,
        unsure=bool(groups[group] < unsure_below),
    )


def save_head(path, tensors: Dict[str, np.ndarray], metadata: Dict) -> None:
    """Write the head's tensors (float32) and JSON metadata as safetensors."""
    from safetensors.numpy import save_file

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    clean = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    meta = dict(metadata, kind=MODEL_KIND)
    save_file(clean, str(path), metadata={'agechat': json.dumps(meta, ensure_ascii=False)})


def head_inputs(metadata: Dict) -> list:
    """Feature blocks a head reads, in order: 'whisper' (pooled states), 'ge2e' (speaker)."""
    return list(metadata.get('inputs') or ['whisper'])


def read_metadata(path) -> Dict:
    """Return the JSON metadata of a safetensors age model (either kind)."""
    from safetensors import safe_open

    with safe_open(str(path), framework='numpy') as handle:
        return json.loads((handle.metadata() or {}).get('agechat', '{}'))


class WhisperAgeEstimator:
    """Age group from one utterance with the Whisper encoder and a numpy head (no torch).

    `whisper_model` (a ``faster_whisper.WhisperModel``) is shared with the recogniser when given;
    otherwise the assembled Whisper base model is loaded (int8, `cpu_threads`) on first use.
    """

    def __init__(self, path, whisper_model=None, cpu_threads: int = 1):
        from safetensors.numpy import load_file

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f'age model not found: {path}. Regenerate it with '
                '`python -m age_node.core.train train --manifest '
                '../shared/data/speech/age/manifest.csv` (see age_node/README.md)'
            )
        self.path = path
        self.metadata = read_metadata(path)
        if self.metadata.get('kind') != MODEL_KIND:
            raise ValueError(f'{path} is not a Whisper age head (kind {MODEL_KIND!r})')
        self.head = AgeHead(load_file(str(path)))
        self.temperature = float(self.metadata.get('temperature', 1.0))
        self.unsure_below = float(self.metadata.get('unsure_below', 0.0))
        self.window_s = float(self.metadata.get('window_s', WINDOW_S))
        #: Heads trained on trimmed clips get trimmed audio (see :func:`trim_silence`).
        self.trim = bool(self.metadata.get('trim_silence', False))
        self.name = f"{MODEL_NAME}:{self.metadata.get('version', path.stem)}"
        self.cpu_threads = int(cpu_threads)
        self._whisper = whisper_model
        self.inputs = head_inputs(self.metadata)
        #: The GE2E speaker encoder (onnxruntime) when the head reads its embedding; loaded
        #: here so that a missing encoder stops the node at start, naming the command.
        self.speaker_encoder = None
        if 'ge2e' in self.inputs:
            from age_node.core.speaker_encoder import SpeakerEncoder

            self.speaker_encoder = SpeakerEncoder(threads=self.cpu_threads)
        #: Whether the last :meth:`predict` reused the recogniser's encoder states.
        self.last_reused_encoding = False

    def share_whisper_model(self, whisper_model) -> None:
        """Use this faster-whisper model's encoder (the recogniser's: one model in memory)."""
        self._whisper = whisper_model

    @property
    def whisper_model(self):
        """The faster-whisper model whose encoder is used (loaded on first use)."""
        if self._whisper is None:
            from faster_whisper import WhisperModel

            from age_node.core.whisper_model import check_whisper_model

            self._whisper = WhisperModel(
                str(check_whisper_model()),
                device='cpu',
                compute_type='int8',
                cpu_threads=self.cpu_threads,
            )
        return self._whisper

    #: VoicePipeline passes the recogniser's encoder output to :meth:`predict`.
    reuses_encoding = True

    def embed(self, samples: np.ndarray, encoding=None) -> np.ndarray:
        """Return the head's features of an utterance (`encoding`: its Whisper states, if run).

        In :attr:`inputs` order: the pooled Whisper states (1024) and/or the GE2E speaker
        embedding of the trimmed voice (256).
        """
        audio = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1))
        audio = audio[: int(MAX_AUDIO_S * SAMPLE_RATE)]
        parts = []
        for name in self.inputs:
            if name == 'whisper':
                parts.append(self.pooled_states(audio, encoding))
            elif name == 'ge2e':
                trimmed = trim_silence(audio) if self.trim else audio
                parts.append(self.speaker_encoder.embed(trimmed))
            else:
                raise ValueError(f'{self.path}: unknown head input {name!r}')
        return np.concatenate(parts).astype(np.float32)

    def pooled_states(self, audio: np.ndarray, encoding=None) -> np.ndarray:
        """Pooled Whisper states (1024,) of an utterance; `encoding` = its states when already run.

        `encoding` (an ``stt.EncoderOutput``) is used when it comes from this model's window
        (:attr:`window_s`) over audio that starts with `samples` (it may go on after them, e.g.
        trailing silence) and covers them; otherwise the encoder runs here.
        """
        self.last_reused_encoding = False
        states = audio_states(audio.size)
        reused = (
            encoding is not None
            and abs(float(encoding.window_s) - self.window_s) < 1e-6
            and encoding.states.shape[0] >= states
            and (not self.trim or leading_silence_s(audio) <= REUSE_MAX_LEADING_S)
        )
        self.last_reused_encoding = bool(reused)
        if reused:
            encoded = encoding.states[:states]
        else:
            if self.trim:
                audio = trim_silence(audio)
            encoded = encode_window(self.whisper_model, audio, self.window_s)
        return pool_states(encoded, state_levels_db(audio, encoded.shape[0]))

    def predict(self, samples: np.ndarray, encoding=None) -> AgeResult:
        """Estimate the speaker's age group from one utterance (16 kHz float32 mono)."""
        started = time.perf_counter()
        features = self.embed(samples, encoding)
        result = result_from_logits(
            self.head.logits(features), self.temperature, self.unsure_below, started
        )
        if 'ge2e' in self.inputs:
            offset = 1024 * self.inputs.index('ge2e') if self.inputs[0] == 'whisper' else 0
            result.speaker_embedding = features[offset : offset + 256].copy()
        return result


def default_model_path() -> Path:
    """Return the shipped age head (share/age_node/models when installed, else the source)."""
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / 'models' / DEFAULT_MODEL_FILE]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.insert(
            0, Path(get_package_share_directory('age_node')) / 'models' / DEFAULT_MODEL_FILE
        )
    except Exception:  # noqa: BLE001 - not installed / no ament index: use the source tree
        pass
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return candidates[-1]


def load_age_estimator(path=None, whisper_model=None, cpu_threads: int = 1):
    """Return the estimator for an age model file (default: the shipped Whisper head).

    A Whisper head gives :class:`WhisperAgeEstimator`; a log-mel CNN (``age_cnn``, needs torch)
    gives :class:`age_node.core.model.AgeEstimator`.
    """
    path = Path(path) if path else default_model_path()
    if path.is_file() and read_metadata(path).get('kind') != MODEL_KIND:
        import torch  # the log-mel CNN needs torch (the node imports it only then)

        from age_node.core.model import AgeEstimator

        torch.set_num_threads(cpu_threads)
        return AgeEstimator(path)
    return WhisperAgeEstimator(path, whisper_model=whisper_model, cpu_threads=cpu_threads)
