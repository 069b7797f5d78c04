"""Optional local playback: pipe the TTS PCM (S16LE mono) into an audio player process."""

from __future__ import annotations

import queue
import shlex
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

    A stalled player never blocks the caller.
    """

    def __init__(self, argv: List[str], max_queued_chunks: int = 500):
        self.argv = argv
        self._process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._queue: 'queue.Queue[Optional[bytes]]' = queue.Queue(max_queued_chunks)
        self.dropped = 0
        self._thread = threading.Thread(target=self._feed, name='tts-playback', daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> None:
        """Queue PCM for the player (counted as dropped when the player lags far behind)."""
        try:
            self._queue.put_nowait(data)
        except queue.Full:
            self.dropped += 1

    def _feed(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                break
            try:
                self._process.stdin.write(data)
                self._process.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                break

    def close(self) -> None:
        """Let the player finish what it has and stop it."""
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(1.0)
        try:
            self._process.stdin.close()
        except OSError:
            pass
        try:
            self._process.wait(2.0)
        except subprocess.TimeoutExpired:
            self._process.kill()
