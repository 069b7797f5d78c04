"""Play and record rosbag2 bags (sqlite3 or MCAP) with `rosbags` where `ros2 bag` is missing.

Both work on any bag whose message types are installed (rclpy classes) and, for recording, known to
rosbags (standard types built in; agechat_msgs and audio_common_msgs are read from their installed
.msg files). Robot users with rosbag2 can use `ros2 bag play/record` on the same bags instead.

    python -m agechat_tools.bag play out/demo/demo_bag --rate 1.0 [--restamp]
    python -m agechat_tools.bag record out/run_bag /agechat/reply /agechat/tts/audio ...
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from rclpy.serialization import deserialize_message
from rosbags.highlevel import AnyReader
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

#: Message packages whose .msg files are registered with rosbags from their install (not built
#: into rosbags).
CUSTOM_PACKAGES = ('agechat_msgs', 'audio_common_msgs')


def message_class(msgtype: str):
    """Rclpy class for 'pkg/msg/Type' (or 'pkg/Type')."""
    parts = msgtype.split('/')
    package, name = parts[0], parts[-1]
    return getattr(importlib.import_module(f'{package}.msg'), name)


def typestore_with_custom_types():
    """Return a rosbags typestore with the ROS 2 standard types plus our installed packages."""
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        for package in CUSTOM_PACKAGES:
            for msg_file in sorted(Path(prefix, 'share', package, 'msg').glob('*.msg')):
                types.update(
                    get_types_from_msg(msg_file.read_text(), f'{package}/msg/{msg_file.stem}')
                )
    store.register(types)
    return store


def bag_qos(reliable: bool = True, transient_local: bool = False, depth: int = 10) -> Qos:
    """Return a rosbags QoS record.

    It is stored as a topic's offered_qos_profiles so that players can match it.
    """
    never = QosTime(sec=0x7FFFFFFF, nsec=0xFFFFFFFF)
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        deadline=never,
        lifespan=never,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=never,
        avoid_ros_namespace_conventions=False,
    )


def _recorded_qos(connection) -> Optional[QoSProfile]:
    """Return the QoS a connection was recorded with (first offered profile), if stored."""
    profiles = getattr(getattr(connection, 'ext', None), 'offered_qos_profiles', None)
    if not profiles or isinstance(profiles, str):
        return None
    profile = profiles[0]
    reliable = getattr(profile.reliability, 'value', profile.reliability) == 1
    transient = getattr(profile.durability, 'value', profile.durability) == 1
    depth = max(1, int(getattr(profile, 'depth', 10) or 10))
    return QoSProfile(
        depth=depth,
        history=QoSHistoryPolicy.KEEP_LAST,
        reliability=QoSReliabilityPolicy.RELIABLE
        if reliable
        else QoSReliabilityPolicy.BEST_EFFORT,
        durability=QoSDurabilityPolicy.TRANSIENT_LOCAL
        if transient
        else QoSDurabilityPolicy.VOLATILE,
    )


DEFAULT_PLAY_QOS = QoSProfile(
    depth=100, history=QoSHistoryPolicy.KEEP_LAST, reliability=QoSReliabilityPolicy.RELIABLE
)


class BagPlayer:
    """Publishes a bag's messages into the graph with their original timing (scaled by `rate`)."""

    def __init__(
        self,
        node,
        bag_path: Path,
        rate: float = 1.0,
        topics: Optional[Iterable[str]] = None,
        restamp: bool = False,
    ):
        if rate <= 0:
            raise ValueError(f'rate must be > 0, got {rate}')
        self.node = node
        self.bag_path = Path(bag_path)
        self.rate = rate
        self.restamp = restamp
        self.reader = AnyReader([self.bag_path])
        self.reader.open()
        wanted = set(topics) if topics else None
        self.connections = [
            c for c in self.reader.connections if wanted is None or c.topic in wanted
        ]
        if not self.connections:
            raise ValueError(f'{bag_path}: none of the requested topics are in the bag')
        self.publishers = {}
        self.classes = {}
        for connection in self.connections:
            if connection.topic in self.publishers:
                continue
            cls = message_class(connection.msgtype)
            self.classes[connection.topic] = cls
            qos = _recorded_qos(connection) or DEFAULT_PLAY_QOS
            self.publishers[connection.topic] = node.create_publisher(cls, connection.topic, qos)
        self._stamped_topics = {
            t
            for t, cls in self.classes.items()
            if cls.get_fields_and_field_types().get('header') == 'std_msgs/Header'
        }
        self.published = 0
        self.stop_event = threading.Event()

    @property
    def duration_s(self) -> float:
        """Length of the bag in seconds."""
        return (self.reader.end_time - self.reader.start_time) / 1e9

    def wait_for_subscribers(self, topics: Iterable[str], timeout_s: float = 30.0) -> None:
        """Block until each of `topics` has at least one matched subscriber."""
        deadline = time.monotonic() + timeout_s
        for topic in topics:
            while self.publishers[topic].get_subscription_count() < 1:
                if time.monotonic() > deadline:
                    raise TimeoutError(f'no subscriber on {topic} after {timeout_s:.0f} s')
                time.sleep(0.05)

    def play(self, progress=None) -> int:
        """Publish every message at its time; return the number published.

        `progress(t_s)` is called often with the bag time reached.
        """
        start_bag = self.reader.start_time
        start_wall = time.monotonic()
        last_progress = 0.0
        for connection, timestamp, rawdata in self.reader.messages(connections=self.connections):
            if self.stop_event.is_set():
                break
            due = start_wall + (timestamp - start_bag) / 1e9 / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            publisher = self.publishers[connection.topic]
            if self.restamp and connection.topic in self._stamped_topics:
                msg = deserialize_message(bytes(rawdata), self.classes[connection.topic])
                msg.header.stamp = self.node.get_clock().now().to_msg()
                publisher.publish(msg)
            else:
                publisher.publish(bytes(rawdata))
            self.published += 1
            if progress is not None and time.monotonic() - last_progress > 0.5:
                last_progress = time.monotonic()
                progress((timestamp - start_bag) / 1e9)
        return self.published

    def wait_for_all_acked(self, timeout_s: float = 5.0) -> bool:
        """Block until every reliable subscriber acknowledged all we published.

        As `ros2 bag play --wait-for-all-acked`: exiting right after the last message then loses
        none of it. Return False when some subscriber did not acknowledge within `timeout_s`.
        """
        from rclpy.duration import Duration

        deadline = time.monotonic() + timeout_s
        acked = True
        for publisher in self.publishers.values():
            if publisher.qos_profile.reliability != QoSReliabilityPolicy.RELIABLE:
                continue
            remaining = max(0.0, deadline - time.monotonic())
            acked = publisher.wait_for_all_acked(Duration(seconds=remaining)) and acked
        return acked

    def close(self) -> None:
        """Close the bag."""
        self.reader.close()


