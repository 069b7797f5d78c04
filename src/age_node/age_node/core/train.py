"""CLI: train, calibrate, evaluate and export the age CNN from a manifest CSV (see core.data).

    python -m age_node.core.train train --manifest data/manifest.csv \
        --out models/age_cnn.safetensors --report-dir out/age_train --epochs 20
    python -m age_node.core.train evaluate --model models/age_cnn.safetensors \
        --manifest data/manifest.csv --split test --report-dir out/age_eval

`train` fits on the train speakers (augmented), keeps the epoch with the best validation group
accuracy, fits a softmax temperature on the validation speakers (group negative log-likelihood),
evaluates the test speakers (accuracy, per-group recall, confusion matrix PNG, mean absolute age
error, expected calibration error) and exports safetensors with the metrics in its metadata.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from age_node.core import ages
from age_node.core.age_data import AgeClip, load_split, trainable_source
from age_node.core.age_report import build_report, per_speaker
from age_node.core.data import (
    Augment,
    Clip,
    ClipDataset,
    collate,
    read_manifest,
    stretch_frames,
)
from age_node.core.features import LogMel
from age_node.core.model import AgeCNN, AgeEstimator, group_log_probs, load_metadata, save_model


def _loader(dataset, batch_size: int, shuffle: bool, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=collate,
        generator=generator,
        num_workers=0,
    )


@torch.inference_mode()
def predict_logits(model: AgeCNN, dataset: ClipDataset, batch_size: int = 16):
    """Bin logits (N, 17) and true ages (N,) for a dataset (no augmentation)."""
    model.eval()
    features = LogMel()
    all_logits, all_ages = [], []
    for waveforms, lengths, _, ages_years in _loader(dataset, batch_size, shuffle=False):
        feats, frame_lengths = features(waveforms, lengths)
        all_logits.append(model(feats, frame_lengths))
        all_ages.append(ages_years)
    return torch.cat(all_logits), torch.cat(all_ages)


def fit_temperature(logits: torch.Tensor, true_ages: torch.Tensor) -> float:
    """Return the softmax temperature that minimises the group negative log-likelihood.

    It is found by a grid search.
    """
    groups = torch.tensor([ages.age_to_group(a) for a in true_ages.tolist()])
    best, best_nll = 1.0, float('inf')
    for temperature in np.exp(np.linspace(np.log(0.3), np.log(8.0), 80)):
        nll = torch.nn.functional.nll_loss(
            group_log_probs(logits / float(temperature)), groups
        ).item()
        if nll < best_nll:
            best, best_nll = float(temperature), nll
    return best


def metrics(logits: torch.Tensor, true_ages: torch.Tensor, temperature: float = 1.0) -> Dict:
    """Group accuracy, per-group recall, confusion matrix, age MAE, ECE and group NLL."""
    bins = torch.softmax(logits / temperature, dim=-1).numpy()
    group_probs = ages.group_probabilities(bins)
    predicted = group_probs.argmax(axis=1)
    truth = np.array([ages.age_to_group(a) for a in true_ages.tolist()])
    confusion = np.zeros((3, 3), dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        confusion[t, p] += 1
    recall = {
        ages.group_label(g): (
            float(confusion[g, g] / confusion[g].sum()) if confusion[g].sum() else None
        )
        for g in range(3)
    }
    confidence = group_probs.max(axis=1)
    correct = predicted == truth
    ece = 0.0
    edges = np.linspace(0, 1, 11)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    nll = float(-np.mean(np.log(np.maximum(group_probs[np.arange(len(truth)), truth], 1e-12))))
    return {
        'n': int(len(truth)),
        'accuracy': float(correct.mean()),
        'recall': recall,
        'confusion': confusion.tolist(),
        'confusion_labels': list(ages.GROUP_LABELS),
        'age_mae_years': float(np.mean(np.abs(ages.expected_age(bins) - true_ages.numpy()))),
        'ece': float(ece),
        'group_nll': nll,
    }


def save_confusion_png(confusion, path, title: str) -> None:
    """Write the 3x3 confusion matrix (rows: truth, columns: prediction) as a PNG."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    matrix = np.asarray(confusion)
    fig, axis = plt.subplots(figsize=(4.2, 3.8))
    axis.imshow(matrix, cmap='Blues')
    axis.set_xticks(range(3), ages.GROUP_LABELS)
    axis.set_yticks(range(3), ages.GROUP_LABELS)
    axis.set_xlabel('predicted')
    axis.set_ylabel('true')
    axis.set_title(title, fontsize=9)
    for i in range(3):
        for j in range(3):
            axis.text(
                j,
                i,
                str(matrix[i, j]),
                ha='center',
                va='center',
                color='white' if matrix[i, j] > matrix.max() / 2 else 'black',
            )
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _split(clips: Sequence[Clip], name: str):
    return [c for c in clips if c.split == name]


