"""Conversions for age_node: utterances and age estimates <-> agechat_msgs Utterance/AgeEstimate.

The functions take plain values (as produced by age_node's pure core), so the core never sees a
ROS message and these stay testable without a running node.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from agechat_msgs.msg import AgeEstimate, Utterance

from agechat_ros import ConversionError
from agechat_ros.time import ns_to_time

GROUP_LABELS = (AgeEstimate.LABEL_CHILD, AgeEstimate.LABEL_ADULT, AgeEstimate.LABEL_SENIOR)


def make_utterance(
    utterance_id: str,
    text: str,
    confidence: float,
    language: str,
    recognizer: str,
    speech_start_ns: int,
    speech_end_ns: int,
    duration_s: float,
    truncated: bool,
    vad_closed_ns: int,
    stt_done_ns: int,
    frame_id: str = '',
) -> Utterance:
    """Build an Utterance; header.stamp = speech end (as the message definition says)."""
    if not utterance_id:
        raise ConversionError('utterance_id must not be empty')
    msg = Utterance()
    msg.header.stamp = ns_to_time(speech_end_ns)
    msg.header.frame_id = frame_id
    msg.utterance_id = utterance_id
    msg.text = text
    msg.confidence = float(np.clip(confidence, 0.0, 1.0)) if text else 0.0
    msg.language = language
    msg.recognizer = recognizer
    msg.speech_start = ns_to_time(speech_start_ns)
    msg.speech_end = ns_to_time(speech_end_ns)
    msg.duration_s = float(duration_s)
    msg.truncated = bool(truncated)
    msg.vad_closed_time = ns_to_time(vad_closed_ns)
    msg.stt_done_time = ns_to_time(stt_done_ns)
    return msg


def make_age_estimate(
    utterance_id: str,
    group_probabilities: Sequence[float],
    estimated_age_years: float,
    bin_probabilities: Sequence[float],
    bin_lower_years: Sequence[float],
    model: str,
    speech_end_ns: int,
    inference_done_ns: int,
    inference_ms: float,
    frame_id: str = '',
    unsure: bool = False,
) -> AgeEstimate:
    """Build an AgeEstimate; the group is the argmax of the (calibrated) group probabilities.

    `unsure` marks an estimate below the model's confidence threshold.
    """
    groups = np.asarray(group_probabilities, dtype=np.float64)
    if groups.shape != (3,) or not np.all(np.isfinite(groups)) or groups.sum() <= 0:
        raise ConversionError(
            f'group_probabilities must be 3 finite non-negative numbers, got {groups!r}'
        )
    bins = np.asarray(bin_probabilities, dtype=np.float32)
    if len(bins) != len(bin_lower_years):
        raise ConversionError(f'{len(bins)} bin probabilities for {len(bin_lower_years)} bins')
    groups = groups / groups.sum()
    group = int(np.argmax(groups))
    msg = AgeEstimate()
    msg.header.stamp = ns_to_time(speech_end_ns)
    msg.header.frame_id = frame_id
    msg.utterance_id = utterance_id
    msg.group = group
    msg.group_label = GROUP_LABELS[group]
    msg.estimated_age_years = float(estimated_age_years)
    msg.confidence = float(groups[group])
    msg.unsure = bool(unsure)
    msg.group_probabilities = groups.astype(np.float32)
    msg.age_bin_probabilities = bins.tolist()
    msg.age_bin_lower_years = [float(x) for x in bin_lower_years]
    msg.model = model
    msg.inference_done_time = ns_to_time(inference_done_ns)
    msg.inference_ms = float(inference_ms)
    return msg
