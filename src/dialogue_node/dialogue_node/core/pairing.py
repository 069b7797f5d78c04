"""Pairing of an utterance with its conditioning labels.

- Age: the AgeEstimate with the same utterance id, waited for at most `age_wait_s` after the
  utterance arrived (it may also arrive first). Then the most recent estimate seen ('latest'), else
  the default 'adult' ('default'). An estimate flagged unsure is recorded as the default adult
  ('unsure'): a reply in 해요체 is safe, a guessed 반말 or 하십시오체 is not.
- Emotion: among the face-emotion results with a face, the one nearest in time to the utterance's
  speech end within `emotion_window_s` ('estimate'); else 'neutral' ('default').

All times are integer nanoseconds on one clock (the node's); the node decides which instant a
FaceEmotion is placed at (its image stamp or its arrival).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Deque, List, Optional, Tuple

from agechat_ros.labels import addressed_group
from dialogue_node.core.labels import DEFAULT_AGE, DEFAULT_EMOTION

SOURCE_ESTIMATE, SOURCE_LATEST, SOURCE_DEFAULT = 'estimate', 'latest', 'default'
#: The estimate was unsure (AgeEstimate.unsure): the reply addresses an adult (해요체).
SOURCE_UNSURE = 'unsure'


@dataclass
class LabelChoice:
    """A label, its confidence and where it came from (SOURCE_*)."""

    label: str
    confidence: float
    source: str


@dataclass
class _Pending:
    utterance_id: str
    payload: Any
    deadline_ns: int


class Pairer:
    """Thread-safe store of recent age estimates and emotions, and of utterances awaiting age."""

    def __init__(
        self,
        age_wait_s: float = 0.5,
        emotion_window_s: float = 2.0,
        keep_ages: int = 64,
        keep_emotions: int = 600,
    ):
        self.age_wait_ns = int(age_wait_s * 1e9)
        self.emotion_window_ns = int(emotion_window_s * 1e9)
        self._ages: 'OrderedDict[str, LabelChoice]' = OrderedDict()
        self._keep_ages = keep_ages
        self._latest_age: Optional[LabelChoice] = None
        self._emotions: Deque[Tuple[int, str, float]] = deque(maxlen=keep_emotions)
        self._pending: List[_Pending] = []
        self._lock = threading.Lock()

    def add_age(
        self, utterance_id: str, group: str, confidence: float, unsure: bool = False
    ) -> None:
        """Record an age estimate for an utterance (an unsure one as the default adult)."""
        with self._lock:
            if unsure:
                choice = LabelChoice(addressed_group(group, True), confidence, SOURCE_UNSURE)
            else:
                choice = LabelChoice(group, confidence, SOURCE_ESTIMATE)
            self._ages[utterance_id] = choice
            self._ages.move_to_end(utterance_id)
            while len(self._ages) > self._keep_ages:
                self._ages.popitem(last=False)
            self._latest_age = choice

    def add_emotion(
        self, label: str, confidence: float, time_ns: int, face_found: bool = True
    ) -> None:
        """Record a face-emotion result placed at `time_ns` (ignored when no face was found)."""
        if not face_found:
            return
        with self._lock:
            self._emotions.append((time_ns, label, confidence))

    def add_utterance(self, utterance_id: str, payload: Any, now_ns: int) -> None:
        """Queue an utterance until its age estimate arrives or `age_wait_s` passes."""
        with self._lock:
            self._pending.append(_Pending(utterance_id, payload, now_ns + self.age_wait_ns))

    def pending_count(self) -> int:
        """Utterances still waiting."""
        with self._lock:
            return len(self._pending)

    def due(self, now_ns: int) -> List[Tuple[Any, LabelChoice]]:
        """Return the utterances ready now, in arrival order, each with its age.

        An utterance is ready when its age arrived or its wait ended.
        """
        ready = []
        with self._lock:
            keep = []
            for item in self._pending:
                matched = self._ages.get(item.utterance_id) if item.utterance_id else None
                if matched is not None:
                    ready.append((item.payload, matched))
                elif now_ns >= item.deadline_ns:
                    if self._latest_age is not None:
                        latest = self._latest_age
                        ready.append(
                            (
                                item.payload,
                                LabelChoice(latest.label, latest.confidence, SOURCE_LATEST),
                            )
                        )
                    else:
                        ready.append((item.payload, LabelChoice(DEFAULT_AGE, 0.0, SOURCE_DEFAULT)))
                else:
                    keep.append(item)
            self._pending = keep
        return ready

    def emotion_at(self, time_ns: int) -> LabelChoice:
        """Return the recorded emotion nearest to `time_ns` within the window, else neutral."""
        with self._lock:
            best = None
            for stamp, label, confidence in self._emotions:
                distance = abs(stamp - time_ns)
                if distance <= self.emotion_window_ns and (best is None or distance < best[0]):
                    best = (distance, label, confidence)
        if best is None:
            return LabelChoice(DEFAULT_EMOTION, 0.0, SOURCE_DEFAULT)
        return LabelChoice(best[1], best[2], SOURCE_ESTIMATE)
