"""Speaking a reply.

Sentence-by-sentence synthesis in a worker thread, real-time paced audio chunks, and the agent's
mouth (amplitude envelope + Hangul-vowel visemes) at any instant of the playback.

The :class:`Speaker` owns two threads so that nothing here ever runs in a ROS callback:

- the *synthesis worker* turns queued replies into PCM, one sentence at a time (the first
  sentence is streamed to the pacer while it is synthesised, so the first chunk goes out at once);
- the *pacer* emits fixed-size chunks at the audio's own rate (a little ahead, by `lead_ms`), so
  that the speaking state and the mouth follow what a speaker is actually playing.

Callbacks (set by the node) run in the pacer thread:
``on_chunk(reply, pcm_bytes, first)``, ``on_end(reply)``, and ``on_error(reply, error)`` from the
worker.

:meth:`Speaker.interrupt` (barge-in: the user talks over the agent) cuts the reply being spoken and
drops those queued behind it. It returns once no further chunk of them can go out (a chunk being
handed to ``on_chunk`` at that moment is waited for), so the caller can announce the stop knowing
the audio has ended; ``on_end`` is not called for an interrupted reply.
"""

from __future__ import annotations

import bisect
import collections
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, List, Optional, Tuple

import numpy as np

from avatar_node.core.text import VISEMES, syllable_visemes
from avatar_node.core.tts import Prosody, WordMark

#: Envelope analysis window (10 ms at 22.05 kHz is 220 samples) and the dB span mapped to mouth
#: opening 0..1.
ENVELOPE_WINDOW_S = 0.010
MOUTH_FLOOR_DB = -42.0
MOUTH_FULL_DB = -14.0
#: Longest time one syllable is assumed to take when spreading a word's syllables over its audio.
MAX_SYLLABLE_S = 0.45


@dataclass
class SpeechRequest:
    """A reply to speak: its id, caption text, sentences, voice and the agent's expression."""

    utterance_id: str
    text: str
    sentences: List[str]
    prosody: Prosody
    age_group: str = 'adult'
    agent_emotion: str = 'neutral'
    received_ns: int = 0
    truncated: bool = False
    sequence: int = 0  # set by Speaker.say: the order of acceptance (1, 2, ...)


@dataclass
class MouthState:
    """What the agent's mouth does at one instant."""

    speaking: bool = False
    mouth_open: float = 0.0
    visemes: Dict[str, float] = field(default_factory=lambda: {v: 0.0 for v in VISEMES})
    utterance_id: str = ''
    caption: str = ''
    agent_emotion: str = 'neutral'
    progress: float = 0.0  # fraction of the reply's audio played, 0..1
    level: float = 0.0  # instantaneous loudness 0..1 (unsmoothed), for a level meter


@dataclass
class Interruption:
    """What :meth:`Speaker.interrupt` cut: the reply being spoken, the queued ones dropped."""

    reply: 'ReplyAudio'
    played_s: float  # audio of the cut reply handed out before the cut, in seconds
    dropped: List[str]  # utterance ids of the queued replies dropped (the user took the turn)


