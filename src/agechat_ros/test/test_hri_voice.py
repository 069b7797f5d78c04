"""agechat_ros.hri_voice: values -> REP-155 voice messages (hri_msgs)."""

import numpy as np
import pytest
from hri_msgs.msg import SoftBiometrics

from agechat_ros import ConversionError
from agechat_ros.audio import audio_data_to_float
from agechat_ros.hri_voice import (
    ANONYMOUS_SPEAKER,
    GROUP_YEARS,
    TRACKED_TOPIC,
    locale_of,
    make_ids_list,
    make_live_speech,
    make_voice_audio,
    make_voice_softbiometrics,
    voice_topic,
)
from agechat_ros.labels import AGE_GROUP_YEARS, AGE_GROUPS
from agechat_ros.time import time_to_ns


def test_topic_names_are_rep155s():
    assert TRACKED_TOPIC == '/humans/voices/tracked'
    assert voice_topic(ANONYMOUS_SPEAKER, 'speech') == '/humans/voices/anonymous_speaker/speech'
    for bad in ('', '1abc', 'a/b', 'a b', '안녕'):
        with pytest.raises(ConversionError):
            voice_topic(bad, 'speech')


@pytest.mark.parametrize(
    'language, expected',
    [('ko', 'ko_KR'), ('KO', 'ko_KR'), ('ko-KR', 'ko_KR'), ('ko_KR', 'ko_KR'), ('en', 'en_US')],
)
def test_locale_is_language_underscore_region(language, expected):
    assert locale_of(language) == expected


def test_an_unknown_or_empty_language_keeps_what_is_known():
    assert locale_of('') == '' and locale_of('xx') == 'xx'


def test_group_years_lie_in_their_group():
    assert GROUP_YEARS == {'child': 12, 'adult': 40, 'senior': 75}
    for group, years in GROUP_YEARS.items():
        low, high = AGE_GROUP_YEARS[group]
        assert low <= years <= high


def test_ids_list():
    msg = make_ids_list([ANONYMOUS_SPEAKER], 1_500_000_000, 'microphone')
    assert list(msg.ids) == ['anonymous_speaker'] and time_to_ns(msg.header.stamp) == 1_500_000_000
    assert msg.header.frame_id == 'microphone' and list(make_ids_list([], 0).ids) == []


def test_partial_fills_incremental_only_and_final_both():
    partial = make_live_speech('안녕', False, 0.4, 'ko_KR', 2_000_000_000, 'mic')
    assert (partial.incremental, partial.final, partial.locale) == ('안녕', '', 'ko_KR')
    assert partial.confidence == pytest.approx(0.4) and partial.header.frame_id == 'mic'
    final = make_live_speech('안녕하세요', True, 1.7, 'ko_KR', 3_000_000_000)
    assert final.incremental == final.final == '안녕하세요' and final.confidence == 1.0
    assert time_to_ns(final.header.stamp) == 3_000_000_000
    with pytest.raises(ConversionError):
        make_live_speech('x', True, float('nan'), 'ko_KR', 0)


@pytest.mark.parametrize('group', range(3))
def test_voice_softbiometrics_is_the_groups_years_and_confidence(group):
    msg = make_voice_softbiometrics(group, 0.8, 5_000_000_000, 'mic')
    assert msg.age == GROUP_YEARS[AGE_GROUPS[group]]
    assert msg.age_confidence == pytest.approx(0.8)
    assert msg.gender == SoftBiometrics.UNDEFINED and msg.gender_confidence == 0.0
    assert time_to_ns(msg.header.stamp) == 5_000_000_000 and msg.header.frame_id == 'mic'


def test_voice_softbiometrics_refuses_bad_values():
    for group, confidence in ((3, 0.5), (-1, 0.5), (0, float('inf'))):
        with pytest.raises(ConversionError):
            make_voice_softbiometrics(group, confidence, 0)


def test_voice_audio_is_s16le_of_the_samples():
    samples = np.linspace(-0.5, 0.5, 1600, dtype=np.float32)
    msg = make_voice_audio(samples)
    assert len(msg.data) == 2 * samples.size
    assert np.allclose(audio_data_to_float(msg), samples, atol=1 / 32767)
