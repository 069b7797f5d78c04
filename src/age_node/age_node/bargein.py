"""Barge-in through the real age_node over DDS: the simulated acoustic loop, driven in real time.

:class:`LoopDriver` plays what avatar_node and a microphone would send: a reply's TTS audio on
``agechat/tts/audio`` (20 ms chunks, ``lead_ms`` ahead of their play time, as avatar_node's
pacer), ``agechat/speech_state`` speaking true/false, and on ``audio`` the microphone of
:mod:`age_node.core.echo_loop` (the echo of what was played + noise + maybe a user's voice). On
a BargeIn it stops the reply the way avatar_node does (no more TTS; the echo stops too) and sends
speaking=false with interrupted=true. Used by ``test/test_age_barge_in.py`` and by the bench:

    python -m age_node.bargein --out out/bench/bargein.json [--echo-trials 20 --user-trials 20]
"""

from __future__ import annotations

import argparse
import array
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np

from age_node.core import echo_loop
from age_node.core.echo import erle_db

CHUNK = 320  # 20 ms at 16 kHz
CHUNK_NS = 20_000_000
#: The node parameters of the barge-in runs (Whisper, the default engine, hears the user).
NODE_PARAMS = {'listen_mode': 'barge_in', 'max_backlog_s': 60.0, 'publish_rep155': False}


@dataclass
class TrialResult:
    """What the node did during one reply (times: ns on the system clock)."""

    reply_id: str
    barge_ins: list = field(default_factory=list)
    utterances: list = field(default_factory=list)
    onset_ns: Optional[int] = None
    latency_ms: Optional[float] = None
    stopped_at_s: Optional[float] = None
    text: str = ''
    cer: Optional[float] = None


