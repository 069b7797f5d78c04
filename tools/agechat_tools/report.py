"""Turn a recorded agechat run (output bag + input bag) into a report a person can read.

Writes into the run's folder: report.html (open in a browser: video, timeline, charts),
report.md (the same tables for a terminal or a git forge), latency.png, emotion.png,
avatar.mp4 (avatar frames with the user's voice and the agent's TTS), turn_<n>.png keyframes and
turns.json (the per-turn data, also used by the end-to-end test and benchmark).
"""

from __future__ import annotations

import functools
import html
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from rosbags.highlevel import AnyReader

NS = 1_000_000_000
MIC_TOPIC = '/audio/audio'
MIC_INFO_TOPIC = '/audio/audio_info'

#: Stages of one turn, each a (label, start field, end field) over the per-turn instants (ns).
STAGES = [
    ('end_of_speech_wait', 'speech_end', 'vad_closed'),
    ('stt_final', 'vad_closed', 'stt_done'),
    ('age', 'vad_closed', 'age_done'),
    ('to_generation', 'stt_done', 'generation_start'),
    ('generation', 'generation_start', 'generation_end'),
    ('reply_to_first_audio', 'generation_end', 'first_audio'),
]
#: Stages on the critical path from the VAD closing the utterance to the first TTS audio.
CRITICAL_PATH = ['stt_final', 'to_generation', 'generation', 'reply_to_first_audio']


def _ns(stamp) -> int:
    return int(stamp.sec) * NS + int(stamp.nanosec)


@dataclass
class Turn:
    """One user utterance and everything the graph did with it."""

    utterance_id: str
    text: str = ''
    stt_confidence: float = 0.0
    truncated: bool = False
    age_group: str = ''
    age_confidence: float = 0.0
    age_unsure: bool = False
    estimated_age: float = 0.0
    age_probabilities: List[float] = field(default_factory=list)
    emotion: str = ''
    emotion_confidence: float = 0.0
    emotion_source: str = ''
    age_source: str = ''
    reply: str = ''
    reply_age_group: str = ''
    new_tokens: int = 0
    tts_duration_s: float = 0.0
    expected_age_group: str = ''
    scripted_text: str = ''
    stt_cer: Optional[float] = None  # heard vs scripted text, for recorded voices only
    times: Dict[str, int] = field(default_factory=dict)  # instants in ns (wall clock)

    def stage_ms(self) -> Dict[str, float]:
        """Duration of every stage whose two instants are known, in ms."""
        out = {}
        for label, start, end in STAGES:
            if self.times.get(start) and self.times.get(end):
                out[label] = (self.times[end] - self.times[start]) / 1e6
        if self.times.get('vad_closed') and self.times.get('first_audio'):
            out['e2e'] = (self.times['first_audio'] - self.times['vad_closed']) / 1e6
        return out


@dataclass
class RunData:
    """Everything read from the output bag.

    The time series stay out of the repr: a failing test's assertion message prints the object,
    and gigabytes of raw frames as text would exhaust the memory.
    """

    turns: List[Turn]
    emotions: List[tuple] = field(repr=False)  # (t_ns, label, confidence, face, probabilities)
    avatar_frames: List[tuple] = field(repr=False)  # (t_ns, raw CDR message) — decoded lazily
    tts_chunks: List[tuple] = field(repr=False)  # (t_ns, int16 samples)
    tts_rate: int
    # (t_ns, int16 samples) of the microphone input, as the graph received it
    mic_chunks: List[tuple] = field(repr=False)
    mic_rate: int
    first_ns: int
    last_ns: int


