r"""Evaluate a speech recogniser on your own recordings: CER, WER, latency, RTF; JSON report.

    python -m age_node.core.stt_eval --manifest ../shared/data/speech/korean/manifest.csv \
        [--engine whisper|vosk] [--beam-size N[,N...]] [--threads N[,N...]] [--every K] \
        [--limit N] [--non-speech N] [--out out/stt_eval/report.json]

The manifest is a CSV with at least the columns `path` (relative to the manifest's folder, or
absolute) and `transcript`; any format and rate that ffmpeg reads (decoded with PyAV to 16 kHz
mono). Clips are taken in `path` order: every K-th (`--every`), then the first N (`--limit`), so
a subset is chosen by a rule and never by results.

Each clip is fed to the recogniser in 20 ms chunks like the node does (`begin`, `accept`...,
`end`). `latency_s` is the time `end()` takes: what is left after the last audio arrives, i.e.
VAD close -> text when the feeding keeps up with real time. `compute_s` is all time spent in the
recogniser (feeding included) and `cpu_s` the process CPU time of it (all threads; less sensitive
to other load on a shared machine). RTF = sum compute_s / sum audio seconds.

CER counts edits over the characters kept by :func:`normalize_text` (syllables, letters and
digits: spaces and punctuation removed), summed over clips and divided by the reference
characters; WER the same over whitespace-separated words, each normalised the same way.
`cer_numbers_read` is the CER after numbers in digits in the hypothesis are replaced by their
Sino-Korean reading (references of read speech spell them out: 육십사점오, Whisper writes 64.5).
Results
are reported overall, per duration bucket (1-2, 2-4, 4-6, >6 s), per speaker (when the manifest
has `speaker_id`) and per clip. `--non-speech N` also decodes N generated clips of each kind of
non-speech (digital silence, low and loud white noise, a tone, a tone sweep): there no text is the
right answer, and the report counts those that got some.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

SAMPLE_RATE = 16000
CHUNK_SAMPLES = 320  # 20 ms, as the node receives audio
BUCKETS: Tuple[Tuple[str, float, float], ...] = (
    ('<1s', 0.0, 1.0),
    ('1-2s', 1.0, 2.0),
    ('2-4s', 2.0, 4.0),
    ('4-6s', 4.0, 6.0),
    ('>6s', 6.0, float('inf')),
)


_DIGITS = '영일이삼사오육칠팔구'
_NUMBER = re.compile(r'\d+(?:,\d{3})*(?:\.\d+)?%?')


def read_sino_korean(number: str) -> str:
    """Return the Sino-Korean reading of a number in digits ("64.5%" -> "육십사점오퍼센트").

    Integers up to 10^16 (thousands separators allowed), decimals read digit by digit after 점,
    and a trailing % as 퍼센트. Native Korean counting (스무 명) cannot be told from digits.
    """
    percent = number.endswith('%')
    whole, _, fraction = number.rstrip('%').replace(',', '').partition('.')
    value = int(whole)
    if value == 0:
        words = _DIGITS[0]
    else:
        words, group_index = '', 0
        while value:
            value, group = divmod(value, 10000)
            if group:
                part = ''
                for unit, digit in zip('천백십', f'{group:04d}'[:3], strict=True):
                    if digit != '0':
                        part += ('' if digit == '1' else _DIGITS[int(digit)]) + unit
                if group % 10:
                    part += _DIGITS[group % 10]
                if part == '일' and group_index == 1:
                    part = ''  # 10000 is 만, not 일만
                words = part + ' 만억조'[group_index].strip() + words
            group_index += 1
    if fraction:
        words += '점' + ''.join(_DIGITS[int(d)] for d in fraction)
    return words + ('퍼센트' if percent else '')


def normalize_text(text: str, read_numbers: bool = False) -> str:
    """Return the text as compared for CER: NFC, lower case, only letters and digits kept.

    Spaces, punctuation and symbols are removed, so Korean syllables (and any Latin letters or
    digits) remain. With `read_numbers`, numbers in digits are first replaced by their
    Sino-Korean reading (:func:`read_sino_korean`), since read-speech references spell numbers
    out while Whisper writes digits.
    """
    composed = unicodedata.normalize('NFC', text).lower()
    if read_numbers:
        composed = _NUMBER.sub(lambda match: read_sino_korean(match.group(0)), composed)
    return ''.join(ch for ch in composed if unicodedata.category(ch)[0] in 'LN')


def normalize_words(text: str, read_numbers: bool = False) -> List[str]:
    """Return the words of `text` (split on whitespace), each normalised by `normalize_text`."""
    words = (normalize_text(w, read_numbers) for w in text.split())
    return [word for word in words if word]


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Return the Levenshtein distance (substitutions, insertions, deletions) of two sequences."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_item in enumerate(reference, 1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp_item in enumerate(hypothesis, 1):
            current[j] = min(
                previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_item != hyp_item)
            )
        previous = current
    return previous[-1]


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of one pair (normalised by :func:`normalize_text`)."""
    ref = normalize_text(reference)
    return edit_distance(ref, normalize_text(hypothesis)) / max(1, len(ref))


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of one pair (words normalised by :func:`normalize_words`)."""
    ref = normalize_words(reference)
    return edit_distance(ref, normalize_words(hypothesis)) / max(1, len(ref))


@dataclass
class ClipResult:
    """One decoded clip: texts, error counts and timings."""

    path: str
    reference: str
    hypothesis: str
    duration_s: float
    latency_s: float
    compute_s: float
    cpu_s: float
    char_edits: int
    ref_chars: int
    word_edits: int
    ref_words: int
    confidence: float
    char_edits_numbers_read: int = 0
    speaker_id: str = ''
    kind: str = 'speech'
    detail: Dict = field(default_factory=dict)

    @property
    def cer(self) -> float:
        """Character error rate of this clip."""
        return self.char_edits / max(1, self.ref_chars)


def read_manifest(manifest, every: int = 1, limit: Optional[int] = None) -> List[dict]:
    """Return the manifest rows in `path` order: every `every`-th, then the first `limit`.

    Each row gets `audio_path` resolved against the manifest's folder.
    """
    manifest = Path(manifest)
    with open(manifest, newline='', encoding='utf-8') as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {'path', 'transcript'} <= set(rows[0]):
        raise ValueError(f'{manifest}: needs the CSV columns path, transcript')
    rows.sort(key=lambda row: row['path'])
    rows = rows[:: max(1, every)]
    if limit is not None:
        rows = rows[:limit]
    for row in rows:
        path = Path(row['path'])
        row['audio_path'] = str(path if path.is_absolute() else manifest.parent / path)
    return rows


def load_audio(path) -> np.ndarray:
    """Decode any audio file ffmpeg reads to 16 kHz mono float32 (PyAV, via faster-whisper)."""
    from faster_whisper import decode_audio

    return decode_audio(str(path), sampling_rate=SAMPLE_RATE)


def non_speech_clips(count: int, seconds: float = 3.0) -> List[Tuple[str, np.ndarray]]:
    """Return `count` generated clips of each kind of non-speech (seeded, reproducible)."""
    clips = []
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    for index in range(count):
        rng = np.random.default_rng(1000 + index)
        pitch = 220.0 * (1 + index)
        sweep = 200.0 + 1800.0 * t / seconds
        kinds = {
            'silence': np.zeros(n),
            'white_noise_low': rng.normal(0, 0.003, n),
            'white_noise_loud': rng.normal(0, 0.1, n),
            'tone': 0.3 * np.sin(2 * np.pi * pitch * t),
            'sweep': 0.3 * np.sin(2 * np.pi * np.cumsum(sweep) / SAMPLE_RATE),
        }
        clips += [(f'{kind}#{index}', audio.astype(np.float32)) for kind, audio in kinds.items()]
    return clips


def decode_clip(recognizer, audio: np.ndarray) -> Tuple[object, float, float, float]:
    """Feed one clip in 20 ms chunks; return (transcript, latency_s, compute_s, cpu_s)."""
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    recognizer.begin()
    for offset in range(0, audio.size, CHUNK_SAMPLES):
        recognizer.accept(audio[offset : offset + CHUNK_SAMPLES])
    end_start = time.perf_counter()
    transcript = recognizer.end()
    done = time.perf_counter()
    return transcript, done - end_start, done - wall_start, time.process_time() - cpu_start


def _percentile(values: Sequence[float], q: float) -> Optional[float]:
    return round(float(np.percentile(values, q)), 4) if len(values) else None


def summarize(results: Sequence[ClipResult]) -> dict:
    """Return corpus CER (also with numbers read), WER, latency p50/p95 (s), CPU s and RTF."""
    if not results:
        return {'clips': 0}
    audio_s = sum(r.duration_s for r in results)
    latencies = [r.latency_s for r in results]
    ref_chars = max(1, sum(r.ref_chars for r in results))
    return {
        'clips': len(results),
        'audio_s': round(audio_s, 2),
        'cer': round(sum(r.char_edits for r in results) / ref_chars, 4),
        'cer_numbers_read': round(sum(r.char_edits_numbers_read for r in results) / ref_chars, 4),
        'wer': round(
            sum(r.word_edits for r in results) / max(1, sum(r.ref_words for r in results)), 4
        ),
        'latency_p50_s': _percentile(latencies, 50),
        'latency_p95_s': _percentile(latencies, 95),
        'cpu_s_mean': round(float(np.mean([r.cpu_s for r in results])), 4),
        'rtf': round(sum(r.compute_s for r in results) / max(audio_s, 1e-9), 4),
    }


def bucket_of(seconds: float) -> str:
    """Return the duration bucket name of a clip."""
    for name, low, high in BUCKETS:
        if low <= seconds < high:
            return name
    return BUCKETS[-1][0]


def build_recognizer(args, threads: int = 1, beam_size: int = 2):
    """Create the recogniser the command line asks for (Whisper with these threads / beam)."""
    from age_node.core.stt import create_recognizer

    if args.engine == 'whisper':
        return create_recognizer(
            'whisper',
            model_path=args.model_path,
            beam_size=beam_size,
            compute_type=args.compute_type,
            cpu_threads=threads,
            language=args.language,
            initial_prompt=args.initial_prompt,
            hotwords=args.hotwords,
            no_speech_threshold=args.no_speech_threshold,
            log_prob_threshold=args.log_prob_threshold,
            guards=not args.no_guards,
        )
    return create_recognizer(
        'vosk',
        model_path=args.model_path,
        beam=args.vosk_beam,
        max_active=args.vosk_max_active,
        lattice_beam=2.0,
        endpoint_silence_s=0.3,
    )


def _speech_result(row: dict, audio: np.ndarray, decoded, recognizer) -> ClipResult:
    transcript, latency, compute, cpu = decoded
    ref_chars, ref_words = normalize_text(row['transcript']), normalize_words(row['transcript'])
    return ClipResult(
        path=row['path'],
        reference=row['transcript'],
        hypothesis=transcript.text,
        duration_s=round(audio.size / SAMPLE_RATE, 3),
        latency_s=round(latency, 4),
        compute_s=round(compute, 4),
        cpu_s=round(cpu, 4),
        char_edits=edit_distance(ref_chars, normalize_text(transcript.text)),
        ref_chars=len(ref_chars),
        word_edits=edit_distance(ref_words, normalize_words(transcript.text)),
        ref_words=len(ref_words),
        confidence=round(float(transcript.confidence), 4),
        char_edits_numbers_read=edit_distance(
            ref_chars, normalize_text(transcript.text, read_numbers=True)
        ),
        speaker_id=row.get('speaker_id', ''),
        detail=_detail(recognizer),
    )


def _non_speech_result(name: str, audio: np.ndarray, decoded, recognizer) -> ClipResult:
    transcript, latency, compute, cpu = decoded
    return ClipResult(
        path=name,
        reference='',
        hypothesis=transcript.text,
        duration_s=audio.size / SAMPLE_RATE,
        latency_s=round(latency, 4),
        compute_s=round(compute, 4),
        cpu_s=round(cpu, 4),
        char_edits=0,
        ref_chars=0,
        word_edits=0,
        ref_words=0,
        confidence=round(float(transcript.confidence), 4),
        kind=name.split('#')[0],
        detail=_detail(recognizer),
    )


def report_of(speech: Sequence[ClipResult], others: Sequence[ClipResult]) -> dict:
    """Return the report of one setting: overall, per bucket, per speaker, non-speech, clips."""
    report = {'overall': summarize(speech)}
    report['buckets'] = {
        name: summarize([r for r in speech if bucket_of(r.duration_s) == name])
        for name, _, _ in BUCKETS
        if any(bucket_of(r.duration_s) == name for r in speech)
    }
    speakers = sorted({r.speaker_id for r in speech if r.speaker_id})
    report['speakers'] = {s: summarize([r for r in speech if r.speaker_id == s]) for s in speakers}
    if others:
        kinds = sorted({r.kind for r in others})
        report['non_speech'] = {
            'clips': len(others),
            'with_text': sum(bool(r.hypothesis.strip()) for r in others),
            'latency_p50_s': _percentile([r.latency_s for r in others], 50),
            'latency_p95_s': _percentile([r.latency_s for r in others], 95),
            'per_kind': {
                k: {
                    'clips': sum(r.kind == k for r in others),
                    'with_text': sum(bool(r.hypothesis.strip()) for r in others if r.kind == k),
                    'texts': [r.hypothesis for r in others if r.kind == k and r.hypothesis],
                }
                for k in kinds
            },
        }
    report['clips'] = [_clip_dict(r) for r in list(speech) + list(others)]
    return report


Variant = Tuple[object, Dict[str, object]]


def evaluate(
    variants: Dict[str, Variant],
    rows: Iterable[dict],
    non_speech: int = 0,
    progress: bool = True,
) -> Dict[str, dict]:
    """Decode every row (and the generated non-speech clips) with every variant; return reports.

    `variants` maps a label to (recogniser, attributes to set on it before each decode, e.g.
    ``{'beam_size': 2}``). Each clip is decoded by every variant in turn before the next clip,
    so the variants share the machine's load (a paired comparison).
    """
    from tqdm import tqdm

    rows = list(rows)
    speech: Dict[str, List[ClipResult]] = {label: [] for label in variants}
    others: Dict[str, List[ClipResult]] = {label: [] for label in variants}

    def each_variant(audio):
        for label, (recognizer, attributes) in variants.items():
            for name, value in attributes.items():
                setattr(recognizer, name, value)
            yield label, recognizer, decode_clip(recognizer, audio)

    for row in tqdm(rows, desc='speech', unit='clip', disable=not progress, file=sys.stderr):
        audio = load_audio(row['audio_path'])
        for label, recognizer, decoded in each_variant(audio):
            speech[label].append(_speech_result(row, audio, decoded, recognizer))
    clips = non_speech_clips(non_speech)
    for name, audio in tqdm(clips, desc='non-speech', disable=not progress, file=sys.stderr):
        for label, recognizer, decoded in each_variant(audio):
            others[label].append(_non_speech_result(name, audio, decoded, recognizer))
    return {label: report_of(speech[label], others[label]) for label in variants}


def _detail(recognizer) -> dict:
    """Return the recogniser's diagnostics of its last decode (Whisper: segments, rejection)."""
    detail = {}
    if getattr(recognizer, 'last_rejection', ''):
        detail['rejected'] = recognizer.last_rejection
    if getattr(recognizer, 'last_segments', None):
        detail['segments'] = list(recognizer.last_segments)
    return detail


