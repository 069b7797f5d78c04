"""agechat_io's pure cores: devices, PortAudio errors, frames, resampling, playback buffer.

The speaker's playback buffer is flushed when a reply is interrupted (barge-in).
"""

from __future__ import annotations

import numpy as np
import pytest
from io_test_helpers import VIDEO_FRAMES, VIDEO_SIZE, frame_level, require_portaudio

from agechat_io.core.camera import FrameSource
from agechat_io.core.sound import (
    PA_DEVICE_UNAVAILABLE,
    PA_INVALID_SAMPLE_RATE,
    PcmResampler,
    PlaybackBuffer,
    choose_device,
    explain,
    parse_device,
)
from agechat_ros import DeviceUnavailable
from agechat_ros.audio import float_to_pcm_s16le, pcm_s16le_to_float


def test_device_parameter_is_default_index_or_name():
    assert parse_device('') is None and parse_device('default') is None
    assert parse_device(' 3 ') == 3
    assert parse_device('USB Audio') == 'USB Audio'


@pytest.mark.parametrize(
    'code,fragment',
    [
        (PA_DEVICE_UNAVAILABLE, 'is busy'),
        (PA_INVALID_SAMPLE_RATE, 'does not support 44100 Hz'),
    ],
)
def test_portaudio_errors_become_one_line_naming_the_fix(code, fragment):
    sd = require_portaudio()
    error = sd.PortAudioError('Error opening InputStream', code)
    line = explain(error, 'microphone', 'hw:1', 44100, 1)
    assert fragment in line and "'hw:1'" in line
    assert '\n' not in line


def test_a_device_that_does_not_exist_is_refused_in_one_line():
    sd = require_portaudio()
    with pytest.raises(DeviceUnavailable) as error:
        choose_device(sd, 'microphone', 'agechat-no-such-device', 16000, 1)
    assert 'agechat-no-such-device' in str(error.value)
    assert 'python -m sounddevice' in str(error.value)
    assert '\n' not in str(error.value)


def test_resampler_keeps_a_tone_and_the_channel_layout():
    in_rate, out_rate = 48000, 16000
    t = np.arange(in_rate) / in_rate
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 1000 * t)
    pcm = float_to_pcm_s16le(np.stack([left, right], axis=1).reshape(-1))
    resampler = PcmResampler(in_rate, out_rate, channels=2)
    chunk = 960 * 2 * 2  # 20 ms of 48 kHz stereo
    out = b''.join(resampler.process(pcm[i : i + chunk]) for i in range(0, len(pcm), chunk))
    stereo = np.frombuffer(out, '<i2').reshape(-1, 2).astype(np.float32) / 32768.0
    assert abs(stereo.shape[0] - out_rate) <= 2
    for channel, hz in ((0, 440), (1, 1000)):
        spectrum = np.abs(np.fft.rfft(stereo[1000:, channel]))
        peak_hz = np.argmax(spectrum) * out_rate / (stereo.shape[0] - 1000)
        assert abs(peak_hz - hz) < 3


def test_resampler_passes_equal_rates_through():
    pcm = float_to_pcm_s16le(np.linspace(-0.5, 0.5, 320))
    assert PcmResampler(16000, 16000, 1).process(pcm) == pcm
    assert np.allclose(pcm_s16le_to_float(pcm), np.linspace(-0.5, 0.5, 320), atol=1e-4)


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_playback_buffer_plays_in_order_and_reports_gaps_and_backlog():
    clock = FakeClock()
    buffer = PlaybackBuffer(max_bytes=1000, guard_s=0.2, clock=clock)
    assert buffer.take(4) == (b'', False)  # idle silence is not a gap
    assert buffer.push(b'abcd') is None and buffer.push(b'efgh') is None
    assert buffer.take(6) == (b'abcdef', False)
    assert buffer.take(6) == (b'gh', True)  # speech ran dry while playing
    assert buffer.take(6) == (b'', False)
    assert buffer.push(bytes(1001)) is None
    assert buffer.push(b'x') == 'backlog' and len(buffer) == 1001


def test_playback_buffer_flush_silences_at_once_and_guards_against_chunks_in_flight():
    clock = FakeClock()
    buffer = PlaybackBuffer(max_bytes=10**6, guard_s=0.2, clock=clock)
    assert buffer.flush() == 0  # nothing came in (e.g. a latched old state at start): no guard
    assert buffer.push(b'ok') is None and buffer.take(2) == (b'ok', False)
    for _ in range(10):
        buffer.push(bytes(882))
    buffer.take(882)
    assert buffer.flush() == 9 * 882 and len(buffer) == 0
    assert buffer.take(882) == (b'', False)  # silent at once, and no gap counted
    clock.now += 0.1
    assert buffer.push(bytes(882)) == 'interrupted'  # sent before the cut, arriving late
    clock.now += 0.11
    assert buffer.push(b'next') is None  # the guard is over: the next reply plays
    assert buffer.take(10) == (b'next', True)
    # a flush just after the buffer ran dry still guards (the next chunk may be in flight)
    clock.now += 0.5
    assert buffer.flush() == 0
    assert buffer.push(b'late') == 'interrupted'
    clock.now += 5.0
    assert buffer.flush() == 0  # long after the last chunk: no guard
    assert buffer.push(b'new') is None
    buffer.clear()
    assert len(buffer) == 0


def test_video_file_frames_in_order_then_end(video_file):
    source = FrameSource(str(video_file))
    assert source.is_file and source.fps == pytest.approx(30.0)
    levels = []
    while (frame := source.read()) is not None:
        assert frame.shape == (VIDEO_SIZE[1], VIDEO_SIZE[0], 3) and frame.dtype == np.uint8
        levels.append(float(np.median(frame[100:, 100:])))
    source.close()
    assert len(levels) == VIDEO_FRAMES
    expected = [frame_level(i) for i in range(VIDEO_FRAMES)]
    assert np.allclose(levels, expected, atol=3), levels


def test_video_file_loops_and_is_resized(video_file):
    source = FrameSource(str(video_file), width=160, height=120, loop=True)
    frames = [source.read() for _ in range(VIDEO_FRAMES * 2 + 1)]
    source.close()
    assert all(f is not None and f.shape == (120, 160, 3) for f in frames)
    first_again = frames[VIDEO_FRAMES]
    assert abs(float(np.median(first_again[60:, 60:])) - frame_level(0)) <= 3


@pytest.mark.parametrize(
    'device,fragment',
    [('/no/such/video.mp4', 'does not exist'), ('97', 'no camera at index 97')],
)
def test_camera_that_cannot_be_opened_is_one_line(device, fragment):
    with pytest.raises(DeviceUnavailable) as error:
        FrameSource(device)
    assert fragment in str(error.value) and '\n' not in str(error.value)


def test_a_file_that_is_not_a_video_is_refused(tmp_path):
    path = tmp_path / 'notes.avi'
    path.write_text('not a video')
    with pytest.raises(DeviceUnavailable, match='video file'):
        FrameSource(str(path))
