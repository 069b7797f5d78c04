"""The running age estimate over a conversation (core.conversation.RunningAge)."""

import numpy as np
import pytest

from age_node.core import ages
from age_node.core.ages import AgeResult
from age_node.core.conversation import RunningAge


def estimate(groups, embedding=None, unsure_below=0.5):
    groups = np.asarray(groups, np.float32)
    bins = np.zeros(ages.NUM_BINS, np.float32)
    for group in range(3):  # spread each group's probability over its bins
        inside = ages.BIN_GROUP == group
        bins[inside] = groups[group] / inside.sum()
    group = int(np.argmax(groups))
    return AgeResult(
        bins,
        groups,
        group,
        float(ages.expected_age(bins)),
        1.0,
        bool(groups[group] < unsure_below),
        None if embedding is None else np.asarray(embedding, np.float32),
    )


def unit(*values):
    v = np.asarray(values, np.float32)
    return v / np.linalg.norm(v)


def test_the_same_voice_pools_its_utterances_weighted_by_duration():
    running = RunningAge(unsure_below=0.5)
    voice = unit(1, 0.1, 0)
    first = running.update(estimate([0.2, 0.45, 0.35], voice), 0.0, 2.0, 2.0)
    assert running.last_reset == 'first' and first.unsure  # one unsure utterance
    second = running.update(estimate([0.1, 0.2, 0.7], voice), 4.0, 10.0, 6.0)
    assert running.last_reset == '' and running.utterances == 2
    expected = (np.array([0.2, 0.45, 0.35]) * 2 + np.array([0.1, 0.2, 0.7]) * 6) / 8
    assert np.allclose(second.group_probabilities, expected, atol=1e-6)
    assert second.group_label == 'senior' and not second.unsure
    assert second.bin_probabilities.sum() == pytest.approx(1, abs=1e-5)
    # never more extreme than its most confident utterance (a linear pool)
    assert second.confidence <= 0.7 + 1e-6


def test_a_long_pause_or_another_voice_starts_over():
    running = RunningAge(unsure_below=0.5, reset_after_s=30.0, voice_change_below=0.65)
    child, grandmother = unit(1, 0.2, 0), unit(0, 0.3, 1)
    running.update(estimate([0.8, 0.1, 0.1], child), 0.0, 3.0, 3.0)
    after_pause = running.update(estimate([0.1, 0.3, 0.6], child), 40.0, 43.0, 3.0)
    assert running.last_reset == 'pause' and after_pause.group_label == 'senior'
    running.update(estimate([0.8, 0.1, 0.1], child), 45.0, 48.0, 3.0)
    assert running.last_reset == ''
    other = running.update(estimate([0.1, 0.2, 0.7], grandmother), 49.0, 52.0, 3.0)
    assert running.last_reset == 'voice' and other.group_label == 'senior'
    assert running.utterances == 1


def test_without_embeddings_only_pauses_reset():
    running = RunningAge(unsure_below=0.5, reset_after_s=30.0)
    running.update(estimate([0.8, 0.1, 0.1]), 0.0, 3.0, 3.0)
    pooled = running.update(estimate([0.1, 0.2, 0.7]), 5.0, 8.0, 3.0)
    assert running.last_reset == '' and running.utterances == 2
    assert np.allclose(pooled.group_probabilities, [0.45, 0.15, 0.4], atol=1e-6)
    running.reset()
    assert running.utterances == 0