class ReplyAudio:
    """The audio of one reply, growing while it is synthesised (thread-safe)."""

    def __init__(self, request: SpeechRequest, sample_rate: int):
        self.request = request
        self.sample_rate = sample_rate
        self._window = max(1, int(round(sample_rate * ENVELOPE_WINDOW_S)))
        self._pcm = np.zeros(sample_rate * 4, np.int16)  # grows by doubling
        self._count = 0
        self._envelope_db: List[float] = []
        self._partial = np.zeros(0, np.float32)
        self.syllables: List[Tuple[int, int, str]] = []  # (start sample, end sample, viseme)
        self.done = False
        self.error: Optional[BaseException] = None
        self.changed = threading.Condition()
        #: Set when the reply is cut (barge-in) or dropped from the queue: synthesis, pacing stop.
        self.cancelled = threading.Event()

    # -- written by the synthesis worker ---------------------------------------------------------
    def append(self, pcm: np.ndarray) -> None:
        """Add synthesised samples and extend the envelope."""
        if not len(pcm):
            return
        floats = np.concatenate([self._partial, pcm.astype(np.float32) / 32768.0])
        whole = len(floats) // self._window * self._window
        if whole:
            windows = floats[:whole].reshape(-1, self._window)
            rms = np.sqrt(np.mean(windows * windows, axis=1))
            db = 20.0 * np.log10(np.maximum(rms, 1e-6))
        self._partial = floats[whole:]
        with self.changed:
            needed = self._count + len(pcm)
            if needed > len(self._pcm):
                grown = np.zeros(max(needed, 2 * len(self._pcm)), np.int16)
                grown[: self._count] = self._pcm[: self._count]
                self._pcm = grown
            self._pcm[self._count : needed] = pcm
            self._count = needed
            if whole:
                self._envelope_db.extend(db.tolist())
            self.changed.notify_all()

    def add_syllables(self, sentence: str, marks: List[WordMark], start: int, end: int) -> None:
        """Place the sentence's syllables (visemes) on the audio between samples start and end.

        With word marks each word's syllables are spread evenly from the word's first sample to
        the next word (at most MAX_SYLLABLE_S each); without marks the whole sentence is one word.
        """
        speech_end = self._last_loud_sample(start, end)
        words = sorted(marks, key=lambda m: m.sample) if marks else [WordMark(0, len(sentence), 0)]
        placed = []
        for index, word in enumerate(words):
            visemes = syllable_visemes(
                sentence[word.char_start : word.char_start + word.char_length]
            )
            if not visemes:
                continue
            word_start = start + word.sample
            word_end = start + words[index + 1].sample if index + 1 < len(words) else speech_end
            word_end = max(word_end, word_start + 1)
            step = min((word_end - word_start) / len(visemes), MAX_SYLLABLE_S * self.sample_rate)
            for k, viseme in enumerate(visemes):
                placed.append(
                    (int(word_start + k * step), int(word_start + (k + 1) * step), viseme)
                )
        with self.changed:
            self.syllables.extend(placed)

    def finish(self, error: Optional[BaseException] = None) -> None:
        """Mark synthesis complete (or failed)."""
        with self.changed:
            self.done, self.error = True, error
            self.changed.notify_all()

    # -- read by the pacer and the renderer -------------------------------------------------------
    @property
    def samples(self) -> int:
        """Samples synthesised so far."""
        return self._count

    @property
    def duration_s(self) -> float:
        """Audio length so far, in seconds."""
        return self._count / self.sample_rate

    def pcm(self, start: int, stop: int) -> np.ndarray:
        """Return a copy of the samples [start, stop) synthesised so far."""
        with self.changed:
            return self._pcm[start : min(stop, self._count)].copy()

    def level_at(self, t_s: float) -> float:
        """Loudness 0..1 of the 10 ms window at t_s into the audio (0 outside it)."""
        index = int(t_s / ENVELOPE_WINDOW_S)
        envelope = self._envelope_db
        if index < 0 or index >= len(envelope):
            return 0.0
        return _db_to_open(envelope[index])

    def mouth_at(self, t_s: float) -> Tuple[float, Dict[str, float]]:
        """Return the mouth opening 0..1 and the viseme weights at `t_s` into the audio.

        The opening follows the envelope over ~30 ms around `t_s`.
        """
        index = int(t_s / ENVELOPE_WINDOW_S)
        envelope = self._envelope_db
        if index < 0 or index >= len(envelope):
            return 0.0, {v: 0.0 for v in VISEMES}
        window = envelope[max(0, index - 1) : index + 2]
        opening = _db_to_open(float(np.mean(window)))
        sample = int(t_s * self.sample_rate)
        viseme = 'aa'
        syllables = self.syllables
        at = bisect.bisect_right(syllables, (sample, float('inf'), '')) - 1
        if 0 <= at < len(syllables) and syllables[at][0] <= sample < syllables[at][1]:
            viseme = syllables[at][2]
        weights = {v: 0.0 for v in VISEMES}
        weights[viseme] = round(opening, 4)
        return opening, weights

    def _last_loud_sample(self, start: int, end: int) -> int:
        window = self._window
        first, last = start // window, min(end // window, len(self._envelope_db))
        loud = [i for i in range(first, last) if self._envelope_db[i] > MOUTH_FLOOR_DB]
        return (loud[-1] + 1) * window if loud else end


def _db_to_open(db: float) -> float:
    return float(np.clip((db - MOUTH_FLOOR_DB) / (MOUTH_FULL_DB - MOUTH_FLOOR_DB), 0.0, 1.0))


