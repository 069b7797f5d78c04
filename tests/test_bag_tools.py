"""The rosbags-based player and recorder.

A bag played from one process and recorded in another comes back with the same messages, in
order, with its timing scaled by the play rate, and QoS (best-effort camera, latched info) that
matches what subscribers expect.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from agechat_ros.testing import wait_until
from agechat_tools.bag import BagRecorder, bag_qos, typestore_with_custom_types

START_NS = 1_000 * 10**9


def _write_bag(path):
    std = get_typestore(Stores.ROS2_KILTED)
    custom = typestore_with_custom_types()
    Utterance = custom.types['agechat_msgs/msg/Utterance']
    Header = std.types['std_msgs/msg/Header']
    Time = std.types['builtin_interfaces/msg/Time']
    Image = std.types['sensor_msgs/msg/Image']
    AudioInfo = custom.types['audio_common_msgs/msg/AudioInfo']
    expected = {'/utterances': [], '/camera': [], '/audio_info': []}
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        utterances = writer.add_connection(
            '/utterances',
            'agechat_msgs/msg/Utterance',
            typestore=custom,
            offered_qos_profiles=[bag_qos(reliable=True, depth=10)],
        )
        camera = writer.add_connection(
            '/camera',
            'sensor_msgs/msg/Image',
            typestore=std,
            offered_qos_profiles=[bag_qos(reliable=False, depth=5)],
        )
        info = writer.add_connection(
            '/audio_info',
            'audio_common_msgs/msg/AudioInfo',
            typestore=custom,
            offered_qos_profiles=[bag_qos(reliable=True, transient_local=True, depth=1)],
        )
        data = custom.serialize_cdr(
            AudioInfo(
                channels=1,
                sample_rate=16000,
                sample_format='S16LE',
                bitrate=256000,
                coding_format='pcm',
            ),
            'audio_common_msgs/msg/AudioInfo',
        )
        writer.write(info, START_NS, data)
        expected['/audio_info'].append(data)
        for i in range(10):
            t_ns = START_NS + i * 200_000_000  # every 0.2 s for 1.8 s
            stamp = Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9)
            msg = Utterance(
                header=Header(stamp=stamp, frame_id='mic'),
                utterance_id=f'u{i}',
                text=f'안녕 {i}',
                confidence=0.5,
                language='ko',
                recognizer='test',
                speech_start=stamp,
                speech_end=stamp,
                duration_s=1.0,
                truncated=False,
                vad_closed_time=stamp,
                stt_done_time=stamp,
            )
            data = custom.serialize_cdr(msg, 'agechat_msgs/msg/Utterance')
            writer.write(utterances, t_ns, data)
            expected['/utterances'].append(data)
            pixels = np.full((4, 6, 3), i, np.uint8)
            image = Image(
                header=Header(stamp=stamp, frame_id='cam'),
                height=4,
                width=6,
                encoding='rgb8',
                is_bigendian=0,
                step=18,
                data=pixels.reshape(-1),
            )
            data = std.serialize_cdr(image, 'sensor_msgs/msg/Image')
            writer.write(camera, t_ns, data)
            expected['/camera'].append(data)
    return expected


def test_play_then_record_round_trip(graph, tmp_path):
    bag = tmp_path / 'in_bag'
    expected = _write_bag(bag)
    recorder = BagRecorder(graph.node, tmp_path / 'out_bag', list(expected))
    player = graph.start_process(
        'player',
        [
            sys.executable,
            '-m',
            'agechat_tools.bag',
            'play',
            str(bag),
            '--rate',
            '2.0',
            '--wait-for-subscribers',
        ],
    )
    deadline = time.monotonic() + 20
    while recorder.discover():
        assert time.monotonic() < deadline, 'player publishers never appeared'
        time.sleep(0.05)
    deadline = time.monotonic() + 30
    while player.alive():
        assert time.monotonic() < deadline, 'player did not finish'
        time.sleep(0.1)
    # the player exits once every reliable message is acknowledged; best-effort frames may be
    # in flight a little longer (8 of 10 are enough below)
    wait_until(
        lambda: recorder.counts['/utterances'] == 10 and recorder.counts['/camera'] >= 8,
        10,
        'the recorder to take every reliable message and most frames',
    )
    recorder.close()
    assert player.popen.returncode == 0, player.log()

    with AnyReader([tmp_path / 'out_bag']) as reader:
        got = {topic: [] for topic in expected}
        times = {topic: [] for topic in expected}
        for connection, timestamp, raw in reader.messages():
            got[connection.topic].append(bytes(raw))
            times[connection.topic].append(timestamp)
        types = {c.topic: c.msgtype for c in reader.connections}
    assert types['/utterances'] == 'agechat_msgs/msg/Utterance'
    assert got['/utterances'] == expected['/utterances']  # reliable: every message, in order
    assert (
        got['/audio_info'] == expected['/audio_info']
    )  # latched info reached a late subscriber too
    assert 8 <= len(got['/camera']) <= 10 and all(g in expected['/camera'] for g in got['/camera'])
    span_s = (times['/utterances'][-1] - times['/utterances'][0]) / 1e9
    assert 0.7 <= span_s <= 1.3, f'1.8 s of bag at rate 2 should take ~0.9 s, took {span_s:.2f} s'
