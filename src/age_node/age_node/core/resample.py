"""Streaming resampling of microphone chunks to 16 kHz (state carried across chunks, no seams)."""

from __future__ import annotations

import numpy as np


class StreamResampler:
    """Resample a chunked stream from `in_rate` to `out_rate`.

    Anti-alias low-pass (8th-order Butterworth at 0.45 * the lower rate, filter state kept between
    chunks) followed by linear interpolation at a fractional read position that also carries over,
    so chunk boundaries leave no clicks or drift. Good enough for VAD, ASR and the age model.
    """

    def __init__(self, in_rate: int, out_rate: int = 16000):
        if in_rate < 1000 or out_rate < 1000:
            raise ValueError(f'sample rates must be >= 1000 Hz (got {in_rate} -> {out_rate})')
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        self.passthrough = self.in_rate == self.out_rate
        self.step = self.in_rate / self.out_rate
        self._sos = None
        if not self.passthrough:
            # scipy.signal takes 1.4 s to import here: only a microphone at another rate needs it
            from scipy.signal import butter, sosfilt, sosfilt_zi

            self._sosfilt, self._sosfilt_zi = sosfilt, sosfilt_zi
            self._sos = butter(
                8, 0.45 * min(self.in_rate, self.out_rate), fs=self.in_rate, output='sos'
            )
        self._zi = None
        self._position = 0.0  # read position relative to the first sample of `_tail` + new chunk
        self._tail = np.zeros(0, dtype=np.float64)

    def reset(self) -> None:
        """Forget the stream (e.g. after a gap)."""
        self._zi = None
        self._position = 0.0
        self._tail = np.zeros(0, dtype=np.float64)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Resample the next chunk; return float32 samples at out_rate.

        The result may be empty for tiny chunks.
        """
        samples = np.asarray(samples, dtype=np.float64)
        if self.passthrough:
            return samples.astype(np.float32)
        if samples.size == 0:
            return np.zeros(0, dtype=np.float32)
        if self._zi is None:
            self._zi = self._sosfilt_zi(self._sos) * samples[0]
        filtered, self._zi = self._sosfilt(self._sos, samples, zi=self._zi)
        data = np.concatenate([self._tail, filtered])
        last = data.size - 1  # interpolation needs index+1 <= last
        count = (
            int(np.floor((last - self._position) / self.step)) + 1 if last >= self._position else 0
        )
        if count <= 0:
            self._tail = data
            return np.zeros(0, dtype=np.float32)
        positions = self._position + self.step * np.arange(count)
        out = np.interp(positions, np.arange(data.size), data)
        next_position = self._position + self.step * count
        keep_from = min(int(np.floor(next_position)), data.size)
        self._tail = data[keep_from:]
        self._position = next_position - keep_from
        return out.astype(np.float32)
