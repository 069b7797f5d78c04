"""Run the whole agechat graph on a bag.

Launch it from the launch file, replay the bag into it, record its outputs into an output bag, and
stop it cleanly. Used by `make demo`, the end-to-end test and the end-to-end benchmark.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO / 'launch' / 'agechat.launch.xml'

#: What the graph publishes (recorded into the output bag).
OUTPUT_TOPICS = [
    '/agechat/utterance',
    '/agechat/age',
    '/agechat/face_emotion',
    '/agechat/reply',
    '/agechat/speech_state',
    '/agechat/tts/audio',
    '/agechat/tts/audio_info',
    '/agechat/avatar/image',
    '/agechat/avatar/state',
    '/audio/audio',
    '/audio/audio_info',  # the microphone as the graph heard it (for the report's soundtrack)
]
#: The real-voice bag of the end-to-end test and benchmark: five speakers of the folder given to
#: ensure_demo_bag, a 5 fps camera (the face pipeline only has to be busy), and 15 s after each
#: turn: the spoken reply of a senior (하십시오체, slow voice) takes up to ~9 s, and the microphone
#: is ignored while the agent speaks (with 10 s a turn was lost to that).
VOICES_E2E_BAG = REPO / 'out' / 'cache' / 'voices_bag_e2e'
VOICES_E2E_OPTIONS = {'turns': 5, 'fps': 5.0, 'reply_gap_s': 15.0}
#: Inputs the graph must be subscribed to before the bag starts.
INPUT_TOPICS = ['/camera/image_raw', '/audio/audio', '/audio/audio_info']


@dataclass
class GraphRun:
    """What one run produced."""

    output_bag: Path
    launch_status: Dict[str, dict]
    log_dir: Path
    recorded_counts: Dict[str, int]
    bag_duration_s: float
    wall_s: float
    replay_start_ns: int = 0  # wall clock (ns) when the first bag message was published


def _sources_digest(paths: List[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes() if path.is_file() else b'')
    return digest.hexdigest()[:16]


def ensure_demo_bag(
    path: Path,
    log: Callable[[str], None] = print,
    voices: Optional[Path] = None,
    turns: int = 5,
    **bag_options,
) -> Path:
    """Generate the demo bag at `path` unless an identical one (same generator inputs) is there.

    Without `voices` the turns are the synthetic default ones; with it, `turns` recordings are
    taken from `voices/manifest.csv` (see :func:`agechat_tools.demo_bag.turns_from_voices`).
    `bag_options` go to :func:`agechat_tools.demo_bag.write_demo_bag` (fps, reply_gap_s, ...).
    """
    from agechat_tools import demo_bag
    import age_node.core.synth as synth

    sources = [Path(demo_bag.__file__), Path(synth.__file__)]
    if voices is not None:
        sources.append(Path(voices) / 'manifest.csv')
    digest = (
        _sources_digest(sources)
        + hashlib.sha256(
            json.dumps([str(voices), turns, bag_options], sort_keys=True).encode()
        ).hexdigest()[:8]
    )
    script = path / 'script.json'
    if script.is_file() and json.loads(script.read_text()).get('generator_digest') == digest:
        return path
    log(f'generating the demo bag in {path} ...')
    started = time.monotonic()
    chosen = demo_bag.turns_from_voices(voices, turns) if voices else demo_bag.DEFAULT_TURNS
    info = demo_bag.write_demo_bag(path, chosen, **bag_options)
    info['generator_digest'] = digest
    script.write_text(json.dumps(info, ensure_ascii=False, indent=2))
    log(
        f'demo bag: {info["duration_s"]:.1f} s, {len(info["turns"])} turns '
        f'({info["voices"]} voices, {time.monotonic() - started:.0f} s)'
    )
    return path


def _script_of(bag: Path) -> Optional[dict]:
    script = Path(bag) / 'script.json'
    return json.loads(script.read_text()) if script.is_file() else None


def synthetic_voices_age_model() -> Path:
    """Return age_node's log-mel CNN trained on espeak-ng voices (installed share, else source)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory('age_node')) / 'models' / 'age_cnn.safetensors'
    except Exception:  # noqa: BLE001 - workspace not sourced: the source tree
        return REPO / 'src' / 'age_node' / 'models' / 'age_cnn.safetensors'


def launch_args_for(script: Optional[dict], work_dir: Path) -> List[str]:
    """Launch arguments a bag needs: synthetic (espeak-ng) voices are run with vosk and the CNN.

    Whisper, the default engine, reads no espeak-ng Korean and its guards return no text for
    it, so a synthetic bag would get no replies; vosk always returns words (unrelated ones),
    which keeps the synthetic demo's turns answered. The default age model is trained on real
    voices; espeak's are read by the CNN trained on them, set in a copy of the parameter file
    written to `work_dir`. Recorded voices run the defaults.
    """
    import yaml

    from agechat_tools.demo_bag import VOICES_SYNTHETIC

    if not script or script.get('voices', VOICES_SYNTHETIC) != VOICES_SYNTHETIC:
        return []
    params = yaml.safe_load((REPO / 'config' / 'agechat.yaml').read_text())
    params['age_node']['ros__parameters']['age_model_path'] = str(synthetic_voices_age_model())
    path = Path(work_dir) / 'params_synthetic_voices.yaml'
    path.write_text(yaml.safe_dump(params, allow_unicode=True))
    return ['stt_engine:=vosk', f'params_file:={path}']


