"""audio_common_msgs AudioData/AudioInfo <-> float32 sample arrays.

agechat exchanges raw interleaved PCM in S16LE (signed 16-bit little-endian) inside
``audio_common_msgs/AudioData``, described by ``audio_common_msgs/AudioInfo`` (the ros-drivers
layout that REP-155 uses). Floats are in [-1, 1).
"""

import array

import numpy as np
from audio_common_msgs.msg import AudioData, AudioInfo

from agechat_ros import ConversionError

SAMPLE_FORMAT_S16LE = 'S16LE'
CODING_FORMAT_PCM = 'pcm'
BYTES_PER_SAMPLE = 2
#: Highest sample rate and channel count an AudioInfo may announce (studio audio goes to 384 kHz).
MAX_SAMPLE_RATE = 384000
MAX_CHANNELS = 32
#: Largest audio chunk decoded (4 MiB: 21 s of 48 kHz stereo, 131 s of 16 kHz mono); a larger one
#: is not a microphone chunk and would stall the node that processes it.
MAX_CHUNK_BYTES = 4 * 1024 * 1024


def pcm_s16le_to_float(data, channels: int = 1) -> np.ndarray:
    """Decode interleaved S16LE bytes into a mono float32 array (channels averaged).

    Raises ConversionError when the byte count is not a whole number of frames
    (channels * 2 bytes), so a caller can count the malformed chunk instead of mis-aligning
    every later sample, and for chunks over MAX_CHUNK_BYTES.
    """
    if channels < 1:
        raise ConversionError(f'channel count must be >= 1, got {channels}')
    if len(data) > MAX_CHUNK_BYTES:
        raise ConversionError(
            f'audio chunk of {len(data)} bytes is larger than {MAX_CHUNK_BYTES} bytes; '
            'publish chunks of a few tens of milliseconds'
        )
    frame_bytes = BYTES_PER_SAMPLE * channels
    if len(data) % frame_bytes:
        raise ConversionError(
            f'audio chunk of {len(data)} bytes is not a whole number of '
            f'{channels}-channel S16LE frames ({frame_bytes} bytes each)'
        )
    samples = np.frombuffer(data, dtype='<i2').astype(np.float32) / 32768.0
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples


def float_to_pcm_s16le(samples: np.ndarray) -> bytes:
    """Encode a float array in [-1, 1] as mono S16LE bytes (clipped; NaN becomes 0)."""
    clean = np.nan_to_num(np.asarray(samples, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    ints = np.clip(np.round(clean * 32767.0), -32768, 32767).astype('<i2')
    return ints.tobytes()


def audio_data_to_float(msg: AudioData, channels: int = 1) -> np.ndarray:
    """Decode an AudioData message carrying S16LE PCM into mono float32 samples."""
    return pcm_s16le_to_float(msg.data, channels)


def float_to_audio_data(samples: np.ndarray) -> AudioData:
    """Return an AudioData message holding mono S16LE PCM of the given float samples."""
    msg = AudioData()
    msg.data = array.array('B', float_to_pcm_s16le(samples))
    return msg


def audio_info(sample_rate: int, channels: int = 1) -> AudioInfo:
    """Return the AudioInfo that describes agechat's S16LE PCM stream."""
    return AudioInfo(
        channels=channels,
        sample_rate=sample_rate,
        sample_format=SAMPLE_FORMAT_S16LE,
        bitrate=sample_rate * channels * 16,
        coding_format=CODING_FORMAT_PCM,
    )


def check_audio_info(msg: AudioInfo) -> None:
    """Raise ConversionError unless the AudioInfo describes raw S16LE PCM agechat can read."""
    if msg.sample_format.upper() != SAMPLE_FORMAT_S16LE:
        raise ConversionError(
            f"sample_format '{msg.sample_format}' is not supported; publish S16LE PCM"
        )
    if msg.coding_format and msg.coding_format.lower() not in ('pcm', 'raw', 'wave', 'wav'):
        raise ConversionError(
            f"coding_format '{msg.coding_format}' is not supported; publish raw PCM"
        )
    if not 1 <= msg.channels <= MAX_CHANNELS or not 1000 <= msg.sample_rate <= MAX_SAMPLE_RATE:
        raise ConversionError(
            f'AudioInfo has channels={msg.channels}, sample_rate={msg.sample_rate}; '
            f'expected 1..{MAX_CHANNELS} channels at 1000..{MAX_SAMPLE_RATE} Hz'
        )