def read_run(output_bag: Path, script: Optional[dict] = None, replay_start_ns: int = 0) -> RunData:
    """Read the output bag into per-turn records and time series.

    With the bag's `script` and the wall time the replay started, each heard utterance is matched
    to the scripted turn whose speech it overlaps (for the expected age group and the words
    spoken).
    """
    turns: Dict[str, Turn] = {}
    order: List[str] = []
    emotions, frames, chunks, mic = [], [], [], []
    tts_rate = mic_rate = 16000
    first_ns, last_ns = None, 0

    def turn(uid: str) -> Turn:
        if uid not in turns:
            turns[uid] = Turn(uid)
            order.append(uid)
        return turns[uid]

    with AnyReader([output_bag]) as reader:
        for connection, t_ns, raw in reader.messages():
            first_ns = t_ns if first_ns is None else min(first_ns, t_ns)
            last_ns = max(last_ns, t_ns)
            topic = connection.topic
            if topic == '/agechat/avatar/image':
                frames.append((t_ns, raw))
                continue
            msg = reader.deserialize(raw, connection.msgtype)
            if topic == '/agechat/utterance':
                item = turn(msg.utterance_id)
                item.text, item.stt_confidence, item.truncated = (
                    msg.text,
                    msg.confidence,
                    msg.truncated,
                )
                item.times.update(
                    speech_start=_ns(msg.speech_start),
                    speech_end=_ns(msg.speech_end),
                    vad_closed=_ns(msg.vad_closed_time),
                    stt_done=_ns(msg.stt_done_time),
                )
            elif topic == '/agechat/age':
                item = turn(msg.utterance_id)
                item.age_group, item.age_confidence = msg.group_label, msg.confidence
                item.age_unsure = bool(msg.unsure)
                item.estimated_age = msg.estimated_age_years
                item.age_probabilities = [float(p) for p in msg.group_probabilities]
                item.times['age_done'] = _ns(msg.inference_done_time)
            elif topic == '/agechat/reply':
                item = turn(msg.utterance_id)
                item.reply, item.reply_age_group = msg.reply_text, msg.age_group
                item.emotion, item.emotion_confidence = msg.emotion, msg.emotion_confidence
                item.emotion_source, item.age_source, item.new_tokens = (
                    msg.emotion_source,
                    msg.age_source,
                    msg.new_tokens,
                )
                item.times.update(
                    generation_start=_ns(msg.generation_start_time),
                    generation_end=_ns(msg.generation_end_time),
                    reply_published=_ns(msg.header.stamp),
                )
            elif topic == '/agechat/speech_state':
                if msg.utterance_id and msg.utterance_id in turns:
                    item = turns[msg.utterance_id]
                    if _ns(msg.first_audio_time):
                        item.times['first_audio'] = _ns(msg.first_audio_time)
                    item.tts_duration_s = max(item.tts_duration_s, float(msg.audio_duration_s))
            elif topic == '/agechat/face_emotion':
                emotions.append(
                    (
                        t_ns,
                        msg.emotion_label,
                        float(msg.confidence),
                        bool(msg.face_found),
                        [float(p) for p in msg.probabilities],
                    )
                )
            elif topic == '/agechat/tts/audio':
                chunks.append((t_ns, np.frombuffer(bytes(msg.data), '<i2').copy()))
            elif topic == '/agechat/tts/audio_info':
                tts_rate = int(msg.sample_rate)
            elif topic == MIC_TOPIC:
                mic.append((t_ns, np.frombuffer(bytes(msg.data), '<i2').copy()))
            elif topic == MIC_INFO_TOPIC:
                mic_rate = int(msg.sample_rate)
    ordered = [
        turns[uid] for uid in order if turns[uid].times.get('vad_closed') or turns[uid].reply
    ]
    ordered.sort(key=lambda t: t.times.get('speech_start', 0))
    if script and replay_start_ns:
        for item in ordered:
            scripted = _scripted_turn(item, script, replay_start_ns)
            if scripted:
                item.expected_age_group, item.scripted_text = (
                    scripted['age_group'],
                    scripted['text'],
                )
                if script.get('voices') == 'recorded':
                    from age_node.core.stt_eval import cer

                    item.stt_cer = cer(item.scripted_text, item.text)
    return RunData(
        ordered, emotions, frames, chunks, tts_rate, mic, mic_rate, first_ns or 0, last_ns
    )


