"""Deterministic generator of agechat's demo bag (MCAP).

The bag holds a camera with real faces and a microphone with several conversational turns from
voices of different age groups, separated by silences long enough for the agent to answer.

Faces come from images bundled in scikit-image (offline). Voices come either from age_node's
speech synthesiser (espeak-ng voices shaped by age: the default, so that the bag can be made on a
fresh clone with nothing else) or from real recordings listed in a manifest (``--voices DIR``
with ``DIR/manifest.csv``, columns ``path, transcript`` and optionally ``speaker_id,
age_group``). The same arguments always give the same bag.

    python -m agechat_tools.demo_bag out/demo/demo_bag [--voices ../shared/data/speech/korean]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from agechat_tools.bag import bag_qos, typestore_with_custom_types

SAMPLE_RATE = 16000
CHUNK_S = 0.02  # 20 ms microphone chunks, a typical capture period
FRAME_SIZE = (640, 480)  # camera width, height
CAMERA_TOPIC = '/camera/image_raw'
AUDIO_TOPIC = '/audio/audio'
AUDIO_INFO_TOPIC = '/audio/audio_info'
START_NS = 1_700_000_000 * 10**9  # fixed bag start time: identical bags on every run


#: What script.json's ``voices`` says of where the microphone's speech came from.
VOICES_SYNTHETIC = 'synthetic'
VOICES_RECORDED = 'recorded'
#: Age groups a recorded turn may be scripted with; other manifest labels give no expectation.
AGE_GROUPS = ('child', 'adult', 'senior')
#: Faces shown with recorded turns, in turn order.
RECORDED_FACES = ['astronaut', 'lfw:3', 'lfw:10', 'lfw:25', 'lfw:40', 'lfw:55']


@dataclass
class Turn:
    """One scripted user turn: who speaks, what, and the face shown.

    Synthetic turns are spoken by a voice of `age_group` made from `voice_seed`; recorded turns
    play the file `audio` (then `age_group` is the speaker's label, '' when not known).
    """

    age_group: str
    voice_seed: int
    text: str
    face: str
    audio: str = ''
    speaker: str = ''


def turns_from_voices(
    voices_dir: Path, count: int = 5, min_s: float = 1.5, max_s: float = 6.0
) -> List[Turn]:
    """Pick `count` recordings from `voices_dir/manifest.csv`, one per speaker, for a bag.

    The choice is fixed by the manifest alone (rows sorted by path, speakers taken in turn from
    each age group present, the first clip of each speaker between `min_s` and `max_s` seconds),
    never by how well anything recognises them; a sentence already taken is not taken again
    (read-speech sets give several speakers the same script). Raises ValueError naming what is
    missing.
    """
    from age_node.core.stt_eval import load_audio, read_manifest

    manifest = Path(voices_dir) / 'manifest.csv'
    if not manifest.is_file():
        raise ValueError(f'{voices_dir}: no manifest.csv (columns path, transcript)')
    by_group: dict = {}
    for row in read_manifest(manifest):
        group = row.get('age_group', '')
        speaker = row.get('speaker_id') or row['path']
        by_group.setdefault(group, {}).setdefault(speaker, []).append(row)
    queues = [list(speakers.values()) for _, speakers in sorted(by_group.items())]
    turns: List[Turn] = []
    said = set()
    while len(turns) < count and any(queues):
        for queue in queues:
            while queue and len(turns) < count:
                rows = queue.pop(0)
                chosen = None
                for row in rows:
                    if row['transcript'] in said:
                        continue
                    seconds = load_audio(row['audio_path']).size / SAMPLE_RATE
                    if min_s <= seconds <= max_s:
                        chosen = row
                        break
                if chosen:
                    said.add(chosen['transcript'])
                    group = chosen.get('age_group', '')
                    turns.append(
                        Turn(
                            age_group=group if group in AGE_GROUPS else '',
                            voice_seed=0,
                            text=chosen['transcript'],
                            face=RECORDED_FACES[len(turns) % len(RECORDED_FACES)],
                            audio=chosen['audio_path'],
                            speaker=chosen.get('speaker_id', ''),
                        )
                    )
                    break
    if len(turns) < count:
        raise ValueError(
            f'{manifest}: only {len(turns)} speakers have a clip of {min_s}-{max_s} s '
            f'(asked for {count})'
        )
    return turns


DEFAULT_TURNS = [
    Turn('child', 100001, '안녕! 나는 민준이야. 오늘 학교에서 축구 했어!', 'astronaut'),
    Turn('senior', 100002, '안녕하세요. 요즘 무릎이 아파서 걱정이에요.', 'lfw:3'),
    Turn('adult', 100003, '오늘 회사 일이 너무 많아서 피곤하네요.', 'lfw:10'),
    Turn('child', 100004, '나 배고파. 맛있는 거 먹고 싶어.', 'astronaut'),
    Turn('senior', 100005, '손주가 내일 놀러 온다고 해서 기뻐요.', 'lfw:25'),
]


def face_image(name: str) -> np.ndarray:
    """Return a BGR face picture from scikit-image's data ('astronaut' or 'lfw:<index>')."""
    from skimage import data

    if name == 'astronaut':
        rgb = data.astronaut()[20:260, 120:330]  # head and shoulders
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if name.startswith('lfw:'):
        grey = data.lfw_subset()[int(name[4:])]  # 25x25 float face crop
        grey = (np.clip(grey, 0, 1) * 255).astype(np.uint8)
        grey = cv2.resize(grey, (200, 200), interpolation=cv2.INTER_CUBIC)
        return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    raise ValueError(f'unknown face {name!r}')


def camera_frame(face: np.ndarray, t_s: float, rng: np.random.Generator) -> np.ndarray:
    """Return a 640x480 RGB camera frame at `t_s`.

    A soft room background, the face moving gently as a person does, and sensor noise.
    """
    width, height = FRAME_SIZE
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    background = (np.array([200, 190, 170], np.float32) * (0.85 + 0.15 * y)).repeat(width, axis=1)
    frame = background.astype(np.uint8)
    fh, fw = face.shape[:2]
    scale = 1.4 + 0.05 * np.sin(2 * np.pi * 0.1 * t_s)
    resized = cv2.resize(face, (int(fw * scale), int(fh * scale)), interpolation=cv2.INTER_LINEAR)
    rh, rw = resized.shape[:2]
    cx = width // 2 + int(25 * np.sin(2 * np.pi * 0.13 * t_s))
    cy = height // 2 + int(12 * np.sin(2 * np.pi * 0.21 * t_s))
    x0, y0 = max(0, cx - rw // 2), max(0, cy - rh // 2)
    x1, y1 = min(width, x0 + rw), min(height, y0 + rh)
    frame[y0:y1, x0:x1] = resized[: y1 - y0, : x1 - x0]
    noise = rng.normal(0, 3, frame.shape).astype(np.int16)
    frame = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def build_audio(turns: List[Turn], lead_in_s: float, reply_gap_s: float, rng: np.random.Generator):
    """Return the microphone signal and each turn's (start_s, end_s) of speech."""
    from age_node.core.stt_eval import load_audio
    from age_node.core.synth import synthesize_speech

    pieces, spans, t = [np.zeros(int(lead_in_s * SAMPLE_RATE), np.float32)], [], lead_in_s
    for turn in turns:
        if turn.audio:
            speech = load_audio(turn.audio)
        else:
            speech = synthesize_speech(
                turn.text, turn.age_group, turn.voice_seed, sample_rate=SAMPLE_RATE
            )
        speech = 0.5 * speech / max(1e-6, float(np.max(np.abs(speech))))
        spans.append((t, t + len(speech) / SAMPLE_RATE))
        pieces += [speech.astype(np.float32), np.zeros(int(reply_gap_s * SAMPLE_RATE), np.float32)]
        t += len(speech) / SAMPLE_RATE + reply_gap_s
    audio = np.concatenate(pieces)
    audio += rng.normal(0, 0.002, audio.shape).astype(
        np.float32
    )  # room noise floor (about -54 dBFS)
    return np.clip(audio, -1, 1), spans


def write_demo_bag(
    out: Path,
    turns: List[Turn] = DEFAULT_TURNS,
    fps: float = 15.0,
    lead_in_s: float = 2.0,
    reply_gap_s: float = 15.0,
    seed: int = 0,
) -> dict:
    """Write the bag to `out` (replacing it); return its script (turn times, topics) as a dict."""
    rng = np.random.default_rng(seed)
    audio, spans = build_audio(turns, lead_in_s, reply_gap_s, rng)
    duration_s = len(audio) / SAMPLE_RATE
    store = get_typestore(Stores.ROS2_KILTED)
    custom = typestore_with_custom_types()
    if out.exists():
        shutil.rmtree(out)
    Image = store.types['sensor_msgs/msg/Image']
    Header = store.types['std_msgs/msg/Header']
    Time = store.types['builtin_interfaces/msg/Time']
    AudioData = custom.types['audio_common_msgs/msg/AudioData']
    AudioInfo = custom.types['audio_common_msgs/msg/AudioInfo']
    faces = {t.face: face_image(t.face) for t in turns}

    def face_at(t_s: float) -> str:
        for turn, (start, _end) in zip(reversed(turns), reversed(spans), strict=True):
            if t_s >= start - 1.0:
                return turn.face
        return turns[0].face

    with Writer(out, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        # QoS as a camera driver (sensor data) and an audio_common capture node would offer them.
        camera = writer.add_connection(
            CAMERA_TOPIC,
            'sensor_msgs/msg/Image',
            typestore=store,
            offered_qos_profiles=[bag_qos(reliable=False, depth=5)],
        )
        mic = writer.add_connection(
            AUDIO_TOPIC,
            'audio_common_msgs/msg/AudioData',
            typestore=custom,
            offered_qos_profiles=[bag_qos(reliable=True, depth=1000)],
        )
        info = writer.add_connection(
            AUDIO_INFO_TOPIC,
            'audio_common_msgs/msg/AudioInfo',
            typestore=custom,
            offered_qos_profiles=[bag_qos(reliable=True, transient_local=True, depth=1)],
        )
        writer.write(
            info,
            START_NS,
            custom.serialize_cdr(
                AudioInfo(
                    channels=1,
                    sample_rate=SAMPLE_RATE,
                    sample_format='S16LE',
                    bitrate=SAMPLE_RATE * 16,
                    coding_format='pcm',
                ),
                'audio_common_msgs/msg/AudioInfo',
            ),
        )
        events = [(i / fps, 'frame') for i in range(int(duration_s * fps))]
        chunk = int(CHUNK_S * SAMPLE_RATE)
        events += [
            ((i + 1) * CHUNK_S, 'audio') for i in range(len(audio) // chunk)
        ]  # stamped when complete
        events.sort(key=lambda e: (e[0], e[1]))
        frame_index = audio_index = 0
        for t_s, kind in events:
            t_ns = START_NS + int(round(t_s * 1e9))
            if kind == 'frame':
                rgb = camera_frame(faces[face_at(t_s)], t_s, rng)
                stamp = Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9)
                msg = Image(
                    header=Header(stamp=stamp, frame_id='camera'),
                    height=FRAME_SIZE[1],
                    width=FRAME_SIZE[0],
                    encoding='rgb8',
                    is_bigendian=0,
                    step=FRAME_SIZE[0] * 3,
                    data=rgb.reshape(-1),
                )
                writer.write(camera, t_ns, store.serialize_cdr(msg, 'sensor_msgs/msg/Image'))
                frame_index += 1
            else:
                pcm = np.clip(
                    np.round(audio[audio_index : audio_index + chunk] * 32767), -32768, 32767
                ).astype('<i2')
                audio_index += chunk
                writer.write(
                    mic,
                    t_ns,
                    custom.serialize_cdr(
                        AudioData(data=pcm.view(np.uint8)), 'audio_common_msgs/msg/AudioData'
                    ),
                )
    script = {
        'voices': VOICES_RECORDED if any(t.audio for t in turns) else VOICES_SYNTHETIC,
        'duration_s': duration_s,
        'fps': fps,
        'sample_rate': SAMPLE_RATE,
        'frames': frame_index,
        'topics': {'camera': CAMERA_TOPIC, 'audio': AUDIO_TOPIC, 'audio_info': AUDIO_INFO_TOPIC},
        'turns': [
            dict(asdict(turn), speech_start_s=s, speech_end_s=e)
            for turn, (s, e) in zip(turns, spans, strict=True)
        ],
    }
    (out / 'script.json').write_text(json.dumps(script, ensure_ascii=False, indent=2))
    return script


def main(argv=None) -> int:
    """Write the demo bag from the command line; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out', type=Path)
    parser.add_argument('--fps', type=float, default=15.0)
    parser.add_argument(
        '--reply-gap', type=float, default=15.0, help='silence after each turn [s]'
    )
    parser.add_argument(
        '--voices',
        type=Path,
        help='folder with manifest.csv (path, transcript[, speaker_id, age_group]): real '
        'recordings instead of synthetic voices',
    )
    parser.add_argument('--turns', type=int, default=5, help='turns taken from --voices')
    args = parser.parse_args(argv)
    turns = turns_from_voices(args.voices, args.turns) if args.voices else DEFAULT_TURNS
    script = write_demo_bag(args.out, turns, fps=args.fps, reply_gap_s=args.reply_gap)
    print(
        f"wrote {args.out}: {script['duration_s']:.1f} s, {script['frames']} frames, "
        f"{len(script['turns'])} turns"
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
