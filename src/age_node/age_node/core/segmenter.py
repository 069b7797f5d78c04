"""Streaming utterance segmentation on top of a frame-level speech probability (silero-vad).

Audio arrives in chunks of any size; it is cut into 512-sample (32 ms at 16 kHz) frames, each
scored by the VAD. Hysteresis: an utterance opens when a frame reaches `start_threshold`, a frame
counts as speech while open when it reaches `end_threshold`, and the utterance closes after
`end_silence_s` of non-speech. `pre_roll_s` of audio before the opening frame is included (word
onsets are quiet). Utterances with less than `min_speech_s` of speech are cancelled. An utterance
reaching `max_utterance_s` is closed as truncated; if speech goes on, the next one opens at once.

The segmenter emits events that let a caller stream audio into a recogniser while it arrives:
``Open(samples)`` (pre-roll + first frame), ``Audio(samples)`` for each later frame, and
``Close`` or ``Cancel``. Every frame carries the wall-clock instant its last sample arrived.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Deque, List, Optional, Tuple, Union

import numpy as np

SAMPLE_RATE = 16000
FRAME = 512


@dataclass
class SegmenterConfig:
    """VAD segmentation settings (seconds and probabilities)."""

    start_threshold: float = 0.5
    end_threshold: float = 0.35
    min_speech_s: float = 0.25
    end_silence_s: float = 0.5
    max_utterance_s: float = 15.0
    pre_roll_s: float = 0.2

    def check(self) -> None:
        """ValueError naming the bad setting."""
        if not 0.0 < self.end_threshold <= self.start_threshold < 1.0:
            raise ValueError('need 0 < end_threshold <= start_threshold < 1')
        if self.end_silence_s < 0.05 or self.min_speech_s < 0 or self.pre_roll_s < 0:
            raise ValueError('end_silence_s must be >= 0.05; min_speech_s and pre_roll_s >= 0')
        if self.max_utterance_s < 1.0:
            raise ValueError('max_utterance_s must be >= 1')


@dataclass
class Open:
    """An utterance opened: its first audio (pre-roll + the opening frame)."""

    samples: np.ndarray
    start_ns: int  # instant of the first speech sample (pre-roll excluded)


@dataclass
class Audio:
    """One more frame of audio of the open utterance."""

    samples: np.ndarray


@dataclass
class Close:
    """The open utterance ended (after enough silence, or truncated at max_utterance_s)."""

    speech_start_ns: int
    speech_end_ns: int  # instant the last speech sample arrived
    speech_samples: (
        int  # samples from the utterance start up to the last speech frame (pre-roll included)
    )
    truncated: bool
    speech_duration_s: float = (
        0.0  # audio duration from the opening frame to the last speech frame
    )


@dataclass
class Cancel:
    """The open utterance is dropped (too little speech, or a reset); `reason` says which."""

    reason: str


Event = Union[Open, Audio, Close, Cancel]


class Segmenter:
    """Turns a 16 kHz stream into Open/Audio/Close/Cancel events (see module doc)."""

    def __init__(
        self,
        config: SegmenterConfig,
        speech_probability: Callable[[np.ndarray], float],
        reset_vad: Optional[Callable[[], None]] = None,
    ):
        config.check()
        self.config = config
        self._probability = speech_probability
        self._reset_vad = reset_vad
        self._pending = np.zeros(0, dtype=np.float32)
        self._pre_roll: Deque[np.ndarray] = deque(
            maxlen=max(0, int(round(config.pre_roll_s * SAMPLE_RATE / FRAME)))
        )
        self.is_open = False
        self.last_probability = 0.0
        self._reset_utterance()

    def _reset_utterance(self) -> None:
        self.is_open = False
        self._frames = 0
        self._speech_frames = 0
        self._silence_frames = 0
        self._samples = 0
        self._speech_samples = 0
        self._start_ns = 0
        self._end_ns = 0
        self._pre_samples = 0

    @property
    def speech_samples(self) -> int:
        """Samples of the open utterance up to its last speech frame (pre-roll included)."""
        return self._speech_samples if self.is_open else 0

    @property
    def trailing_silence_s(self) -> float:
        """Silence since the open utterance's last speech frame [s] (0 while speech goes on)."""
        return self._silence_frames * FRAME / SAMPLE_RATE if self.is_open else 0.0

    def reset(self) -> List[Event]:
        """Drop buffered audio and VAD state; cancels an open utterance (returned as Cancel)."""
        events: List[Event] = [Cancel('reset')] if self.is_open else []
        self._pending = np.zeros(0, dtype=np.float32)
        self._pre_roll.clear()
        self._reset_utterance()
        if self._reset_vad is not None:
            self._reset_vad()
        return events

    def push(self, samples: np.ndarray, arrival_ns: int) -> List[Event]:
        """Add a chunk that arrived at `arrival_ns` (its last sample); return the events caused."""
        samples = np.asarray(samples, dtype=np.float32)
        data = np.concatenate([self._pending, samples]) if self._pending.size else samples
        usable = data.size // FRAME * FRAME
        self._pending = data[usable:].copy()
        events: List[Event] = []
        ns_per_sample = 1e9 / SAMPLE_RATE
        for offset in range(0, usable, FRAME):
            frame = data[offset : offset + FRAME]
            frame_end_ns = int(arrival_ns - (data.size - offset - FRAME) * ns_per_sample)
            events.extend(self._frame(frame, frame_end_ns))
        return events

    def _frame(self, frame: np.ndarray, end_ns: int) -> List[Event]:
        config = self.config
        probability = float(self._probability(frame))
        self.last_probability = probability
        frame_ns = int(FRAME * 1e9 / SAMPLE_RATE)
        events: List[Event] = []
        if not self.is_open:
            if probability >= config.start_threshold:
                pre = list(self._pre_roll)
                self._pre_roll.clear()
                self.is_open = True
                self._start_ns = end_ns - frame_ns
                self._end_ns = end_ns
                self._frames = 1
                self._speech_frames = 1
                self._pre_samples = sum(p.size for p in pre)
                self._samples = self._pre_samples + FRAME
                self._speech_samples = self._samples
                events.append(Open(np.concatenate(pre + [frame]), self._start_ns))
            elif self._pre_roll.maxlen:
                self._pre_roll.append(frame)
            return events
        self._frames += 1
        self._samples += FRAME
        events.append(Audio(frame))
        if probability >= config.end_threshold:
            self._speech_frames += 1
            self._silence_frames = 0
            self._end_ns = end_ns
            self._speech_samples = self._samples
        else:
            self._silence_frames += 1
        duration_s = self._samples / SAMPLE_RATE
        if self._silence_frames * FRAME / SAMPLE_RATE >= config.end_silence_s:
            events.append(self._finish(truncated=False))
        elif duration_s >= config.max_utterance_s:
            events.append(self._finish(truncated=True))
        return events

    def _finish(self, truncated: bool) -> Event:
        speech_s = self._speech_frames * FRAME / SAMPLE_RATE
        if speech_s < self.config.min_speech_s and not truncated:
            event: Event = Cancel(
                f'only {speech_s:.2f} s of speech (min_speech_s {self.config.min_speech_s})'
            )
        else:
            event = Close(
                self._start_ns,
                self._end_ns,
                self._speech_samples,
                truncated,
                (self._speech_samples - self._pre_samples) / SAMPLE_RATE,
            )
        self._reset_utterance()
        return event


