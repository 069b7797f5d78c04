"""avatar_node benchmark: ``python -m avatar_node.bench --out out/bench/avatar.json``.

Measured in one run, on this machine:

1. over DDS, with avatar_node running as its own process: reply received -> first audio chunk
   published (from SpeechState's reply_received_time / first_audio_time), the same seen from the
   sender (publish -> first chunk received), and the avatar frame rate idle vs while speaking;
2. in process: synthesis time per character (espeak streaming), first synthesised buffer, and
   pyttsx3's save_to_file path for the same sentence (in a child process: libespeak-ng is one per
   process);
3. render time per frame of the avatar canvas (960x540 and 640x360);
4. barge-in over DDS: a BargeIn published while a long reply plays -> SpeechState interrupted
   (node side: the state's stamp minus the BargeIn's stamp; sender side: until it arrives).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

SENTENCE = '안녕하세요, 만나서 정말 반가워요.'
LONG_TEXT = (
    '안녕하세요, 만나서 정말 반가워요. 오늘은 날씨가 맑고 따뜻해서 산책하기 좋은 날이에요. '
    '점심은 맛있게 드셨어요? 저는 여러분과 이야기를 나누는 시간이 정말 즐거워요. '
    '궁금한 것이 있으면 언제든지 물어보세요. 천천히, 또박또박 대답해 드릴게요.'
) * 2


def _percentiles(values, name):
    values = np.asarray(values, dtype=np.float64)
    return {
        f'{name}_p50': round(float(np.percentile(values, 50)), 3),
        f'{name}_p95': round(float(np.percentile(values, 95)), 3),
    }


def bench_pyttsx3(runs: int) -> dict:
    """Time pyttsx3's save_to_file + runAndWait for one sentence.

    The call returns when the WAV file is written.
    """
    from avatar_node.core.tts import DEFAULT_PROSODY, Pyttsx3FileSynth

    synth = Pyttsx3FileSynth('ko+f3')
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        synth.synthesize(SENTENCE, DEFAULT_PROSODY['adult'], lambda pcm, marks: True)
        times.append((time.perf_counter() - start) * 1e3)
    return _percentiles(times, 'pyttsx3_save_to_file_ms')


def bench_tts(runs: int) -> dict:
    """Streaming espeak: first buffer of one sentence, and full synthesis time per character."""
    from avatar_node.core.tts import DEFAULT_PROSODY, EspeakStreamSynth

    synth = EspeakStreamSynth('ko+f3')
    firsts = []
    for _ in range(runs):
        start = time.perf_counter()
        seen = []

        def on_audio(pcm, marks, seen=seen):
            if not seen:
                seen.append(time.perf_counter())
            return True

        synth.synthesize(SENTENCE, DEFAULT_PROSODY['adult'], on_audio)
        firsts.append((seen[0] - start) * 1e3)
    per_char, audio_s = [], 0.0
    for _ in range(5):
        start = time.perf_counter()
        samples = sum(
            synth.synthesize(s, DEFAULT_PROSODY['adult'], lambda pcm, marks: True)
            for s in LONG_TEXT.split('. ')
        )
        elapsed = time.perf_counter() - start
        per_char.append(elapsed * 1e3 / len(LONG_TEXT))
        audio_s = samples / synth.sample_rate
    result = _percentiles(firsts, 'tts_first_buffer_ms')
    result.update(
        tts_ms_per_char=round(float(np.median(per_char)), 4),
        tts_chars=len(LONG_TEXT),
        tts_audio_s=round(audio_s, 2),
        tts_real_time_factor=round(float(np.median(per_char)) * len(LONG_TEXT) / 1e3 / audio_s, 5),
    )
    return result


def bench_render(frames: int) -> dict:
    """Time the rendering per frame: a speaking scene, caption, moving mouth, changing emotions."""
    from avatar_node.core import expressions as ex
    from avatar_node.core.render import AvatarRenderer, FacePose, Scene, blink_at, find_font

    result = {}
    for width, height in ((960, 540), (640, 360)):
        renderer = AvatarRenderer(width, height, find_font())
        times = []
        for i in range(frames):
            t = i / 20.0
            label = ex.FER_LABELS[(i // 20) % 7]
            p = ex.one_hot(label)
            mouth = 0.5 + 0.5 * np.sin(i * 0.7)
            scene = Scene(
                t=t,
                user=FacePose(weights=ex.vrm_from_probabilities(p), blink=blink_at(t, 0.3)),
                user_face_found=True,
                user_probabilities=p,
                user_label=label,
                agent=FacePose(
                    weights=ex.vrm_for_agent('happy'),
                    mouth_open=mouth,
                    visemes={'aa': mouth},
                    blink=blink_at(t, 0.7),
                ),
                agent_speaking=True,
                agent_level=mouth,
                caption=LONG_TEXT[:120],
                progress=(i % 100) / 100,
            )
            start = time.perf_counter()
            renderer.render(scene)
            times.append((time.perf_counter() - start) * 1e3)
        suffix = '' if width == 960 else f'_{width}x{height}'
        result[f'render_ms_per_frame{suffix}'] = round(float(np.mean(times)), 3)
        result[f'render_ms_p95{suffix}'] = round(float(np.percentile(times, 95)), 3)
    return result


def bench_graph(replies: int, fps: float, domain_id: int, barge_ins: int = 20) -> dict:
    """avatar_node as a process; replies one at a time from a probe node on the same DDS domain."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from agechat_msgs.msg import AvatarState, BargeIn, DialogueReply, SpeechState
    from audio_common_msgs.msg import AudioData
    from agechat_ros import qos
    from agechat_ros.time import time_to_ns

    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    node = subprocess.Popen(
        [sys.executable, '-m', 'avatar_node.node', '--ros-args', '-p', f'fps:={fps}'],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    probe = rclpy.create_node('avatar_bench_probe', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    lock = threading.Lock()
    speech, chunk_times, state_stamps, speech_times = [], [], [], {}

    def on_speech(msg):
        speech_times[id(msg)] = time.time_ns()
        speech.append(msg)

    probe.create_subscription(SpeechState, 'agechat/speech_state', on_speech, qos.LATCHED)
    probe.create_subscription(
        AudioData,
        'agechat/tts/audio',
        lambda m: chunk_times.append(time.time_ns()),
        qos.AUDIO_STREAM,
    )
    probe.create_subscription(
        AvatarState,
        'agechat/avatar/state',
        lambda m: state_stamps.append((time_to_ns(m.header.stamp), m.agent_speaking)),
        qos.EVENTS,
    )
    publisher = probe.create_publisher(DialogueReply, 'agechat/reply', qos.EVENTS)
    barge_publisher = probe.create_publisher(BargeIn, 'agechat/barge_in', qos.EVENTS)

    def spin():
        while context.ok():
            try:
                executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - the context was shut down between the check and the spin
                return

    spinning = threading.Thread(target=spin, daemon=True)
    spinning.start()
    try:
        deadline = time.monotonic() + 60
        while publisher.get_subscription_count() < 1 or not state_stamps:
            if node.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f'avatar_node did not come up: {node.stderr.read().decode(errors="replace")}'
                )
            time.sleep(0.05)
        time.sleep(3.0)  # idle frames
        node_ms, probe_ms = [], []
        for index in range(replies):
            uid = f'bench-{index}'
            with lock:
                chunk_times.clear()
            sent = time.time_ns()
            publisher.publish(
                DialogueReply(utterance_id=uid, reply_text=SENTENCE, age_group='adult')
            )
            deadline = time.monotonic() + 30
            while not any(m.utterance_id == uid and not m.speaking for m in list(speech)):
                if time.monotonic() > deadline:
                    raise RuntimeError(f'no end of speech for {uid}')
                time.sleep(0.01)
            start = [m for m in speech if m.utterance_id == uid and m.speaking][0]
            node_ms.append(
                (time_to_ns(start.first_audio_time) - time_to_ns(start.reply_received_time)) / 1e6
            )
            probe_ms.append((chunk_times[0] - sent) / 1e6)
        stamps = list(state_stamps)
        barge = _barge_in_trials(
            barge_ins, probe, publisher, barge_publisher, speech, speech_times, chunk_times
        )
    finally:
        node.send_signal(2)
        try:
            node.wait(10)
        except subprocess.TimeoutExpired:
            node.kill()
        executor.shutdown()
        probe.destroy_node()
        rclpy.shutdown(context=context)

    def rate(flag):
        times = np.array([t for t, speaking in stamps if speaking == flag], dtype=np.float64) / 1e9
        gaps = np.diff(times)
        gaps = gaps[gaps < 1.0]  # leave out the jumps between separate speaking spans
        return round(float(1.0 / np.mean(gaps)), 2) if len(gaps) else float('nan')

    result = _percentiles(node_ms, 'first_audio_ms')
    result.update(_percentiles(probe_ms, 'first_audio_sender_ms'))
    result.update(fps_target=fps, fps_idle=rate(False), fps_speaking=rate(True), replies=replies)
    result.update(barge)
    return result


def _barge_in_trials(
    trials, probe, publisher, barge_publisher, speech, speech_times, chunk_times
) -> dict:
    """Interrupt a long reply `trials` times, 0.3-1.0 s into its audio; time the stop."""
    from agechat_msgs.msg import BargeIn, DialogueReply

    from agechat_ros.time import time_to_ns

    node_ms, sender_ms, late_chunks, extra_chunks = [], [], [], []
    rng = np.random.default_rng(0)
    for index in range(trials):
        uid = f'barge-{index}'
        first_chunk = len(chunk_times)
        publisher.publish(DialogueReply(utterance_id=uid, reply_text=LONG_TEXT, age_group='adult'))
        deadline = time.monotonic() + 30
        while not any(m.utterance_id == uid and m.speaking for m in list(speech)):
            if time.monotonic() > deadline:
                raise RuntimeError(f'{uid} was not spoken')
            time.sleep(0.005)
        time.sleep(float(rng.uniform(0.3, 1.0)))  # somewhere in its first sentences
        msg = BargeIn(reply_utterance_id=uid, voice_probability=0.9)
        msg.header.stamp = probe.get_clock().now().to_msg()
        sent_ns = time_to_ns(msg.header.stamp)
        barge_publisher.publish(msg)
        deadline = time.monotonic() + 10
        while True:
            ends = [m for m in list(speech) if m.utterance_id == uid and not m.speaking]
            if ends:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f'{uid} was not interrupted')
            time.sleep(0.001)
        end = ends[0]
        if not end.interrupted:
            raise RuntimeError(f'{uid} ended without interrupted=true')
        node_ms.append((time_to_ns(end.header.stamp) - sent_ns) / 1e6)
        received_ns = speech_times[id(end)]
        sender_ms.append((received_ns - sent_ns) / 1e6)
        time.sleep(0.3)
        times = list(chunk_times)[first_chunk:]
        # received later than the stop: chunks sent before it can be taken later by this probe
        late_chunks.append(sum(1 for t in times if t > received_ns))
        # more chunks than the node had handed out when it cut the reply (audio_duration_s)
        extra_chunks.append(len(times) - int(round(end.audio_duration_s / 0.020)))
    result = _percentiles(node_ms, 'barge_in_stop_ms')
    result.update(_percentiles(sender_ms, 'barge_in_stop_sender_ms'))
    result.update(
        barge_in_stop_ms_max=round(float(np.max(node_ms)), 3),
        barge_in_trials=trials,
        barge_in_chunks_received_after_stop_max=int(np.max(late_chunks)),
        barge_in_chunks_beyond_cut_max=int(np.max(extra_chunks)),
    )
    return result


