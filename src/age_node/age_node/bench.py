"""Benchmark of age_node's pipeline: `python -m age_node.bench --out out/bench/voice.json`.

A stream of synthetic turns (3 age groups x `--turns` voices, 1.5 s pauses) is fed in 20 ms
chunks through the node's own pipeline (silero-vad streaming, vosk fed as audio arrives, age CNN,
message construction), as fast as it can go, on 1 torch thread:

- rtf: processing time / stream duration (pauses included, as on a robot);
- rtf_speech_only: processing time of the chunks inside utterances / their duration;
- stt_rtf: time inside vosk / audio fed to vosk, for the node's decoder settings and, in the same
  run, for the model's own defaults (beam 10, max-active 3000, its own 0.5 s endpoint);
- utterance_latency_ms_p50/p95: from the arrival of the utterance's last audio chunk (the one that
  completes the end-of-speech silence) to both messages built and ready to publish. DDS transport
  (sub-millisecond on one host) is not included;
- chunk_ms_p95 / chunk_ms_max: per-chunk processing (must stay well below 20 ms for real time);
- age_ms_per_utterance; heldout_accuracy (from the shipped model's metadata: unseen synthetic
  speakers and sentences) and demo_voices_accuracy.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from age_node.core import ages
from age_node.core.model import AgeEstimator, default_model_path
from age_node.core.pipeline import VoicePipeline
from age_node.core.segmenter import SAMPLE_RATE, Segmenter, SegmenterConfig, SileroVad
from age_node.core.stt import VoskRecognizer
from age_node.core.synth import DEMO_SENTENCES, synthesize_speech

CHUNK = 320  # 20 ms


def build_stream(turns_per_group: int, seed0: int = 500_000):
    """Alternating child/adult/senior turns with pauses; returns (audio, number of turns)."""
    rng = np.random.default_rng(0)
    parts = [rng.normal(0, 0.002, SAMPLE_RATE).astype(np.float32)]
    count = 0
    for k in range(turns_per_group):
        for group in ('child', 'adult', 'senior'):
            text = DEMO_SENTENCES[group][k % len(DEMO_SENTENCES[group])]
            parts.append(synthesize_speech(text, group, seed0 + 10 * k + len(group)))
            parts.append(rng.normal(0, 0.002, int(1.5 * SAMPLE_RATE)).astype(np.float32))
            count += 1
    return np.concatenate(parts), count


def run_stream(
    audio: np.ndarray,
    estimator: AgeEstimator,
    beam: float,
    max_active: int,
    with_messages: bool,
    endpoint_silence_s=None,
    lattice_beam: float = 2.0,
):
    """Feed the stream chunk by chunk (after the node's recogniser warm-up); return the timings."""
    vad = SileroVad()
    recognizer = VoskRecognizer(
        beam=beam,
        max_active=max_active,
        endpoint_silence_s=endpoint_silence_s,
        lattice_beam=lattice_beam,
    )
    recognizer.warm_up()
    pipeline = VoicePipeline(Segmenter(SegmenterConfig(), vad, vad.reset), recognizer, estimator)
    make = None
    if with_messages:
        try:
            from agechat_ros.voice import make_age_estimate, make_utterance

            make = (make_utterance, make_age_estimate)
        except ImportError:  # workspace not sourced: time the core only
            make = None
    chunk_ms, latency_ms, in_utterance_s, in_utterance_audio_s, results = [], [], 0.0, 0.0, []
    total_start = time.perf_counter()
    for start in range(0, audio.size, CHUNK):
        chunk = audio[start : start + CHUNK]
        was_open = pipeline.in_utterance
        t0 = time.perf_counter()
        done = pipeline.push(chunk, time.time_ns())
        for result in done:
            if make is not None:
                make[0](
                    result.utterance_id,
                    result.transcript.text,
                    result.transcript.confidence,
                    result.language,
                    result.recognizer,
                    result.speech_start_ns,
                    result.speech_end_ns,
                    result.duration_s,
                    result.truncated,
                    result.vad_closed_ns,
                    result.stt_done_ns,
                )
                make[1](
                    result.utterance_id,
                    result.age.group_probabilities,
                    result.age.estimated_age_years,
                    result.age.bin_probabilities,
                    ages.BIN_LOWER_YEARS,
                    estimator.name,
                    result.speech_end_ns,
                    result.age_done_ns,
                    result.age.inference_ms,
                )
        elapsed = time.perf_counter() - t0
        chunk_ms.append(elapsed * 1000)
        if was_open or pipeline.in_utterance or done:
            in_utterance_s += elapsed
            in_utterance_audio_s += chunk.size / SAMPLE_RATE
        if done:
            latency_ms.append(elapsed * 1000)
            results += done
    total = time.perf_counter() - total_start
    return {
        'total_s': total,
        'chunk_ms': chunk_ms,
        'latency_ms': latency_ms,
        'results': results,
        'in_utterance_s': in_utterance_s,
        'in_utterance_audio_s': in_utterance_audio_s,
        'stt_rtf': pipeline.stt_seconds / max(pipeline.stt_audio_seconds, 1e-9),
        'age_ms': pipeline.age_ms,
    }


def main(argv=None) -> int:
    """Run the voice benchmarks and write their JSON; return the exit status."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--out', default='out/bench/voice.json')
    parser.add_argument('--turns', type=int, default=4, help='turns per age group')
    parser.add_argument('--beam', type=float, default=8.0, help="the node's stt_beam default")
    parser.add_argument(
        '--max-active', type=int, default=1500, help="the node's stt_max_active default"
    )
    parser.add_argument(
        '--lattice-beam', type=float, default=2.0, help="the node's stt_lattice_beam default"
    )
    parser.add_argument(
        '--endpoint-silence',
        type=float,
        default=0.3,
        help="the node's stt_endpoint_silence_s default",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    estimator = AgeEstimator(default_model_path())
    audio, turns = build_stream(args.turns)
    duration = audio.size / SAMPLE_RATE
    endpoint = args.endpoint_silence or None
    run_stream(
        audio[: 3 * SAMPLE_RATE], estimator, args.beam, args.max_active, True, endpoint
    )  # warm-up
    node = run_stream(
        audio, estimator, args.beam, args.max_active, True, endpoint, args.lattice_beam
    )
    model_default = run_stream(audio, estimator, 10.0, 3000, True)
    metadata = estimator.metadata
    report = {
        'rtf': node['total_s'] / duration,
        'rtf_speech_only': node['in_utterance_s'] / max(node['in_utterance_audio_s'], 1e-9),
        'stt_rtf': node['stt_rtf'],
        'stt_rtf_model_default_decoder': model_default['stt_rtf'],
        'rtf_model_default_decoder': model_default['total_s'] / duration,
        'utterance_latency_ms_p95_model_default_decoder': float(
            np.percentile(model_default['latency_ms'], 95)
        ),
        'stt_final_ms_p95': float(np.percentile([r.stt_final_ms for r in node['results']], 95)),
        'utterance_latency_ms_p50': float(np.percentile(node['latency_ms'], 50)),
        'utterance_latency_ms_p95': float(np.percentile(node['latency_ms'], 95)),
        'utterance_latency_ms_max': float(np.max(node['latency_ms'])),
        'chunk_ms_p50': float(np.percentile(node['chunk_ms'], 50)),
        'chunk_ms_p95': float(np.percentile(node['chunk_ms'], 95)),
        'chunk_ms_max': float(np.max(node['chunk_ms'])),
        'age_ms_per_utterance': float(np.mean(node['age_ms'])),
        'heldout_accuracy': metadata.get('heldout_accuracy'),
        'heldout_recall': metadata.get('heldout_recall'),
        'demo_voices_accuracy': metadata.get('demo_voices_accuracy'),
        'bench_stream_group_accuracy': float(
            np.mean(
                [
                    r.age.group_label == g
                    for r, g in zip(
                        node['results'], ['child', 'adult', 'senior'] * args.turns, strict=True
                    )
                ]
            )
        )
        if len(node['results']) == turns
        else None,
        'utterances_expected': turns,
        'utterances_found': len(node['results']),
        'stream_seconds': duration,
        'chunk_ms': CHUNK / SAMPLE_RATE * 1000,
        'stt_decoder': {
            'beam': args.beam,
            'max_active': args.max_active,
            'lattice_beam': args.lattice_beam,
            'endpoint_silence_s': endpoint,
        },
        'age_model': estimator.name,
        'torch_threads': torch.get_num_threads(),
        'machine': f'{platform.machine()} {platform.processor() or ""}'.strip(),
        'note': 'in-process pipeline timing, DDS transport excluded; synthetic espeak-ng speech '
        '(vosk search on it may differ from real speech); loaded shared 2-core machine',
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
