"""emotion_node over real DDS: faces in, FaceEmotion out; bad frames dropped; bad setup refused."""

from __future__ import annotations

import array
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from agechat_msgs.msg import FaceEmotion
from agechat_ros import qos
from agechat_ros.image import bgr_to_compressed, bgr_to_image
from agechat_ros.time import time_to_ns
from agechat_ros.testing import (
    SILENCE_WINDOW_S,
    activate,
    assert_refused,
    deactivate,
    publish_until_answered,
    wait_until,
)

TOPIC = '/agechat/face_emotion'
#: an existing file that is not safetensors weights
NOT_WEIGHTS = str(Path(__file__).resolve().parents[1] / 'package.xml')  # exists, not weights


@pytest.fixture(scope='module')
def astronaut_frame() -> np.ndarray:
    """Return a 320x240 BGR frame with skimage's astronaut (smiling face, about 55 px wide).

    320x240 because raw frames above Fast DDS' 512 KiB shared-memory segment (640x480 rgb8 is
    900 KiB) fall back to fragmented best-effort UDP, where most are lost with the built-in
    transports (see src/emotion_node/config/fastdds_large_frames.xml); the 640x480 rate is measured
    by the benchmark.
    """
    from skimage import data

    face = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (200, 200))
    frame = np.full((240, 320, 3), 96, np.uint8)
    frame[20:220, 60:260] = face
    return frame


class Camera:
    """Publishes frames to the node and waits for the answer to each (matched by stamp)."""

    def __init__(self, graph, results, topic='/image', msg_type=Image):
        self.graph, self.results = graph, results
        self.publisher = graph.publisher(topic, msg_type, qos.SENSOR_DATA)
        graph.wait_for_subscribers(self.publisher)
        graph.wait_for_publishers(TOPIC)
        self.seconds = 1000

    def stamp(self) -> Time:
        self.seconds += 1
        return Time(sec=self.seconds, nanosec=500)

    def send(self, msg, timeout: float = 20.0) -> FaceEmotion:
        """Publish `msg` with a fresh stamp and return the reply.

        The message is re-sent until answered (best-effort QoS).
        """
        msg.header.stamp = self.stamp()
        try:
            return publish_until_answered(self.publisher, msg, self.results, timeout)
        except TimeoutError as error:
            logs = '\n'.join(
                f'--- {p.name}:\n{p.log_path.read_text(errors="replace")[-3000:]}'
                for p in self.graph.processes
            )
            raise TimeoutError(f'{error}; node log tail:\n{logs}') from None

    def send_unanswered(self, msg, repeats: int = 3) -> Time:
        """Publish a frame that must be dropped; return its stamp."""
        msg.header.stamp = stamp = self.stamp()
        for _ in range(repeats):
            self.publisher.publish(msg)
            time.sleep(0.05)
        return stamp


def node_diagnostics(messages) -> dict:
    """Return the latest key/values emotion_node published on /diagnostics."""
    values = {}
    for array_msg in messages:
        for status in array_msg.status:
            if status.name.endswith('emotion_node'):
                values = {kv.key: kv.value for kv in status.values}
    return values


def raw_image(height, width, encoding, step, data, frame_id='camera') -> Image:
    msg = Image(height=height, width=width, encoding=encoding, step=step, is_bigendian=0)
    msg.header.frame_id = frame_id
    msg.data = array.array('B', bytes(data))
    return msg


