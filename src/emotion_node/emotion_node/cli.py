"""Command lines to fine-tune and evaluate the emotion model (no ROS needed).

    emotion_train --data fer2013.csv --usage Training --val-usage PublicTest --out my.safetensors
    emotion_train --data faces/ --epochs 5 --out my.safetensors          # faces/<label>/*.png
    emotion_evaluate --data fer2013.csv --usage PrivateTest --weights my.safetensors \
        --out-dir out/eval

(`python -m emotion_node.cli train|evaluate ...` works too.) The node uses new weights through its
`model_path` parameter.

    python -m emotion_node.cli evaluate-pipeline --images labels.csv     # columns path,label

scores detector + crop + classifier exactly as the node runs them on a still picture (no tracking,
no smoothing) and prints JSON: accuracy (a picture without a face found counts as wrong),
accuracy on the pictures with a face, per-class recall, no-face count and the confusion matrix
(rows = true label, columns = predicted label, then a last "no_face" column).

    python -m emotion_node.cli evaluate-pipeline --offline-set

does the same on a labelled set built from what ships offline (LFW faces and portraits of
scikit-image / matplotlib, labelled happy or neutral by eye, pasted into 640x480 scenes at several
sizes) and puts the classifier alone on the ground-truth crops next to it; `make bench` reports it
as `pipeline_accuracy` and `classifier_accuracy`.
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


def read_labelled_images(csv_path: Path):
    """Return [(path, label index)] from a CSV with columns path,label (paths relative to it)."""
    import csv

    from emotion_node.core.spec import LABELS

    rows = []
    with open(csv_path, newline='') as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {'path', 'label'} <= {
            f.strip() for f in reader.fieldnames
        }:
            raise ValueError(f'{csv_path}: needs the columns path,label')
        for line, row in enumerate(reader, start=2):
            row = {k.strip(): (v or '').strip() for k, v in row.items()}
            label = row['label'].lower()
            if label.isdigit() and int(label) < len(LABELS):
                index = int(label)
            elif label in LABELS:
                index = LABELS.index(label)
            else:
                raise ValueError(f'{csv_path}:{line}: label {label!r} is not one of {LABELS}')
            path = Path(row['path'])
            rows.append((path if path.is_absolute() else csv_path.parent / path, index))
    return rows


def score(pairs) -> dict:
    """Score (true label index, probabilities or None = no face) pairs (module docstring keys)."""
    import numpy as np

    from emotion_node.core.spec import LABELS

    n = len(LABELS)
    confusion = np.zeros((n, n + 1), int)
    for label, probabilities in pairs:
        confusion[label, n if probabilities is None else int(np.argmax(probabilities))] += 1
    total = int(confusion.sum())
    found = confusion[:, :n]
    correct = int(np.trace(found))
    per_class = {
        LABELS[i]: (float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None)
        for i in range(n)
    }
    return {
        'count': total,
        'accuracy': correct / total if total else None,
        'accuracy_on_found_faces': correct / int(found.sum()) if found.sum() else None,
        'no_face': int(confusion[:, n].sum()),
        'per_class_recall': per_class,
        'labels': list(LABELS) + ['no_face'],
        'confusion_matrix': confusion.tolist(),
    }


def evaluate_pipeline(rows, pipeline, classifier_only: bool = False) -> dict:
    """Score (path, label) pictures; see the module docstring for the keys."""
    import cv2

    from emotion_node.core.spec import INPUT_SIZE

    pairs = []
    for path, label in rows:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f'{path}: not a readable image')
        if classifier_only:  # the picture is the face crop (FER2013 style)
            grey = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), (INPUT_SIZE, INPUT_SIZE))
            probabilities = pipeline.classifier.probabilities(grey[None])[0]
        else:
            _, probabilities = pipeline.classify_still(bgr)
        pairs.append((label, probabilities))
    result = score(pairs)
    result['mode'] = (
        'classifier on the whole picture' if classifier_only else 'detector + crop + classifier'
    )
    return result


def evaluate_offline(pipeline, sizes=None) -> dict:
    """Pipeline vs classifier alone on the labelled set built from what ships offline.

    The set (:func:`emotion_node.core.synthetic.labelled_faces`): 65 LFW faces of
    skimage's lfw_subset and 3 bundled portraits, labelled happy or neutral by eye. "Classifier
    alone" classifies each ground-truth face crop resized to the network's input (as FER2013
    presents faces); "pipeline" = detector + crop + classifier as the node runs them on a still
    640x480 frame with the face pasted on a real texture at each size of `sizes` (face box
    width, px); "pipeline_fer_style_48" runs the pipeline on the 48x48 grey tight crop itself
    (the close-up the issue found missed); "true_box" = the node's crop rule and classifier on the
    true face box of each scene (no detector: what detection costs). Each is split by size, by
    source group and by class.
    """
    import cv2

    from emotion_node.core import synthetic
    from emotion_node.core.preprocess import crop_face
    from emotion_node.core.spec import INPUT_SIZE, LABELS

    sizes = tuple(sizes or synthetic.EMOTION_SCENE_SIZES)
    faces = synthetic.labelled_faces()
    alone, tight = [], []
    for face in faces:
        grey = cv2.cvtColor(face.crop(), cv2.COLOR_BGR2GRAY)
        crop = cv2.resize(grey, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
        alone.append(
            (face, LABELS.index(face.label), pipeline.classifier.probabilities(crop[None])[0])
        )
        fer = cv2.cvtColor(cv2.resize(grey, (48, 48)), cv2.COLOR_GRAY2BGR)
        tight.append((face, LABELS.index(face.label), pipeline.classify_still(fer)[1]))
    scenes, true_box = [], []
    for sample, face, size in synthetic.emotion_scenes(sizes):
        grey = cv2.cvtColor(sample.frame, cv2.COLOR_BGR2GRAY)
        crop = crop_face(grey, pipeline.crop_box(sample.boxes[0]))
        true_box.append(
            (
                face,
                size,
                LABELS.index(face.label),
                pipeline.classifier.probabilities(crop[None])[0],
            )
        )
        box, probabilities = pipeline.classify_still(sample.frame)
        if box is not None and not synthetic.matches(box, sample.boxes[0]):
            probabilities = None  # a box elsewhere is not this face: counted as no face
        scenes.append((face, size, LABELS.index(face.label), probabilities))

    def pairs(items):
        return [(label, probabilities) for *_, label, probabilities in items]

    groups = sorted({f.group for f in faces})
    result = {
        'set': (
            f'{len(faces)} faces labelled by eye (synthetic.LFW_EXPRESSIONS and '
            'PORTRAIT_EXPRESSIONS): '
            + ', '.join(f'{g} {sum(f.group == g for f in faces)}' for g in groups)
            + f'; labels present: {sorted({f.label for f in faces})}; scenes: 640x480, face '
            f'widths {list(sizes)} px'
        ),
        'classifier_alone': score(pairs(alone)),
        'pipeline': score(pairs(scenes)),
        'true_box': score(pairs(true_box)),
        'true_box_by_size': {
            str(z): score(pairs([s for s in true_box if s[1] == z])) for z in sizes
        },
        'pipeline_by_size': {
            str(z): score(pairs([s for s in scenes if s[1] == z])) for z in sizes
        },
        'pipeline_fer_style_48': score(pairs(tight)),
        'classifier_alone_by_source': {
            g: score(pairs([a for a in alone if a[0].group == g])) for g in groups
        },
        'pipeline_by_source': {
            g: score(pairs([s for s in scenes if s[0].group == g])) for g in groups
        },
    }
    return result


def _summary(result: dict) -> dict:
    """Return the headline numbers of :func:`evaluate_offline` (the bench keys)."""
    return {
        'classifier_accuracy': result['classifier_alone']['accuracy'],
        'pipeline_accuracy': result['pipeline']['accuracy'],
        'pipeline_no_face': result['pipeline']['no_face'],
        'pipeline_accuracy_by_size': {
            k: v['accuracy'] for k, v in result['pipeline_by_size'].items()
        },
        'pipeline_accuracy_fer_style_48': result['pipeline_fer_style_48']['accuracy'],
        'true_box_accuracy': result['true_box']['accuracy'],
        'classifier_accuracy_by_source': {
            k: v['accuracy'] for k, v in result['classifier_alone_by_source'].items()
        },
        'pipeline_accuracy_by_source': {
            k: v['accuracy'] for k, v in result['pipeline_by_source'].items()
        },
        'classifier_recall': {
            k: v
            for k, v in result['classifier_alone']['per_class_recall'].items()
            if v is not None
        },
        'pipeline_recall': {
            k: v for k, v in result['pipeline']['per_class_recall'].items() if v is not None
        },
        'labelled_faces': result['classifier_alone']['count'],
        'labelled_scenes': result['pipeline']['count'],
    }


def evaluate_pipeline_main(argv=None) -> int:
    """`evaluate-pipeline`: score the node's detector + crop + classifier on labelled pictures."""
    from emotion_node.core.classifier import EmotionClassifier
    from emotion_node.core.pipeline import DETECTORS, EmotionPipeline

    parser = argparse.ArgumentParser(
        prog='python -m emotion_node.cli evaluate-pipeline',
        description=evaluate_pipeline_main.__doc__,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--images', type=Path, help='CSV with columns path,label')
    source.add_argument(
        '--offline-set',
        action='store_true',
        help='the labelled set built from what ships offline (LFW + portraits, happy/neutral), '
        'pipeline next to the classifier alone, by size, source and class',
    )
    parser.add_argument('--weights', default=_default_weights(), help='classifier weights')
    parser.add_argument('--detector', default='blazeface', choices=DETECTORS)
    parser.add_argument('--min-face-px', type=int, default=20)
    parser.add_argument(
        '--classifier-only',
        action='store_true',
        help='no detector: each picture is taken as the face crop (the classifier alone)',
    )
    parser.add_argument('--out', type=Path, default=None, help='also write the JSON here')
    args = parser.parse_args(argv)
    try:
        rows = read_labelled_images(args.images) if args.images else None
        classifier = EmotionClassifier.from_file(args.weights, threads=1)
        pipeline = EmotionPipeline(
            classifier, detector=args.detector, min_face_px=args.min_face_px, smoothing_s=0.0
        )
        if rows is None:
            result = evaluate_offline(pipeline)
            result = {**_summary(result), **result}
        else:
            result = evaluate_pipeline(rows, pipeline, classifier_only=args.classifier_only)
    except (FileNotFoundError, ValueError, OSError) as error:
        print(f'evaluate-pipeline: {error}', file=sys.stderr)
        return 2
    result.update({'images': str(args.images or 'offline set'), 'detector': args.detector})
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)
    return 0


def main(argv=None) -> int:
    """`python -m emotion_node.cli train|evaluate|evaluate-pipeline ...`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {
        'train': train_main,
        'evaluate': evaluate_main,
        'evaluate-pipeline': evaluate_pipeline_main,
    }
    if not argv or argv[0] not in commands:
        print(
            'usage: python -m emotion_node.cli {train,evaluate,evaluate-pipeline} ...',
            file=sys.stderr,
        )
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == '__main__':
    sys.exit(main())
