"""CLI: regenerate the shipped default age model from synthetic speech, end to end.

    python -m age_node.core.default_model            # ~10 min on 1 CPU thread

1. synthesise `--speakers` espeak-ng voices (core.make_synthetic) into `--work` (not committed);
2. train + calibrate + evaluate on held-out speakers (core.train) and export
   src/age_node/models/age_cnn.safetensors;
3. evaluate `synth.synthesize_speech` (the demo voices) on voice seeds never used in training,
   speaking the demo sentences (never used in training), and store that accuracy in the model's
   metadata and in <report-dir>/report.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from age_node.core import ages, synth
from age_node.core.make_synthetic import generate
from age_node.core.model import AgeEstimator, load_metadata, save_model, AgeCNN
from age_node.core.train import train

PACKAGE = Path(__file__).resolve().parents[2]
#: Voice seeds of the demo-voice evaluation: far from the training speakers (0..speakers-1).
DEMO_EVAL_FIRST_SEED = 100_000


def evaluate_demo_voices(model_path, voices_per_group: int = 40) -> dict:
    """Measure the model's accuracy on `synthesize_speech` voices with unseen seeds.

    The voices speak the demo sentences.
    """
    estimator = AgeEstimator(model_path)
    confusion = np.zeros((3, 3), dtype=int)
    errors = []
    for group in range(3):
        label = ages.group_label(group)
        for k in tqdm(range(voices_per_group), desc=f'demo voices ({label})', leave=False):
            seed = DEMO_EVAL_FIRST_SEED + 1000 * group + k
            text = synth.DEMO_SENTENCES[label][k % len(synth.DEMO_SENTENCES[label])]
            result = estimator.predict(synth.synthesize_speech(text, label, seed))
            confusion[group, result.group] += 1
            errors.append(abs(result.estimated_age_years - synth.demo_age(label, seed)))
    return {
        'n': int(confusion.sum()),
        'accuracy': float(np.trace(confusion) / confusion.sum()),
        'recall': {
            ages.group_label(g): float(confusion[g, g] / confusion[g].sum()) for g in range(3)
        },
        'confusion': confusion.tolist(),
        'age_mae_years': float(np.mean(errors)),
        'seeds': f'{DEMO_EVAL_FIRST_SEED}+1000*group+k, k < {voices_per_group}',
    }


def main(argv=None) -> int:
    """Regenerate the default age model as the module docstring describes; return 0."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--work', default=str(PACKAGE.parents[1] / '.cache' / 'age_synth'))
    parser.add_argument('--out', default=str(PACKAGE / 'models' / 'age_cnn.safetensors'))
    parser.add_argument(
        '--report-dir', default=str(PACKAGE.parents[1] / 'out' / 'age_default_model')
    )
    parser.add_argument('--speakers', type=int, default=420)
    parser.add_argument('--per-speaker', type=int, default=5)
    parser.add_argument('--epochs', type=int, default=18)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--demo-only',
        action='store_true',
        help='keep the trained weights; only re-run the demo-voice evaluation (step 3)',
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    manifest = Path(args.work) / 'manifest.csv'
    report_path = Path(args.report_dir) / 'report.json'
    if args.demo_only:
        report = json.loads(report_path.read_text())
    else:
        if not manifest.is_file():
            generate(args.work, args.speakers, args.per_speaker, seed=args.seed)
        report = train(
            manifest,
            args.out,
            args.report_dir,
            epochs=args.epochs,
            seed=args.seed,
            version='synthetic-espeak-v1',
            extra_metadata={
                'training_data': f'synthetic espeak-ng voices ({args.speakers} speakers '
                f'x {args.per_speaker} clips), age_node.core.default_model'
            },
        )
    demo = evaluate_demo_voices(args.out)
    report['demo_voices'] = demo
    # store the held-out numbers in the weights' metadata (re-save with the same tensors)
    from safetensors.torch import load_file

    model = AgeCNN()
    model.load_state_dict(load_file(args.out))
    metadata = load_metadata(args.out)
    metadata['heldout_accuracy'] = report['test']['accuracy']
    metadata['heldout_recall'] = report['test']['recall']
    metadata['demo_voices_accuracy'] = demo['accuracy']
    save_model(args.out, model, metadata)
    Path(args.report_dir).mkdir(parents=True, exist_ok=True)
    (Path(args.report_dir) / 'report.json').write_text(
        json.dumps(report, indent=2, ensure_ascii=False)
    )
    print(
        json.dumps(
            {
                'heldout_test': {
                    k: report['test'][k]
                    for k in ('n', 'accuracy', 'recall', 'age_mae_years', 'ece')
                },
                'demo_voices': demo,
                'temperature': report['temperature'],
                'train_seconds': report['train_seconds'],
            },
            indent=2,
        )
    )
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
