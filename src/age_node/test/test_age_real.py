"""The shipped age model (Whisper encoder + numpy head) on real voices; its split; no torch.

The real clips are in ../shared/data/speech/age (CC0 Common Voice, speechocean762) and
../shared/data/speech/korean (CC BY-NC-SA, evaluation only); the tests that read them skip,
naming the path, when they are absent.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from age_node.core import ages
from age_node.core.age_data import (
    TEST_FRACTION,
    TRAINING_SOURCES,
    bin_targets,
    load_audio,
    load_split,
    read_age_manifest,
    trainable_source,
)
from age_node.core.whisper_age import (
    MODEL_KIND,
    WhisperAgeEstimator,
    default_model_path,
    head_inputs,
    pool_states,
    read_metadata,
    trim_silence,
    voice_mask,
)
from agechat_ros.files import shared_data_dir

AGE_MANIFEST = shared_data_dir() / 'speech' / 'age' / 'manifest.csv'
#: Every Nth held-out speaker (first clip) for the accuracy floor; fixed, not tuned.
EVERY_NTH_SPEAKER = 5


@pytest.fixture(scope='module')
def age_manifest():
    if not AGE_MANIFEST.is_file():
        pytest.skip(f'real age-labelled speech not found at {AGE_MANIFEST}')
    return AGE_MANIFEST


@pytest.fixture(scope='module')
def estimator():
    from age_node.core.speaker_encoder import check_speaker_encoder
    from age_node.core.whisper_model import check_whisper_model

    try:
        check_whisper_model()
        if 'ge2e' in head_inputs(read_metadata(default_model_path())):
            check_speaker_encoder()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    return WhisperAgeEstimator(default_model_path())


def held_out_subset(manifest):
    """Return the first clip of every EVERY_NTH_SPEAKER-th test speaker (sorted ids)."""
    first = {}
    for clip in load_split(manifest, 'test'):
        first.setdefault(clip.speaker_id, clip)
    chosen = []
    for group in range(3):
        speakers = sorted(s for s, c in first.items() if c.group == group)
        step = EVERY_NTH_SPEAKER if group == ages.GROUP_ADULT else 1  # few children / seniors
        chosen += [first[s] for s in speakers[::step]]
    return chosen


def test_split_is_speaker_disjoint_stratified_and_fixed(age_manifest):
    clips = load_split(age_manifest)
    assert [c.split for c in clips] == [c.split for c in load_split(age_manifest)]
    split_of = {}
    for clip in clips:
        assert split_of.setdefault(clip.speaker_id, clip.split) == clip.split
    strata = {}
    for clip in clips:
        strata.setdefault((clip.source, clip.group, clip.gender), {})[clip.speaker_id] = clip.split
    for key, speakers in strata.items():
        tests = sum(s == 'test' for s in speakers.values())
        assert abs(tests - TEST_FRACTION * len(speakers)) <= 1, key
    assert {c.source for c in clips} <= set(TRAINING_SOURCES)


def test_korean_clips_are_never_training_data(korean_manifest):
    clips = load_split(korean_manifest)
    assert clips and {c.split for c in clips} == {'test'}
    assert all(c.source not in TRAINING_SOURCES for c in clips)


def test_band_targets_stay_inside_the_group(tmp_path):
    manifest = tmp_path / 'm.csv'
    manifest.write_text(
        'path,speaker_id,age_years,age_band,age_group,gender,language,transcript,source,license\n'
        'a.mp3,s1,,13-19,child,male,en,,commonvoice-6.1,CC0\n'
        'b.flac,s2,7,7,child,f,en,,speechocean762,x\n'
        'c.mp3,s3,,90-99,senior,female,en,,commonvoice-6.1,CC0\n'
    )
    teen, child, old = read_age_manifest(manifest)
    assert teen.gender == 'male' and child.gender == 'female' and child.exact_age == 7
    for clip in (teen, child, old):
        target = bin_targets(clip)
        assert target.sum() == pytest.approx(1) and target[ages.BIN_GROUP != clip.group].sum() == 0
    assert bin_targets(teen)[ages.age_to_bin(12)] == pytest.approx(2 / 7, abs=1e-6)
    assert bin_targets(old)[-1] == pytest.approx(1)


def test_pooling_ignores_silence_and_padding():
    rng = np.random.default_rng(0)
    states = rng.normal(size=(100, 8)).astype(np.float32)
    levels = np.full(100, -20.0)
    levels[:20] = levels[80:] = -100.0  # digital silence before and after
    mask = voice_mask(levels)
    assert mask.sum() == 60 and mask[20:80].all()
    pooled = pool_states(states, levels)
    assert np.allclose(pooled[:8], states[20:80].mean(0), atol=1e-5)


def test_shipped_model_is_a_numpy_whisper_head():
    path = default_model_path()
    assert path.is_file() and path.stat().st_size < 5_000_000
    metadata = read_metadata(path)
    assert metadata['kind'] == MODEL_KIND
    assert head_inputs(metadata) == ['whisper', 'ge2e']  # chosen by cross-validation
    # the held-out numbers make bench reports travel with the weights
    assert 0.55 <= metadata['heldout_balanced_accuracy'] <= 1
    assert metadata['heldout_silence_same_group'] >= 0.95
    assert metadata['training_sources'] and all(
        trainable_source(source) for source in metadata['training_sources']
    )
    assert 0.25 <= metadata['temperature'] <= 8 and 0 < metadata['unsure_below'] < 1


def test_held_out_speakers_reach_the_accuracy_floor(age_manifest, estimator):
    clips = held_out_subset(age_manifest)
    assert len(clips) >= 60
    truth = np.array([c.group for c in clips])
    predicted = np.array([estimator.predict(load_audio(c.path)).group for c in clips])
    recalls = [np.mean(predicted[truth == g] == g) for g in range(3)]
    # a regression floor, not the goal: measured 2026-12-03 on this subset (114 clips) with the
    # Whisper + GE2E head: recall child 0.51 / adult 0.69 / senior 0.50, balanced 0.57 (the
    # Whisper-only head before it: 0.44 / 0.61 / 0.40, 0.48; issue 13 asks 0.75: not reached)
    assert np.mean(recalls) >= 0.52, recalls
    assert min(recalls) >= 0.4, recalls


def test_added_silence_keeps_the_group(age_manifest, estimator):
    clips = held_out_subset(age_manifest)[::2]
    same = 0
    for clip in clips:
        audio = load_audio(clip.path)
        groups = set()
        for seconds in (0.0, 0.5, 1.0):
            pad = np.zeros(int(seconds * 16000), np.float32)
            groups.add(estimator.predict(np.concatenate([pad, audio, pad])).group)
        same += len(groups) == 1
    # measured 2026-12-03: 57 of 57 clips (the Whisper-only head before: 56 of 57)
    assert same / len(clips) >= 0.95, (same, len(clips))


def test_the_recognisers_encoding_gives_the_same_estimate(korean_manifest, estimator):
    from age_node.core.stt import WhisperRecognizer

    whisper = WhisperRecognizer(beam_size=1)
    estimator.share_whisper_model(whisper.model)
    clip = load_split(korean_manifest)[0]
    speech = trim_silence(load_audio(clip.path))  # as the VAD cuts it (0.1 s before the voice)
    pause = np.random.default_rng(0).normal(0, 0.002, 8000).astype(np.float32)
    transcript, encoding = whisper.transcribe_with_encoding(np.concatenate([speech, pause]))
    assert transcript.text and encoding is not None and encoding.window_s == estimator.window_s
    reused = estimator.predict(speech, encoding=encoding)
    assert estimator.last_reused_encoding  # speed of the reuse is the bench's, not a unit test's
    own = estimator.predict(speech)
    assert not estimator.last_reused_encoding
    assert reused.group == own.group
    assert np.abs(reused.group_probabilities - own.group_probabilities).max() < 0.15


def test_unsure_is_a_low_calibrated_probability(estimator):
    noise = np.random.default_rng(1).normal(0, 0.05, 32000).astype(np.float32)
    result = estimator.predict(noise)
    assert result.unsure == (result.confidence < estimator.unsure_below)
    assert result.group_probabilities.sum() == pytest.approx(1, abs=1e-5)
    assert result.bin_probabilities.shape == (17,)


def test_the_node_process_imports_no_torch(estimator):
    code = (
        'import sys, numpy as np\n'
        'import age_node.node\n'
        'from age_node.core.whisper_age import load_age_estimator\n'
        'e = load_age_estimator()\n'
        'r = e.predict(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32))\n'
        "print(type(e).__name__, 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ['WhisperAgeEstimator', 'False'], out.stderr


def test_evaluate_cli_writes_the_report(age_manifest, estimator, tmp_path):
    from age_node.core.train import main

    clips = held_out_subset(age_manifest)[::6]
    manifest = tmp_path / 'subset.csv'
    lines = ['path,speaker_id,age_years,age_band,age_group,gender,language,source,split']
    for c in clips:
        band = f'{c.age_low:g}-{c.age_high:g}'
        lines.append(
            f'{c.path},{c.speaker_id},,{band},{ages.group_label(c.group)},{c.gender},'
            f'{c.language},{c.source},test'
        )
    manifest.write_text('\n'.join(lines) + '\n')
    assert main(['evaluate', '--manifest', str(manifest), '--report-dir', str(tmp_path)]) == 0
    report = json.loads((tmp_path / 'report.json').read_text())
    assert report['clips'] == len(clips) and 0 <= report['balanced_accuracy'] <= 1
    assert set(report['recall']) <= set(ages.GROUP_LABELS)
    for key in ('per_source', 'per_language', 'per_sex', 'per_group_sex', 'per_speaker'):
        assert report[key]
    assert (tmp_path / 'confusion_test.png').stat().st_size > 1000


def test_cross_validation_folds_are_speaker_disjoint_and_stratified(age_manifest):
    from age_node.core.age_data import UNKNOWN_SPEAKER
    from age_node.core.train_whisper_age import CV_FOLDS, speaker_folds

    pool = [c for c in load_split(age_manifest) if c.split in ('train', 'val')]
    extra = age_manifest.parent / 'manifest_no_speaker_ids.csv'
    if extra.is_file():
        pool += load_split(extra)
    folds = speaker_folds(pool)
    fold_of = {}
    for clip, fold in zip(pool, folds, strict=True):
        if clip.speaker_id.startswith(UNKNOWN_SPEAKER + ':'):
            assert fold == -1  # no speaker id: always on the training side
            continue
        assert 0 <= fold < CV_FOLDS and fold_of.setdefault(clip.speaker_id, fold) == fold
    assert not any(c.split == 'test' for c in pool)
    group_of = {c.speaker_id: c.group for c in pool}
    for fold in range(CV_FOLDS):  # stratified: every fold holds speakers of every group
        held = [group_of[s] for s, f in fold_of.items() if f == fold]
        assert set(held) == {0, 1, 2}, (fold, np.bincount(held, minlength=3))
