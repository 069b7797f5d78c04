"""Barge-in figures offline (no ROS): the node's listener on the simulated loop, exact timing.

The speakers of ``../shared/data/speech/korean`` are split once by a seed
(:data:`SPLIT_SEED`): :data:`DEV_SPEAKERS` of them are the *dev* set, the only voices looked at
while choosing the detector and its settings; the others (*held-out*) give the reported figures
and the tests. Each *room* (one echo path drawn by :func:`echo_loop.random_config`: a robot
that stays put) hears a run of replies through one :class:`BargeInListener` (the class
age_node's worker runs), echo-only replies alternating with replies over which a real voice
starts 0.5-1.2 s in. The first reply of each room is echo-only and counts (the canceller has
not converged there).

Latency = the end of the 20 ms microphone chunk that completed the deciding frame minus the
voice's onset (its first 32 ms frame within 25 dB of its loudest): the decision time with zero
compute and transport time (over DDS these add to it).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from age_node.core import echo, echo_loop

#: The seed of the dev / held-out split of the Korean speakers (fixed: never re-drawn).
SPLIT_SEED = 15
#: How many of the shuffled speakers are dev speakers (the rest are held out).
DEV_SPEAKERS = 12
CHUNK = 320  # 20 ms at 16 kHz, as the microphone driver sends
CHUNK_NS = 20_000_000
_T0_NS = 10**15
#: The TTS chunks arrive this many chunks ahead of their play time (avatar_node's 60 ms lead).
LEAD_CHUNKS = 3


def split_speakers(manifest: Path) -> Tuple[List[str], List[str]]:
    """Return (dev speakers, held-out speakers) of `manifest` (seeded, sorted within each)."""
    with open(manifest, encoding='utf-8') as handle:
        speakers = sorted({row['speaker_id'] for row in csv.DictReader(handle)})
    random.Random(SPLIT_SEED).shuffle(speakers)
    return sorted(speakers[:DEV_SPEAKERS]), sorted(speakers[DEV_SPEAKERS:])


def clips_of(
    manifest: Path,
    speakers: Sequence[str],
    count: int,
    seed: int,
    min_s: float = 1.5,
    max_s: float = 4.0,
) -> List[echo_loop.UserClip]:
    """`count` clips of `min_s`..`max_s` s, speakers taken in turn (seeded), of `speakers` only."""
    from age_node.core.age_data import load_audio

    with open(manifest, encoding='utf-8') as handle:
        rows = [r for r in csv.DictReader(handle) if r['speaker_id'] in set(speakers)]
    by_speaker: Dict[str, list] = {}
    for row in rows:
        by_speaker.setdefault(row['speaker_id'], []).append(row)
    rng = random.Random(seed)
    order = sorted(by_speaker)
    rng.shuffle(order)
    for speaker in order:
        rng.shuffle(by_speaker[speaker])
    clips: List[echo_loop.UserClip] = []
    turn = 0
    while len(clips) < count and any(by_speaker.values()):
        speaker = order[turn % len(order)]
        turn += 1
        if not by_speaker[speaker]:
            continue
        row = by_speaker[speaker].pop()
        audio = load_audio(Path(manifest).parent / row['path'])
        if min_s <= audio.size / echo.SAMPLE_RATE <= max_s:
            clips.append(echo_loop.UserClip(audio, row['transcript'], speaker, row['path']))
    return clips


@dataclass
class OfflineResult:
    """One reply through the listener."""

    kind: str  # 'echo' or 'user'
    room: int
    decisions_s: List[float] = field(default_factory=list)  # onsets found (s into the reply)
    latency_ms: Optional[float] = None  # of the first decision after the voice's onset
    early: bool = False  # a decision before the voice's onset (echo taken for a voice)
    speaker: str = ''
    ser_db: Optional[float] = None  # the voice's level over the echo's (speech frames)


def play_reply(
    listener: echo.BargeInListener,
    trial: echo_loop.Trial,
    position: int,
    late_ns=None,
) -> list:
    """Feed one reply in arrival order (TTS LEAD_CHUNKS ahead); return (onset_s, decided_s).

    `late_ns()` (optional) gives each chunk's extra arrival delay (scheduling, transport).
    """
    late_ns = late_ns or (lambda: 0)
    listener.reset()
    canceller = listener.canceller
    base = echo.ns_to_index(_T0_NS) + position * CHUNK  # clock index of microphone sample 0
    found = []
    n_tts = -(-trial.tts.size // CHUNK)
    for k in range(-LEAD_CHUNKS, trial.microphone.size // CHUNK):
        j = k + LEAD_CHUNKS
        if j < n_tts:
            chunk = trial.tts[j * CHUNK : (j + 1) * CHUNK]
            canceller.add_reference(chunk, _T0_NS + (position + k) * CHUNK_NS + late_ns())
        if k >= 0:
            mic = trial.microphone[k * CHUNK : (k + 1) * CHUNK]
            # the chunk's last sample arrives at the end of its 20 ms (less one sample)
            arrival = _T0_NS + (position + k + 1) * CHUNK_NS - 62_500 + late_ns()
            out, index = listener.cancel(mic, arrival)
            decision = listener.detect(out, index)
            if decision is not None:
                decided_s = (k + 1) * CHUNK / echo.SAMPLE_RATE  # the chunk that completed it
                found.append(((decision.onset_index - base) / echo.SAMPLE_RATE, decided_s))
    return found


def _late_arrivals(jitter_ms: float, seed: int):
    """Return a draw of extra arrival delays (ns), one per chunk of either stream.

    Exponential of mean `jitter_ms`; in 2 % of the chunks a busy executor starts that holds the
    next 8-16 chunks (both streams) 30-80 ms late.
    """
    rng = np.random.default_rng(seed)
    state = {'left': 0, 'stall': 0.0}

    def late() -> int:
        if state['left'] == 0 and rng.random() < 0.02:
            state['left'], state['stall'] = int(rng.integers(8, 17)), rng.uniform(30e6, 80e6)
        stall = state['stall'] if state['left'] > 0 else 0.0
        state['left'] = max(0, state['left'] - 1)
        return int(rng.exponential(jitter_ms * 1e6) + stall)

    return late


def _speech_db(samples: np.ndarray) -> float:
    frames = samples[: samples.size // 512 * 512].reshape(-1, 512)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-12
    active = rms[rms > rms.max() * 10 ** (-30 / 20)]
    return float(20 * np.log10(np.sqrt(np.mean(active**2))))


def run_rooms(
    clips: Sequence[echo_loop.UserClip],
    rooms: int,
    replies_per_room: int,
    seed: int = 0,
    config: Optional[echo.BargeInConfig] = None,
    user_dbfs: float = -26.0,
    echo_gain_db: Optional[float] = None,
    after_reference_s: float = 2.0,
    jitter_ms: float = 0.0,
    reference_delay_ms: float = 60.0,
) -> List[OfflineResult]:
    """Run `rooms` rooms of `replies_per_room` replies (echo-only first, then alternating).

    `echo_gain_db` replaces the drawn echo gain (a sweep); `user_dbfs` is the voice's level.
    `jitter_ms`: arrivals late as :func:`_late_arrivals` draws them (0: exact timing).
    """
    from age_node.bargein import replies_tts

    replies = replies_tts(max(8, replies_per_room))
    results: List[OfflineResult] = []
    clip_i = 0
    for room_i in range(rooms):
        rng = random.Random(seed * 1000 + room_i)
        room = echo_loop.random_config(rng, seed * 1000 + room_i)
        if echo_gain_db is not None:
            room.echo_gain_db = echo_gain_db
        listener = echo.make_listener('webrtc', reference_delay_ms, config, after_reference_s)
        late = _late_arrivals(jitter_ms, seed * 1000 + room_i) if jitter_ms > 0 else None
        position = 0
        for t in range(replies_per_room):
            text, tts = replies[(room_i * 3 + t) % len(replies)]
            if t % 2 == 1 and clip_i < len(clips):
                clip = clips[clip_i]
                clip_i += 1
                onset = rng.uniform(0.5, max(0.6, min(1.2, tts.size / 16000 - 0.3)))
                trial = echo_loop.make_trial(
                    tts, room, text, clip.audio, onset, user_dbfs, 0.8, clip.transcript
                )
                result = OfflineResult('user', room_i, speaker=clip.speaker)
                echo_db = _speech_db(echo_loop.echo_of(tts, room))
                result.ser_db = user_dbfs - echo_db
            else:
                trial = echo_loop.make_trial(tts, room, text)
                result = OfflineResult('echo', room_i)
            found = play_reply(listener, trial, position, late)
            result.decisions_s = [onset_s for onset_s, _ in found]
            if result.kind == 'user':
                # a decision completed before the voice's onset is echo, not the user
                result.early = any(decided < trial.user_onset_s for _, decided in found)
                after = [decided for _, decided in found if decided >= trial.user_onset_s]
                if after:
                    result.latency_ms = (after[0] - trial.user_onset_s) * 1000.0
            results.append(result)
            position += trial.microphone.size // CHUNK + 30
    return results


def figures(results: Sequence[OfflineResult], within_ms: float = 300.0) -> dict:
    """Sum up: false barge-ins, recall within `within_ms`, latency percentiles, SER."""
    echo_only = [r for r in results if r.kind == 'echo']
    users = [r for r in results if r.kind == 'user']
    latencies = [r.latency_ms for r in users if r.latency_ms is not None and not r.early]
    in_time = [x for x in latencies if x <= within_ms]
    sers = [r.ser_db for r in users if r.ser_db is not None]
    return {
        'echo_replies': len(echo_only),
        'false_barge_ins': sum(len(r.decisions_s) for r in echo_only),
        'user_trials': len(users),
        'barge_ins_before_the_voice': sum(1 for r in users if r.early),
        'barge_in_recall': len(in_time) / max(1, len(users)),
        'barge_in_latency_ms_p50': float(np.percentile(latencies, 50)) if latencies else None,
        'barge_in_latency_ms_p95': float(np.percentile(latencies, 95)) if latencies else None,
        'barge_in_latency_ms_max': float(max(latencies)) if latencies else None,
        'ser_db_mean': float(np.mean(sers)) if sers else None,
        'ser_db_min': float(np.min(sers)) if sers else None,
        'ser_db_max': float(np.max(sers)) if sers else None,
        'speakers': sorted({r.speaker for r in users}),
    }
