"""Command lines to fine-tune and evaluate the emotion model (no ROS needed).

    emotion_train --data fer2013.csv --usage Training --val-usage PublicTest --out my.safetensors
    emotion_train --data faces/ --epochs 5 --out my.safetensors          # faces/<label>/*.png
    emotion_evaluate --data fer2013.csv --usage PrivateTest --weights my.safetensors \
        --out-dir out/eval

(`python -m emotion_node.cli train|evaluate ...` works too.) The node uses new weights through its
`model_path` parameter.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from emotion_node.core.convert import default_weights_path


def _default_weights() -> str:
    return str(default_weights_path())


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--data',
        required=True,
        type=Path,
        help='FER2013-format CSV (emotion,pixels,Usage) or a folder with one sub-folder per class',
    )
    parser.add_argument(
        '--usage',
        nargs='*',
        default=None,
        help='CSV only: keep rows with these Usage values (e.g. Training)',
    )
    parser.add_argument(
        '--limit', type=int, default=0, help='CSV only: read at most this many rows'
    )
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--quiet', action='store_true', help='no progress bars')


def train_main(argv=None) -> int:
    """`emotion_train`: fine-tune the mini-Xception and save safetensors."""
    import torch

    from emotion_node.core.data import DataError, load_dataset
    from emotion_node.core.model import MiniXception, load_weights, save_weights
    from emotion_node.core.training import TrainConfig, train

    parser = argparse.ArgumentParser(prog='emotion_train', description=train_main.__doc__)
    _common(parser)
    parser.add_argument(
        '--weights', default=_default_weights(), help='starting weights (safetensors)'
    )
    parser.add_argument('--from-scratch', action='store_true', help='start from random weights')
    parser.add_argument(
        '--val-usage', nargs='*', default=None, help='CSV only: Usage values of a validation split'
    )
    parser.add_argument(
        '--out', required=True, type=Path, help='where to write the fine-tuned safetensors'
    )
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--lr', type=float, default=1e-4)
    parser.add_argument('--no-augment', action='store_true')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--history', type=Path, default=None, help='write the per-epoch losses as JSON here'
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        faces, labels = load_dataset(args.data, usage=args.usage, limit=args.limit)
        val = (
            load_dataset(args.data, usage=args.val_usage, limit=args.limit)
            if args.val_usage
            else (None, None)
        )
        model = MiniXception() if args.from_scratch else load_weights(args.weights)
    except (DataError, FileNotFoundError, ValueError, OSError) as error:
        print(f'emotion_train: {error}', file=sys.stderr)
        return 2
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        augment=not args.no_augment,
        seed=args.seed,
    )
    print(f'emotion_train: {len(faces)} faces, {config.epochs} epochs, lr {config.learning_rate}')
    history = train(
        model, faces, labels, config, val_faces=val[0], val_labels=val[1], progress=not args.quiet
    )
    save_weights(
        model, args.out, metadata={'trained_on': str(args.data), 'epochs': str(config.epochs)}
    )
    if args.history:
        args.history.parent.mkdir(parents=True, exist_ok=True)
        args.history.write_text(
            json.dumps({'loss': history.loss, 'val_accuracy': history.val_accuracy}, indent=2)
        )
    print(f'emotion_train: loss {history.loss[0]:.4f} -> {history.loss[-1]:.4f}; wrote {args.out}')
    return 0


def evaluate_main(argv=None) -> int:
    """`emotion_evaluate`: accuracy, per-class recall and a confusion-matrix PNG."""
    import torch

    from emotion_node.core.data import DataError, load_dataset
    from emotion_node.core.model import load_weights
    from emotion_node.core.training import evaluate, save_confusion_png

    parser = argparse.ArgumentParser(prog='emotion_evaluate', description=evaluate_main.__doc__)
    _common(parser)
    parser.add_argument(
        '--weights', default=_default_weights(), help='weights to evaluate (safetensors)'
    )
    parser.add_argument(
        '--out-dir', required=True, type=Path, help='writes metrics.json and confusion.png here'
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        faces, labels = load_dataset(args.data, usage=args.usage, limit=args.limit)
        model = load_weights(args.weights)
    except (DataError, FileNotFoundError, ValueError, OSError) as error:
        print(f'emotion_evaluate: {error}', file=sys.stderr)
        return 2
    result = evaluate(model, faces, labels, progress=not args.quiet)
    result.update({'data': str(args.data), 'weights': str(args.weights)})
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / 'metrics.json').write_text(json.dumps(result, indent=2))
    save_confusion_png(result['confusion_matrix'], args.out_dir / 'confusion.png')
    recall = ', '.join(
        f'{k} {v:.3f}' for k, v in result['per_class_recall'].items() if v is not None
    )
    print(
        f'emotion_evaluate: accuracy {result["accuracy"]:.4f} on {result["count"]} faces; '
        f'recall: {recall}'
    )
    print(
        f'emotion_evaluate: wrote {args.out_dir / "metrics.json"} '
        f'and {args.out_dir / "confusion.png"}'
    )
    return 0


def main(argv=None) -> int:
    """`python -m emotion_node.cli train|evaluate ...`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {'train': train_main, 'evaluate': evaluate_main}
    if not argv or argv[0] not in commands:
        print('usage: python -m emotion_node.cli {train,evaluate} ...', file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == '__main__':
    sys.exit(main())