def _scripted_turn(item: Turn, script: dict, replay_start_ns: int) -> Optional[dict]:
    """Return the scripted turn whose speech overlaps the utterance most (None when none does)."""
    if not item.times.get('speech_start') or not item.times.get('speech_end'):
        return None
    start = (item.times['speech_start'] - replay_start_ns) / NS
    end = (item.times['speech_end'] - replay_start_ns) / NS
    best, best_overlap = None, 0.0
    for scripted in script.get('turns', []):
        overlap = min(end, scripted['speech_end_s']) - max(start, scripted['speech_start_s'])
        if overlap > best_overlap:
            best, best_overlap = scripted, overlap
    return best


def heard_vs_said_cer(turns: List[Turn]) -> Optional[float]:
    """Character error rate over all turns with a CER (edits / reference characters), or None."""
    from age_node.core.stt_eval import normalize_text

    scored = [t for t in turns if t.stt_cer is not None]
    if not scored:
        return None
    chars = [max(1, len(normalize_text(t.scripted_text))) for t in scored]
    return sum(t.stt_cer * n for t, n in zip(scored, chars, strict=True)) / sum(chars)


def percentile(values: List[float], q: float) -> float:
    """Return the q-th percentile (0..100) of values, NaN when empty."""
    return float(np.percentile(values, q)) if values else float('nan')


def latency_summary(turns: List[Turn]) -> dict:
    """p50/p95 of e2e and of every stage over the turns, in ms."""
    per_stage: Dict[str, List[float]] = {}
    for item in turns:
        for label, value in item.stage_ms().items():
            per_stage.setdefault(label, []).append(value)
    summary = {'turns': len(turns)}
    for label, values in per_stage.items():
        summary[f'{label}_ms_p50'] = percentile(values, 50)
        summary[f'{label}_ms_p95'] = percentile(values, 95)
    return summary


# -------------------------------------------------------------------------------------------------
# Pictures and video


@functools.lru_cache(maxsize=1)
def _standard_typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def _decode_frame(raw) -> np.ndarray:
    """Decode a recorded sensor_msgs/Image (bgr8 or rgb8) into a BGR array."""
    msg = _standard_typestore().deserialize_cdr(bytes(raw), 'sensor_msgs/msg/Image')
    pixels = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[
        :, : msg.width * 3
    ]
    pixels = pixels.reshape(msg.height, msg.width, 3)
    return pixels[:, :, ::-1].copy() if msg.encoding == 'rgb8' else pixels.copy()


