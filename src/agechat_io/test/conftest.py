"""Fixtures of agechat_io's tests: the DDS graph harness, a real sound server, a video file."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from agechat_ros.testing import graph, pytest_runtest_makereport  # noqa: F401 - pytest finds them
from io_test_helpers import VIDEO_FRAMES, VIDEO_SIZE, frame_level, require_portaudio

cv2.setNumThreads(1)


@pytest.fixture(scope='session')
def video_file(tmp_path_factory) -> Path:
    """Write a short MJPG video whose frame i is a flat grey of frame_level(i) with a white box."""
    path = tmp_path_factory.mktemp('video') / 'test.avi'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 30.0, VIDEO_SIZE)
    assert writer.isOpened(), 'OpenCV cannot write MJPG here'
    for index in range(VIDEO_FRAMES):
        frame = np.full((VIDEO_SIZE[1], VIDEO_SIZE[0], 3), frame_level(index), np.uint8)
        frame[10:60, 10:60] = 255
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def sound_server(tmp_path):
    """Start a private PulseAudio server with a null sink whose monitor is the default source.

    Whatever the speaker plays comes back on the "microphone" (through PortAudio's ALSA device,
    which the pulse ALSA plugin routes to this server). Yields the environment that points a
    process at it. Skips, saying why, without the pulseaudio binary or PortAudio. Request it
    before `graph`, so that the nodes stop before the server does.
    """
    require_portaudio()
    if shutil.which('pulseaudio') is None or shutil.which('pactl') is None:
        pytest.skip('no PulseAudio here (apt install pulseaudio; `make setup` installs it)')
    home = tmp_path / 'pulse'
    home.mkdir()
    socket = home / 'native'
    script = home / 'default.pa'
    script.write_text(
        f'load-module module-native-protocol-unix socket={socket} auth-anonymous=1\n'
        'load-module module-null-sink sink_name=agechat_test rate=48000\n'
        'set-default-sink agechat_test\n'
        'set-default-source agechat_test.monitor\n'
    )
    env = {'HOME': str(home), 'XDG_RUNTIME_DIR': str(home), 'PULSE_RUNTIME_PATH': str(home)}
    log = open(home / 'pulseaudio.log', 'wb')
    server = subprocess.Popen(
        ['pulseaudio', '-n', '-F', str(script), '--daemonize=no', '--exit-idle-time=-1'],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    client_env = {'PULSE_SERVER': f'unix:{socket}'}
    try:
        deadline = time.monotonic() + 20.0
        while True:
            ready = subprocess.run(
                ['pactl', 'info'], env={**os.environ, **client_env}, capture_output=True
            )
            if ready.returncode == 0 and b'agechat_test.monitor' in ready.stdout:
                break
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(
                    'PulseAudio did not start: ' + (home / 'pulseaudio.log').read_text()[-2000:]
                )
            time.sleep(0.1)
        yield client_env
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
        log.close()
