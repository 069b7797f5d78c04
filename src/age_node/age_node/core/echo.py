"""Listening while the agent speaks: echo cancellation and barge-in detection. No ROS here.

:class:`EchoCanceller` wraps a library echo canceller (WebRTC's audio processing module, as
shipped by the ``livekit`` wheel: ``livekit.rtc.AudioProcessingModule``) for 16 kHz mono audio in
10 ms frames. The far-end reference (the TTS audio the agent plays) and the microphone arrive as
separate streams; both are placed on one sample clock by their arrival time, so that each 10 ms
microphone frame is given the reference that was sent at the same instant (minus
``reference_delay_ms``). The canceller's own delay estimator finds the rest of the echo path
(playback lead, room delay, the room's reverberation).

:class:`BargeInDetector` decides from the echo-cancelled signal that the user speaks over the
agent: silero-vad's probability at or above ``start_threshold`` AND the cancelled level at least
``min_over_reference_db`` above the loudest recent reference frame (a guard against residual
echo), both held for ``min_speech_s``. It keeps a pre-roll of cancelled audio so that the
utterance can be fed to the recogniser from its onset.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, List, Optional, Tuple

import numpy as np

SAMPLE_RATE = 16000
#: The canceller's frame: 10 ms at 16 kHz.
AEC_FRAME = 160
#: The VAD's frame (silero-vad at 16 kHz).
VAD_FRAME = 512
#: Level of digital silence in dBFS (rms 0 is reported as this).
SILENCE_DB = -120.0
#: Listening modes of age_node while the agent speaks.
LISTEN_MODES = ('mute', 'barge_in', 'always_listen')
#: Echo-cancelling libraries :func:`create_backend` knows.
AEC_BACKENDS = ('speex', 'webrtc')


def level_db(samples: np.ndarray) -> float:
    """RMS level of float samples (full scale 1.0) in dBFS; :data:`SILENCE_DB` for silence."""
    if samples.size == 0:
        return SILENCE_DB
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * np.log10(rms) if rms > 1e-6 else SILENCE_DB


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples (full scale 1.0) to int16, clipped; NaN -> 0."""
    samples = np.nan_to_num(np.asarray(samples, dtype=np.float32))
    return (np.clip(samples, -1.0, 32767.0 / 32768.0) * 32768.0).astype(np.int16)


