"""`make live`: the whole graph on this machine's microphone, camera and speaker.

Starts launch/agechat.launch.xml with agechat_io's device nodes (start_microphone:=true
start_camera:=true start_speaker:=true, plus any launch arguments given), prints where to look,
and prints the conversation as it happens (what was heard, the estimated age group and emotion,
the reply). Ctrl-C stops everything. A device that is missing or busy is reported in one line by
its node; the rest of the graph keeps running (e.g. typed chat through `python -m
dialogue_node.chat`).

    python -m agechat_tools.live [--log-dir DIR] [name:=value ...]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

from agechat_tools.launch_xml import LaunchError, LaunchFile, Launcher, parse_overrides

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO / 'launch' / 'agechat.launch.xml'
DEVICES = {'start_microphone': 'true', 'start_camera': 'true', 'start_speaker': 'true'}


def banner(values: dict, log_dir: Path) -> str:
    """Return the text that tells a newcomer where to look."""
    domain = os.environ.get('ROS_DOMAIN_ID', '0')

    def device(start: str, line: str) -> str:
        on = values[start].strip().lower() in ('true', '1')
        return line if on else line.split(':', 1)[0] + ': not started (your own driver?)'

    return '\n'.join(
        [
            '',
            'agechat live: speak Korean to the microphone, look at the camera.',
            device(
                'start_microphone',
                f"  microphone: {values['microphone_device']} -> {values['audio_topic']}",
            ),
            device(
                'start_camera', f"  camera: {values['camera_device']} -> {values['camera_topic']}"
            ),
            device(
                'start_speaker', f"  speaker: {values['speaker_device']} <- /agechat/tts/audio"
            ),
            '  avatars: /agechat/avatar/image (sensor_msgs/Image: rqt_image_view, Foxglove)',
            '  what was heard, age, emotion and replies: printed below as they happen',
            '  typed chat: in another shell, . scripts/env.sh && python -m dialogue_node.chat',
            f'  node logs: {log_dir}/<node>.log (ROS_DOMAIN_ID={domain})',
            '  a missing microphone/camera/speaker is one [FATAL] line; the rest keeps running.',
            '  Ctrl-C stops everything.',
            '',
        ]
    )


class Monitor:
    """Prints utterances and replies (with age group and emotion) as they arrive."""

    def __init__(self):
        import rclpy
        from rclpy.signals import SignalHandlerOptions

        from agechat_msgs.msg import DialogueReply, Utterance
        from agechat_ros import qos

        self.context = rclpy.Context()
        # no rclpy signal handlers: Ctrl-C belongs to the launcher, which stops the nodes
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node('agechat_live_monitor', context=self.context)
        self.node.create_subscription(Utterance, '/agechat/utterance', self._heard, qos.EVENTS)
        self.node.create_subscription(DialogueReply, '/agechat/reply', self._reply, qos.EVENTS)

    @staticmethod
    def _heard(msg) -> None:
        if msg.vad_closed_time.sec or msg.vad_closed_time.nanosec:  # final text, not a partial
            print(f'[heard] "{msg.text}"', flush=True)

    @staticmethod
    def _reply(msg) -> None:
        print(
            f'[reply] ({msg.age_group} {msg.age_confidence:.2f}, {msg.emotion or "no face"}) '
            f'{msg.reply_text}',
            flush=True,
        )

    def spin(self, stop: threading.Event) -> None:
        """Handle messages until `stop` is set, then shut the monitor down."""
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        executor = SingleThreadedExecutor(context=self.context)
        executor.add_node(self.node)
        try:
            while not stop.is_set() and self.context.ok():
                executor.spin_once(timeout_sec=0.2)
        finally:
            executor.shutdown()
            self.node.destroy_node()
            rclpy.try_shutdown(context=self.context)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the live graph until Ctrl-C; return the exit status."""
    parser = argparse.ArgumentParser(description='agechat on this machine\'s devices.')
    parser.add_argument('arguments', nargs='*', help='launch arguments, name:=value')
    parser.add_argument('--log-dir', type=Path, default=REPO / 'out' / 'live' / 'logs')
    parser.add_argument('--duration', type=float, help='stop after this many seconds')
    args = parser.parse_args(argv)
    try:
        overrides = {**DEVICES, **parse_overrides(args.arguments)}
        values, nodes = LaunchFile(LAUNCH_FILE).resolve(overrides)
        for node in nodes:
            node.command()  # fail now, with the fix, if an executable is missing
    except (LaunchError, FileNotFoundError) as error:
        print(f'[live] error: {error}', file=sys.stderr)
        return 2
    print(banner(values, args.log_dir), flush=True)
    stop = threading.Event()
    monitor = threading.Thread(target=Monitor().spin, args=(stop,), name='monitor', daemon=True)
    launcher = Launcher(nodes, args.log_dir, echo=True)

    def request_stop(signum, frame):
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    launcher.start()
    monitor.start()
    deadline = time.monotonic() + args.duration if args.duration else None
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
        launcher.poll()
        time.sleep(0.1)
    stop.set()
    launcher.stop()
    monitor.join(timeout=5.0)
    return 0


if __name__ == '__main__':
    sys.exit(main())