def train(
    manifest,
    out,
    report_dir=None,
    epochs: int = 20,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
    threads: int = 1,
    group_weight: float = 1.0,
    version: str = '',
    extra_metadata: Optional[Dict] = None,
    progress: bool = True,
    clips: Optional[Sequence[Clip]] = None,
) -> Dict:
    """Train, calibrate, evaluate and export; return the report (also written to report_dir).

    `clips` (with their splits) replace the manifest's rows when given.
    """
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    clips = read_manifest(manifest) if clips is None else list(clips)
    train_clips, val_clips, test_clips = (_split(clips, s) for s in ('train', 'val', 'test'))
    if not train_clips or not val_clips:
        raise ValueError(
            'the manifest needs train and val speakers (add speakers or a split column)'
        )
    started = time.time()
    train_set = ClipDataset(train_clips, augment=Augment(), seed=seed)
    val_set = ClipDataset(val_clips)
    model = AgeCNN()
    features = LogMel()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-3)
    steps = epochs * max(1, (len(train_set) + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps, pct_start=0.2
    )
    rng = np.random.default_rng(seed)
    best = {'accuracy': -1.0}
    best_state = None
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        total, count = 0.0, 0
        bar = tqdm(
            _loader(train_set, batch_size, shuffle=True, seed=seed + epoch),
            desc=f'epoch {epoch}/{epochs}',
            disable=not progress,
            leave=False,
            unit='batch',
        )
        for waveforms, lengths, targets, ages_years in bar:
            feats, frame_lengths = features(waveforms, lengths)
            feats, frame_lengths = stretch_frames(
                feats, frame_lengths, float(rng.uniform(0.92, 1.08))
            )
            logits = model(feats, frame_lengths)
            bin_loss = -(targets * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()
            groups = torch.tensor([ages.age_to_group(a) for a in ages_years.tolist()])
            group_loss = torch.nn.functional.nll_loss(group_log_probs(logits), groups)
            loss = bin_loss + group_weight * group_loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(targets)
            count += len(targets)
            bar.set_postfix(loss=f'{total / count:.3f}')
        val_logits, val_ages = predict_logits(model, val_set)
        val = metrics(val_logits, val_ages)
        history.append(
            {
                'epoch': epoch,
                'train_loss': total / count,
                'val_accuracy': val['accuracy'],
                'val_age_mae_years': val['age_mae_years'],
            }
        )
        if progress:
            tqdm.write(
                f"epoch {epoch}: loss {total / count:.3f}  val acc {val['accuracy']:.3f}  "
                f"val MAE {val['age_mae_years']:.1f} y"
            )
        if val['accuracy'] >= best['accuracy']:
            best = val
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    val_logits, val_ages = predict_logits(model, val_set)
    temperature = fit_temperature(val_logits, val_ages)
    report = {
        'manifest': str(manifest),
        'epochs': epochs,
        'seed': seed,
        'temperature': temperature,
        'train_clips': len(train_clips),
        'val_clips': len(val_clips),
        'test_clips': len(test_clips),
        'train_speakers': len({c.speaker_id for c in train_clips}),
        'val_speakers': len({c.speaker_id for c in val_clips}),
        'test_speakers': len({c.speaker_id for c in test_clips}),
        'val': metrics(val_logits, val_ages, temperature),
        'val_uncalibrated': metrics(val_logits, val_ages, 1.0),
        'history': history,
    }
    if test_clips:
        test_logits, test_ages = predict_logits(model, ClipDataset(test_clips))
        report['test'] = metrics(test_logits, test_ages, temperature)
        report['test_uncalibrated'] = metrics(test_logits, test_ages, 1.0)
    report['train_seconds'] = round(time.time() - started, 1)
    metadata = {
        'version': version or time.strftime('%Y%m%d'),
        'temperature': temperature,
        'bin_lower_years': list(ages.BIN_LOWER_YEARS),
        'test_accuracy': report.get('test', {}).get('accuracy'),
        'test_age_mae_years': report.get('test', {}).get('age_mae_years'),
    }
    metadata.update(extra_metadata or {})
    save_model(out, model, metadata)
    if report_dir:
        report_dir = Path(report_dir)
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / 'report.json').write_text(json.dumps(report, indent=2, ensure_ascii=False))
        if 'test' in report:
            save_confusion_png(
                report['test']['confusion'],
                report_dir / 'confusion_test.png',
                f"test speakers: accuracy {report['test']['accuracy']:.3f}",
            )
    return report


def evaluate(model_path, manifest, split: str = 'test', report_dir=None) -> Dict:
    """Evaluate an exported model on one split of a manifest, with its stored temperature."""
    from safetensors.torch import load_file

    model = AgeCNN()
    model.load_state_dict(load_file(str(model_path)))
    temperature = float(load_metadata(model_path).get('temperature', 1.0))
    clips = [c for c in read_manifest(manifest) if split == 'all' or c.split == split]
    if not clips:
        raise ValueError(f'no clips in split {split!r} of {manifest}')
    logits, true_ages = predict_logits(model, ClipDataset(clips))
    result = metrics(logits, true_ages, temperature)
    if report_dir:
        report_dir = Path(report_dir)
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / f'eval_{split}.json').write_text(json.dumps(result, indent=2))
        save_confusion_png(
            result['confusion'],
            report_dir / f'confusion_{split}.png',
            f"{split}: accuracy {result['accuracy']:.3f}",
        )
    return result