class WebRtcBackend:
    """WebRTC audio processing (AEC3) through ``livekit.rtc.AudioProcessingModule``.

    ``process(near, far)`` takes one 10 ms frame of each (int16) and returns the cancelled near
    frame. ``delay_ms`` is the hint the module gets with each frame (``set_stream_delay_ms``).
    """

    name = 'webrtc-aec3(livekit)'

    def __init__(self, delay_ms: int = 0, noise_suppression: bool = False):
        try:
            from livekit import rtc
        except ImportError as error:  # pragma: no cover - the pinned venv has it
            raise ImportError(
                f'the echo canceller needs the livekit wheel ({error}); run `make setup`'
            ) from None
        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=True,
            noise_suppression=noise_suppression,
            high_pass_filter=True,
            auto_gain_control=False,
        )
        self.delay_ms = int(delay_ms)

    def process(self, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        """Cancel the echo of `far` in `near` (both int16, AEC_FRAME samples)."""
        far_frame = self._rtc.AudioFrame(bytearray(far.tobytes()), SAMPLE_RATE, 1, AEC_FRAME)
        self._apm.process_reverse_stream(far_frame)
        near_frame = self._rtc.AudioFrame(bytearray(near.tobytes()), SAMPLE_RATE, 1, AEC_FRAME)
        self._apm.set_stream_delay_ms(self.delay_ms)
        self._apm.process_stream(near_frame)
        return np.frombuffer(near_frame.data, dtype=np.int16).copy()


class SpeexBackend:
    """Speex's echo canceller (MDF adaptive filter), libspeexdsp through ctypes.

    The C library is Debian's ``libspeexdsp1`` (``make setup`` installs it). Only the linear
    canceller runs (no residual echo suppressor): the user's voice over the echo stays intact.
    ``tail_ms`` is the echo path the filter can model (delay after the reference + the room).
    """

    name = 'speexdsp-mdf'
    _SET_SAMPLING_RATE = 24

    def __init__(self, tail_ms: int = 300):
        import ctypes
        import ctypes.util

        lib = None
        for candidate in ('libspeexdsp.so.1', ctypes.util.find_library('speexdsp')):
            if not candidate:
                continue
            try:
                lib = ctypes.CDLL(candidate)
                break
            except OSError:
                continue
        if lib is None:
            raise ImportError(
                'the speex echo canceller needs libspeexdsp (Debian: apt install libspeexdsp1; '
                '`make setup` installs it)'
            )
        self._ctypes = ctypes
        pointer = ctypes.POINTER(ctypes.c_int16)
        lib.speex_echo_state_init.restype = ctypes.c_void_p
        lib.speex_echo_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.speex_echo_ctl.restype = ctypes.c_int
        lib.speex_echo_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        lib.speex_echo_cancellation.restype = None
        lib.speex_echo_cancellation.argtypes = [ctypes.c_void_p, pointer, pointer, pointer]
        lib.speex_echo_state_destroy.restype = None
        lib.speex_echo_state_destroy.argtypes = [ctypes.c_void_p]
        self._lib, self._pointer = lib, pointer
        self._state = lib.speex_echo_state_init(AEC_FRAME, int(tail_ms * SAMPLE_RATE / 1000))
        if not self._state:
            raise RuntimeError('speex_echo_state_init failed')
        rate = ctypes.c_int(SAMPLE_RATE)
        lib.speex_echo_ctl(self._state, self._SET_SAMPLING_RATE, ctypes.byref(rate))
        self._out = np.zeros(AEC_FRAME, np.int16)

    def process(self, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        """Cancel the echo of `far` in `near` (both int16, AEC_FRAME samples)."""
        near = np.ascontiguousarray(near, np.int16)
        far = np.ascontiguousarray(far, np.int16)
        out = np.empty(AEC_FRAME, np.int16)
        self._lib.speex_echo_cancellation(
            self._state,
            near.ctypes.data_as(self._pointer),
            far.ctypes.data_as(self._pointer),
            out.ctypes.data_as(self._pointer),
        )
        return out

    def __del__(self):  # noqa: D105
        state = getattr(self, '_state', None)
        if state:
            self._lib.speex_echo_state_destroy(state)
            self._state = None


def create_backend(name: str, delay_ms: int = 0):
    """Return the echo-cancelling library `name` (one of :data:`AEC_BACKENDS`)."""
    if name == 'webrtc':
        return WebRtcBackend(delay_ms)
    if name == 'speex':
        return SpeexBackend()
    raise ValueError(f'unknown echo canceller {name!r}; choose one of {", ".join(AEC_BACKENDS)}')


class _Timeline:
    """Samples placed on a 16 kHz clock by arrival time, consecutive chunks kept contiguous.

    Arrival times only ever come late (transport, scheduling), never early. So a chunk is
    appended right after the previous one, and the current segment moves earlier when a chunk
    arrives earlier than that position (the least-late arrival is the truest). When
    ``late_chunks`` chunks in a row all arrive later than their place, the stream paused (or
    the sender's clock is slow): the rest of the segment continues after a gap of the least of
    those delays. A chunk that arrives more than ``gap_s`` after the segment's end starts a new
    segment at its arrival. A ring buffer keeps the last ``keep_s`` seconds of the clock.
    """

    def __init__(self, keep_s: float = 3.0, gap_s: float = 0.3, late_chunks: int = 8):
        self.keep = max(AEC_FRAME, int(keep_s * SAMPLE_RATE))
        self.gap = int(gap_s * SAMPLE_RATE)
        self._ring = np.zeros(self.keep, np.int16)
        self._lo = 0  # clock index of the oldest valid sample
        self._segment = 0  # clock index where the current segment starts
        self.end: Optional[int] = None  # clock index after the last sample placed
        self.shifts = 0  # times the segment moved earlier
        self.jumps = 0  # times it went on later (a pause)
        self._late: Deque[int] = deque(maxlen=max(1, late_chunks))
        self._tolerance = SAMPLE_RATE // 500  # 2 ms

    def _write(self, first_index: int, samples: np.ndarray) -> None:
        samples = samples[-self.keep :]
        first_index += 0 if samples.size <= self.keep else samples.size - self.keep
        positions = (first_index + np.arange(samples.size)) % self.keep
        self._ring[positions] = samples

    def _zero(self, lo: int, hi: int) -> None:
        if hi > lo:
            self._write(lo, np.zeros(min(hi - lo, self.keep), np.int16))

    def place(self, samples: np.ndarray, first_index: int) -> int:
        """Put `samples` whose first sample arrived at clock index `first_index`; return where."""
        if self.end is None or first_index > self.end + self.gap:
            if self.end is None or first_index - self.end >= self.keep:
                self._ring[:] = 0
                self._lo = first_index
            else:
                self._zero(self.end, first_index)
            self._segment = placed = first_index
            self._late.clear()
        elif first_index < self.end:  # earlier than the contiguous place: move it all back
            shift = self.end - first_index
            length = self.end - self._segment
            data = self.read(self._segment, length)
            self._zero(self._segment - shift, self.end)
            self._segment -= shift
            self._lo = min(self._lo, self._segment)
            self._write(self._segment, data)
            self.end -= shift
            self.shifts += 1
            placed = self.end
            self._late.clear()
        else:
            placed = self.end
            self._late.append(first_index - self.end)
            if len(self._late) == self._late.maxlen and min(self._late) > self._tolerance:
                jump = min(self._late)
                self._zero(self.end, self.end + jump)
                placed = self.end + jump
                self.jumps += 1
                self._late.clear()
        self._write(placed, samples)
        self.end = placed + samples.size
        self._lo = max(self._lo, self.end - self.keep)
        return placed

    def read(self, first_index: int, count: int) -> np.ndarray:
        """Return clock samples [first_index, first_index + count); zeros where none were put."""
        out = np.zeros(count, np.int16)
        if self.end is None:
            return out
        lo = max(first_index, self._lo)
        hi = min(first_index + count, self.end)
        if hi > lo:
            positions = np.arange(lo, hi) % self.keep
            out[lo - first_index : hi - first_index] = self._ring[positions]
        return out


def ns_to_index(ns: int) -> int:
    """Map a clock instant in ns to the index of the 16 kHz sample clock."""
    return int(round(ns * SAMPLE_RATE / 1e9))


class EchoCanceller:
    """Microphone in, echo-cancelled microphone out, the far-end reference by arrival time.

    ``add_reference`` may be called from another thread than ``process``. ``process`` returns
    the cancelled audio of the whole 10 ms frames it completed (float32, the leftover waits for
    the next chunk), and :attr:`last_reference` holds the reference those frames were given.
    """

    def __init__(
        self,
        backend,
        reference_delay_ms: float = 0.0,
        keep_reference_s: float = 10.0,
    ):
        self.backend = backend
        self.reference_delay = int(round(reference_delay_ms * SAMPLE_RATE / 1000.0))
        self._lock = threading.Lock()
        self._reference = _Timeline(keep_reference_s)
        self._mic = _Timeline(0.1)  # only for the mic's own contiguous clock
        self._pending = np.zeros(0, np.int16)
        self._pending_index = 0
        self.last_reference = np.zeros(0, np.float32)
        self.last_input = np.zeros(0, np.float32)  # the microphone of the last frames processed
        self.frames = 0  # microphone frames processed
        self.reference_frames = 0  # of those, frames with a non-silent reference
        self.reference_chunks = 0

    @property
    def timeline_moves(self) -> dict:
        """How often the two clocks were corrected (shifts back, jumps after pauses)."""
        return {
            'reference_shifts': self._reference.shifts,
            'reference_jumps': self._reference.jumps,
            'microphone_shifts': self._mic.shifts,
            'microphone_jumps': self._mic.jumps,
        }

    @property
    def reference_shifts(self) -> int:
        """Times the reference moved earlier (a chunk arrived less late than the others)."""
        return self._reference.shifts

    @property
    def name(self) -> str:
        """The library that cancels."""
        return self.backend.name

    def add_reference(self, samples: np.ndarray, arrival_ns: int) -> None:
        """Add far-end audio (what the loudspeaker plays, 16 kHz) by its first sample's arrival."""
        pcm = to_int16(samples)
        with self._lock:
            self._reference.place(pcm, ns_to_index(arrival_ns))
            self.reference_chunks += 1

    def reference_level_db(self, first_index: int, count: int) -> float:
        """Level of the reference over clock samples [first_index, +count) in dBFS."""
        with self._lock:
            data = self._reference.read(first_index, count)
        return level_db(data.astype(np.float32) / 32768.0)

    def process(self, samples: np.ndarray, arrival_ns: int) -> Tuple[np.ndarray, int]:
        """Cancel the echo in one microphone chunk whose last sample arrived at `arrival_ns`.

        Returns (cancelled float32 audio of the completed frames, clock index of its first
        sample).
        """
        pcm = to_int16(samples)
        first = self._mic.place(pcm, ns_to_index(arrival_ns) - pcm.size + 1)
        if self._pending.size == 0:
            self._pending_index = first
        data = np.concatenate([self._pending, pcm])
        usable = data.size // AEC_FRAME * AEC_FRAME
        out = np.empty(usable, np.int16)
        start_index = self._pending_index
        with self._lock:
            reference = self._reference.read(start_index - self.reference_delay, usable)
        for offset in range(0, usable, AEC_FRAME):
            far = reference[offset : offset + AEC_FRAME]
            out[offset : offset + AEC_FRAME] = self.backend.process(
                data[offset : offset + AEC_FRAME], far
            )
            self.frames += 1
            if np.any(far):
                self.reference_frames += 1
        self._pending = data[usable:].copy()
        self._pending_index = start_index + usable
        self.last_reference = reference.astype(np.float32) / 32768.0
        self.last_input = data[:usable].astype(np.float32) / 32768.0
        return out.astype(np.float32) / 32768.0, start_index

    def reset_stream(self) -> None:
        """Forget the partial microphone frame (e.g. after a gap); the filter stays converged."""
        self._pending = np.zeros(0, np.int16)


@dataclass
class BargeIn:
    """The detector's decision: the user's voice started at `onset_index` (16 kHz clock)."""

    onset_index: int
    decided_index: int
    probability: float
    level_over_reference_db: float
    #: The cancelled audio from pre-roll before the onset up to the decision (float32, 16 kHz).
    audio: np.ndarray


@dataclass
class BargeInConfig:
    """Settings of :class:`BargeInDetector` (seconds, probabilities, dB)."""

    start_threshold: float = 0.5
    min_speech_s: float = 0.064
    min_over_reference_db: float = -40.0
    #: Double-talk guard: a voiced frame counts only when the canceller removed at most this
    #: much of the microphone's level (echo alone loses its ERLE, 20-40 dB; a voice ~0-5 dB).
    max_suppression_db: float = 25.0
    #: Reference window (before the frame) whose loudest 32 ms counts as "the reference level":
    #: it covers the echo path's delay and reverberation.
    reference_window_s: float = 0.4
    pre_roll_s: float = 0.3
    #: Frames below threshold tolerated inside a voiced run (silero dips between syllables).
    max_gap_frames: int = 2

    def check(self) -> None:
        """ValueError naming the bad setting."""
        if not 0.0 < self.start_threshold < 1.0:
            raise ValueError('barge_in_vad_threshold must be in (0, 1)')
        if self.min_speech_s < 0.032:
            raise ValueError('barge_in_min_speech_s must be >= 0.032 (one VAD frame)')


class BargeInDetector:
    """Echo-cancelled audio in 512-sample frames -> :class:`BargeIn` (see module doc).

    ``vad`` maps a 512-sample float frame to a speech probability (silero-vad); ``reference_db``
    maps (clock index, count) to the reference level (the canceller's
    :meth:`EchoCanceller.reference_level_db`).
    """

    def __init__(
        self,
        config: BargeInConfig,
        vad: Callable[[np.ndarray], float],
        reference_db: Callable[[int, int], float],
        reset_vad: Optional[Callable[[], None]] = None,
    ):
        config.check()
        self.config = config
        self._vad = vad
        self._reference_db = reference_db
        self._reset_vad = reset_vad
        self._pending = np.zeros(0, np.float32)
        self._pending_index = 0
        self._raw_pending = np.zeros(0, np.float32)
        self._history: Deque[np.ndarray] = deque()
        self._history_start = 0
        self.reset()
        self.frames = 0
        self.voiced_frames = 0  # VAD alone said speech
        self.guarded_frames = 0  # VAD said speech but the level was not above the reference

    def reset(self) -> None:
        """Start over (a new reply): no run, no history, fresh VAD state."""
        self._pending = np.zeros(0, np.float32)
        self._raw_pending = np.zeros(0, np.float32)
        self._history.clear()
        self._run = 0
        self._gap = 0
        self._run_start = 0
        self._run_probability = 0.0
        self._run_over = 0.0
        if self._reset_vad is not None:
            self._reset_vad()

    def push(
        self, samples: np.ndarray, first_index: int, raw: Optional[np.ndarray] = None
    ) -> Optional[BargeIn]:
        """Add cancelled audio starting at clock index `first_index`; a BargeIn when decided.

        `raw` is the microphone before cancellation (same samples), for the double-talk guard.
        """
        if self._pending.size == 0:
            self._pending_index = first_index
        raw = samples if raw is None else raw
        data = np.concatenate([self._pending, samples]) if self._pending.size else samples
        raw_data = np.concatenate([self._raw_pending, raw]) if self._raw_pending.size else raw
        usable = data.size // VAD_FRAME * VAD_FRAME
        self._pending = data[usable:].copy()
        self._raw_pending = raw_data[usable:].copy()
        base = self._pending_index
        self._pending_index = base + usable
        decision = None
        for offset in range(0, usable, VAD_FRAME):
            frame = data[offset : offset + VAD_FRAME]
            found = self._frame(frame, base + offset, raw_data[offset : offset + VAD_FRAME])
            if found is not None and decision is None:
                decision = found
        if decision is not None:  # all audio from the pre-roll on, the unframed rest too
            start = decision.onset_index - int(self.config.pre_roll_s * SAMPLE_RATE)
            decision.audio = np.concatenate([self.audio_since(start), self._pending])
        return decision

    def _keep(self, frame: np.ndarray, index: int) -> None:
        if not self._history:
            self._history_start = index
        self._history.append(frame)
        limit = int(round((self.config.pre_roll_s + self.config.min_speech_s + 1.0) * 31.25))
        while len(self._history) > limit:
            self._history.popleft()
            self._history_start += VAD_FRAME

    def _frame(self, frame: np.ndarray, index: int, raw: np.ndarray) -> Optional[BargeIn]:
        config = self.config
        self._keep(frame, index)
        self.frames += 1
        probability = float(self._vad(frame))
        voiced = probability >= config.start_threshold
        over = SILENCE_DB
        if voiced:
            self.voiced_frames += 1
            window = int(config.reference_window_s * SAMPLE_RATE)
            reference = max(
                self._reference_db(index - start, VAD_FRAME)
                for start in range(0, window + 1, VAD_FRAME)
            )
            level = level_db(frame)
            over = level - reference
            suppression = level_db(raw) - level
            if over < config.min_over_reference_db or suppression > config.max_suppression_db:
                self.guarded_frames += 1
                voiced = False
        if voiced:
            if self._run == 0:
                self._run_start = index
                self._run_probability, self._run_over = 0.0, 1e9
            self._run += 1
            self._gap = 0
            self._run_probability = max(self._run_probability, probability)
            self._run_over = min(self._run_over, over)
        elif self._run:
            self._gap += 1
            if self._gap > config.max_gap_frames:
                self._run, self._gap = 0, 0
        if self._run * VAD_FRAME / SAMPLE_RATE >= config.min_speech_s:
            decided = index + VAD_FRAME
            self._run, self._gap = 0, 0
            return BargeIn(
                self._run_start,
                decided,
                self._run_probability,
                self._run_over,
                np.zeros(0, np.float32),  # filled by push
            )
        return None

    def audio_since(self, index: int) -> np.ndarray:
        """Return the kept cancelled audio from clock index `index` on (all if earlier)."""
        if not self._history:
            return np.zeros(0, np.float32)
        audio = np.concatenate(list(self._history))
        skip = max(0, index - self._history_start)
        return audio[skip:]


class BargeInListener:
    """The barge-in path of age_node: canceller -> detector, and no decision before convergence.

    age_node's worker and the offline evaluation (:mod:`age_node.core.barge_eval`) both run this
    class, so that the figures measured offline are those of the node's code.
    ``after_reference_s``: no decision before the canceller has been given this much non-silent
    reference since the start (before that its filter has not converged and echo looks like a
    voice).
    """

    def __init__(
        self,
        canceller: EchoCanceller,
        detector: BargeInDetector,
        after_reference_s: float = 2.0,
    ):
        self.canceller = canceller
        self.detector = detector
        self.after_reference_s = float(after_reference_s)
        self.before_convergence = 0  # decisions dropped: the canceller had heard too little

    def cancel(self, samples: np.ndarray, arrival_ns: int) -> Tuple[np.ndarray, int]:
        """Run the canceller's :meth:`EchoCanceller.process` (what the recogniser may hear)."""
        return self.canceller.process(samples, arrival_ns)

    def detect(self, cancelled: np.ndarray, first_index: int) -> Optional[BargeIn]:
        """Push the frames :meth:`cancel` just returned; a BargeIn when the user speaks."""
        decision = self.detector.push(cancelled, first_index, self.canceller.last_input)
        frames_needed = self.after_reference_s * SAMPLE_RATE / AEC_FRAME
        if decision is not None and self.canceller.reference_frames < frames_needed:
            self.before_convergence += 1
            return None
        return decision

    def reset(self) -> None:
        """Start the detector over for a new reply (the canceller stays converged)."""
        self.detector.reset()


def make_listener(
    backend: str = 'webrtc',
    reference_delay_ms: float = 60.0,
    config: Optional[BargeInConfig] = None,
    after_reference_s: float = 2.0,
    keep_reference_s: float = 10.0,
) -> BargeInListener:
    """Build the canceller (library `backend`), a silero-vad of its own and the detector."""
    from age_node.core.segmenter import SileroVad

    canceller = EchoCanceller(create_backend(backend), reference_delay_ms, keep_reference_s)
    vad = SileroVad()  # its own state: it hears the agent's turns, the pipeline does not
    detector = BargeInDetector(
        config or BargeInConfig(),
        vad,
        lambda index, count: canceller.reference_level_db(
            index - canceller.reference_delay, count
        ),
        vad.reset,
    )
    return BargeInListener(canceller, detector, after_reference_s)


def erle_db(microphone: np.ndarray, cancelled: np.ndarray) -> float:
    """Echo return loss enhancement: microphone power over cancelled power, in dB."""
    mic = float(np.mean(np.square(microphone, dtype=np.float64)))
    out = float(np.mean(np.square(cancelled, dtype=np.float64)))
    return 10.0 * np.log10(max(mic, 1e-20) / max(out, 1e-20))


def frames_of(samples: np.ndarray, size: int) -> List[np.ndarray]:
    """Whole frames of `size` samples (the remainder is dropped)."""
    usable = samples.size // size * size
    return [samples[i : i + size] for i in range(0, usable, size)]