class SileroVad:
    """silero-vad's streaming model, the ONNX file inside the pip package, run by onnxruntime.

    It maps a 512-sample frame to a speech probability. No torch: the model's recurrent state and
    the 64 samples of context it expects before each frame are kept here as numpy arrays.
    """

    #: Samples of the previous frame the model reads before each new one (16 kHz).
    CONTEXT = 64

    def __init__(self, model_path: Optional[str] = None):
        import onnxruntime

        path = Path(model_path) if model_path else default_silero_onnx_path()
        if not path.is_file():
            raise FileNotFoundError(
                f'silero-vad ONNX model not found at {path}; run `make setup` '
                '(it installs the silero-vad pip package that ships it)'
            )
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # the shipped file has unused initialisers: no warnings
        self.session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=['CPUExecutionProvider']
        )
        self._rate = np.array(SAMPLE_RATE, dtype=np.int64)
        self.reset()

    def __call__(self, frame: np.ndarray) -> float:
        """Return the speech probability of one 512-sample frame (the model keeps its state)."""
        frame = np.ascontiguousarray(frame, dtype=np.float32).reshape(1, FRAME)
        window = np.concatenate([self._context, frame], axis=1)
        probability, self._state = self.session.run(
            None, {'input': window, 'state': self._state, 'sr': self._rate}
        )
        self._context = window[:, -self.CONTEXT :]
        return float(probability[0, 0])

    def reset(self) -> None:
        """Forget the model's streaming state."""
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, self.CONTEXT), dtype=np.float32)


def default_silero_onnx_path() -> Path:
    """Return silero_vad.onnx inside the installed `silero-vad` package (not imported: torch)."""
    import importlib.util

    spec = importlib.util.find_spec('silero_vad')
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            'the silero-vad pip package is not installed; run `make setup` (it pip installs it)'
        )
    return Path(next(iter(spec.submodule_search_locations))) / 'data' / 'silero_vad.onnx'


def split_frames(samples: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(whole frames as (n, 512), leftover samples) — helper for offline use."""
    usable = samples.size // FRAME * FRAME
    return samples[:usable].reshape(-1, FRAME), samples[usable:]