class BagRecorder:
    """Records topics into an MCAP bag, matching each topic's publishers' QoS.

    The QoS is chosen as `ros2 bag record` does.
    """

    def __init__(self, node, out_path: Path, topics: Iterable[str], storage: str = 'mcap'):
        self.node = node
        self.out_path = Path(out_path)
        self.topics = list(topics)
        self.typestore = typestore_with_custom_types()
        plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
        self.writer = Writer(self.out_path, version=9, storage_plugin=plugin)
        self.writer.open()
        self._lock = threading.Lock()
        self._connections: Dict[str, object] = {}
        self._subscriptions: Dict[str, object] = {}
        self.counts: Dict[str, int] = {t: 0 for t in self.topics}
        self._closed = False

    def _qos_for(self, infos) -> QoSProfile:
        best_effort = any(
            i.qos_profile.reliability == QoSReliabilityPolicy.BEST_EFFORT for i in infos
        )
        transient = all(
            i.qos_profile.durability == QoSDurabilityPolicy.TRANSIENT_LOCAL for i in infos
        )
        return QoSProfile(
            depth=100,
            history=QoSHistoryPolicy.KEEP_LAST,
            reliability=QoSReliabilityPolicy.BEST_EFFORT
            if best_effort
            else QoSReliabilityPolicy.RELIABLE,
            durability=QoSDurabilityPolicy.TRANSIENT_LOCAL
            if transient
            else QoSDurabilityPolicy.VOLATILE,
        )

    def discover(self) -> List[str]:
        """Subscribe to every requested topic that now has publishers; return the missing ones."""
        missing = []
        for topic in self.topics:
            if topic in self._subscriptions:
                continue
            infos = self.node.get_publishers_info_by_topic(topic)
            if not infos:
                missing.append(topic)
                continue
            msgtype = infos[0].topic_type  # e.g. 'agechat_msgs/msg/Utterance'
            qos = self._qos_for(infos)
            offered = bag_qos(
                qos.reliability == QoSReliabilityPolicy.RELIABLE,
                qos.durability == QoSDurabilityPolicy.TRANSIENT_LOCAL,
                depth=10,
            )
            with self._lock:
                self._connections[topic] = self.writer.add_connection(
                    topic, msgtype, typestore=self.typestore, offered_qos_profiles=[offered]
                )
            self._subscriptions[topic] = self.node.create_subscription(
                message_class(msgtype),
                topic,
                lambda data, t=topic: self._write(t, data),
                qos,
                raw=True,
            )
        return missing

    def _write(self, topic: str, data: bytes) -> None:
        with self._lock:
            if self._closed:
                return
            self.writer.write(self._connections[topic], time.time_ns(), data)
            self.counts[topic] += 1

    def close(self) -> None:
        """Stop recording and finish the bag file."""
        with self._lock:
            self._closed = True
            self.writer.close()


