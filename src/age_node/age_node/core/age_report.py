"""Evaluation report of an age model on labelled clips: overall, per source/language/sex/cell.

Numbers are per clip; ``speaker_level`` repeats the headline after averaging each speaker's group
probabilities (one vote per speaker, as a conversation would). `balanced_accuracy` is the mean of
the per-group recalls over the groups present.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from age_node.core import ages
from age_node.core.age_data import AgeClip


def _recalls(truth: np.ndarray, predicted: np.ndarray) -> Dict[str, float]:
    return {
        ages.group_label(g): round(float(np.mean(predicted[truth == g] == g)), 4)
        for g in range(3)
        if np.any(truth == g)
    }


def _summary(truth: np.ndarray, predicted: np.ndarray, speakers: Sequence[str]) -> Dict:
    recall = _recalls(truth, predicted)
    return {
        'clips': int(truth.size),
        'speakers': len(set(speakers)),
        'accuracy': round(float(np.mean(truth == predicted)), 4) if truth.size else None,
        'balanced_accuracy': round(float(np.mean(list(recall.values()))), 4) if recall else None,
        'recall': recall,
    }


def expected_calibration_error(probs: np.ndarray, truth: np.ndarray, bins: int = 10) -> float:
    """ECE of the top group probability (10 equal-width bins)."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == truth
    ece = 0.0
    edges = np.linspace(0, 1, bins + 1)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def build_report(
    clips: Sequence[AgeClip],
    group_probs: np.ndarray,
    expected_ages: np.ndarray,
    unsure_below: float = 0.0,
) -> Dict:
    """Return the report of predictions (N, 3) on clips (see module doc)."""
    group_probs = np.asarray(group_probs, dtype=np.float64)
    truth = np.array([c.group for c in clips])
    predicted = group_probs.argmax(1)
    speakers = [c.speaker_id for c in clips]
    confusion = np.zeros((3, 3), dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        confusion[t, p] += 1
    report = _summary(truth, predicted, speakers)
    report.update(
        {
            'confusion': confusion.tolist(),
            'confusion_labels': list(ages.GROUP_LABELS),
            'ece': round(expected_calibration_error(group_probs, truth), 4),
            'group_nll': round(
                float(
                    -np.mean(np.log(np.maximum(group_probs[np.arange(truth.size), truth], 1e-12)))
                ),
                4,
            ),
        }
    )
    exact = np.array([c.exact_age is not None for c in clips])
    if exact.any():
        true_age = np.array([c.age_years for c in clips])
        report['age_mae_years_exact_ages'] = round(
            float(np.mean(np.abs(expected_ages[exact] - true_age[exact]))), 2
        )
    if unsure_below > 0:
        unsure = group_probs.max(1) < unsure_below
        sure = ~unsure
        report['unsure'] = {
            'below': unsure_below,
            'fraction': round(float(unsure.mean()), 4),
            'accuracy_when_sure': (
                round(float(np.mean(predicted[sure] == truth[sure])), 4) if sure.any() else None
            ),
        }
    for name, key in (
        ('per_source', lambda c: c.source),
        ('per_language', lambda c: c.language),
        ('per_sex', lambda c: c.gender or 'unknown'),
        ('per_group_sex', lambda c: f'{ages.group_label(c.group)}/{c.gender or "unknown"}'),
        ('per_source_group', lambda c: f'{c.source}/{ages.group_label(c.group)}'),
    ):
        values = np.array([key(c) for c in clips])
        report[name] = {
            value: _summary(
                truth[values == value],
                predicted[values == value],
                [s for s, v in zip(speakers, values, strict=True) if v == value],
            )
            for value in sorted(set(values))
        }
    report['speaker_level'] = speaker_level(clips, group_probs)
    return report


def speaker_level(clips: Sequence[AgeClip], group_probs: np.ndarray) -> Dict:
    """Headline numbers with one vote per speaker (mean of the clips' group probabilities)."""
    order: Dict[str, List[int]] = {}
    for index, clip in enumerate(clips):
        order.setdefault(clip.speaker_id, []).append(index)
    truth = np.array([clips[idx[0]].group for idx in order.values()])
    predicted = np.array([group_probs[idx].mean(0).argmax() for idx in order.values()])
    return _summary(truth, predicted, list(order))


def per_speaker(clips: Sequence[AgeClip], group_probs: np.ndarray) -> List[Dict]:
    """One row per speaker: true group, clips, share of clips per predicted group."""
    rows = []
    order: Dict[str, List[int]] = {}
    for index, clip in enumerate(clips):
        order.setdefault(clip.speaker_id, []).append(index)
    for speaker, idx in sorted(order.items()):
        predicted = group_probs[idx].argmax(1)
        clip = clips[idx[0]]
        rows.append(
            {
                'speaker_id': speaker,
                'group': ages.group_label(clip.group),
                'gender': clip.gender,
                'clips': len(idx),
                'predicted_share': {
                    ages.group_label(g): round(float(np.mean(predicted == g)), 3) for g in range(3)
                },
                'accuracy': round(float(np.mean(predicted == clip.group)), 3),
                'mean_probabilities': [round(float(v), 3) for v in group_probs[idx].mean(0)],
            }
        )
    return rows
