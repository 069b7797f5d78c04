"""PortAudio (through sounddevice) for the microphone and speaker nodes: devices and errors.

Also the speaker's :class:`PlaybackBuffer` (what waits for the device, flushed at once when the
user talks over the agent).

No rclpy here. Everything a newcomer can get wrong — sounddevice or the PortAudio library not
installed, no microphone or speaker, a busy device, a rate the device refuses — becomes a
:class:`agechat_ros.node.DeviceUnavailable` whose text is one line that says what to do.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional, Tuple, Union

import numpy as np
from agechat_ros import DeviceUnavailable

#: PortAudio error codes (portaudio.h, PaErrorCode) that have a fix worth naming.
PA_INVALID_CHANNEL_COUNT = -9998
PA_INVALID_SAMPLE_RATE = -9997
PA_INVALID_DEVICE = -9996
PA_DEVICE_UNAVAILABLE = -9985
PA_SAMPLE_FORMAT_NOT_SUPPORTED = -9994
PA_UNANTICIPATED_HOST_ERROR = -9999

LIST_DEVICES = 'list them with `python -m sounddevice`'


def load_sounddevice():
    """Import sounddevice, or raise DeviceUnavailable saying how to install what is missing."""
    try:
        import sounddevice
    except ModuleNotFoundError as error:
        raise DeviceUnavailable(
            'the Python package sounddevice is not installed: run `make setup` '
            '(or `pip install sounddevice`)'
        ) from error
    except OSError as error:  # sounddevice raises OSError when libportaudio is absent
        raise DeviceUnavailable(
            f'{error}: install it with `sudo apt install libportaudio2` '
            '(Debian/Ubuntu; `make setup` does this)'
        ) from error
    return sounddevice


def parse_device(text: str) -> Optional[Union[int, str]]:
    """Return what sounddevice takes for a device parameter: None (default), an index or a name.

    '' or 'default' means the system's default device, digits an index of `python -m
    sounddevice`, anything else a (sub)string of the device name.
    """
    text = text.strip()
    if text in ('', 'default'):
        return None
    return int(text) if text.isdigit() else text


def error_code(error: BaseException) -> Optional[int]:
    """Return the PortAudio error code of a sounddevice.PortAudioError, if it carries one."""
    args = getattr(error, 'args', ())
    if len(args) >= 2 and isinstance(args[1], int):
        return args[1]
    return None


def explain(error: BaseException, kind: str, device: str, rate: int, channels: int) -> str:
    """Turn a PortAudio/sounddevice error into one line that names the fix.

    `kind` is 'microphone' or 'speaker'; `device` the parameter as given ('' = default).
    """
    where = f"device '{device}'" if parse_device(device) is not None else 'the default device'
    code = error_code(error)
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if code == PA_DEVICE_UNAVAILABLE or 'busy' in text.lower():
        return (
            f'{kind}: {where} is busy (another program holds it; close it, or choose another '
            f'device with device:=..., {LIST_DEVICES})'
        )
    if code == PA_INVALID_SAMPLE_RATE:
        return f'{kind}: {where} does not support {rate} Hz; set rate:=... to one it supports'
    if code == PA_INVALID_CHANNEL_COUNT:
        return f'{kind}: {where} does not support {channels} channel(s); set channels:=1 or 2'
    if code == PA_INVALID_DEVICE or 'no input device' in text.lower():
        return f'{kind}: no such device ({where}: {text}); {LIST_DEVICES} and pass device:=...'
    return f'{kind}: {where} cannot be opened: {text}; {LIST_DEVICES}'


@dataclass
class DeviceChoice:
    """The device a stream will use and the rate it runs at (may differ from the one asked)."""

    index: int
    name: str
    rate: int
    channels: int


def choose_device(sd, kind: str, device: str, rate: int, channels: int) -> DeviceChoice:
    """Find the device and a rate it accepts; raise DeviceUnavailable with one line if none.

    `rate` is tried first; if the device refuses it, its default rate is used (the caller then
    resamples, so the topic keeps `rate`).
    """
    direction = 'input' if kind == 'microphone' else 'output'
    check = sd.check_input_settings if direction == 'input' else sd.check_output_settings
    what = parse_device(device)
    try:
        info = sd.query_devices(what, kind=direction)
    except (ValueError, sd.PortAudioError) as error:
        if what is None:
            raise DeviceUnavailable(
                f'{kind}: there is no {direction} device (PortAudio sees none: '
                f'{error}); plug one in, start the sound server, or {LIST_DEVICES}'
            ) from error
        raise DeviceUnavailable(
            f"{kind}: no {direction} device matches device:='{device}' ({error}); {LIST_DEVICES}"
        ) from error
    limit = info['max_input_channels'] if direction == 'input' else info['max_output_channels']
    if channels > limit:
        raise DeviceUnavailable(
            f"{kind}: '{info['name']}' has {limit} {direction} channel(s), not {channels}; "
            f'set channels:={max(1, limit)}'
        )
    index = int(info['index'])
    for candidate in (rate, int(info['default_samplerate'])):
        try:
            check(device=index, samplerate=candidate, channels=channels, dtype='int16')
        except sd.PortAudioError as error:
            if error_code(error) == PA_INVALID_SAMPLE_RATE:
                continue
            raise DeviceUnavailable(explain(error, kind, device, rate, channels)) from error
        return DeviceChoice(index, str(info['name']), int(candidate), channels)
    raise DeviceUnavailable(
        f"{kind}: '{info['name']}' supports neither {rate} Hz nor its default "
        f"{int(info['default_samplerate'])} Hz; set rate:=... to one it supports"
    )


class PcmResampler:
    """Resample interleaved S16LE PCM from the device's rate to the topic's, per channel.

    Uses age_node's StreamResampler (filter state kept across chunks, so no seams); at equal
    rates the bytes pass through untouched.
    """

    def __init__(self, in_rate: int, out_rate: int, channels: int):
        self.in_rate, self.out_rate, self.channels = int(in_rate), int(out_rate), int(channels)
        self.passthrough = self.in_rate == self.out_rate
        self._resamplers = []
        if not self.passthrough:
            from age_node.core.resample import StreamResampler

            self._resamplers = [StreamResampler(in_rate, out_rate) for _ in range(channels)]

    def process(self, pcm: bytes) -> bytes:
        """Return the next chunk at out_rate (may be a few frames shorter or longer)."""
        if self.passthrough:
            return bytes(pcm)
        from agechat_ros.audio import float_to_pcm_s16le

        samples = np.frombuffer(pcm, dtype='<i2').astype(np.float32) / 32768.0
        frames = samples.reshape(-1, self.channels)
        outputs = [r.process(frames[:, c]) for c, r in enumerate(self._resamplers)]
        count = min(o.size for o in outputs)
        interleaved = np.stack([o[:count] for o in outputs], axis=1).reshape(-1)
        return float_to_pcm_s16le(interleaved)


class PlaybackBuffer:
    """The PCM bytes waiting for the output device (thread-safe), flushable for a barge-in.

    `push` adds what arrived on the topic, `take` gives the device callback what it asks for
    (the caller pads with silence). `flush` drops everything buffered at once, because the reply
    was cut (SpeechState interrupted); chunks that arrive within `guard_s` after a flush while
    speech was coming in (a chunk within the last second) were published before the cut and are
    dropped too.
    """

    #: A flush this long after the last chunk finds no speech in flight: no guard.
    RECENT_S = 1.0

    def __init__(
        self, max_bytes: int, guard_s: float = 0.2, clock: Callable[[], float] = time.monotonic
    ):
        self.max_bytes = int(max_bytes)
        self.guard_s = float(guard_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._data = bytearray()
        self._playing = False
        self._guard_until = 0.0
        self._last_push = -float('inf')

    def __len__(self) -> int:
        """Bytes buffered now."""
        with self._lock:
            return len(self._data)

    def push(self, data: bytes) -> Optional[str]:
        """Buffer `data`; return None, or why it was dropped: 'backlog' or 'interrupted'."""
        with self._lock:
            now = self._clock()
            if now < self._guard_until:
                return 'interrupted'
            if len(self._data) > self.max_bytes:
                return 'backlog'
            self._data += data
            self._playing = True
            self._last_push = now
        return None

    def take(self, wanted: int) -> Tuple[bytes, bool]:
        """Return up to `wanted` bytes, and whether speech ran dry while playing (a gap)."""
        with self._lock:
            taken = bytes(self._data[:wanted])
            del self._data[:wanted]
            gap = self._playing and len(taken) < wanted
            self._playing = bool(self._data)
        return taken, gap

    def flush(self) -> int:
        """Drop what is buffered now; return the bytes dropped.

        When speech was buffered or came in during the last second, chunks for the next
        `guard_s` are refused as well.
        """
        with self._lock:
            now = self._clock()
            dropped = len(self._data)
            if dropped or now - self._last_push < self.RECENT_S:
                self._guard_until = now + self.guard_s
            self._data.clear()
            self._playing = False
        return dropped

    def clear(self) -> None:
        """Forget everything (a new stream), without a guard."""
        with self._lock:
            self._data.clear()
            self._playing = False
            self._guard_until = 0.0
            self._last_push = -float('inf')