def latency_chart(turns: List[Turn], path: Path) -> None:
    """Stacked bars of the critical-path stages per turn, with the e2e total."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=110)
    labels = [f'{i + 1}: {t.age_group or "?"}' for i, t in enumerate(turns)]
    bottom = np.zeros(len(turns))
    colours = ['#4C72B0', '#DD8452', '#55A868', '#C44E52']
    for stage, colour in zip(CRITICAL_PATH, colours, strict=True):
        values = np.array([t.stage_ms().get(stage, 0.0) for t in turns])
        ax.bar(labels, values, bottom=bottom, label=stage.replace('_', ' '), color=colour)
        bottom += values
    for x, item in enumerate(turns):
        e2e = item.stage_ms().get('e2e')
        if e2e is not None:
            ax.text(x, bottom[x], f'{e2e:.0f} ms', ha='center', va='bottom', fontsize=8)
    ax.set_ylabel('ms after the VAD closed the utterance')
    ax.set_title('Speech end (VAD) → first TTS audio, per turn')
    ax.legend(fontsize=7, loc='upper left', ncol=2)
    ax.margins(y=0.15)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def emotion_chart(data: RunData, path: Path, start_ns: int) -> None:
    """Plot the user's smoothed emotion probabilities over time, with the turns marked."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    labels = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral']
    fig, ax = plt.subplots(figsize=(8, 2.8), dpi=110)
    if data.emotions:
        t = np.array([(e[0] - start_ns) / NS for e in data.emotions])
        probs = np.array([e[4] for e in data.emotions])
        colours = ['#d62728', '#2ca02c', '#9467bd', '#f2c12e', '#1f77b4', '#ff7f0e', '#b0b0b0']
        ax.stackplot(t, probs.T, labels=labels, colors=colours, alpha=0.9)
    for i, item in enumerate(data.turns):
        if item.times.get('speech_start'):
            x = (item.times['speech_start'] - start_ns) / NS
            ax.axvline(x, color='k', lw=0.8, ls='--')
            ax.text(x, 1.02, str(i + 1), fontsize=8, ha='center')
    ax.set_ylim(0, 1)
    ax.set_xlabel('time since the replay started [s]')
    ax.set_ylabel('P(emotion)')
    ax.legend(fontsize=6, ncol=7, loc='lower center', bbox_to_anchor=(0.5, -0.55))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _place(
    track: np.ndarray, rate: int, t0_ns: int, t_ns: int, samples: np.ndarray, cursor: int
) -> int:
    start = max(int((t_ns - t0_ns) / NS * rate), cursor)
    end = min(len(track), start + len(samples))
    if end > start:
        track[start:end] += samples[: end - start]
    return start + len(samples)


def soundtrack(data: RunData, start_ns: int, duration_s: float, rate: int = 16000) -> np.ndarray:
    """Mix the user's microphone and the agent's TTS into one track.

    Both are placed as the graph received or published them.
    """
    import torch
    import torchaudio.functional as F

    track = np.zeros(int(duration_s * rate) + rate, np.float32)
    for chunks, chunk_rate, gain in (
        (data.mic_chunks, data.mic_rate, 0.8),
        (data.tts_chunks, data.tts_rate, 1.0),
    ):
        source = np.zeros(
            int(duration_s * chunk_rate) + chunk_rate, np.float32
        )  # at the source's own rate
        cursor = 0
        for t_ns, pcm in chunks:
            samples = pcm.astype(np.float32) / 32768 * gain
            # a chunk is received when it is complete: it began len/rate earlier
            cursor = _place(
                source,
                chunk_rate,
                start_ns,
                t_ns - int(len(samples) / chunk_rate * NS),
                samples,
                cursor,
            )
        if chunk_rate != rate:
            source = F.resample(torch.from_numpy(source), chunk_rate, rate).numpy()
        length = min(len(track), len(source))
        track[:length] += source[:length]
    return np.clip(track, -1, 1)


def avatar_video(
    data: RunData,
    audio: np.ndarray,
    audio_rate: int,
    start_ns: int,
    duration_s: float,
    path: Path,
    fps: int = 15,
) -> bool:
    """Encode the avatar frames (sampled at `fps` by time) with the soundtrack into an mp4.

    Return False when there are no frames.
    """
    import wave

    if not data.avatar_frames:
        return False
    wav_path = path.with_suffix('.wav')
    with wave.open(str(wav_path), 'wb') as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(audio_rate)
        wav.writeframes((audio * 32767).astype('<i2').tobytes())
    first = _decode_frame(data.avatar_frames[0][1])
    height, width = first.shape[:2]
    command = [
        'ffmpeg',
        '-y',
        '-loglevel',
        'error',
        '-f',
        'rawvideo',
        '-pix_fmt',
        'bgr24',
        '-s',
        f'{width}x{height}',
        '-r',
        str(fps),
        '-i',
        '-',
        '-i',
        str(wav_path),
        '-c:v',
        'libx264',
        '-pix_fmt',
        'yuv420p',
        '-preset',
        'veryfast',
        '-crf',
        '26',
        '-c:a',
        'aac',
        '-b:a',
        '96k',
        '-shortest',
        str(path),
    ]
    encoder = subprocess.Popen(command, stdin=subprocess.PIPE)
    times = np.array([f[0] for f in data.avatar_frames])
    index, current = -1, first
    for k in range(int(duration_s * fps)):
        t = start_ns + int(k / fps * NS)
        latest = int(np.searchsorted(times, t, side='right')) - 1
        if latest >= 0 and latest != index:
            index = latest
            current = _decode_frame(data.avatar_frames[index][1])
        encoder.stdin.write(current.tobytes())
    encoder.stdin.close()
    return encoder.wait() == 0