def test_astronaut_is_happy_and_no_face_is_reported(graph, astronaut_frame):
    node = graph.start_node('emotion_node', 'emotion_node', parameters={'smoothing_s': 0.3})
    results = graph.collect(TOPIC, FaceEmotion)
    diagnostics = graph.collect('/diagnostics', DiagnosticArray)
    camera = Camera(graph, results)
    frame_msg = bgr_to_image(astronaut_frame, frame_id='head_camera', encoding='rgb8')
    reply = camera.send(frame_msg)
    assert reply.face_found and reply.face_count >= 1
    assert reply.emotion == FaceEmotion.HAPPY and reply.emotion_label == 'happy'
    assert reply.confidence > 0.9 and reply.raw_probabilities[FaceEmotion.HAPPY] > 0.9
    assert abs(sum(reply.probabilities) - 1.0) < 1e-4
    assert reply.header.frame_id == 'head_camera' and reply.header.stamp == frame_msg.header.stamp
    roi = reply.face_region
    assert 100 < roi.x_offset + roi.width / 2 < 210 and 25 < roi.width < 80
    assert 0 < reply.processing_ms < 1000 and time_to_ns(reply.processed_time) > 0
    # run-time path without PyTorch (~490 MB RSS): the setup-time TFLite export of these weights is
    # loaded and, after classifying the face, torch is still not in the node's sys.modules
    after_face = diagnostics.wait_for(
        1, timeout=10, predicate=lambda ms: int(node_diagnostics(ms).get('faces_found', 0)) >= 1
    )
    values = node_diagnostics(after_face)
    assert values['torch_imported'] == 'False', values
    assert (
        values['classifier'].startswith('litert: cached export ')
        and '.float32-' in values['classifier']
    ), values
    assert 'torch imported: False' in node.log()

    blank = bgr_to_image(np.zeros((240, 320, 3), np.uint8), encoding='bgr8')
    none = camera.send(blank)
    assert not none.face_found and none.face_count == 0
    assert none.emotion == FaceEmotion.NEUTRAL and none.emotion_label == 'neutral'
    assert not any(none.raw_probabilities) and none.face_region.width == 0
    # smoothed state decays towards neutral: 1 s later with a 0.3 s time constant, 1 - exp(-1/0.3)
    assert none.probabilities[FaceEmotion.NEUTRAL] == pytest.approx(1 - np.exp(-1 / 0.3), abs=0.01)
    graph.assert_alive()


def test_every_supported_encoding_and_bad_frames_are_dropped(graph, astronaut_frame):
    graph.start_node('emotion_node', 'emotion_node', parameters={'smoothing_s': 0.0})
    results = graph.collect(TOPIC, FaceEmotion)
    diagnostics = graph.collect('/diagnostics', DiagnosticArray)
    camera = Camera(graph, results)
    bgr = astronaut_frame
    rgb = bgr[:, :, ::-1]
    alpha = np.full(bgr.shape[:2] + (1,), 255, np.uint8)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    frames = {
        'bgr8': raw_image(h, w, 'bgr8', w * 3, bgr.tobytes()),
        'rgb8': raw_image(h, w, 'rgb8', w * 3, np.ascontiguousarray(rgb).tobytes()),
        'bgra8': raw_image(h, w, 'bgra8', w * 4, np.concatenate([bgr, alpha], 2).tobytes()),
        'rgba8': raw_image(h, w, 'rgba8', w * 4, np.concatenate([rgb, alpha], 2).tobytes()),
        'mono8': raw_image(h, w, 'mono8', w, gray.tobytes()),
        # rows padded to a 4-byte-aligned step wider than the pixels
        'rgb8 padded step': raw_image(
            h,
            w,
            'rgb8',
            w * 3 + 64,
            np.pad(np.ascontiguousarray(rgb).reshape(h, w * 3), ((0, 0), (0, 64))).tobytes(),
        ),
    }
    for name, msg in frames.items():
        reply = camera.send(msg)
        assert reply.face_found, name
        assert reply.emotion_label == 'happy', f'{name}: {reply.emotion_label}'

    bad = {
        'zero size': raw_image(0, 0, 'rgb8', 0, b''),
        'truncated': raw_image(h, w, 'rgb8', w * 3, bgr.tobytes()[: w * 3 * 10]),
        'step mismatch': raw_image(h, w, 'rgb8', w * 2, bgr.tobytes()),
        'huge': raw_image(100000, 100000, 'rgb8', 300000, b'\x00' * 100),
        'unsupported encoding': raw_image(h, w, '16UC1', w * 2, b'\x00' * (h * w * 2)),
    }

    def drops(messages):
        return int(node_diagnostics(messages).get('dropped_bad_image', 0))

    # Camera frames are best effort: send each bad frame until the node has counted it.
    for name, msg in bad.items():
        before = drops(diagnostics.snapshot())
        deadline = time.monotonic() + 15
        while drops(diagnostics.snapshot()) <= before:
            assert time.monotonic() < deadline, f'the {name} frame was never counted as dropped'
            camera.send_unanswered(msg, repeats=1)
            time.sleep(0.3)
    # the node keeps answering after the bad frames: all-black and a good frame
    assert not camera.send(raw_image(h, w, 'bgr8', w * 3, bytes(h * w * 3))).face_found
    assert camera.send(frames['bgr8']).emotion_label == 'happy'
    stamps_answered = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in results.snapshot()}
    assert len(stamps_answered) == len(frames) + 2  # nothing was published for the bad frames

    assert drops(diagnostics.wait_for(1)) >= len(bad)
    graph.assert_alive()


