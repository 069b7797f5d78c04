"""The launch file is valid for ROS 2's XML frontend, and our runner gives it the same meaning."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from agechat_tools.launch_xml import SUPPORTED, LaunchError, LaunchFile, parse_overrides

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / 'launch' / 'agechat.launch.xml'

# Tags and attributes that ROS 2's XML launch frontend accepts for the actions we use, as read from
# the `parse` methods of launch (ExecuteProcess, DeclareLaunchArgument, Action: if/unless) and
# launch_ros (Node, its param/remap/env children) in Humble, Jazzy and Kilted.
ROS2_FRONTEND = {
    'launch': {'version'},
    'arg': {'name', 'default', 'description', 'choices', 'if', 'unless'},
    'node': {
        'pkg',
        'exec',
        'name',
        'namespace',
        'args',
        'ros_args',
        'exec_name',
        'node-name',
        'cwd',
        'launch-prefix',
        'output',
        'respawn',
        'respawn_delay',
        'shell',
        'emulate_tty',
        'sigterm_timeout',
        'sigkill_timeout',
        'if',
        'unless',
    },
    'param': {'name', 'value', 'from', 'sep', 'allow_substs'},
    'remap': {'from', 'to'},
    'env': {'name', 'value'},
}
ROS2_CHILDREN = {'launch': {'arg', 'node'}, 'node': {'param', 'remap', 'env'}}


def test_there_is_exactly_one_launch_file():
    assert sorted(p.name for p in (REPO / 'launch').iterdir()) == ['agechat.launch.xml']


def test_launch_file_uses_only_what_ros2_frontend_accepts():
    root = ET.parse(LAUNCH_FILE).getroot()
    assert root.tag == 'launch'
    for element in root.iter():
        assert element.tag in ROS2_FRONTEND, f'<{element.tag}> is not a ROS 2 launch tag'
        assert set(element.attrib) <= ROS2_FRONTEND[element.tag], (element.tag, element.attrib)
        for child in element:
            assert child.tag in ROS2_CHILDREN.get(element.tag, set()), (
                f'<{child.tag}> inside <{element.tag}>'
            )
    for node in root.iter('node'):
        assert node.get('respawn') in (None, 'true', 'false'), (
            'respawn must be a literal (Humble parses a bool)'
        )
        float(node.get('respawn_delay', '0'))


def test_runner_subset_is_within_ros2_frontend():
    for tag, attributes in SUPPORTED.items():
        assert attributes <= ROS2_FRONTEND[tag]


def test_launch_file_starts_the_four_nodes_with_the_params_file():
    values, nodes = LaunchFile(LAUNCH_FILE).resolve({})
    assert sorted((n.package, n.executable) for n in nodes) == [
        ('age_node', 'age_node'),
        ('avatar_node', 'avatar_node'),
        ('dialogue_node', 'dialogue_node'),
        ('emotion_node', 'emotion_node'),
    ]
    params_file = Path(values['params_file'])
    assert params_file.resolve() == (REPO / 'config' / 'agechat.yaml').resolve()
    config = yaml.safe_load(params_file.read_text())
    for node in nodes:
        assert node.params_files == [values['params_file']]
        assert node.respawn and node.respawn_delay > 0
        assert node.name in config, f'config/agechat.yaml has no section for {node.name}'


def test_remapping_arguments_reach_the_nodes():
    _, nodes = LaunchFile(LAUNCH_FILE).resolve(
        parse_overrides(['camera_topic:=/robot/head_cam/image', 'audio_topic:=/robot/mic'])
    )
    by_name = {n.name: n for n in nodes}
    assert ('image', '/robot/head_cam/image') in by_name['emotion_node'].remaps
    assert ('audio', '/robot/mic') in by_name['age_node'].remaps


def test_device_nodes_start_only_when_asked_and_are_not_respawned():
    launch_file = LaunchFile(LAUNCH_FILE)
    _, nodes = launch_file.resolve({})
    assert not any(n.package == 'agechat_io' for n in nodes)
    _, nodes = launch_file.resolve(
        parse_overrides(
            [
                'start_microphone:=true',
                'start_camera:=True',
                'start_speaker:=1',
                'camera_device:=/dev/video2',
                'camera_topic:=/cam',
                'audio_topic:=/mic',
            ]
        )
    )
    by_name = {n.name: n for n in nodes}
    assert {'microphone_node', 'camera_node', 'speaker_node'} <= set(by_name)
    config = yaml.safe_load((REPO / 'config' / 'agechat.yaml').read_text())
    for name in ('microphone_node', 'camera_node', 'speaker_node'):
        assert by_name[name].package == 'agechat_io' and not by_name[name].respawn
        assert name in config, f'config/agechat.yaml has no section for {name}'
    assert ('device', "'/dev/video2'") in by_name['camera_node'].params
    assert yaml.safe_load("'0'") == '0'  # quoted: a camera index stays a string parameter
    assert ('image', '/cam') in by_name['camera_node'].remaps
    assert ('audio', '/mic') in by_name['microphone_node'].remaps
    assert ('audio', '/mic') in by_name['age_node'].remaps
    with pytest.raises(LaunchError, match='must be true, false, 1 or 0'):
        launch_file.resolve({'start_camera': 'yes'})


def test_make_live_says_where_to_look_and_which_devices_it_starts():
    from agechat_tools.live import DEVICES, banner

    values, _ = LaunchFile(LAUNCH_FILE).resolve({**DEVICES, 'start_camera': 'false'})
    text = banner(values, Path('out/live/logs'))
    assert 'microphone: default -> /audio/audio' in text
    assert 'camera: not started' in text
    assert '/agechat/avatar/image' in text and 'out/live/logs/<node>.log' in text


@pytest.mark.parametrize(
    'content,needle',
    [
        (
            '<launch><include file="x.launch.xml"/></launch>',
            '<include> inside <launch> is not supported',
        ),
        (
            '<launch><node pkg="a" exec="b" launch-prefix="gdb"/></launch>',
            "['launch-prefix'] are not supported",
        ),
        (
            '<launch><node pkg="a" exec="b" name="$(eval 1+1)"/></launch>',
            'substitution $(eval 1+1) is not supported',
        ),
        (
            '<launch><node pkg="a" exec="b" name="$(var nope)"/></launch>',
            'undeclared launch argument',
        ),
        ('<launch><arg name="must"/></launch>', "launch argument 'must' is required"),
    ],
)
def test_runner_refuses_what_it_does_not_support(tmp_path, content, needle):
    path = tmp_path / 'bad.launch.xml'
    path.write_text(content)
    with pytest.raises(LaunchError) as error:
        LaunchFile(path).resolve({})
    assert needle in str(error.value)


def test_unknown_override_lists_the_declared_arguments():
    with pytest.raises(LaunchError, match='camera_topic'):
        LaunchFile(LAUNCH_FILE).resolve({'camera': '/x'})
