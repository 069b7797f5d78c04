"""agechat_ros.voice: core results -> Utterance / AgeEstimate messages."""

import numpy as np
import pytest

from age_node.core import ages
from agechat_ros import ConversionError
from agechat_ros.time import time_to_ns
from agechat_ros.voice import make_age_estimate, make_utterance


def test_utterance_fields_and_times():
    msg = make_utterance(
        'u1',
        '안녕하세요',
        1.7,
        'ko',
        'vosk:x',
        1_000_000_000,
        2_500_000_000,
        1.5,
        True,
        3_000_000_000,
        3_010_000_000,
        'mic',
    )
    assert msg.utterance_id == 'u1' and msg.text == '안녕하세요' and msg.confidence == 1.0
    assert time_to_ns(msg.header.stamp) == time_to_ns(msg.speech_end) == 2_500_000_000
    assert (
        time_to_ns(msg.vad_closed_time) == 3_000_000_000
        and msg.truncated
        and msg.header.frame_id == 'mic'
    )
    assert make_utterance('u2', '', 0.9, 'ko', 'v', 0, 1, 0.1, False, 2, 3).confidence == 0.0
    with pytest.raises(ConversionError):
        make_utterance('', 'x', 1, 'ko', 'v', 0, 1, 0.1, False, 2, 3)


def test_age_estimate_normalises_and_picks_the_argmax():
    bins = np.zeros(17, np.float32)
    bins[ages.age_to_bin(70)] = 1.0
    msg = make_age_estimate(
        'u1', [0.1, 0.2, 0.9], 72.5, bins, ages.BIN_LOWER_YEARS, 'age_cnn:v', 5, 6, 3.2
    )
    assert msg.group == 2 and msg.group_label == 'senior'
    assert sum(msg.group_probabilities) == pytest.approx(1.0) and msg.confidence == pytest.approx(
        0.75
    )
    assert (
        list(msg.age_bin_lower_years)[:3] == [5.0, 10.0, 15.0]
        and len(msg.age_bin_probabilities) == 17
    )
    assert msg.unsure is False
    unsure = make_age_estimate(
        'u2', [0.4, 0.35, 0.25], 30, bins, ages.BIN_LOWER_YEARS, 'm', 0, 0, 0, unsure=True
    )
    assert unsure.unsure is True and unsure.group_label == 'child'
    for bad in ([0, 0, 0], [np.nan, 1, 0], [1, 2]):
        with pytest.raises(ConversionError):
            make_age_estimate('u1', bad, 30, bins, ages.BIN_LOWER_YEARS, 'm', 0, 0, 0)
