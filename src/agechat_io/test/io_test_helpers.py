"""Helpers shared by agechat_io's tests: the test video's layout, the PortAudio skip."""

from __future__ import annotations

import pytest

VIDEO_SIZE = (320, 240)  # width, height: below Fast DDS' 512 KiB shared-memory segment
VIDEO_FRAMES = 12


def frame_level(index: int) -> int:
    """Return the grey level of frame `index` of the test video (distinct per frame)."""
    return 20 + 18 * index


def require_portaudio():
    """Skip unless sounddevice and the PortAudio library are installed; return the module."""
    try:
        import sounddevice
    except ModuleNotFoundError:
        pytest.skip('sounddevice is not installed (requirements.txt; `make setup`)')
    except OSError as error:
        pytest.skip(f'{error}: install libportaudio2 (`make setup`)')
    return sounddevice
