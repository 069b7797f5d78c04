"""The device nodes over real DDS: a video file as the camera, a real sound server as the devices.

The speaker and the microphone are tested together against a private PulseAudio server whose
null sink's monitor is the default source: a tone published on agechat/tts/audio is played by
speaker_node and comes back from microphone_node on /audio/audio, and goes quiet when the reply
is interrupted (SpeechState interrupted=true). Skipped, saying why, without PulseAudio or
PortAudio.
"""

from __future__ import annotations

import array
import time

import numpy as np
import pytest
from agechat_msgs.msg import SpeechState
from audio_common_msgs.msg import AudioData, AudioInfo
from io_test_helpers import VIDEO_FRAMES, VIDEO_SIZE, frame_level, require_portaudio
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image

from agechat_ros import qos
from agechat_ros.audio import audio_info, float_to_pcm_s16le, pcm_s16le_to_float
from agechat_ros.image import image_to_bgr
from agechat_ros.testing import NodeDiagnostics, SILENCE_WINDOW_S, lifecycle_label, wait_until

TONE_HZ = 440.0


def _fatal_line(process) -> str:
    wait_until(lambda: not process.alive(), 30, f'{process.name} to exit')
    assert process.popen.returncode == 2, process.log()
    fatal = [line for line in process.log().splitlines() if line.strip()]
    assert len(fatal) == 1, process.log()  # one readable line, no traceback
    return fatal[0]


def test_camera_node_publishes_a_looping_video_file(graph, video_file):
    frames = graph.collect('/camera/image_raw', Image, qos.LATEST_FRAME)
    diagnostics = graph.collect('/diagnostics', DiagnosticArray)
    graph.start_node(
        'agechat_io',
        'camera_node',
        parameters={
            'device': str(video_file),
            'loop': True,
            'width': VIDEO_SIZE[0],
            'height': VIDEO_SIZE[1],
        },
        remappings={'image': '/camera/image_raw'},
    )
    got = frames.wait_for(VIDEO_FRAMES * 2 + 2, timeout=60)  # more than the file holds: it loops
    levels = set()
    for msg in got:
        bgr = image_to_bgr(msg)
        assert bgr.shape == (VIDEO_SIZE[1], VIDEO_SIZE[0], 3)
        assert msg.header.frame_id == 'camera' and msg.header.stamp.sec > 0
        level = float(np.median(bgr[100:, 100:]))
        matches = [i for i in range(VIDEO_FRAMES) if abs(level - frame_level(i)) <= 3]
        assert matches, f'frame of level {level} is not one of the video'
        levels.add(matches[0])
    assert len(levels) > VIDEO_FRAMES // 2  # best effort may lose some, most arrive

    assert graph.change_state('camera_node', 'deactivate')
    wait_until(lambda: lifecycle_label(diagnostics, 'camera_node') == 'inactive', 10, 'inactive')
    frames.clear()
    with pytest.raises(TimeoutError):
        frames.wait_for(1, timeout=SILENCE_WINDOW_S)
    assert graph.change_state('camera_node', 'activate')
    frames.wait_for(3, timeout=30)
    graph.assert_alive()


def test_camera_node_without_a_camera_says_so_in_one_line_and_exits(graph):
    process = graph.start_node(
        'agechat_io', 'camera_node', parameters={'device': '/dev/agechat-no-such-camera'}
    )
    assert "camera: '/dev/agechat-no-such-camera' does not exist" in _fatal_line(process)


@pytest.mark.parametrize('executable', ['microphone_node', 'speaker_node'])
def test_audio_node_without_its_device_says_so_in_one_line_and_exits(graph, executable):
    require_portaudio()
    process = graph.start_node(
        'agechat_io', executable, parameters={'device': 'agechat-no-such-device'}
    )
    line = _fatal_line(process)
    assert "matches device:='agechat-no-such-device'" in line, line
    assert 'python -m sounddevice' in line


def _dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * rate / samples.size)


