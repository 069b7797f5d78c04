"""Temporal smoothing of class probabilities, so the avatar does not flicker between labels.

An exponential moving average in time: after `dt` seconds the previous state keeps the weight
exp(-dt / time_constant_s). Frames without a face pull the state towards `rest` (one-hot neutral)
at the same rate. A time constant of 0 disables smoothing (output = this frame's probabilities).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

#: Gaps longer than this (or time going backwards, e.g. a bag replay restarting) reset the state.
RESET_GAP_S = 5.0


class ProbabilitySmoother:
    """Exponential smoothing of probability vectors keyed by frame time (seconds)."""

    def __init__(self, time_constant_s: float, rest: np.ndarray):
        if time_constant_s < 0:
            raise ValueError('time_constant_s must be >= 0')
        self.time_constant_s = float(time_constant_s)
        self.rest = np.asarray(rest, dtype=np.float64) / np.sum(rest)
        self.state = self.rest.copy()
        self._last_t: Optional[float] = None

    def reset(self) -> None:
        """Back to the rest state."""
        self.state = self.rest.copy()
        self._last_t = None

    def _keep(self, t: float) -> float:
        """Weight of the previous state for a frame at time t (0 = take the new value)."""
        last, self._last_t = self._last_t, t
        if self.time_constant_s == 0 or last is None:
            return 0.0
        dt = t - last
        if dt < 0 or dt > RESET_GAP_S:
            return 0.0
        return math.exp(-dt / self.time_constant_s)

    def update(self, probabilities: np.ndarray, t: float) -> np.ndarray:
        """Blend in a frame's probabilities; return the smoothed vector (sums to 1)."""
        keep = self._keep(t)
        self.state = keep * self.state + (1.0 - keep) * np.asarray(probabilities, dtype=np.float64)
        self.state /= self.state.sum()
        return self.state.astype(np.float32)

    def decay(self, t: float) -> np.ndarray:
        """Move towards the rest state for a frame without a face; return the smoothed vector."""
        return self.update(self.rest, t)