def keyframes(data: RunData, out_dir: Path) -> List[Optional[str]]:
    """Save, for each turn, the avatar frame half a second after its first TTS audio.

    That frame shows the agent speaking. Return the file names (None for a turn without audio).
    """
    import cv2

    names: List[Optional[str]] = []
    times = np.array([f[0] for f in data.avatar_frames]) if data.avatar_frames else np.array([])
    for i, item in enumerate(data.turns):
        t = item.times.get('first_audio')
        if not t or not len(times):
            names.append(None)
            continue
        index = min(len(times) - 1, int(np.searchsorted(times, t + NS // 2)))
        frame = _decode_frame(data.avatar_frames[index][1])
        name = f'turn_{i + 1}.png'
        cv2.imwrite(str(out_dir / name), frame)
        names.append(name)
    return names


# -------------------------------------------------------------------------------------------------
# The documents


def _fmt_num(value: Optional[float]) -> str:
    return '–' if value is None or value != value else f'{value:.0f}'


def write_report(
    out_dir: Path, output_bag: Path, run: dict, script: Optional[dict] = None
) -> dict:
    """Write the report files into out_dir and return the summary (also saved as turns.json)."""
    data = read_run(output_bag, script, run.get('replay_start_ns', 0))
    start_ns = run.get('replay_start_ns') or data.first_ns
    duration_s = max((data.last_ns - start_ns) / NS, run.get('bag_duration_s', 0))
    summary = latency_summary(data.turns)
    expected = [t for t in data.turns if t.expected_age_group]
    summary['age_correct'] = sum(t.age_group == t.expected_age_group for t in expected)
    summary['age_scripted'] = len(expected)
    summary['stt_cer'] = heard_vs_said_cer(data.turns)
    summary['voices'] = (script or {}).get('voices', 'synthetic')
    summary['face_emotion_messages'] = len(data.emotions)
    summary['avatar_frames'] = len(data.avatar_frames)
    summary['tts_chunks'] = len(data.tts_chunks)
    summary['scripted_turns'] = len(script.get('turns', [])) if script else None

    latency_chart(data.turns, out_dir / 'latency.png')
    emotion_chart(data, out_dir / 'emotion.png', start_ns)
    frames = keyframes(data, out_dir)
    audio = soundtrack(data, start_ns, duration_s)
    has_video = avatar_video(data, audio, 16000, start_ns, duration_s, out_dir / 'avatar.mp4')

    turns_json = []
    for item in data.turns:
        turns_json.append(
            {
                **{k: v for k, v in item.__dict__.items() if k != 'times'},
                'times_ns': item.times,
                'stage_ms': item.stage_ms(),
            }
        )
    (out_dir / 'turns.json').write_text(
        json.dumps({'summary': summary, 'turns': turns_json}, ensure_ascii=False, indent=2)
    )
    status = run.get('launch_status', {})
    _write_markdown(out_dir / 'report.md', data, summary, status, frames, has_video, start_ns)
    _write_html(out_dir / 'report.html', data, summary, status, frames, has_video, start_ns)
    return summary


INTRO = (
    'agechat listened to a recorded conversation (a rosbag with a camera and a microphone), '
    'estimated each speaker\'s age group from the voice, read the face\'s emotion from the '
    'camera, and answered in Korean in the register that fits the listener — friendly 반말 '
    'for a child, polite 해요체 for an adult, respectful 하십시오체 for a senior — then '
    'spoke the answer with TTS while two avatars mirrored the user and spoke for the agent.'
)


NOTE_ON_RECORDED_VOICES = (
    'The voices are real recordings (the manifest given with VOICES=). "said" is the manifest\'s '
    'transcript, "heard" what the recogniser (Whisper by default) published, with its character '
    'error rate (CER, spaces and punctuation ignored; numbers compared as written).'
)

NOTE_ON_STT = (
    'The demo voices are synthetic (espeak-ng voices shaped by age, so that the bag can be '
    'generated offline): the age model hears them well, but the offline Korean recogniser (vosk) '
    'cannot read espeak\'s Korean, so "heard" is mostly unrelated words, and the replies answer '
    'those words (Whisper, the default recogniser, hears nothing in them, so this bag runs vosk). '
    'The register of each reply follows the estimated age group. For real speech run '
    '`make demo VOICES=<folder with manifest.csv>`.'
)


def note_on_voices(summary: dict) -> str:
    """Return the paragraph that says where the voices came from and how to read "heard"."""
    return NOTE_ON_RECORDED_VOICES if summary.get('voices') == 'recorded' else NOTE_ON_STT


def _turn_rows(data: RunData, start_ns: int):
    for i, item in enumerate(data.turns):
        stages = item.stage_ms()
        t0 = (item.times.get('speech_start', start_ns) - start_ns) / NS
        expected = f' (scripted {item.expected_age_group})' if item.expected_age_group else ''
        yield {
            'n': i + 1,
            't': f'{t0:.1f} s',
            'said': item.scripted_text or '–',
            'heard': (item.text or '(no words recognised)')
            + (f' (CER {item.stt_cer:.2f})' if item.stt_cer is not None else ''),
            'age': f'{item.age_group} {item.age_confidence:.0%}, '
            f'~{item.estimated_age:.0f} y{expected}',
            'emotion': f'{item.emotion} {item.emotion_confidence:.0%} ({item.emotion_source})'
            if item.emotion
            else '–',
            'reply': item.reply or '(no reply)',
            'latency': ' / '.join(_fmt_num(stages.get(k)) for k in CRITICAL_PATH)
            + f' → **{_fmt_num(stages.get("e2e"))}**',
        }


def _write_markdown(path, data, summary, status, frames, has_video, start_ns) -> None:
    lines = ['# agechat demo report', '', INTRO, '']
    lines += [
        f'- Turns heard: **{summary["turns"]}**; '
        f'age group as scripted: **{summary["age_correct"]}/{summary["age_scripted"]}**'
        + (
            f'; heard vs said CER **{summary["stt_cer"]:.3f}**'
            if summary.get('stt_cer') is not None
            else ''
        ),
        f'- Speech end (VAD) → first TTS audio: p50 **{_fmt_num(summary.get("e2e_ms_p50"))} ms**, '
        f'p95 **{_fmt_num(summary.get("e2e_ms_p95"))} ms**',
        f'- Face-emotion messages: {summary["face_emotion_messages"]}; '
        f'avatar frames: {summary["avatar_frames"]}; '
        f'TTS audio chunks: {summary["tts_chunks"]}',
        '',
    ]
    if has_video:
        lines += [
            'Video of the avatars with the user\'s voice and the agent\'s speech: '
            '[avatar.mp4](avatar.mp4)',
            '',
        ]
    lines += [
        '## Turns',
        '',
        note_on_voices(summary),
        '',
        '| # | at | said (script) | heard (STT) | age group | emotion | reply | ms: '
        + ' / '.join(CRITICAL_PATH)
        + ' → e2e |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for row in _turn_rows(data, start_ns):
        lines.append(
            '| {n} | {t} | {said} | {heard} | {age} | {emotion} | {reply} | {latency} |'.format(
                **row
            )
        )
    lines += ['', '## Avatars while the agent speaks', '']
    for i, name in enumerate(frames):
        if name:
            lines.append(f'Turn {i + 1}: ![turn {i + 1}]({name})')
    lines += [
        '',
        '## Latency',
        '',
        '![latency per turn](latency.png)',
        '',
        '## The user\'s emotion over time',
        '',
        '![emotion](emotion.png)',
        '',
        '## Nodes',
        '',
        '| node | starts | exit codes | peak RSS (MB) | peak PSS (MB) |',
        '|---|---|---|---|---|',
    ]
    for name, info in sorted(status.items()):
        lines.append(
            f'| {name} | {info.get("starts")} | {info.get("exit_codes")} | '
            f'{_fmt_num(info.get("peak_rss_mb"))} | {_fmt_num(info.get("peak_pss_mb"))} |'
        )
    path.write_text('\n'.join(lines) + '\n')


def _write_html(path, data, summary, status, frames, has_video, start_ns) -> None:
    esc = html.escape
    rows = ''.join(
        '<tr><td>{n}</td><td>{t}</td><td>{said}</td><td>{heard}</td><td>{age}</td>'
        '<td>{emotion}</td><td class="reply">{reply}</td>'
        '<td>{latency}</td></tr>'.format(
            **{k: esc(str(v)).replace('**', '') for k, v in row.items()}
        )
        for row in _turn_rows(data, start_ns)
    )
    pictures = ''.join(
        f'<figure><img src="{esc(n)}" width="420"><figcaption>turn {i + 1}</figcaption></figure>'
        for i, n in enumerate(frames)
        if n
    )
    nodes = ''.join(
        f'<tr><td>{esc(k)}</td><td>{v.get("starts")}</td><td>{esc(str(v.get("exit_codes")))}</td>'
        f'<td>{_fmt_num(v.get("peak_rss_mb"))}</td><td>{_fmt_num(v.get("peak_pss_mb"))}</td></tr>'
        for k, v in sorted(status.items())
    )
    video = (
        '<video controls width="720" src="avatar.mp4"></video>'
        if has_video
        else '<p>(no avatar frames were recorded)</p>'
    )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<title>agechat demo report</title>\n'
        '<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}\n'
        'table{border-collapse:collapse;font-size:14px}'
        'td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}\n'
        'td.reply{max-width:320px}figure{display:inline-block;margin:4px}'
        '.big{font-size:1.2em;font-weight:bold}</style>\n'
        f'</head><body><h1>agechat demo report</h1><p>{esc(INTRO)}</p>\n'
        f'<p class="big">{summary["turns"]} turns · '
        f'age group as scripted {summary["age_correct"]}/{summary["age_scripted"]} ·\n'
        f'speech end → first TTS audio p50 {_fmt_num(summary.get("e2e_ms_p50"))} ms, '
        f'p95 {_fmt_num(summary.get("e2e_ms_p95"))} ms</p>\n'
        f'{video}\n'
        f'<h2>Turns</h2><p>{esc(note_on_voices(summary))}</p><table><tr><th>#</th><th>at</th>'
        '<th>said (script)</th><th>heard (STT)</th><th>age group</th><th>emotion</th>'
        '<th>reply</th>\n'
        f'<th>ms: {" / ".join(CRITICAL_PATH)} → e2e</th></tr>{rows}</table>\n'
        f'<h2>Avatars while the agent speaks</h2>{pictures}\n'
        '<h2>Latency</h2><img src="latency.png">'
        '<h2>The user\'s emotion over time</h2><img src="emotion.png">\n'
        '<h2>Nodes</h2><table><tr><th>node</th><th>starts</th><th>exit codes</th>'
        '<th>peak RSS (MB)</th><th>peak PSS (MB)</th></tr>\n'
        f'{nodes}</table>\n'
        '</body></html>'
    )
    path.write_text(page)