def _cnn_clips(clips: Sequence[AgeClip]) -> list:
    """Return the real clips as the CNN's rows (age: exact, or the band's middle)."""
    return [
        Clip(
            c.path, float(np.clip(c.age_years, ages.MIN_AGE, ages.MAX_AGE)), c.speaker_id, c.split
        )
        for c in clips
        if c.split != 'train' or trainable_source(c.source)
    ]


def predict_clips(model_path, clips: Sequence[AgeClip], variant: str = 'clean', progress=True):
    """Group probabilities (N, 3), expected ages (N,) and metadata of a model on clips.

    A Whisper head reads the cached encoder states and speaker embeddings (computing the
    missing ones); a CNN runs on
    each clip's audio.
    """
    from age_node.core.train_whisper_age import clip_features, variant_audio
    from age_node.core.whisper_age import MODEL_KIND, AgeHead, head_inputs, read_metadata, softmax

    metadata = read_metadata(model_path)
    if metadata.get('kind') == MODEL_KIND:
        from safetensors.numpy import load_file

        head = AgeHead(load_file(str(model_path)))
        logits = head.logits(clip_features(clips, head_inputs(metadata), variant, progress))
        bins = softmax(logits / float(metadata.get('temperature', 1.0)))
    else:
        estimator = AgeEstimator(model_path)
        bins = np.stack(
            [
                estimator.predict(variant_audio(c, variant)).bin_probabilities
                for c in tqdm(clips, desc=f'age CNN ({variant})', disable=not progress)
            ]
        )
    groups = ages.group_probabilities(bins)
    return groups / groups.sum(1, keepdims=True), ages.expected_age(bins), metadata


