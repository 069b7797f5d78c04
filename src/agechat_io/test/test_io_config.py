"""config/agechat.yaml's device-node sections set parameters the nodes really declare.

The nodes get what they need to start here: the test video as the camera, a private PulseAudio
server as the microphone and the speaker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agechat_ros.testing import assert_config_section_declared

CONFIG = Path(__file__).resolve().parents[3] / 'config' / 'agechat.yaml'


def test_camera_node_declares_its_configured_parameters(graph, video_file):
    assert_config_section_declared(
        graph,
        CONFIG,
        'camera_node',
        'agechat_io',
        'camera_node',
        parameters={'device': str(video_file)},
    )


@pytest.mark.parametrize('node_name', ['microphone_node', 'speaker_node'])
def test_audio_node_declares_its_configured_parameters(sound_server, graph, node_name):
    assert_config_section_declared(
        graph, CONFIG, node_name, 'agechat_io', node_name, env=sound_server
    )
