"""camera_node: a camera or a video file (OpenCV VideoCapture) -> sensor_msgs/Image.

Publishes ``image`` (sensor_msgs/Image, bgr8, stamped with the capture time, SENSOR_DATA QoS);
the launch file remaps it to the topic emotion_node reads (``/camera/image_raw``). ``device`` is
a camera index, a /dev/videoN path or a video file (played at ``fps`` or the file's own rate,
``loop`` to repeat). A lifecycle node (agechat_ros.node): the device is opened in configure and
read only while active. Device problems stop the start with one line (exit 2); a camera that
stops delivering frames is reported once and the node stops publishing.
"""

from __future__ import annotations

import threading

from sensor_msgs.msg import Image

from agechat_io.core.camera import FrameSource, Pacer
from agechat_ros import qos
from agechat_ros.image import bgr_to_image
from agechat_ros.node import AgechatNode, run_node
from agechat_ros.params import Param

PARAMS = [
    Param(
        'device',
        '0',
        'camera index (0: the first camera), a /dev/videoN path, or a video file',
    ),
    Param('width', 640, 'frame width in pixels (0: the device default)', low=0, high=7680),
    Param('height', 480, 'frame height in pixels (0: the device default)', low=0, high=4320),
    Param(
        'fps',
        0.0,
        'frames per second asked of the camera / a file is played at (0: its own rate)',
        low=0.0,
        high=240.0,
    ),
    Param('loop', False, 'start a video file again at its end'),
    Param('frame_id', 'camera', 'header.frame_id of the published images'),
]


class CameraNode(AgechatNode):
    """Read frames in a worker thread and publish each one."""

    def __init__(self, **kwargs):
        super().__init__('camera_node', PARAMS, **kwargs)
        self.source = None
        self._stop = threading.Event()
        self._thread = None

    def check_parameters(self, p):
        """Width and height go together."""
        if (p.width == 0) != (p.height == 0):
            return 'width and height must both be set, or both 0 (the device default)'
        return None

    def configure(self) -> None:
        """Open the camera or file and read a first frame; create the publisher."""
        self.source = FrameSource(
            self.p.device, self.p.width, self.p.height, self.p.fps, self.p.loop
        )
        self.pub_image = self.publisher(Image, 'image', qos.SENSOR_DATA)
        kind = 'video file' if self.source.is_file else 'camera'
        self.get_logger().info(
            f"{kind} '{self.p.device}': {self.p.width or 'default'}x{self.p.height or 'default'}"
            f' at {self.source.fps:g} FPS' + (' (looping)' if self.p.loop else '')
        )

    def activate(self) -> None:
        """Start the reader thread (reopening a camera that had stopped delivering frames)."""
        if self.source.gone:
            self.source.close()
            self.source = FrameSource(
                self.p.device, self.p.width, self.p.height, self.p.fps, self.p.loop
            )
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name='camera', daemon=True)
        self._thread.start()

    def _run(self) -> None:
        source = self.source
        pacer = Pacer(source.fps) if source.is_file else None
        while not self._stop.is_set():
            if pacer is not None:
                pacer.wait(self._stop)
            frame = source.read()
            if frame is None:
                if source.is_file:  # the end of a file that does not loop
                    self.get_logger().info('end of the video file; no more frames')
                    self.health.set('capture', 'end of file')
                    return
                if source.gone:
                    self.get_logger().error(
                        f"camera: '{self.p.device}' stopped delivering frames (unplugged or "
                        'taken by another program); deactivate and activate the node to retry'
                    )
                    self.health.set('capture', 'stopped')
                    return
                self.health.drop('failed_read', 'the camera returned no frame')
                continue
            stamp = self.get_clock().now().to_msg()
            self.pub_image.publish(bgr_to_image(frame, stamp=stamp, frame_id=self.p.frame_id))
            self.health.count('frames_published')

    def deactivate(self) -> None:
        """Stop the reader thread (the device stays open until cleanup)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def cleanup(self) -> None:
        """Release the camera or file."""
        if self.source is not None:
            self.source.close()
            self.source = None


def main(args=None) -> int:
    """Console entry point."""
    return run_node(CameraNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