def main(argv=None) -> int:
    """Run the avatar_node benchmarks and write their JSON; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='out/bench/avatar.json')
    parser.add_argument(
        '--replies', type=int, default=20, help='one-sentence replies sent over DDS'
    )
    parser.add_argument('--fps', type=float, default=20.0)
    parser.add_argument(
        '--barge-ins', type=int, default=20, help='long replies interrupted by a BargeIn'
    )
    parser.add_argument('--graph-only', action='store_true', help='only the DDS measurements')
    parser.add_argument('--domain', type=int, default=int(os.environ.get('ROS_DOMAIN_ID') or 44))
    parser.add_argument('--pyttsx3-only', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pyttsx3_only:
        print(json.dumps(bench_pyttsx3(20)))
        return 0
    results = {
        'machine': f'{platform.node()} {platform.processor() or platform.machine()}, '
        f'{os.cpu_count()} CPUs (shared)'
    }
    results.update(bench_graph(args.replies, args.fps, args.domain, args.barge_ins))
    if args.graph_only:
        print(json.dumps(results, indent=2))
        return 0
    child = subprocess.run(
        [sys.executable, '-m', 'avatar_node.bench', '--pyttsx3-only'],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if child.returncode == 0:
        results.update(json.loads(child.stdout.strip().splitlines()[-1]))
    else:
        results['pyttsx3_error'] = child.stderr.strip()[-500:]
    results.update(bench_tts(30))
    results.update(bench_render(300))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + '\n')
    print(json.dumps(results, indent=2))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
