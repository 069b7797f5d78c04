"""CLI: synthesise an age-labelled Korean speech set with espeak-ng voices (see core.synth).

    python -m age_node.core.make_synthetic --out .cache/age_synth --speakers 360 --per-speaker 5

Writes <out>/clips/*.wav (16 kHz) and <out>/manifest.csv (path, age, speaker_id, split). Ages are
drawn with the three groups balanced and uniform within each group. Speakers are split by
`data.speaker_split`; test speakers read only `synth.HELDOUT_SENTENCES`, so the held-out set has
unseen voices *and* unseen sentences.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from age_node.core import synth
from age_node.core.audio_io import write_wav
from age_node.core.data import speaker_split, write_manifest
from age_node.core.features import SAMPLE_RATE

GROUP_AGE_RANGES = ((5.0, 20.0), (20.0, 60.0), (60.0, 90.0))


def generate(
    out_dir,
    speakers: int,
    per_speaker: int,
    seed: int = 0,
    first_speaker: int = 0,
    progress: bool = True,
) -> Path:
    """Synthesise the set and return the manifest path."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    rows = []
    for index in tqdm(
        range(first_speaker, first_speaker + speakers),
        desc='synthesising speakers',
        disable=not progress,
        unit='spk',
    ):
        low, high = GROUP_AGE_RANGES[index % 3]
        age = float(np.round(rng.uniform(low, high), 1))
        age = min(age, high - 0.1)
        speaker_id = f'synth{index:05d}'
        split = speaker_split(speaker_id)
        sentences = synth.HELDOUT_SENTENCES if split == 'test' else synth.TRAINING_SENTENCES
        voice = synth.voice_for(age, index)
        for take in range(per_speaker):
            text = sentences[int(rng.integers(len(sentences)))]
            audio = synth.render(text, voice, SAMPLE_RATE, noise_seed=take)
            lead, tail = rng.uniform(0.05, 0.35, size=2)
            audio = np.concatenate(
                [_noise_like(audio, lead, rng), audio, _noise_like(audio, tail, rng)]
            )
            name = f'clips/{speaker_id}_{take:02d}.wav'
            write_wav(out_dir / name, audio, SAMPLE_RATE)
            rows.append({'path': name, 'age': age, 'speaker_id': speaker_id, 'split': split})
    manifest = out_dir / 'manifest.csv'
    write_manifest(manifest, rows)
    return manifest


def _noise_like(audio: np.ndarray, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Low background noise (as between words) for padding, scaled to the clip's quietest level."""
    floor = float(np.percentile(np.abs(audio), 10)) + 1e-4
    return rng.normal(0, floor, int(seconds * SAMPLE_RATE)).astype(np.float32)


def main(argv=None) -> int:
    """Write the synthetic speech set from the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--out', required=True, help='output folder (clips/ and manifest.csv)')
    parser.add_argument('--speakers', type=int, default=360)
    parser.add_argument('--per-speaker', type=int, default=5)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--first-speaker',
        type=int,
        default=0,
        help='first voice seed (use a new range for new voices)',
    )
    args = parser.parse_args(argv)
    manifest = generate(args.out, args.speakers, args.per_speaker, args.seed, args.first_speaker)
    print(f'wrote {manifest}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