def test_speaker_plays_tts_audio_that_the_microphone_hears(sound_server, graph):
    heard = graph.collect('/audio/audio', AudioData, qos.AUDIO_STREAM)
    info = graph.collect('/audio/audio_info', AudioInfo, qos.LATCHED)
    graph.start_node(
        'agechat_io',
        'microphone_node',
        parameters={'rate': 16000, 'chunk_ms': 20},
        remappings={'audio': '/audio/audio', 'audio_info': '/audio/audio_info'},
        env=sound_server,
    )
    graph.start_node('agechat_io', 'speaker_node', env=sound_server)
    tts_info = graph.publisher('/agechat/tts/audio_info', AudioInfo, qos.LATCHED)
    tts = graph.publisher('/agechat/tts/audio', AudioData, qos.AUDIO_STREAM)
    graph.wait_for_subscribers(tts)
    graph.wait_for_subscribers(tts_info)
    (announced,) = info.wait_for(1, timeout=30)[:1]
    assert (announced.sample_rate, announced.channels) == (16000, 1)
    assert announced.sample_format == 'S16LE'
    heard.wait_for(5, timeout=30)  # the microphone streams (silence) before anything plays

    rate = 22050  # avatar_node's format
    tts_info.publish(audio_info(rate))
    t = np.arange(rate) / rate
    pcm = float_to_pcm_s16le(0.4 * np.sin(2 * np.pi * TONE_HZ * t))
    chunk = rate * 20 // 1000 * 2

    def tone_heard(messages) -> bool:
        recent = b''.join(bytes(m.data) for m in messages[-50:])  # the last second
        samples = pcm_s16le_to_float(recent)
        if samples.size < 8000 or np.sqrt(np.mean(samples**2)) < 0.05:
            return False
        return abs(_dominant_hz(samples[-8000:], 16000) - TONE_HZ) < 10

    for _attempt in range(5):  # one second of tone per attempt, until the loop hears it
        for i in range(0, len(pcm), chunk):
            tts.publish(AudioData(data=array.array('B', pcm[i : i + chunk])))
        try:
            heard.wait_for(1, timeout=10, predicate=tone_heard)
            break
        except TimeoutError:
            continue
    else:
        pytest.fail('the tone played by speaker_node never came back on /audio/audio')
    graph.assert_alive()


def _rms(messages) -> float:
    samples = pcm_s16le_to_float(b''.join(bytes(m.data) for m in messages))
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def test_speaker_goes_quiet_when_the_reply_is_interrupted(sound_server, graph):
    """SpeechState interrupted=true (avatar_node cut the reply): the buffered speech is dropped."""
    heard = graph.collect('/audio/audio', AudioData, qos.AUDIO_STREAM)
    graph.start_node(
        'agechat_io',
        'microphone_node',
        parameters={'rate': 16000, 'chunk_ms': 20},
        remappings={'audio': '/audio/audio', 'audio_info': '/audio/audio_info'},
        env=sound_server,
    )
    graph.start_node('agechat_io', 'speaker_node', env=sound_server)
    diagnostics = NodeDiagnostics(graph, 'speaker_node')
    tts_info = graph.publisher('/agechat/tts/audio_info', AudioInfo, qos.LATCHED)
    tts = graph.publisher('/agechat/tts/audio', AudioData, qos.AUDIO_STREAM)
    speech = graph.publisher('/agechat/speech_state', SpeechState, qos.LATCHED)
    for publisher in (tts, tts_info, speech):
        graph.wait_for_subscribers(publisher)
    heard.wait_for(5, timeout=30)
    rate = 22050
    tts_info.publish(audio_info(rate))
    chunk = rate * 20 // 1000 * 2

    def play_tone(seconds: float) -> None:
        t = np.arange(int(rate * seconds)) / rate
        pcm = float_to_pcm_s16le(0.4 * np.sin(2 * np.pi * TONE_HZ * t))
        for i in range(0, len(pcm), chunk):  # all at once: speaker_node buffers it
            tts.publish(AudioData(data=array.array('B', pcm[i : i + chunk])))

    def loud(messages) -> bool:
        return len(messages) >= 5 and _rms(messages[-5:]) > 0.05

    play_tone(6.0)  # six seconds buffered in speaker_node
    heard.wait_for(1, timeout=10, predicate=loud)
    time.sleep(0.5)
    assert loud(heard.snapshot()), 'the tone stopped by itself'

    cut_ns = time.time_ns()
    speech.publish(SpeechState(speaking=False, utterance_id='cut', interrupted=True))
    diagnostics.wait_count('interruptions', 1)
    time.sleep(1.5)
    with heard._cond:
        after = [
            (t, m)
            for t, m in zip(heard.receive_times_ns, heard.messages, strict=True)
            if t > cut_ns
        ]
    # the first chunk from which the microphone stays quiet
    quiet_at = next((i for i in range(len(after)) if _rms([m for _, m in after[i:]]) < 0.01), None)
    assert quiet_at is not None, 'the tone kept playing after the interruption'
    quiet_ms = (after[quiet_at][0] - cut_ns) / 1e6
    # speaker_node flushes on the message; what remains is PulseAudio's and the microphone's
    # own buffering on this loop (measured 43-66 ms here)
    assert quiet_ms < 500, f'quiet only {quiet_ms:.0f} ms after the interruption'
    print(f'speaker quiet {quiet_ms:.0f} ms after the interrupted state was published')
    assert len(after) - quiet_at >= 50, 'quiet for less than a second'  # 4+ s of tone were left
    # more than 3 s of speech dropped (at 22.05 kHz or the device's higher rate)
    assert diagnostics.number('interrupted_bytes') > 22050 * 2 * 3

    time.sleep(0.3)  # past interrupt_guard_ms: the next reply plays again
    play_tone(1.0)
    heard.wait_for(1, timeout=10, predicate=loud)
    graph.assert_alive()
