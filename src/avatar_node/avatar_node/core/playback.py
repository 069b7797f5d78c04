"""Optional local playback: pipe the TTS PCM (S16LE mono) into an audio player process."""

from __future__ import annotations

import os
import queue
import shlex
import signal
import shutil
import subprocess
import threading
from typing import List, Optional

#: Players tried in order when no command is configured ({rate} is replaced by the sample rate).
DEFAULT_PLAYERS = (
    'aplay -q -t raw -f S16_LE -c 1 -r {rate}',
    'paplay --raw --format=s16le --channels=1 --rate={rate}',
    'play -q -t raw -e signed-integer -b 16 -c 1 -r {rate} -',
)


def player_command(configured: str, sample_rate: int) -> List[str]:
    """Return the player argv.

    That is `configured` (a shell-like string with {rate}) or the first installed default.

    Raises FileNotFoundError naming the players tried when none is installed.
    """
    candidates = [configured] if configured else list(DEFAULT_PLAYERS)
    for candidate in candidates:
        argv = shlex.split(candidate.format(rate=sample_rate))
        if argv and shutil.which(argv[0]):
            return argv
    raise FileNotFoundError(
        f"no audio player found (tried: {'; '.join(c.split()[0] for c in candidates)}); "
        "install alsa-utils (aplay), pulseaudio-utils (paplay) or sox (play), "
        "set parameter playback_command, or set playback:=false"
    )


class LocalPlayer:
    """Feeds PCM bytes to a player process from its own thread.

    A stalled player never blocks the caller. :meth:`interrupt` silences it at once (barge-in):
    the queued PCM is dropped and the player process, with whatever its device buffer holds, is
    stopped; the next write starts a new one.
    """

    def __init__(self, argv: List[str], max_queued_chunks: int = 500):
        self.argv = argv
        self.dropped = 0
        self.interrupted_bytes = 0  # PCM dropped from the queue by interrupt()
        self.starts = 0  # player processes started
        self._max_queued = max_queued_chunks
        self._lock = threading.Lock()
        self._process = self._queue = self._thread = None
        self._start()

    def _start(self) -> None:
        process = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # own process group: interrupt() stops a wrapped player too
        )
        feed: 'queue.Queue[Optional[bytes]]' = queue.Queue(self._max_queued)
        thread = threading.Thread(
            target=self._feed, args=(process, feed), name='tts-playback', daemon=True
        )
        self._process, self._queue, self._thread = process, feed, thread
        self.starts += 1
        thread.start()

    @property
    def process(self) -> Optional[subprocess.Popen]:
        """The current player process (None after an interrupt until the next write)."""
        return self._process

    def write(self, data: bytes) -> None:
        """Queue PCM for the player (counted as dropped when the player lags far behind)."""
        with self._lock:
            if self._process is None:
                self._start()
            try:
                self._queue.put_nowait(data)
            except queue.Full:
                self.dropped += 1

    @staticmethod
    def _feed(process: subprocess.Popen, feed: 'queue.Queue[Optional[bytes]]') -> None:
        while True:
            data = feed.get()
            if data is None:
                break
            try:
                process.stdin.write(data)
                process.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                break

    def interrupt(self) -> int:
        """Drop the queued PCM and stop the player now; return the bytes dropped from the queue."""
        with self._lock:
            process, feed, thread = self._process, self._queue, self._thread
            self._process = self._queue = self._thread = None
            if process is None:
                return 0
            dropped = 0
            while True:
                try:
                    data = feed.get_nowait()
                except queue.Empty:
                    break
                dropped += len(data) if data else 0
            feed.put_nowait(None)
            self.interrupted_bytes += dropped
        try:  # what the player (and its device) still buffers goes silent too
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            process.kill()
        try:
            process.stdin.close()
        except (OSError, ValueError):
            pass
        thread.join(1.0)
        process.wait(2.0)
        return dropped

    def close(self) -> None:
        """Let the player finish what it has and stop it."""
        with self._lock:
            process, feed, thread = self._process, self._queue, self._thread
            self._process = self._queue = self._thread = None
        if process is None:
            return
        try:
            feed.put_nowait(None)
        except queue.Full:
            pass
        thread.join(1.0)
        try:
            process.stdin.close()
        except OSError:
            pass
        try:
            process.wait(2.0)
        except subprocess.TimeoutExpired:
            process.kill()
