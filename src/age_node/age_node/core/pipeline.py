"""The voice pipeline: 16 kHz chunks in -> finished utterances (text + age) out. No ROS here.

Per chunk: VAD segmentation (streaming), and while an utterance is open its audio goes straight
into the recogniser. When the VAD closes the utterance, the recogniser's final step and one
age-model pass over the whole utterance remain.

Recognisers that decode whole utterances (Whisper: they have ``transcribe(audio, beam_size)``)
get two more things, both run on one background decode thread so that the audio keeps flowing:

- **early decode** (`early_decode_silence_s` > 0): once the open utterance has had that much
  trailing silence, its audio so far is decoded; if no speech follows before the VAD closes it,
  that decode is the final result, so most of the decoding happens while the VAD still waits
  for the end-of-speech silence. If speech resumes the decode is discarded.
- **partial transcripts** (`partial_interval_s` > 0): while speech goes on, the audio so far is
  decoded greedily every `partial_interval_s` of new audio (never while one is running, and not
  once trailing silence has begun, so a partial rarely delays the final decode);
  :meth:`VoicePipeline.take_partials` returns the finished ones.
"""

from __future__ import annotations

import copy
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np

from age_node.core.ages import AgeResult
from age_node.core.segmenter import FRAME, SAMPLE_RATE, Audio, Cancel, Close, Open, Segmenter
from age_node.core.stt import SpeechRecognizer, Transcript

#: Audio kept after the last speech frame for the age model (seconds).
AGE_TAIL_S = 0.1
#: Partials are greedy decodes (beam 1): about half the time of the final beam-2 decode.
PARTIAL_BEAM_SIZE = 1
#: Finished partials kept for :meth:`VoicePipeline.take_partials` (older ones are dropped).
MAX_PENDING_PARTIALS = 50


@dataclass
class PartialResult:
    """A transcript of the open utterance so far (times: integer ns on the node's clock)."""

    utterance_id: str
    transcript: Transcript
    recognizer: str
    language: str
    speech_start_ns: int
    duration_s: float  # speech decoded, from speech_start_ns (pre-roll excluded)
    done_ns: int


@dataclass
class UtteranceResult:
    """Everything age_node publishes for one utterance (times: integer ns on the node's clock)."""

    utterance_id: str
    transcript: Transcript
    recognizer: str
    language: str
    speech_start_ns: int
    speech_end_ns: int
    duration_s: float
    truncated: bool
    vad_closed_ns: int
    stt_done_ns: int
    age: AgeResult
    age_done_ns: int
    stt_final_ms: float
    #: The utterance's 16 kHz audio the age model saw: pre-roll to the last speech + AGE_TAIL_S.
    audio: Optional[np.ndarray] = None


