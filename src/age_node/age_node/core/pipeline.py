"""The voice pipeline: 16 kHz chunks in -> finished utterances (text + age) out. No ROS here.

Per chunk: VAD segmentation (streaming), and while an utterance is open its audio goes straight
into the recogniser. When the VAD closes the utterance, only the recogniser's final step and one
age-model pass over the whole utterance remain, so results are ready within milliseconds.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np

from age_node.core.model import AgeEstimator, AgeResult
from age_node.core.segmenter import SAMPLE_RATE, Audio, Cancel, Close, Open, Segmenter
from age_node.core.stt import SpeechRecognizer, Transcript

#: Audio kept after the last speech frame for the age model (seconds).
AGE_TAIL_S = 0.1


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


class VoicePipeline:
    """Streaming VAD + STT + age estimation (see module doc)."""

    def __init__(
        self,
        segmenter: Segmenter,
        recognizer: SpeechRecognizer,
        age: AgeEstimator,
        clock_ns: Callable[[], int] = time.time_ns,
        id_prefix: str = '',
    ):
        self.segmenter = segmenter
        self.recognizer = recognizer
        self.age = age
        self.clock_ns = clock_ns
        self.id_prefix = id_prefix
        self._audio: List[np.ndarray] = []
        self.cancelled: List[str] = []
        self.stt_seconds = 0.0  # time spent inside the recogniser (for RTF)
        self.stt_audio_seconds = 0.0  # audio fed to the recogniser
        self.age_ms: List[float] = []

    @property
    def in_utterance(self) -> bool:
        """True while an utterance is open."""
        return self.segmenter.is_open

    def reset(self) -> None:
        """Drop any open utterance and the VAD state (e.g. when the agent starts speaking)."""
        for event in self.segmenter.reset():
            if isinstance(event, Cancel):
                self.cancelled.append(event.reason)
        self._audio = []

    def push(self, samples: np.ndarray, arrival_ns: Optional[int] = None) -> List[UtteranceResult]:
        """Process one chunk of 16 kHz float32 mono audio; return the utterances it completed."""
        if arrival_ns is None:
            arrival_ns = self.clock_ns()
        results = []
        for event in self.segmenter.push(samples, arrival_ns):
            if isinstance(event, Open):
                self._audio = [event.samples]
                self._feed_stt(event.samples, begin=True)
            elif isinstance(event, Audio):
                self._audio.append(event.samples)
                self._feed_stt(event.samples)
            elif isinstance(event, Close):
                results.append(self._finish(event))
            elif isinstance(event, Cancel):
                self.cancelled.append(event.reason)
                self._audio = []
        return results

    def _feed_stt(self, samples: np.ndarray, begin: bool = False) -> None:
        start = time.perf_counter()
        if begin:
            self.recognizer.begin()
        self.recognizer.accept(samples)
        self.stt_seconds += time.perf_counter() - start
        self.stt_audio_seconds += samples.size / SAMPLE_RATE

    def _finish(self, close: Close) -> UtteranceResult:
        vad_closed_ns = self.clock_ns()
        start = time.perf_counter()
        transcript = self.recognizer.end()
        stt_final_ms = (time.perf_counter() - start) * 1000.0
        self.stt_seconds += stt_final_ms / 1000.0
        stt_done_ns = self.clock_ns()
        audio = np.concatenate(self._audio) if self._audio else np.zeros(0, np.float32)
        self._audio = []
        speech = audio[: close.speech_samples + int(AGE_TAIL_S * SAMPLE_RATE)]
        age = self.age.predict(speech)
        self.age_ms.append(age.inference_ms)
        return UtteranceResult(
            utterance_id=f'{self.id_prefix}{uuid.uuid4().hex[:12]}',
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
        )