def test_compressed_input_and_debug_image_with_the_torch_backend(graph, astronaut_frame):
    graph.start_node(
        'emotion_node',
        'emotion_node',
        parameters={'use_compressed': True, 'publish_debug_image': True, 'backend': 'torch'},
    )
    results = graph.collect(TOPIC, FaceEmotion)
    diagnostics = graph.collect('/diagnostics', DiagnosticArray)
    debug = graph.collect('/agechat/emotion_debug_image', Image, qos.SENSOR_DATA)
    camera = Camera(graph, results, topic='/image/compressed', msg_type=CompressedImage)
    reply = camera.send(bgr_to_compressed(astronaut_frame, fmt='jpeg'))
    assert reply.face_found and reply.emotion_label == 'happy'
    junk = CompressedImage(format='jpeg')
    junk.data = array.array('B', b'not a jpeg at all')
    camera.send_unanswered(junk)
    png = bgr_to_compressed(astronaut_frame, fmt='png')
    assert camera.send(png).emotion_label == 'happy'
    for _ in range(20):  # best-effort ~1 MB images can be lost in transit: send until one arrives
        try:
            image = debug.wait_for(1, timeout=1.0)[-1]
            break
        except TimeoutError:
            camera.send(png)
    else:
        raise AssertionError('no debug image arrived')
    assert (image.width, image.height, image.encoding) == (320, 240, 'bgr8')
    # the torch backend does load PyTorch, and /diagnostics says so (the check above can fail)
    values = node_diagnostics(
        diagnostics.wait_for(
            1,
            timeout=10,
            predicate=lambda ms: int(node_diagnostics(ms).get('faces_found', 0)) >= 1,
        )
    )
    assert values['torch_imported'] == 'True' and values['classifier'] == 'torch: torch model', (
        values
    )
    graph.assert_alive()


def test_max_rate_limits_the_processed_frames(graph, astronaut_frame):
    graph.start_node('emotion_node', 'emotion_node', parameters={'max_rate_hz': 5.0})
    results = graph.collect(TOPIC, FaceEmotion)
    camera = Camera(graph, results)
    msg = bgr_to_image(astronaut_frame)
    camera.send(msg)  # warm: the node is up and answering
    results.clear()
    start = time.monotonic()
    while time.monotonic() - start < 2.0:  # 30 FPS for 2 s
        msg.header.stamp = camera.stamp()
        camera.publisher.publish(msg)
        time.sleep(1 / 30)
    time.sleep(0.3)
    count = len(results.snapshot())
    # About 5 per second, never the 30 sent. The lower bound is loose: on a loaded 2-core CI
    # machine the sender itself stalls at times; the upper bound is what the rate limit guarantees.
    assert 3 <= count <= 13, count


@pytest.mark.parametrize(
    'parameters, expected',
    [
        ({'detector': 'mtcnn_please', 'threads': 0}, ['detector', 'threads']),
        ({'smoothing_s': -1.0, 'min_face_px': 5}, ['smoothing_s', 'min_face_px']),
        (
            {'track_every': 0, 'sweep_every': 31, 'classify_hz': -1.0, 'carry_max_change': 300.0},
            ['track_every', 'sweep_every', 'classify_hz', 'carry_max_change'],
        ),
        (
            {'model_path': '/nonexistent/fer.safetensors'},
            ['/nonexistent/fer.safetensors', 'make setup'],
        ),
        ({'model_path': NOT_WEIGHTS}, [NOT_WEIGHTS, 'not a safetensors file', 'model_path']),
    ],
)
def test_bad_setup_is_refused_at_start_with_the_fix(graph, parameters, expected):
    node = graph.start_node('emotion_node', 'emotion_node', parameters=parameters)
    assert node.popen.wait(60) == 2
    log = node.log()
    for text in expected:
        assert text in log, log
    assert 'Traceback' not in log


