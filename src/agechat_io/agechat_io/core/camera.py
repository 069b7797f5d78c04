"""Frames from a camera or a video file through OpenCV's VideoCapture (no rclpy here).

:class:`FrameSource` opens the source, applies the size and rate asked for, and reads BGR frames;
a file can loop. Anything that keeps it from delivering frames — no camera at that index, a path
that does not exist, a camera another program holds — is a
:class:`agechat_ros.DeviceUnavailable` with one line that says what to do.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np

from agechat_ros import DeviceUnavailable

#: Consecutive failed reads after which a live camera counts as gone (unplugged, taken over).
MAX_FAILED_READS = 30


def parse_source(text: str) -> Union[int, str]:
    """Return the VideoCapture argument for the `device` parameter: an index, or a path / URL."""
    text = text.strip()
    return int(text) if text.isdigit() else text


def _quiet_opencv():
    """Silence OpenCV's own warnings while opening (we print one line of our own instead)."""
    try:
        return cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # builds without the logging module
        return None


def _restore_opencv(level) -> None:
    if level is not None:
        cv2.utils.logging.setLogLevel(level)


class FrameSource:
    """A camera (index or /dev/videoN) or a video file, read one BGR frame at a time."""

    def __init__(
        self, device: str, width: int = 0, height: int = 0, fps: float = 0.0, loop: bool = False
    ):
        self.device = device
        self.source = parse_source(device)
        self.is_file = isinstance(self.source, str) and Path(self.source).is_file()
        self.loop = loop
        self.width, self.height = int(width), int(height)
        if isinstance(self.source, str) and not self.is_file and '://' not in self.source:
            if not Path(self.source).exists():
                raise DeviceUnavailable(
                    f"camera: '{self.source}' does not exist; pass device:=0 (the first camera), "
                    'device:=/dev/videoN or device:=path/to/video.mp4'
                )
        level = _quiet_opencv()
        try:
            self.capture = cv2.VideoCapture(self.source)
            if not self.capture.isOpened():
                self.capture.release()
                raise DeviceUnavailable(self._not_opened())
            if not self.is_file:
                if self.width and self.height:
                    self.capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
                    self.capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
                if fps > 0:
                    self.capture.set(cv2.CAP_PROP_FPS, float(fps))
            ok, first = self.capture.read()
        finally:
            _restore_opencv(level)
        if not ok or first is None:
            self.capture.release()
            if self.is_file:
                raise DeviceUnavailable(
                    f"camera: the video file '{self.device}' has no frame OpenCV can decode"
                )
            raise DeviceUnavailable(
                f"camera: '{self.device}' opened but gives no frames: another program probably "
                'holds it (close it) or it is not a capture device; try another device:=...'
            )
        self._pending: Optional[np.ndarray] = first
        source_fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = float(fps) if fps > 0 else (source_fps if 1.0 <= source_fps <= 240.0 else 30.0)
        self.failed_reads = 0

    def _not_opened(self) -> str:
        if isinstance(self.source, int):
            return (
                f'camera: no camera at index {self.source} (OpenCV could not open it); '
                'is one plugged in and allowed (`ls /dev/video*`, group video)? '
                'pass device:=N or device:=/dev/videoN, or a video file'
            )
        if self.is_file:
            return f"camera: OpenCV cannot read the video file '{self.source}' (codec/format?)"
        return (
            f"camera: cannot open '{self.source}': busy in another program, or not a camera "
            '(check `v4l2-ctl --list-devices`)'
        )

    def read(self) -> Optional[np.ndarray]:
        """Return the next BGR frame, resized to width x height if both are set.

        None at the end of a file that does not loop, and for a failed read of a camera (see
        :attr:`failed_reads`; the caller gives up after MAX_FAILED_READS in a row).
        """
        if self._pending is not None:
            frame, self._pending = self._pending, None
        else:
            ok, frame = self.capture.read()
            if not ok and self.is_file and self.loop:
                self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = self.capture.read()
            if not ok or frame is None:
                self.failed_reads += 0 if self.is_file else 1
                return None
        self.failed_reads = 0
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        if self.width and self.height and frame.shape[:2] != (self.height, self.width):
            frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(frame)

    @property
    def gone(self) -> bool:
        """True when a camera failed MAX_FAILED_READS reads in a row (unplugged or taken)."""
        return self.failed_reads >= MAX_FAILED_READS

    def close(self) -> None:
        """Release the device or file."""
        self.capture.release()


class Pacer:
    """Wait so that frames go out at `fps` (a file is read faster than real time otherwise)."""

    def __init__(self, fps: float):
        self.period = 1.0 / fps
        self._next = None

    def wait(self, stop_event=None) -> None:
        """Sleep until the next frame is due (returns early if `stop_event` is set)."""
        now = time.monotonic()
        if self._next is None or now - self._next > 1.0:  # first frame, or we fell far behind
            self._next = now
        delay = self._next - now
        if delay > 0:
            if stop_event is not None:
                stop_event.wait(delay)
            else:
                time.sleep(delay)
        self._next += self.period
