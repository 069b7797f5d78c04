"""Synthetic voices: deterministic per seed, and their parameters carry age."""

import numpy as np

from age_node.core import synth


def test_same_seed_same_voice_different_seed_different_voice():
    a = synth.synthesize_speech('안녕하세요', 'adult', 7)
    b = synth.synthesize_speech('안녕하세요', 'adult', 7)
    c = synth.synthesize_speech('안녕하세요', 'adult', 8)
    assert a.dtype == np.float32 and a.ndim == 1 and np.array_equal(a, b)
    assert not (a.size == c.size and np.allclose(a, c))
    assert 0.5 < a.size / 16000 < 5 and np.max(np.abs(a)) <= 1.0


def test_voice_parameters_follow_age():
    def mean(field, age):
        return np.mean([getattr(synth.voice_for(age, seed), field) for seed in range(200)])

    assert mean('f0_hz', 8) > mean('f0_hz', 35) + 60
    assert mean('formant_scale', 8) > mean('formant_scale', 35) + 0.15
    assert mean('rate_wpm', 80) < mean('rate_wpm', 35) - 25
    assert mean('flutter', 80) > mean('flutter', 35) + 20
    assert mean('tremolo_depth', 80) > 0.15 > mean('tremolo_depth', 35)


def test_demo_ages_stay_inside_their_group():
    for group, (low, high) in synth.GROUP_DEMO_AGES.items():
        label = ('child', 'adult', 'senior')[group]
        assert all(low <= synth.demo_age(label, seed) <= high for seed in range(100))
    assert set(synth.DEMO_SENTENCES) == {'child', 'adult', 'senior'}
    assert not set(synth.HELDOUT_SENTENCES) & set(synth.TRAINING_SENTENCES)


def test_other_sample_rate():
    audio = synth.synthesize_speech('감사합니다', 'senior', 1, sample_rate=48000)
    assert 0.5 < audio.size / 48000 < 5