def run_graph_on_bag(
    bag: Path,
    out_dir: Path,
    launch_args: Optional[List[str]] = None,
    rate: float = 1.0,
    startup_timeout_s: float = 180.0,
    drain_timeout_s: float = 60.0,
    log: Callable[[str], None] = print,
    show_progress: bool = True,
) -> GraphRun:
    """Launch the graph, replay `bag` into it, record OUTPUT_TOPICS to out_dir/output_bag, stop.

    `launch_args` default to what the bag's script.json needs (:func:`launch_args_for`).
    """
    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    from agechat_msgs.msg import SpeechState
    from agechat_ros.qos import LATCHED
    from agechat_tools.bag import BagPlayer, BagRecorder
    from agechat_ros.processes import interrupt_then_kill
    from agechat_tools.processes import stop_signals_ignored

    out_dir.mkdir(parents=True, exist_ok=True)
    output_bag = out_dir / 'output_bag'
    if output_bag.exists():
        import shutil

        shutil.rmtree(output_bag)
    log_dir = out_dir / 'logs'
    status_file = out_dir / 'launch_status.json'
    domain_id = int(os.environ.get('ROS_DOMAIN_ID') or random.randint(1, 100))
    env = dict(
        os.environ,
        ROS_DOMAIN_ID=str(domain_id),
        ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
        PYTHONUNBUFFERED='1',
    )
    command = [
        sys.executable,
        '-m',
        'agechat_tools.launch_xml',
        str(LAUNCH_FILE),
        *(launch_args if launch_args is not None else launch_args_for(_script_of(bag), out_dir)),
        '--log-dir',
        str(log_dir),
        '--status-file',
        str(status_file),
        '--quiet',
    ]
    started = time.monotonic()
    launcher = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    launcher_output: List[str] = []
    threading.Thread(
        target=lambda: launcher_output.extend(
            line.decode(errors='replace') for line in iter(launcher.stdout.readline, b'')
        ),
        daemon=True,
    ).start()

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    node = rclpy.create_node('agechat_graph_run', context=context)
    executor = MultiThreadedExecutor(num_threads=3, context=context)
    executor.add_node(node)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    speech_states: List = []
    node.create_subscription(SpeechState, '/agechat/speech_state', speech_states.append, LATCHED)
    recorder = player = None
    try:
        recorder = BagRecorder(node, output_bag, OUTPUT_TOPICS)
        player = BagPlayer(node, bag, rate=rate, restamp=True)
        log(f'starting the graph (ROS_DOMAIN_ID={domain_id}); waiting for all nodes ...')
        deadline = time.monotonic() + startup_timeout_s
        inputs = [t for t in INPUT_TOPICS if t in player.publishers]
        while True:
            missing = recorder.discover()
            unmatched = [t for t in inputs if player.publishers[t].get_subscription_count() < 1]
            if not missing and not unmatched:
                break
            if launcher.poll() is not None:
                raise RuntimeError(
                    'the launcher exited during start-up:\n' + ''.join(launcher_output[-50:])
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f'graph not ready after {startup_timeout_s:.0f} s: no publisher on {missing}, '
                    f'no subscriber on {unmatched}; logs in {log_dir}'
                )
            time.sleep(0.2)
        log(
            f'graph ready after {time.monotonic() - started:.1f} s; '
            f'replaying {bag.name} ({player.duration_s:.1f} s)'
        )
        replay_start_ns = time.time_ns()
        if show_progress:
            from tqdm import tqdm

            bar = tqdm(
                total=round(player.duration_s, 1),
                unit='s',
                desc='replay',
                leave=True,
                bar_format='{l_bar}{bar}| {n:.1f}/{total:.1f} s {postfix}',
                mininterval=1.0,
            )

            def progress(t_s: float) -> None:
                bar.n = round(min(t_s, player.duration_s), 1)
                bar.set_postfix_str(
                    f'utterances {recorder.counts["/agechat/utterance"]}, '
                    f'replies {recorder.counts["/agechat/reply"]}',
                    refresh=True,
                )

            player.play(progress)
            bar.n = bar.total
            bar.close()
        else:
            player.play()
        # Drain: every utterance answered and the agent done speaking (or time out).
        deadline = time.monotonic() + drain_timeout_s
        while time.monotonic() < deadline:
            answered = recorder.counts['/agechat/reply'] >= recorder.counts['/agechat/utterance']
            quiet = not speech_states or not speech_states[-1].speaking
            if answered and quiet:
                break
            time.sleep(0.2)
        time.sleep(1.0)  # the last frames/state in flight
        return_value = GraphRun(
            output_bag=output_bag,
            launch_status={},
            log_dir=log_dir,
            recorded_counts=dict(recorder.counts),
            bag_duration_s=player.duration_s,
            wall_s=0.0,
            replay_start_ns=replay_start_ns,
        )
    finally:
        with stop_signals_ignored():  # a second Ctrl-C must not orphan the graph
            if recorder is not None:
                recorder.close()
            if player is not None:
                player.close()
            interrupt_then_kill(launcher, 30)
            rclpy.try_shutdown(context=context)
            spin.join(5)
            executor.shutdown()
            node.destroy_node()
    return_value.launch_status = (
        json.loads(status_file.read_text()) if status_file.exists() else {}
    )
    return_value.wall_s = time.monotonic() - started
    (out_dir / 'launcher.log').write_text(''.join(launcher_output))
    (out_dir / 'run.json').write_text(
        json.dumps(
            {
                'input_bag': str(bag),
                'output_bag': str(output_bag),
                'replay_start_ns': return_value.replay_start_ns,
                'bag_duration_s': return_value.bag_duration_s,
                'wall_s': return_value.wall_s,
                'recorded_counts': return_value.recorded_counts,
                'launch_status': return_value.launch_status,
            },
            indent=2,
        )
    )
    return return_value
