"""PortAudio (through sounddevice) for the microphone and speaker nodes: devices and errors.

No rclpy here. Everything a newcomer can get wrong — sounddevice or the PortAudio library not
installed, no microphone or speaker, a busy device, a rate the device refuses — becomes a
:class:`agechat_ros.node.DeviceUnavailable` whose text is one line that says what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

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
