"""Training pipeline end to end on a tiny generated set, manifest validation, export/load."""

import json

import numpy as np
import pytest

from age_node.core import ages
from age_node.core.data import (
    Augment,
    read_manifest,
    soft_bin_targets,
    speaker_split,
    write_manifest,
)
from age_node.core.make_synthetic import generate
from age_node.core.model import AgeEstimator, load_metadata
from age_node.core.train import evaluate, train


@pytest.fixture(scope='module')
def tiny_set(tmp_path_factory):
    out = tmp_path_factory.mktemp('tiny')
    manifest = generate(
        out, speakers=30, per_speaker=2, seed=5, first_speaker=50_000, progress=False
    )
    return manifest


def test_generated_manifest_is_speaker_disjoint_and_balanced(tiny_set):
    clips = read_manifest(tiny_set)
    assert len(clips) == 60 and all(c.path.is_file() for c in clips)
    splits = {}
    for clip in clips:
        splits.setdefault(clip.speaker_id, set()).add(clip.split)
    assert all(len(s) == 1 for s in splits.values())
    assert {c.split for c in clips} == {'train', 'val', 'test'}
    groups = [ages.age_to_group(c.age) for c in clips]
    assert groups.count(0) == groups.count(1) == groups.count(2) == 20


def test_train_evaluate_export(tiny_set, tmp_path):
    model_path = tmp_path / 'tiny.safetensors'
    report = train(
        tiny_set, model_path, tmp_path / 'report', epochs=2, batch_size=8, progress=False
    )
    assert (
        model_path.is_file() and (tmp_path / 'report' / 'confusion_test.png').stat().st_size > 1000
    )
    saved = json.loads((tmp_path / 'report' / 'report.json').read_text())
    for key in ('accuracy', 'recall', 'confusion', 'age_mae_years', 'ece'):
        assert key in saved['test']
    assert np.array(saved['test']['confusion']).sum() == report['test_clips']
    assert 0.3 <= report['temperature'] <= 8.0
    metadata = load_metadata(model_path)
    assert metadata['temperature'] == pytest.approx(report['temperature'])
    estimator = AgeEstimator(model_path)
    result = estimator.predict(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32))
    assert result.bin_probabilities.shape == (
        17,
    ) and result.group_probabilities.sum() == pytest.approx(1, abs=1e-5)
    again = evaluate(model_path, tiny_set, 'test', tmp_path / 'eval')
    assert (
        again['n'] == report['test_clips'] and (tmp_path / 'eval' / 'confusion_test.png').is_file()
    )


def test_manifest_errors_name_the_row(tmp_path):
    bad = tmp_path / 'bad.csv'
    write_manifest(bad, [{'path': 'a.wav', 'age': 'old', 'speaker_id': 's1'}])
    with pytest.raises(ValueError, match='bad.csv:2: age'):
        read_manifest(bad)
    write_manifest(bad, [{'path': 'a.wav', 'age': 3, 'speaker_id': 's1'}])
    with pytest.raises(ValueError, match='outside'):
        read_manifest(bad)
    write_manifest(
        bad,
        [
            {'path': 'a.wav', 'age': 30, 'speaker_id': 's1', 'split': 'train'},
            {'path': 'b.wav', 'age': 30, 'speaker_id': 's1', 'split': 'test'},
        ],
    )
    with pytest.raises(ValueError, match='two splits'):
        read_manifest(bad)


def test_split_is_a_function_of_the_speaker_only():
    names = [f'speaker{i}' for i in range(2000)]
    splits = [speaker_split(n) for n in names]
    assert splits == [speaker_split(n) for n in names]
    assert 0.6 < splits.count('train') / 2000 < 0.8


def test_soft_targets_peak_at_the_true_bin():
    for age in (5, 19, 20, 59, 60, 89):
        target = soft_bin_targets(age)
        assert target.sum() == pytest.approx(1.0) and int(np.argmax(target)) == ages.age_to_bin(
            age
        )


def test_augment_keeps_audio_bounded_and_cropped():
    audio = np.random.default_rng(0).uniform(-1, 1, 16000 * 10).astype(np.float32)
    out = Augment(max_seconds=6.0)(audio, np.random.default_rng(1))
    assert out.size <= 6 * 16000 and np.all(np.abs(out) <= 1.0) and np.all(np.isfinite(out))


def test_missing_model_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match='age_node.core.default_model'):
        AgeEstimator(tmp_path / 'nope.safetensors')
