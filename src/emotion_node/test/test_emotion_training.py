"""Training and evaluation command lines, end to end on small generated data."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from emotion_node.core.data import DataError, load_dataset, load_fer_csv, write_fer_csv
from emotion_node.core.model import LABELS
from emotion_node.core.training import metrics


def _run(*args):
    result = subprocess.run(
        [sys.executable, '-m', 'emotion_node.cli', *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return result


def _synthetic_faces(count: int, seed: int = 0):
    """Return 48x48 grey images whose class decides where a bright blob sits, and their labels.

    The task is learnable in a few epochs.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(LABELS)
    faces = rng.integers(0, 60, (count, 48, 48)).astype(np.uint8)
    for face, label in zip(faces, labels, strict=True):
        angle = 2 * np.pi * label / len(LABELS)
        cv2.circle(face, (int(24 + 14 * np.cos(angle)), int(24 + 14 * np.sin(angle))), 7, 230, -1)
    return faces, labels


def test_metrics_match_a_hand_computed_case():
    true = [0, 0, 1, 3, 3, 3]
    predicted = [0, 1, 1, 3, 3, 0]
    result = metrics(true, predicted)
    assert result['accuracy'] == pytest.approx(4 / 6)
    assert result['per_class_recall']['angry'] == pytest.approx(0.5)
    assert result['per_class_recall']['disgust'] == pytest.approx(1.0)
    assert result['per_class_recall']['happy'] == pytest.approx(2 / 3)
    assert result['per_class_recall']['sad'] is None
    confusion = np.array(result['confusion_matrix'])
    assert (
        confusion[0, 0] == 1
        and confusion[0, 1] == 1
        and confusion[3, 0] == 1
        and confusion[3, 3] == 2
    )
    assert confusion.sum() == 6
    with pytest.raises(ValueError):
        metrics([0], [0, 1])


def test_fer_csv_reading_and_its_errors(tmp_path):
    faces, labels = _synthetic_faces(14)
    path = tmp_path / 'fer.csv'
    write_fer_csv(path, faces, labels, ['Training'] * 10 + ['PublicTest'] * 4)
    train_faces, train_labels = load_fer_csv(path, usage=['Training'])
    assert train_faces.shape == (10, 64, 64) and train_labels.tolist() == labels[:10].tolist()
    assert load_dataset(path, usage=['PublicTest'])[0].shape == (4, 64, 64)
    bad = tmp_path / 'bad.csv'
    bad.write_text('emotion,pixels,Usage\n9,' + ' '.join(['0'] * 2304) + ',Training\n')
    with pytest.raises(DataError, match='outside'):
        load_fer_csv(bad)
    bad.write_text('emotion,pixels,Usage\n1,1 2 3,Training\n')
    with pytest.raises(DataError, match='2304'):
        load_fer_csv(bad)
    with pytest.raises(DataError, match='no rows'):
        load_fer_csv(path, usage=['PrivateTest'])


def test_train_on_fer_csv_lowers_the_loss_and_evaluate_writes_metrics(tmp_path):
    faces, labels = _synthetic_faces(112)
    csv_path = tmp_path / 'fer.csv'
    write_fer_csv(csv_path, faces, labels, ['Training'] * 84 + ['PublicTest'] * 28)
    out = tmp_path / 'tuned.safetensors'
    history = tmp_path / 'history.json'
    result = _run(
        'train',
        '--data',
        str(csv_path),
        '--usage',
        'Training',
        '--val-usage',
        'PublicTest',
        '--from-scratch',
        '--epochs',
        '4',
        '--batch-size',
        '16',
        '--lr',
        '3e-3',
        '--no-augment',
        '--out',
        str(out),
        '--history',
        str(history),
        '--quiet',
    )
    assert result.returncode == 0, result.stderr
    losses = json.loads(history.read_text())['loss']
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0], losses
    evaluation = _run(
        'evaluate',
        '--data',
        str(csv_path),
        '--usage',
        'PublicTest',
        '--weights',
        str(out),
        '--out-dir',
        str(tmp_path / 'eval'),
        '--quiet',
    )
    assert evaluation.returncode == 0, evaluation.stderr
    report = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
    assert report['count'] == 28 and np.array(report['confusion_matrix']).sum() == 28
    assert report['accuracy'] == pytest.approx(np.trace(report['confusion_matrix']) / 28)
    png = cv2.imread(str(tmp_path / 'eval' / 'confusion.png'))
    assert png is not None and png.shape[0] > 200


def test_image_folder_training_and_a_hand_checked_evaluation(
    tmp_path, weights_path, astronaut_frame
):
    """The real model calls the astronaut happy: 2 crops filed as happy and 1 as sad give 2/3."""
    from emotion_node.core.preprocess import crop_face

    gray = cv2.cvtColor(astronaut_frame, cv2.COLOR_BGR2GRAY)
    face = crop_face(gray, (250, 90, 110, 110))
    folder = tmp_path / 'faces'
    for label, count in (('happy', 2), ('sad', 1)):
        (folder / label).mkdir(parents=True)
        for i in range(count):
            cv2.imwrite(str(folder / label / f'{i}.png'), face)
    result = _run(
        'evaluate',
        '--data',
        str(folder),
        '--weights',
        str(weights_path),
        '--out-dir',
        str(tmp_path / 'e'),
        '--quiet',
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / 'e' / 'metrics.json').read_text())
    assert report['accuracy'] == pytest.approx(2 / 3)
    assert report['per_class_recall']['happy'] == 1.0 and report['per_class_recall']['sad'] == 0.0
    happy, sad = LABELS.index('happy'), LABELS.index('sad')
    assert (
        report['confusion_matrix'][happy][happy] == 2
        and report['confusion_matrix'][sad][happy] == 1
    )
    # fine-tuning from the shipped weights on the folder runs and saves loadable weights
    out = tmp_path / 'folder.safetensors'
    trained = _run(
        'train',
        '--data',
        str(folder),
        '--weights',
        str(weights_path),
        '--epochs',
        '1',
        '--out',
        str(out),
        '--quiet',
    )
    assert trained.returncode == 0, trained.stderr
    from emotion_node.core.model import load_weights

    assert load_weights(out) is not None


def test_cli_refuses_bad_data_with_a_message(tmp_path):
    (tmp_path / 'faces' / 'grumpy').mkdir(parents=True)
    result = _run('evaluate', '--data', str(tmp_path / 'faces'), '--out-dir', str(tmp_path / 'e'))
    assert result.returncode == 2 and 'grumpy' in result.stderr
    result = _run(
        'train', '--data', str(tmp_path / 'none.txt'), '--out', str(tmp_path / 'x.safetensors')
    )
    assert result.returncode == 2 and 'FER2013 .csv' in result.stderr