class Speaker:
    """Synthesises queued replies and plays them out as paced chunks (see module docstring)."""

    def __init__(
        self,
        synth,
        chunk_ms: int = 20,
        lead_ms: int = 60,
        tail_ms: int = 300,
        max_pending: int = 2,
        on_chunk: Optional[Callable[[ReplyAudio, bytes, bool], None]] = None,
        on_end: Optional[Callable[[ReplyAudio], None]] = None,
        on_error: Optional[Callable[[ReplyAudio, BaseException], None]] = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.synth = synth
        self.sample_rate = int(synth.sample_rate)
        self.chunk_samples = max(1, int(self.sample_rate * chunk_ms / 1000))
        self.lead_s = lead_ms / 1000.0
        self.tail_s = tail_ms / 1000.0
        self.max_pending = max_pending
        self.on_chunk = on_chunk or (lambda reply, data, first: None)
        self.on_end = on_end or (lambda reply: None)
        self.on_error = on_error or (lambda reply, error: None)
        self._clock = clock
        self._requests: 'queue.Queue[Optional[SpeechRequest]]' = queue.Queue()
        self._ready: Deque[ReplyAudio] = collections.deque()
        self._ready_cond = threading.Condition()
        # accepted replies not yet finished, by sequence number -> utterance id (guarded by
        # _pending_lock); replies numbered up to _cutoff were dropped by an interrupt
        self._live: Dict[int, str] = {}
        self._sequence = 0
        self._cutoff = 0
        self._pending_lock = threading.Lock()
        self._stop = threading.Event()
        # held while a chunk is handed out or the end is announced, and by interrupt(): after an
        # interrupt no chunk of the cut reply goes out. Order: _emit_lock before _state_lock.
        self._emit_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._playing: Optional[ReplyAudio] = None
        self._play_start = 0.0
        self._play_end: Optional[float] = None
        self._emitted = 0  # samples of the playing reply handed out
        self._worker = threading.Thread(
            target=self._synthesis_loop, name='tts-synthesis', daemon=True
        )
        self._pacer = threading.Thread(target=self._pacing_loop, name='tts-pacer', daemon=True)
        self._worker.start()
        self._pacer.start()

    # -- API --------------------------------------------------------------------------------------
    def say(self, request: SpeechRequest) -> bool:
        """Queue a reply; False (nothing queued) when max_pending replies already wait."""
        with self._pending_lock:
            if len(self._live) >= self.max_pending:
                return False
            self._sequence += 1
            request.sequence = self._sequence
            self._live[request.sequence] = request.utterance_id
        self._requests.put(request)
        return True

    @property
    def busy(self) -> bool:
        """True while a reply is queued, being synthesised or played (tail included)."""
        with self._pending_lock:
            return bool(self._live)

    @property
    def speaking_id(self) -> Optional[str]:
        """utterance_id of the reply being spoken (first chunk to end of tail), else None."""
        with self._state_lock:
            reply = self._playing
        if reply is None or reply.cancelled.is_set():
            return None
        return reply.request.utterance_id

    def interrupt(self, utterance_id: str = '') -> Optional[Interruption]:
        """Cut the reply being spoken and drop every reply queued behind it (barge-in).

        `utterance_id` names the reply the user spoke over; empty means whatever is being spoken.
        Returns None (nothing changed) when nothing is being spoken or another reply is: a stale
        request. Returns after the last chunk of the cut reply has been handed out, so no chunk
        of it follows; its ``on_end`` is never called.
        """
        with self._emit_lock:
            with self._state_lock:
                reply = self._playing
                played_s = self._emitted / self.sample_rate
            if reply is None or reply.cancelled.is_set():
                return None
            if utterance_id and utterance_id != reply.request.utterance_id:
                return None
            reply.cancelled.set()
            with self._pending_lock:
                self._cutoff = self._sequence
                dropped = [
                    uid for seq, uid in sorted(self._live.items()) if seq != reply.request.sequence
                ]
                self._live.clear()
        with self._ready_cond:
            for waiting in self._ready:
                waiting.cancelled.set()  # stops its synthesis too
            self._ready_cond.notify_all()
        return Interruption(reply=reply, played_s=played_s, dropped=dropped)

    def mouth(self, now: Optional[float] = None) -> MouthState:
        """Return the agent's mouth and caption at `now` (the speaker's clock; default: now)."""
        now = self._clock() if now is None else now
        with self._state_lock:
            reply, start, end = self._playing, self._play_start, self._play_end
        if reply is None or reply.cancelled.is_set():
            return MouthState()
        t_s = now - start
        request = reply.request
        total = reply.duration_s if reply.done else max(reply.duration_s, 1e-3)
        progress = float(np.clip(t_s / total, 0.0, 1.0)) if total > 0 else 0.0
        if end is not None and now >= end:  # in the tail: silent, mouth closed
            return MouthState(
                speaking=True,
                utterance_id=request.utterance_id,
                caption=request.text,
                agent_emotion=request.agent_emotion,
                progress=1.0,
            )
        opening, visemes = reply.mouth_at(t_s)
        return MouthState(
            speaking=True,
            mouth_open=opening,
            visemes=visemes,
            utterance_id=request.utterance_id,
            caption=request.text,
            agent_emotion=request.agent_emotion,
            progress=progress,
            level=reply.level_at(t_s),
        )

    def close(self, timeout: float = 2.0) -> None:
        """Stop both threads (the reply being played is cut)."""
        self._stop.set()
        self._requests.put(None)
        with self._ready_cond:
            self._ready_cond.notify_all()
        self._worker.join(timeout)
        self._pacer.join(timeout)

    # -- synthesis worker -------------------------------------------------------------------------
    def _dropped(self, request: SpeechRequest) -> bool:
        with self._pending_lock:
            return request.sequence <= self._cutoff

    def _synthesis_loop(self) -> None:
        while not self._stop.is_set():
            request = self._requests.get()
            if request is None:
                return
            if self._dropped(request):  # an interrupt dropped it while it waited
                continue
            reply = ReplyAudio(request, self.sample_rate)
            with self._ready_cond:
                self._ready.append(reply)
                self._ready_cond.notify_all()
            if self._dropped(request):  # interrupted between the check and the append
                reply.cancelled.set()
            error = None
            try:
                for sentence in request.sentences:
                    if self._stop.is_set() or reply.cancelled.is_set():
                        break
                    start, marks = reply.samples, []

                    def on_audio(pcm, new_marks, _marks=marks, _reply=reply):
                        _reply.append(pcm)
                        _marks.extend(new_marks)
                        return not (self._stop.is_set() or _reply.cancelled.is_set())

                    self.synth.synthesize(sentence, request.prosody, on_audio)
                    reply.add_syllables(sentence, marks, start, reply.samples)
            except Exception as failure:  # noqa: BLE001 - reported to the node, the worker keeps going
                error = failure
                self.on_error(reply, failure)
            reply.finish(error)

    # -- pacer ------------------------------------------------------------------------------------
    def _next_reply(self) -> Optional[ReplyAudio]:
        with self._ready_cond:
            while not self._ready and not self._stop.is_set():
                self._ready_cond.wait(0.5)
            return self._ready.popleft() if self._ready else None

    def _pacing_loop(self) -> None:
        while not self._stop.is_set():
            reply = self._next_reply()
            if reply is None:
                return
            try:
                if not reply.cancelled.is_set():
                    self._play(reply)
            finally:
                with self._state_lock:
                    self._playing, self._play_end, self._emitted = None, None, 0
                with self._pending_lock:
                    self._live.pop(reply.request.sequence, None)

    def _sleep_until(self, deadline: float, reply: ReplyAudio) -> bool:
        """Sleep until the clock reaches deadline; False when stopped or cut meanwhile."""
        while True:
            if self._stop.is_set() or reply.cancelled.is_set():
                return False
            left = deadline - self._clock()
            if left <= 0:
                return True
            reply.cancelled.wait(min(left, 0.05))

    def _play(self, reply: ReplyAudio) -> None:
        emitted, index = 0, 0
        play_start = None
        while not (self._stop.is_set() or reply.cancelled.is_set()):
            with reply.changed:
                available = reply.samples - emitted
                if available < self.chunk_samples and not reply.done:
                    reply.changed.wait(0.02)
                    available = reply.samples - emitted
            if available <= 0 and reply.done:
                break
            if available < self.chunk_samples and not reply.done:
                if play_start is not None:  # synthesis lags behind playback: shift the timeline
                    late = self._clock() - (play_start + emitted / self.sample_rate)
                    if late > 0:
                        play_start += late
                        with self._state_lock:
                            self._play_start = play_start
                continue
            chunk = reply.pcm(emitted, emitted + self.chunk_samples)
            if play_start is not None and not self._sleep_until(
                play_start + emitted / self.sample_rate - self.lead_s, reply
            ):
                return
            with self._emit_lock:
                if reply.cancelled.is_set():
                    return
                if play_start is None:
                    play_start = self._clock()
                    with self._state_lock:
                        self._playing, self._play_start, self._play_end = reply, play_start, None
                self.on_chunk(reply, chunk.astype('<i2').tobytes(), index == 0)
                emitted += len(chunk)
                with self._state_lock:
                    self._emitted = emitted
            index += 1
        if play_start is None or reply.cancelled.is_set():
            return  # nothing said (empty text, synthesis failed before any audio), or cut
        end = play_start + emitted / self.sample_rate
        with self._state_lock:
            self._play_end = end
        if not self._sleep_until(end + self.tail_s, reply):
            return
        with self._emit_lock:
            if not reply.cancelled.is_set():
                # the end is announced: from here an interrupt finds nothing to cut
                with self._state_lock:
                    self._playing = None
                self.on_end(reply)
