"""config/agechat.yaml only sets parameters the nodes really declare, with values they accept.

rclpy silently ignores unknown names in a parameter file, so a typo would otherwise go unnoticed.
The device nodes of agechat_io need a camera / sound server to start: their sections are checked
by src/agechat_io/test/test_io_config.py, which has those.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from agechat_ros.testing import assert_config_section_declared

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'config' / 'agechat.yaml'
SECTIONS = yaml.safe_load(CONFIG.read_text())
LAUNCH = REPO / 'launch' / 'agechat.launch.xml'
#: node name -> (package, executable), as the launch file starts them
LAUNCHED = {
    node.get('name'): (node.get('pkg'), node.get('exec'))
    for node in ET.parse(LAUNCH).getroot().iter('node')
}
DEVICE_PACKAGE = 'agechat_io'


def test_every_config_section_is_a_launched_node():
    assert set(SECTIONS) <= set(LAUNCHED), set(SECTIONS) - set(LAUNCHED)


@pytest.mark.parametrize(
    'node_name', sorted(n for n in SECTIONS if LAUNCHED[n][0] != DEVICE_PACKAGE)
)
def test_every_configured_parameter_is_declared_with_the_configured_value(graph, node_name):
    package, executable = LAUNCHED[node_name]
    assert_config_section_declared(graph, CONFIG, node_name, package, executable)