def evaluate_real(
    model_path,
    manifest,
    split: str = 'test',
    report_dir=None,
    silence_s: Sequence[float] = (),
    progress: bool = True,
) -> Dict:
    """Evaluate a model (either kind) on one split of a real age manifest; write report.json."""
    clips = load_split(manifest, split)
    if not clips:
        raise ValueError(f'no clips in split {split!r} of {manifest}')
    probs, expected, metadata = predict_clips(model_path, clips, 'clean', progress)
    report = {
        'model': str(model_path),
        'model_version': metadata.get('version'),
        'manifest': str(manifest),
        'split': split,
        **build_report(clips, probs, expected, float(metadata.get('unsure_below', 0.0))),
        'per_speaker': per_speaker(clips, probs),
    }
    if silence_s:
        base = probs.argmax(1)
        same = np.ones(len(clips), bool)
        report['silence'] = {}
        for seconds in silence_s:
            if seconds <= 0:
                continue
            padded, _, _ = predict_clips(model_path, clips, f'silence{seconds:g}', progress)
            agree = padded.argmax(1) == base
            same &= agree
            report['silence'][f'{seconds:g}'] = {
                'same_group': round(float(agree.mean()), 4),
                'balanced_accuracy': build_report(clips, padded, expected)['balanced_accuracy'],
            }
        report['silence']['same_group_all'] = round(float(same.mean()), 4)
    if report_dir:
        report_dir = Path(report_dir)
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / 'report.json').write_text(json.dumps(report, indent=2, ensure_ascii=False))
        save_confusion_png(
            report['confusion'],
            report_dir / f'confusion_{split}.png',
            f"{split}: balanced accuracy {report['balanced_accuracy']:.3f}",
        )
    return report


def train_real(
    manifest,
    out,
    report_dir=None,
    kind: str = 'whisper',
    epochs: int = 12,
    seed: int = 0,
    threads: int = 1,
    progress: bool = True,
    extra_train: Sequence = (),
) -> Dict:
    """Train on the fixed split of a real age manifest, export, evaluate the test speakers.

    `extra_train` manifests add training clips only (their rows are `train`: e.g. clips without
    speaker ids, which can never be held out).
    """
    from age_node.core.train_whisper_age import train_whisper_head
    from age_node.core.whisper_age import WINDOW_S, save_head

    clips = load_split(manifest)
    for extra in extra_train:
        clips += [c for c in load_split(extra) if c.split == 'train']
    sources = sorted({c.source for c in clips if c.split == 'train'})
    if kind == 'whisper':
        fitted = train_whisper_head(clips, progress=progress, seed=seed)
        log = {k: v for k, v in fitted.items() if k != 'tensors'}
        metadata = {
            'version': f"real-v2-{time.strftime('%Y%m%d')}",
            'temperature': fitted['temperature'],
            'unsure_below': fitted['unsure_below'],
            'window_s': WINDOW_S,
            'trim_silence': True,
            'encoder': 'whisper-base (CTranslate2 int8), final encoder states, mean+std pooled',
            'inputs': fitted['config']['inputs'],
            'speaker_encoder': 'GE2E (Resemblyzer 0.1.4 pretrained.pt, Apache-2.0), ONNX',
            'config': fitted['config'],
            'bin_lower_years': list(ages.BIN_LOWER_YEARS),
            'training_sources': [s for s in sources if trainable_source(s)],
        }
        save_head(out, fitted['tensors'], metadata)
    else:
        log = train(
            manifest,
            out,
            None,
            epochs=epochs,
            seed=seed,
            threads=threads,
            progress=progress,
            clips=_cnn_clips(clips),
            version=f"real-cnn-{time.strftime('%Y%m%d')}",
        )
    silence = (0.5, 1.0) if kind == 'whisper' else ()
    report = evaluate_real(out, manifest, 'test', report_dir, silence, progress=progress)
    report['training'] = log
    if kind == 'whisper':  # the held-out numbers travel with the weights (make bench reads them)
        from safetensors.numpy import load_file

        metadata.update(
            heldout_balanced_accuracy=report['balanced_accuracy'],
            heldout_recall=report['recall'],
            heldout_silence_same_group=report['silence']['same_group_all'],
            heldout_clips=report['clips'],
            heldout_speakers=report['speakers'],
        )
        save_head(out, load_file(str(out)), metadata)
    if report_dir:
        (Path(report_dir) / 'report.json').write_text(
            json.dumps(report, indent=2, ensure_ascii=False)
        )
    return report