class VoicePipeline:
    """Streaming VAD + STT + age estimation (see module doc)."""

    def __init__(
        self,
        segmenter: Segmenter,
        recognizer: SpeechRecognizer,
        age,
        clock_ns: Callable[[], int] = time.time_ns,
        id_prefix: str = '',
        early_decode_silence_s: float = 0.0,
        partial_interval_s: float = 0.0,
    ):
        self.segmenter = segmenter
        self.recognizer = recognizer
        self.age = age
        self.clock_ns = clock_ns
        self.id_prefix = id_prefix
        #: Settings of the background decodes (see module doc); may change between chunks.
        self.early_decode_silence_s = float(early_decode_silence_s)
        self.partial_interval_s = float(partial_interval_s)
        whole_utterance = hasattr(recognizer, 'transcribe')
        self._background: Optional[ThreadPoolExecutor] = (
            ThreadPoolExecutor(1, thread_name_prefix='stt_decode') if whole_utterance else None
        )
        # Partials have their own thread (and recogniser copy): with a recogniser of 2 workers
        # they run beside the final decode instead of before it.
        self._partial_pool: Optional[ThreadPoolExecutor] = (
            ThreadPoolExecutor(1, thread_name_prefix='stt_partial') if whole_utterance else None
        )
        self._audio: List[np.ndarray] = []
        self._audio_samples = 0
        self._open_id = ''
        self._open_start_ns = 0
        self._open_pre_samples = 0
        self._early: Optional[tuple] = None  # (speech_samples, Future[(Transcript, seconds)])
        self._partial: Optional[tuple] = None  # (utterance_id, audio_samples, Future)
        self._partial_samples = 0  # audio samples when the last partial was started
        self._partials: List[PartialResult] = []
        #: Early decodes used as the final result / started in all (for measurements).
        self.early_decodes_used = 0
        self.early_decodes_started = 0
        self.cancelled: List[str] = []
        #: Utterances the VAD opened in all (cancelled ones too): with :attr:`in_utterance` it
        #: tells a caller that one opened and closed within a single chunk.
        self.opened = 0
        self.stt_seconds = 0.0  # time spent inside the recogniser (for RTF)
        self.stt_audio_seconds = 0.0  # audio fed to the recogniser
        self.age_ms: List[float] = []

    @property
    def in_utterance(self) -> bool:
        """True while an utterance is open."""
        return self.segmenter.is_open

    @property
    def background_decoding(self) -> bool:
        """True when the recogniser supports early decodes and partials."""
        return self._background is not None

    def reset(self) -> None:
        """Drop any open utterance and the VAD state (e.g. when the agent starts speaking)."""
        for event in self.segmenter.reset():
            if isinstance(event, Cancel):
                self.cancelled.append(event.reason)
        self._drop_utterance()

    def close(self) -> None:
        """Stop the background decode threads (after the decodes they run, if any)."""
        for pool in (self._background, self._partial_pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._background = self._partial_pool = None

    def take_partials(self) -> List[PartialResult]:
        """Return the partial transcripts finished since the last call (oldest first)."""
        self._collect_partial()
        out, self._partials = self._partials, []
        return out

    def _collect_partial(self) -> None:
        """Move a finished partial decode to the list (dropped if its utterance is over)."""
        partial = self._partial
        if partial is None or not partial[2].done():
            return
        self._partial = None
        utterance_id, samples, future = partial
        transcript = future.result()[0]
        if utterance_id == self._open_id and transcript.text:
            self._partials.append(
                PartialResult(
                    utterance_id,
                    transcript,
                    self.recognizer.name,
                    self.recognizer.language,
                    self._open_start_ns,
                    max(0, samples - self._open_pre_samples) / SAMPLE_RATE,
                    self.clock_ns(),
                )
            )
            del self._partials[:-MAX_PENDING_PARTIALS]

    def _drop_utterance(self) -> None:
        self._audio, self._audio_samples = [], 0
        self._open_id, self._early, self._partial_samples = '', None, 0

    def _timed_transcribe(
        self, audio: np.ndarray, beam_size: Optional[int] = None, recognizer=None
    ):
        """Return (transcript, seconds, encoder output or None) of one whole-utterance decode."""
        recognizer = recognizer or self.recognizer
        start = time.perf_counter()
        if hasattr(recognizer, 'transcribe_with_encoding'):
            transcript, encoding = recognizer.transcribe_with_encoding(audio, beam_size=beam_size)
        else:
            transcript, encoding = recognizer.transcribe(audio, beam_size=beam_size), None
        return transcript, time.perf_counter() - start, encoding

    def push(self, samples: np.ndarray, arrival_ns: Optional[int] = None) -> List[UtteranceResult]:
        """Process one chunk of 16 kHz float32 mono audio; return the utterances it completed."""
        if arrival_ns is None:
            arrival_ns = self.clock_ns()
        results = []
        for event in self.segmenter.push(samples, arrival_ns):
            if isinstance(event, Open):
                self.opened += 1
                self._drop_utterance()
                self._open_id = f'{self.id_prefix}{uuid.uuid4().hex[:12]}'
                self._open_start_ns = event.start_ns
                self._open_pre_samples = max(0, event.samples.size - FRAME)
                self._audio, self._audio_samples = [event.samples], event.samples.size
                self._feed_stt(event.samples, begin=True)
            elif isinstance(event, Audio):
                self._audio.append(event.samples)
                self._audio_samples += event.samples.size
                self._feed_stt(event.samples)
            elif isinstance(event, Close):
                results.append(self._finish(event))
            elif isinstance(event, Cancel):
                self.cancelled.append(event.reason)
                self._drop_utterance()
        if self._background is not None and self.segmenter.is_open:
            self._start_background_decodes()
        return results

    def _start_background_decodes(self) -> None:
        """Start an early decode or a partial for the open utterance when one is due."""
        silence_s = self.segmenter.trailing_silence_s
        speech_samples = self.segmenter.speech_samples
        early_s = self.early_decode_silence_s
        if early_s > 0 and silence_s >= early_s:
            if self._early is None or self._early[0] != speech_samples:
                audio = np.concatenate(self._audio)
                future = self._background.submit(self._timed_transcribe, audio)
                self._early = (speech_samples, future)
                self.early_decodes_started += 1
            return
        self._collect_partial()
        interval = self.partial_interval_s
        if (
            interval > 0
            and silence_s == 0.0
            and self._partial is None
            and self._audio_samples - self._partial_samples >= interval * SAMPLE_RATE
        ):
            self._partial_samples = self._audio_samples
            audio = np.concatenate(self._audio)
            future = self._partial_pool.submit(
                self._timed_transcribe, audio, PARTIAL_BEAM_SIZE, copy.copy(self.recognizer)
            )
            self._partial = (self._open_id, self._audio_samples, future)

    def _feed_stt(self, samples: np.ndarray, begin: bool = False) -> None:
        if self._background is not None:
            return  # whole-utterance decoders get the audio from the pipeline (see _finish)
        start = time.perf_counter()
        if begin:
            self.recognizer.begin()
        self.recognizer.accept(samples)
        self.stt_seconds += time.perf_counter() - start
        self.stt_audio_seconds += samples.size / SAMPLE_RATE

    def _finish(self, close: Close) -> UtteranceResult:
        vad_closed_ns = self.clock_ns()
        start = time.perf_counter()
        audio = np.concatenate(self._audio) if self._audio else np.zeros(0, np.float32)
        utterance_id = self._open_id or f'{self.id_prefix}{uuid.uuid4().hex[:12]}'
        encoding = None
        if self._background is None:
            transcript = self.recognizer.end()
            self.stt_seconds += time.perf_counter() - start
        else:
            early = self._early
            if early is not None and early[0] == close.speech_samples:
                # no speech since: it is the final one
                transcript, seconds, encoding = early[1].result()
                self.early_decodes_used += 1
            else:
                transcript, seconds, encoding = self._background.submit(
                    self._timed_transcribe, audio
                ).result()
            self.stt_seconds += seconds
            self.stt_audio_seconds += audio.size / SAMPLE_RATE
        stt_final_ms = (time.perf_counter() - start) * 1000.0
        stt_done_ns = self.clock_ns()
        self._drop_utterance()
        speech = audio[: close.speech_samples + int(AGE_TAIL_S * SAMPLE_RATE)]
        if getattr(self.age, 'reuses_encoding', False):
            age = self.age.predict(speech, encoding=encoding)  # the decode's encoder states
        else:
            age = self.age.predict(speech)
        self.age_ms.append(age.inference_ms)
        return UtteranceResult(
            utterance_id=utterance_id,
            transcript=transcript,
            recognizer=self.recognizer.name,
            language=self.recognizer.language,
            speech_start_ns=close.speech_start_ns,
            speech_end_ns=close.speech_end_ns,
            duration_s=close.speech_duration_s,
            truncated=close.truncated,
            vad_closed_ns=vad_closed_ns,
            stt_done_ns=stt_done_ns,
            age=age,
            age_done_ns=self.clock_ns(),
            stt_final_ms=stt_final_ms,
            audio=speech,
        )