class LoopDriver:
    """Publishes the loop (see module doc) on a running age_node's topics through `graph`."""

    def __init__(self, graph, lead_ms: int = 60):
        from agechat_msgs.msg import BargeIn, Utterance
        from audio_common_msgs.msg import AudioData, AudioInfo
        from agechat_msgs.msg import SpeechState

        from agechat_ros import qos
        from agechat_ros.audio import audio_info

        self.AudioData, self.SpeechState = AudioData, SpeechState
        self.graph = graph
        self.lead_chunks = int(lead_ms) // 20
        self.mic = graph.publisher('/audio', AudioData, qos.AUDIO_STREAM)
        self.tts = graph.publisher('/agechat/tts/audio', AudioData, qos.AUDIO_STREAM)
        self.tts_info = graph.publisher('/agechat/tts/audio_info', AudioInfo, qos.LATCHED)
        self.state = graph.publisher('/agechat/speech_state', SpeechState, qos.LATCHED)
        self.barge_ins = graph.collect('/agechat/barge_in', BargeIn)
        self.utterances = graph.collect('/agechat/utterance', Utterance)
        self._info = audio_info(16000, 1)
        self._next_ns = 0
        self._noise_seed = 0

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until the node listens: subscribed, recogniser warm, microphone processed."""
        from agechat_ros.testing import NodeDiagnostics

        health = NodeDiagnostics(self.graph, 'age_node')
        for publisher in (self.mic, self.tts, self.state):
            self.graph.wait_for_subscribers(publisher, timeout=timeout)
        self.tts_info.publish(self._info)
        self.state.publish(self._speech_state(False, '', False))
        deadline = time.monotonic() + timeout
        # the worker warms Whisper up before it takes audio: feed the microphone until it has
        # processed what was sent, so that the trials start with no backlog
        while int(health.values.get('chunks_processed', 0)) < 25:
            assert time.monotonic() < deadline, f'age_node never listened: {health.values}'
            self.noise(0.5)
        self.noise(1.0)
        self.health = health

    def _speech_state(self, speaking: bool, reply_id: str, interrupted: bool):
        from agechat_ros.time import ns_to_time

        msg = self.SpeechState()
        msg.header.stamp = ns_to_time(time.time_ns())
        msg.speaking = speaking
        msg.utterance_id = reply_id
        msg.interrupted = interrupted
        return msg

    def _pcm(self, samples: np.ndarray):
        from agechat_ros.audio import float_to_pcm_s16le

        return self.AudioData(data=array.array('B', float_to_pcm_s16le(samples)))

    def _tick(self) -> int:
        """Sleep until the next 20 ms tick of the real-time clock; return its instant (ns)."""
        now = time.time_ns()
        if self._next_ns == 0 or now - self._next_ns > 200_000_000:
            self._next_ns = now  # start, or too far behind: restart the clock
        else:
            self._next_ns += CHUNK_NS
            delay = (self._next_ns - now) / 1e9
            if delay > 0:
                time.sleep(delay)
        return self._next_ns

    def noise(self, seconds: float, dbfs: float = -60.0) -> None:
        """Publish microphone noise only (nobody speaks) for `seconds`."""
        self._noise_seed += 1
        samples = echo_loop.noise(int(seconds * 16000), dbfs, 1000 + self._noise_seed)
        for k in range(samples.size // CHUNK):
            self._tick()
            self.mic.publish(self._pcm(samples[k * CHUNK : (k + 1) * CHUNK]))

    def play(self, trial: echo_loop.Trial, reply_id: str, tail_ms: int = 300) -> TrialResult:
        """Speak one reply through the loop in real time; stop it at a BargeIn of its id."""
        result = TrialResult(reply_id)
        tts, mic = trial.tts, trial.microphone.copy()
        n_tts = -(-tts.size // CHUNK)
        n_mic = mic.size // CHUNK
        seen = len(self.barge_ins.snapshot())
        stopped_chunk: Optional[int] = None  # first TTS chunk not played (barge-in)
        off_chunk: Optional[int] = None  # mic chunk at which speaking=false goes out
        off_sent = False
        t0 = None
        k = -self.lead_chunks
        self.state.publish(self._speech_state(True, reply_id, False))
        while not (off_sent and k >= n_mic):
            tick = self._tick()
            if k == 0:
                t0 = tick - CHUNK_NS  # mic chunk 0 ends at this tick: sample i at t0 + i/16k
            j = k + self.lead_chunks  # the TTS chunk due now (lead_ms ahead of its play)
            if stopped_chunk is None and j < n_tts:
                self.tts.publish(self._pcm(tts[j * CHUNK : (j + 1) * CHUNK]))
            elif off_chunk is None:
                off_chunk = n_tts + tail_ms // 20
            if off_chunk is not None and k >= off_chunk and not off_sent:
                interrupted = stopped_chunk is not None
                self.state.publish(self._speech_state(False, reply_id, interrupted))
                off_sent = True
            if 0 <= k < n_mic:
                self.mic.publish(self._pcm(mic[k * CHUNK : (k + 1) * CHUNK]))
            elif k < 0:  # a microphone never pauses: noise before the first echo
                self.mic.publish(self._pcm(mic[:CHUNK] * 0.0 + echo_loop.noise(CHUNK, -60, k)))
            if stopped_chunk is None and not off_sent:
                new = [b for b in self.barge_ins.snapshot()[seen:] if b.reply_utterance_id]
                if new:
                    # avatar_node stops: no more TTS, so the echo ends after what was played
                    stopped_chunk = max(0, j + 1)
                    played = tts.copy()
                    played[stopped_chunk * CHUNK :] = 0.0
                    echo_now = echo_loop.echo_of(played, trial.config)
                    echo_all = echo_loop.echo_of(tts, trial.config)
                    span = min(echo_now.size, mic.size)
                    mic[:span] += echo_now[:span] - echo_all[:span]
                    result.stopped_at_s = stopped_chunk * CHUNK / 16000
                    off_chunk = k + tail_ms // 20
            k += 1
        result.barge_ins = [
            b for b in self.barge_ins.snapshot()[seen:] if b.reply_utterance_id == reply_id
        ]
        if trial.user_onset_s is not None and t0 is not None:
            result.onset_ns = t0 + int(trial.user_onset_s * 1e9)
            if result.barge_ins:
                from agechat_ros.time import time_to_ns

                decided = time_to_ns(result.barge_ins[0].header.stamp)
                result.latency_ms = (decided - result.onset_ns) / 1e6
        return result

    def take_utterances(self, after_ns: int) -> list:
        """Utterances whose speech started after `after_ns` (system clock)."""
        from agechat_ros.time import time_to_ns

        return [u for u in self.utterances.snapshot() if time_to_ns(u.speech_start) >= after_ns]


def replies_tts(count: int) -> List[tuple]:
    """(text, 16 kHz TTS) of `count` short replies: the sentences of echo_loop.REPLIES."""
    sentences = []
    for reply in echo_loop.REPLIES:
        for part in reply.replace('!', '.').replace('?', '?.').split('.'):
            if len(part.strip()) > 4:
                sentences.append(part.strip())
    cache = {}
    out = []
    for i in range(count):
        text = sentences[i % len(sentences)]
        if text not in cache:
            cache[text] = echo_loop.espeak_korean(text)
        out.append((text, cache[text]))
    return out


def run_trials(
    driver: LoopDriver,
    echo_trials: int,
    user_clips: list,
    seed: int = 0,
    log=print,
) -> dict:
    """Run the echo-only replies, then one reply per user clip; return the figures."""
    from age_node.core.stt_eval import cer

    rng = random.Random(seed)
    echo_results, user_results = [], []
    replies = replies_tts(max(echo_trials, len(user_clips)))
    # one room for the run (a robot stays where it is): delay 20-80 ms etc. drawn by the seed
    room = echo_loop.random_config(rng, seed)
    log(
        f'room: delay {room.delay_ms:.0f} ms, RT60 {room.rt60_s:.2f} s, echo '
        f'{room.echo_gain_db:.1f} dB, noise {room.noise_dbfs:.0f} dBFS'
    )
    driver.noise(0.5)
    for i in range(echo_trials):
        text, tts = replies[i]
        trial = echo_loop.make_trial(tts, room, text)
        start_ns = time.time_ns()
        result = driver.play(trial, f'echo-{seed}-{i}')
        driver.noise(0.3)
        result.utterances = driver.take_utterances(start_ns)
        echo_results.append(result)
        log(f'echo reply {i}: {len(result.barge_ins)} barge-ins, {len(result.utterances)} utt.')
    for i, clip in enumerate(user_clips):
        text, tts = replies[i]
        onset = rng.uniform(0.5, max(0.6, min(1.2, tts.size / 16000 - 0.3)))
        trial = echo_loop.make_trial(
            tts,
            room,
            text,
            user=clip.audio,
            user_onset_s=onset,
            transcript=clip.transcript,
            speaker=clip.speaker,
        )
        start_ns = time.time_ns()
        result = driver.play(trial, f'user-{seed}-{i}')
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline:  # the microphone goes on until the text is there
            driver.noise(0.2)
            if driver.take_utterances(start_ns):
                break
        result.utterances = driver.take_utterances(start_ns)
        result.text = ' '.join(u.text for u in result.utterances)
        result.cer = cer(clip.transcript, result.text) if clip.transcript else None
        user_results.append(result)
        log(
            f'user trial {i} ({clip.speaker}): latency {result.latency_ms} ms, '
            f'"{result.text}" (CER {result.cer})'
        )
    # a BargeIn before the voice's onset was echo (a false one), not the user
    early = [r for r in user_results if r.latency_ms is not None and r.latency_ms < 0]
    latencies = [
        r.latency_ms for r in user_results if r.latency_ms is not None and r.latency_ms >= 0
    ]
    in_time = [x for x in latencies if x <= 300.0]
    cers = [r.cer for r in user_results if r.cer is not None]
    return {
        'room': {
            'delay_ms': room.delay_ms,
            'rt60_s': room.rt60_s,
            'echo_gain_db': room.echo_gain_db,
            'noise_dbfs': room.noise_dbfs,
        },
        'echo_replies': echo_trials,
        'false_barge_ins': sum(len(r.barge_ins) for r in echo_results),
        'echo_only_utterances': sum(len(r.utterances) for r in echo_results),
        'user_trials': len(user_results),
        'barge_ins_detected': len(latencies),
        'barge_ins_before_the_voice': len(early),
        'barge_in_recall': len(in_time) / max(1, len(user_results)),
        'barge_in_detected_at_all': len(latencies) / max(1, len(user_results)),
        'barge_in_latency_ms_p50': float(np.percentile(latencies, 50)) if latencies else None,
        'barge_in_latency_ms_p95': float(np.percentile(latencies, 95)) if latencies else None,
        'barge_in_latency_ms_max': float(max(latencies)) if latencies else None,
        'barge_in_latencies_ms': [round(x, 1) for x in latencies],
        'user_utterances_transcribed': sum(1 for r in user_results if r.text),
        'user_cer_mean': float(np.mean(cers)) if cers else None,
        'user_texts': [(r.text, r.cer) for r in user_results],
    }


def offline_erle(count: int = 6, seed: int = 0) -> dict:
    """ERLE of the canceller on echo-only replies (no ROS): first reply vs. the same again."""
    from age_node.core.echo import EchoCanceller, create_backend

    rng = random.Random(seed)
    first, second = [], []
    for i, (_, tts) in enumerate(replies_tts(count)):
        config = echo_loop.random_config(rng, 7000 + i)
        twice = np.concatenate([tts, np.zeros(8000, np.float32), tts])
        trial = echo_loop.make_trial(twice, config)
        canceller = EchoCanceller(create_backend('webrtc'), 60.0)
        out = []
        t0 = 10**15
        lead = 3
        for k in range(trial.microphone.size // CHUNK):
            j = k + lead
            canceller.add_reference(twice[j * CHUNK : (j + 1) * CHUNK], t0 + (j - lead) * CHUNK_NS)
            cancelled, _ = canceller.process(
                trial.microphone[k * CHUNK : (k + 1) * CHUNK], t0 + (k + 1) * CHUNK_NS - 62_500
            )
            out.append(cancelled)
        out = np.concatenate(out)
        half = tts.size + 8000
        mic = trial.microphone[: out.size]
        first.append(erle_db(mic[:half], out[:half]))
        second.append(erle_db(mic[half:], out[half:]))
    return {
        'erle_db_first_reply_mean': float(np.mean(first)),
        'erle_db_first_reply_min': float(np.min(first)),
        'erle_db_converged_mean': float(np.mean(second)),
        'erle_replies': count,
    }


def offline_figures(manifest: Path, speakers: list) -> dict:
    """Offline (no ROS, exact timing) figures on `speakers`: 20 + 20 trials, and SER sweeps."""
    from age_node.core import barge_eval

    clips = barge_eval.clips_of(manifest, speakers, 20, seed=3, max_s=8.0)
    out = barge_eval.figures(barge_eval.run_rooms(clips, 5, 8, seed=3))
    out.pop('speakers')
    sweep = []
    for user_dbfs, gain in ((-32.0, None), (-26.0, -3.0), (-20.0, None), (-26.0, -12.0)):
        row = barge_eval.figures(
            barge_eval.run_rooms(clips, 5, 8, seed=3, user_dbfs=user_dbfs, echo_gain_db=gain)
        )
        sweep.append(
            {
                'user_dbfs': user_dbfs,
                'echo_gain_db': gain if gain is not None else 'drawn -12..-3',
                **{k: row[k] for k in ('ser_db_mean', 'false_barge_ins', 'barge_in_recall')},
                'barge_in_latency_ms_p95': row['barge_in_latency_ms_p95'],
            }
        )
    out['ser_sweep'] = sweep
    # the same trials with late arrivals (barge_eval._late_arrivals: 2 ms mean, stalls)
    jittered = barge_eval.figures(barge_eval.run_rooms(clips, 5, 8, seed=3, jitter_ms=2.0))
    out['with_arrival_jitter'] = {
        k: jittered[k]
        for k in (
            'false_barge_ins',
            'barge_ins_before_the_voice',
            'barge_in_recall',
            'barge_in_latency_ms_p95',
        )
    }
    return out


def main(argv=None) -> int:
    """Bench: the loop through a real age_node; writes the JSON (see module doc)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='out/bench/bargein.json')
    parser.add_argument('--echo-trials', type=int, default=20)
    parser.add_argument('--user-trials', type=int, default=20)
    parser.add_argument('--seed', type=int, default=1)
    args = parser.parse_args(argv)
    from agechat_ros.files import korean_speech_manifest
    from agechat_ros.testing import Graph, domain_id

    from age_node.core import barge_eval

    manifest = korean_speech_manifest()
    skipped = None
    offline = {}
    if manifest.is_file():
        _, held_out = barge_eval.split_speakers(manifest)
        clips = barge_eval.clips_of(manifest, held_out, args.user_trials, args.seed)
        offline = offline_figures(manifest, held_out)
        voice = 'real Korean read speech (../shared/data/speech/korean)'
    else:
        clips, skipped = [], f'no real Korean speech at {manifest}: user trials skipped'
        voice = None
    work = Path(tempfile.mkdtemp(prefix='bargein_bench_'))
    graph = Graph(domain_id(), work)
    try:
        graph.start_node('age_node', 'age_node', parameters=NODE_PARAMS)
        driver = LoopDriver(graph)
        driver.wait_ready()
        figures = run_trials(driver, args.echo_trials, clips, args.seed)
        time.sleep(1.5)  # the next /diagnostics: the clock corrections of the whole run
        figures['aec_clock_corrections'] = {
            k: v for k, v in driver.health.values.items() if k.startswith('aec_')
        }
    finally:
        graph.shutdown()
    from age_node.core.echo import WebRtcBackend

    result = {
        'library': WebRtcBackend.name + ' (livekit==1.2.1)',
        'listen_mode': 'barge_in',
        'latency_measured_to': 'BargeIn header.stamp (age_node decided); avatar_node adds its '
        'stop time',
        'user_voice': voice,
        'user_trials_skipped': skipped,
        'speakers': 'held-out (core/barge_eval.py: SPLIT_SEED, DEV_SPEAKERS)',
        **figures,
        **offline_erle(),
        'offline': offline,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