def _clip_dict(result: ClipResult) -> dict:
    data = asdict(result)
    data['cer'] = round(result.cer, 4)
    return data


def parse_args(argv=None) -> argparse.Namespace:
    """Return the parsed command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--manifest', required=True, type=Path, help='CSV: path, transcript')
    parser.add_argument('--engine', choices=('whisper', 'vosk'), default='whisper')
    parser.add_argument('--model-path', default=None, help='model folder (default: the engine\'s)')
    parser.add_argument('--every', type=int, default=1, help='take every K-th clip (path order)')
    parser.add_argument('--limit', type=int, default=None, help='then the first N clips')
    parser.add_argument(
        '--non-speech',
        type=int,
        default=0,
        metavar='N',
        help='also decode N generated clips of each non-speech kind',
    )
    parser.add_argument('--out', type=Path, default=Path('out/stt_eval/report.json'))
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    whisper = parser.add_argument_group('whisper')
    whisper.add_argument(
        '--beam-size', default='2', help='1 = greedy; several (1,2,5) are compared clip by clip'
    )
    whisper.add_argument(
        '--threads', default='1', help='CTranslate2 CPU threads; several (1,2) are compared'
    )
    whisper.add_argument('--compute-type', default='int8')
    whisper.add_argument('--language', default='ko')
    whisper.add_argument('--initial-prompt', default='')
    whisper.add_argument('--hotwords', default='')
    whisper.add_argument('--no-speech-threshold', type=float, default=0.6)
    whisper.add_argument('--log-prob-threshold', type=float, default=-1.0)
    whisper.add_argument(
        '--no-guards',
        action='store_true',
        help='plain decoding: no silence gate, token limit or loop rules',
    )
    vosk = parser.add_argument_group('vosk (the node\'s defaults)')
    vosk.add_argument('--vosk-beam', type=float, default=8.0)
    vosk.add_argument('--vosk-max-active', type=int, default=1500)
    return parser.parse_args(argv)


def _int_list(text: str) -> List[int]:
    return [int(item) for item in str(text).split(',') if item.strip()]


def main(argv=None) -> int:
    """Run the evaluation, write the JSON report and print it; return the exit status.

    With several `--beam-size` / `--threads` values (comma-separated) every combination decodes
    each clip in turn, and the report has one entry per combination under `variants`.
    """
    args = parse_args(argv)
    rows = read_manifest(args.manifest, args.every, args.limit)
    load_start = os.getloadavg()
    beams, thread_counts = _int_list(args.beam_size), _int_list(args.threads)
    if args.engine != 'whisper':
        beams, thread_counts = [1], [1]
    recognizers, variants, setup = {}, {}, {}
    for threads in thread_counts:
        started = time.perf_counter()
        recognizers[threads] = build_recognizer(args, threads, beams[0])
        setup[threads] = {
            'model_load_s': round(time.perf_counter() - started, 3),
            'warm_up_s': round(recognizers[threads].warm_up(), 3),
        }
        for beam in beams:
            label = f'beam{beam}_threads{threads}' if args.engine == 'whisper' else args.engine
            attributes = {'beam_size': beam} if args.engine == 'whisper' else {}
            variants[label] = (recognizers[threads], attributes)
    reports = evaluate(variants, rows, args.non_speech, progress=not args.quiet)
    for label, report in reports.items():
        threads = int(label.rsplit('threads', 1)[1]) if 'threads' in label else 1
        report.update(setup.get(threads, {}))
        report['recognizer'] = variants[label][0].name
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    load_end = [round(load_start[0], 2), round(os.getloadavg()[0], 2)]
    if len(reports) == 1:
        ((label, report),) = reports.items()
        output = {'engine': args.engine, 'variant': label, 'settings': settings, **report}
    else:
        output = {'engine': args.engine, 'settings': settings, 'variants': reports}
    output['load_average_start_end'] = load_end
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(output, ensure_ascii=False, indent=1) + '\n')
    print(json.dumps(output, ensure_ascii=False, indent=1))
    print(f'report: {args.out}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