def _is_real_manifest(path) -> bool:
    with open(path, encoding='utf-8') as handle:
        return 'age_group' in handle.readline()


def main(argv=None) -> int:
    """Train or evaluate from the command line; return the exit status."""
    from age_node.core.whisper_age import DEFAULT_MODEL_FILE, default_model_path

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest='command', required=True)
    fit = commands.add_parser('train', help='train, calibrate, evaluate, export')
    fit.add_argument('--manifest', required=True)
    fit.add_argument(
        '--kind',
        default='whisper',
        choices=['whisper', 'cnn'],
        help='whisper: head on the Whisper encoder (the shipped kind); cnn: log-mel CNN',
    )
    fit.add_argument(
        '--out',
        default=None,
        help=f'output .safetensors (default for whisper: the shipped models/{DEFAULT_MODEL_FILE})',
    )
    fit.add_argument(
        '--extra-train',
        action='append',
        default=[],
        help='a manifest whose clips only add training data (repeatable)',
    )
    fit.add_argument('--report-dir', default='out/age_train')
    fit.add_argument('--epochs', type=int, default=20, help='CNN epochs')
    fit.add_argument('--batch-size', type=int, default=16)
    fit.add_argument('--lr', type=float, default=3e-3)
    fit.add_argument('--seed', type=int, default=0)
    fit.add_argument('--threads', type=int, default=1)
    ev = commands.add_parser('evaluate', help='evaluate an exported model on a split')
    ev.add_argument('--model', default=None, help='default: the shipped model')
    ev.add_argument('--manifest', required=True)
    ev.add_argument('--split', default='test', choices=['train', 'val', 'test', 'all'])
    ev.add_argument('--report-dir', default='out/age_eval')
    ev.add_argument(
        '--silence',
        default='',
        help='comma-separated seconds of silence added before and after each clip, e.g. 0.5,1',
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(getattr(args, 'threads', 1))
    if args.command == 'train':
        real = _is_real_manifest(args.manifest)
        if real:
            out = args.out or (
                Path(__file__).resolve().parents[2] / 'models' / DEFAULT_MODEL_FILE
                if args.kind == 'whisper'
                else None
            )
            if out is None:
                parser.error('--out is needed for --kind cnn')
            report = train_real(
                args.manifest,
                out,
                args.report_dir,
                args.kind,
                args.epochs,
                args.seed,
                args.threads,
                extra_train=args.extra_train,
            )
            summary = {
                k: report[k] for k in ('balanced_accuracy', 'recall', 'clips', 'speakers', 'ece')
            }
        else:
            if args.kind != 'cnn' or not args.out:
                parser.error('a path,age,speaker_id manifest trains the CNN: --kind cnn --out ...')
            report = train(
                args.manifest,
                args.out,
                args.report_dir,
                args.epochs,
                args.batch_size,
                args.lr,
                args.seed,
                args.threads,
                extra_train=args.extra_train,
            )
            summary = {k: report[k] for k in ('temperature', 'train_seconds') if k in report}
            summary.update(
                {
                    f'test_{k}': v
                    for k, v in report.get('test', {}).items()
                    if k in ('accuracy', 'recall', 'age_mae_years', 'ece')
                }
            )
        print(json.dumps(summary, indent=2))
        return 0
    model = args.model or default_model_path()
    if _is_real_manifest(args.manifest):
        silence = [float(v) for v in args.silence.split(',') if v.strip()]
        report = evaluate_real(model, args.manifest, args.split, args.report_dir, silence)
        keys = ('balanced_accuracy', 'recall', 'clips', 'speakers', 'ece', 'silence')
        print(json.dumps({k: report[k] for k in keys if k in report}, indent=2))
    else:
        print(json.dumps(evaluate(model, args.manifest, args.split, args.report_dir), indent=2))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