def test_emotion_node_lifecycle_and_run_time_parameters(graph, astronaut_frame):
    frame = astronaut_frame
    graph.start_node('emotion_node', 'emotion_node', parameters={'smoothing_s': 0.0})
    results = graph.collect('/agechat/face_emotion', FaceEmotion)
    diagnostics = graph.collect('/diagnostics', DiagnosticArray)
    camera = graph.publisher('/image', Image, qos_profile_sensor_data)
    graph.wait_for_subscribers(camera, timeout=60)
    image = bgr_to_image(frame)

    def show(count: int, period_s: float = 0.05) -> None:
        for _ in range(count):
            image.header.stamp = graph.node.get_clock().now().to_msg()
            camera.publish(image)
            time.sleep(period_s)

    wait_until(lambda: show(1) or bool(results.snapshot()), 30, 'a first face emotion')
    deactivate(graph, 'emotion_node', diagnostics, camera)
    results.clear()
    show(20)
    time.sleep(SILENCE_WINDOW_S / 2)
    assert results.snapshot() == []

    activate(graph, 'emotion_node', diagnostics, camera)
    wait_until(lambda: show(1) or bool(results.snapshot()), 30, 'face emotions again')
    assert results.snapshot()[-1].emotion_label == 'happy'

    # at most 2 frames per second from now on: 40 frames in 2 s give about 4
    assert graph.set_parameters('emotion_node', max_rate_hz=2.0)[0].successful
    results.clear()
    show(40)
    assert 1 <= len(results.snapshot()) <= 6, len(results.snapshot())
    assert_refused(graph.set_parameters('emotion_node', detector='haar'), 'read-only')
    assert_refused(graph.set_parameters('emotion_node', smoothing_s=100.0), 'smoothing_s')
    graph.assert_alive()


def _camera_reliability(graph, topic: str):
    """Return the reliability of emotion_node's subscription on `topic` (from discovery)."""
    infos = [
        info
        for info in graph.node.get_subscriptions_info_by_topic(topic)
        if info.node_name == 'emotion_node'
    ]
    return infos[0].qos_profile.reliability if infos else None


def test_camera_qos_overrides_and_the_diagnostics_period(graph):
    reliable = {'reliability': 'reliable', 'history': 'keep_last', 'depth': 50}
    graph.start_node(
        'emotion_node',
        'emotion_node',
        parameters={
            'use_compressed': True,
            'qos_overrides': {'/image/compressed': {'subscription': reliable}},
        },
    )
    diagnostics = graph.collect('/diagnostics', DiagnosticArray)
    wait_until(
        lambda: (
            _camera_reliability(graph, '/image/compressed') is not None
            and _camera_reliability(graph, '/image') is not None
        ),
        60,
        'both camera subscriptions',
    )
    # the override applies to its topic only: raw frames keep LATEST_FRAME (best effort)
    assert _camera_reliability(graph, '/image/compressed') == QoSReliabilityPolicy.RELIABLE
    assert _camera_reliability(graph, '/image') == QoSReliabilityPolicy.BEST_EFFORT
    name = 'qos_overrides./image/compressed.subscription.depth'
    assert graph.describe_parameters('emotion_node', name)[name].read_only

    # the same subscriptions after deactivate and activate
    camera = graph.publisher('/image/compressed', CompressedImage)
    deactivate(graph, 'emotion_node', diagnostics, camera)
    activate(graph, 'emotion_node', diagnostics, camera)
    assert _camera_reliability(graph, '/image/compressed') == QoSReliabilityPolicy.RELIABLE
    assert _camera_reliability(graph, '/image') == QoSReliabilityPolicy.BEST_EFFORT

    # /diagnostics every 0.1 s from now on (the default is 1 s)
    period = 'diagnostic_updater.period'
    assert graph.describe_parameters('emotion_node', period)[period].floating_point_range
    assert graph.set_parameters('emotion_node', **{period: 0.1})[0].successful
    start = len(diagnostics.snapshot())
    stamps = [
        time_to_ns(m.header.stamp) / 1e9
        for m in diagnostics.wait_for(start + 11, timeout=30)[start + 1 : start + 11]
    ]
    assert float(np.median(np.diff(stamps))) < 0.5, np.diff(stamps)
    assert_refused(graph.set_parameters('emotion_node', **{period: 0.0}), period)
    graph.assert_alive()