def _spin_in_background(node):
    from rclpy.executors import MultiThreadedExecutor

    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    return executor, thread


def main(argv: Optional[List[str]] = None) -> int:
    """Play or record a bag from the command line; return the exit status."""
    import rclpy

    parser = argparse.ArgumentParser(description='Play or record rosbag2 bags without ros2 bag.')
    sub = parser.add_subparsers(dest='command', required=True)
    play = sub.add_parser('play', help='publish a bag with its original timing')
    play.add_argument('bag', type=Path)
    play.add_argument('--rate', type=float, default=1.0)
    play.add_argument('--topics', nargs='*')
    play.add_argument(
        '--restamp', action='store_true', help='set header.stamp to the publish time'
    )
    play.add_argument(
        '--wait-for-subscribers',
        action='store_true',
        help='start only when every played topic has a subscriber',
    )
    record = sub.add_parser('record', help='record topics into an MCAP bag until Ctrl-C')
    record.add_argument('out', type=Path)
    record.add_argument('topics', nargs='+')
    args = parser.parse_args(argv)

    rclpy.init()
    node = rclpy.create_node('agechat_bag_' + args.command)
    executor, spin_thread = _spin_in_background(node)
    try:
        if args.command == 'play':
            player = BagPlayer(node, args.bag, args.rate, args.topics, args.restamp)
            if args.wait_for_subscribers:
                player.wait_for_subscribers(player.publishers)
            print(
                f'playing {args.bag} ({player.duration_s:.1f} s, {len(player.publishers)} topics)',
                flush=True,
            )
            count = player.play()
            if not player.wait_for_all_acked():
                print('warning: a subscriber did not acknowledge every message', flush=True)
            print(f'published {count} messages', flush=True)
            player.close()
        else:
            recorder = BagRecorder(node, args.out, args.topics)
            print(
                f'recording {len(args.topics)} topic(s) into {args.out}; Ctrl-C to stop',
                flush=True,
            )
            try:
                while True:
                    recorder.discover()
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
            recorder.close()
            print(f'recorded: {recorder.counts}', flush=True)
    finally:
        rclpy.try_shutdown()  # stops the spinning executor
        spin_thread.join(5)
        executor.shutdown()
        node.destroy_node()
    return 0


if __name__ == '__main__':
    sys.exit(main())
