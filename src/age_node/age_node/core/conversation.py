"""The age group over a conversation: evidence of the same speaker's utterances, pooled.

One utterance is a few seconds of voice; a conversation is many. :class:`RunningAge` pools the
calibrated per-utterance estimates of the same speaker: the group and bin probabilities are
averaged with each utterance weighted by its speech duration (a linear pool, so the running
probabilities stay as calibrated as the per-utterance ones and are never more extreme than the
most confident utterance). The running estimate starts again

- after a pause longer than `reset_after_s` between two utterances (a new conversation), or
- when the utterance's speaker embedding (the age model's GE2E embedding, when it has one) is
  less similar than `voice_change_below` (cosine) to the running mean embedding: another voice.

It is `unsure` under the same threshold as a single estimate (the model's ``unsure_below``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from age_node.core import ages
from age_node.core.ages import AgeResult

#: Defaults of the age_node parameters of the same names. VOICE_CHANGE_BELOW was set on the
#: train-split speakers (GE2E cosine of two clips of one speaker vs of two speakers: at 0.65,
#: 97.1 % of same-speaker pairs stay pooled and 92.4 % of different-speaker pairs start over).
RESET_AFTER_S = 60.0
VOICE_CHANGE_BELOW = 0.65


@dataclass
class RunningState:
    """What the running estimate has pooled so far."""

    groups: np.ndarray
    bins: np.ndarray
    weight: float
    utterances: int
    last_end_s: float
    embedding: Optional[np.ndarray]


class RunningAge:
    """Pool per-utterance AgeResults of one speaker (see module doc)."""

    def __init__(
        self,
        unsure_below: float,
        reset_after_s: float = RESET_AFTER_S,
        voice_change_below: float = VOICE_CHANGE_BELOW,
    ):
        self.unsure_below = float(unsure_below)
        self.reset_after_s = float(reset_after_s)
        self.voice_change_below = float(voice_change_below)
        self.state: Optional[RunningState] = None
        #: Why the last :meth:`update` started over ('' when it pooled): 'first', 'pause', 'voice'.
        self.last_reset = ''

    def reset(self) -> None:
        """Forget the conversation."""
        self.state = None

    def _starts_over(self, result: AgeResult, start_s: float) -> str:
        if self.state is None:
            return 'first'
        if start_s - self.state.last_end_s > self.reset_after_s:
            return 'pause'
        embedding, mean = result.speaker_embedding, self.state.embedding
        if embedding is not None and mean is not None:
            similarity = float(embedding @ mean / max(float(np.linalg.norm(mean)), 1e-12))
            if similarity < self.voice_change_below:
                return 'voice'
        return ''

    def update(
        self, result: AgeResult, start_s: float, end_s: float, duration_s: float
    ) -> AgeResult:
        """Add one utterance; return the running estimate.

        `start_s` / `end_s` are its speech start and end, `duration_s` its speech length
        (seconds). The result's ``inference_ms`` is the utterance's and its
        ``speaker_embedding`` the running mean.
        """
        self.last_reset = self._starts_over(result, start_s)
        weight = max(float(duration_s), 1e-3)
        groups = np.asarray(result.group_probabilities, np.float64)
        bins = np.asarray(result.bin_probabilities, np.float64)
        embedding = result.speaker_embedding
        if self.last_reset:
            self.state = RunningState(
                groups * weight,
                bins * weight,
                weight,
                1,
                float(end_s),
                None if embedding is None else np.asarray(embedding, np.float64) * weight,
            )
        else:
            state = self.state
            state.groups = state.groups + groups * weight
            state.bins = state.bins + bins * weight
            state.weight += weight
            state.utterances += 1
            state.last_end_s = float(end_s)
            if embedding is not None:
                added = np.asarray(embedding, np.float64) * weight
                state.embedding = added if state.embedding is None else state.embedding + added
        state = self.state
        pooled_groups = state.groups / state.groups.sum()
        pooled_bins = state.bins / state.bins.sum()
        group = int(np.argmax(pooled_groups))
        mean_embedding = None
        if state.embedding is not None:
            mean_embedding = (state.embedding / np.linalg.norm(state.embedding)).astype(np.float32)
        return AgeResult(
            bin_probabilities=pooled_bins.astype(np.float32),
            group_probabilities=pooled_groups.astype(np.float32),
            group=group,
            estimated_age_years=float(ages.expected_age(pooled_bins)),
            inference_ms=result.inference_ms,
            unsure=bool(pooled_groups[group] < self.unsure_below),
            speaker_embedding=mean_embedding,
        )

    @property
    def utterances(self) -> int:
        """Utterances pooled in the running estimate (0 before the first)."""
        return self.state.utterances if self.state else 0
