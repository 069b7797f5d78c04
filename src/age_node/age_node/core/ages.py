"""Age bins and age groups: the one place that maps years to bins and bins/years to groups.

The model predicts 17 five-year bins whose lower bounds are 5, 10, ..., 85 (the last bin covers
85-89).
Groups: child 5-19, adult 20-59, senior 60-89. The seed computed the group with an
operator-precedence bug that made "senior" unreachable; here the mapping is a plain chain of
comparisons on the age in years, and every boundary (19/20, 59/60) is unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from agechat_ros.labels import AGE_GROUPS

GROUP_CHILD, GROUP_ADULT, GROUP_SENIOR = 0, 1, 2
GROUP_LABELS = AGE_GROUPS
#: First year of each group (child starts at MIN_AGE).
ADULT_FROM_YEARS = 20
SENIOR_FROM_YEARS = 60

MIN_AGE = 5
MAX_AGE = 89
BIN_WIDTH = 5
BIN_LOWER_YEARS = tuple(range(MIN_AGE, MAX_AGE, BIN_WIDTH))  # 5, 10, ..., 85 -> 17 bins
NUM_BINS = len(BIN_LOWER_YEARS)
#: Representative age of each bin (its middle), used for the expected age.
BIN_CENTER_YEARS = np.array(
    [lo + (min(lo + BIN_WIDTH, MAX_AGE + 1) - lo) / 2.0 for lo in BIN_LOWER_YEARS],
    dtype=np.float32,
)


def age_to_group(age_years: float) -> int:
    """Return the group index for an age in years.

    Child below 20, adult from 20 up to (not including) 60, senior from 60.
    """
    age = float(age_years)
    if not np.isfinite(age):
        raise ValueError(f'age must be a finite number of years, got {age_years!r}')
    if age < ADULT_FROM_YEARS:
        return GROUP_CHILD
    if age < SENIOR_FROM_YEARS:
        return GROUP_ADULT
    return GROUP_SENIOR


def group_label(group: int) -> str:
    """'child' / 'adult' / 'senior' for a group index."""
    return GROUP_LABELS[int(group)]


def group_from_label(label: str) -> int:
    """Group index for 'child' / 'adult' / 'senior' (case-insensitive); ValueError otherwise."""
    try:
        return GROUP_LABELS.index(label.strip().lower())
    except ValueError:
        raise ValueError(f"age group must be one of {list(GROUP_LABELS)}, got {label!r}") from None


def age_to_bin(age_years: float) -> int:
    """Bin index for an age in years; ages outside 5-89 are clamped into the first/last bin."""
    age = float(np.clip(float(age_years), MIN_AGE, MAX_AGE))
    return min(int((age - MIN_AGE) // BIN_WIDTH), NUM_BINS - 1)


#: Group of each bin (bins never straddle a group boundary: 20 and 60 are bin lower bounds).
BIN_GROUP = np.array([age_to_group(lo) for lo in BIN_LOWER_YEARS], dtype=np.int64)


def group_probabilities(bin_probabilities: Sequence[float]) -> np.ndarray:
    """Sum bin probabilities into [child, adult, senior] probabilities (shape (..., 3))."""
    probs = np.asarray(bin_probabilities, dtype=np.float64)
    out = np.zeros(probs.shape[:-1] + (3,), dtype=np.float64)
    for group in range(3):
        out[..., group] = probs[..., BIN_GROUP == group].sum(axis=-1)
    return out


def expected_age(bin_probabilities: Sequence[float]) -> np.ndarray:
    """Return the expected age in years under the bin distribution (centres weighted by it)."""
    probs = np.asarray(bin_probabilities, dtype=np.float64)
    return (probs * BIN_CENTER_YEARS).sum(axis=-1) / np.maximum(probs.sum(axis=-1), 1e-12)


@dataclass
class AgeResult:
    """One utterance's age estimate (any age model)."""

    bin_probabilities: np.ndarray  # (17,)
    group_probabilities: np.ndarray  # (3,) calibrated, sum to 1
    group: int
    estimated_age_years: float
    inference_ms: float
    #: True when the model is not confident enough to name a group (see the model's
    #: ``unsure_below``): the dialogue then treats the speaker as an adult (polite register).
    unsure: bool = False
    #: The utterance's speaker embedding (GE2E, L2-normalised) when the model computed one.
    speaker_embedding: Optional[np.ndarray] = None

    @property
    def group_label(self) -> str:
        """The group's label: 'child', 'adult' or 'senior'."""
        return group_label(self.group)

    @property
    def confidence(self) -> float:
        """The calibrated probability of the chosen group."""
        return float(self.group_probabilities[self.group])
