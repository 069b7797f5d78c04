"""The whole core pipeline (silero-vad + vosk + shipped age model) on streamed espeak speech."""

import numpy as np
import pytest

from age_node.core.model import AgeEstimator, default_model_path
from age_node.core.pipeline import VoicePipeline
from age_node.core.segmenter import Segmenter, SegmenterConfig, SileroVad
from age_node.core.stt import VoskRecognizer
from age_node.core.synth import DEMO_SENTENCES, synthesize_speech


@pytest.fixture(scope='module')
def estimator():
    return AgeEstimator(default_model_path())


@pytest.fixture(scope='module')
def recognizer():
    return VoskRecognizer(grammar=['안녕하세요', '감사합니다'], beam=8.0, max_active=1500)


def make_pipeline(estimator, recognizer, **config):
    vad = SileroVad()
    return VoicePipeline(
        Segmenter(SegmenterConfig(**config), vad, vad.reset), recognizer, estimator
    )


def stream(pipeline, audio, chunk=320, t0_ns=10**18):
    results = []
    for start in range(0, audio.size, chunk):
        results += pipeline.push(
            audio[start : start + chunk], t0_ns + int((start + chunk) / 16000 * 1e9)
        )
    return results


def test_three_utterances_text_and_age_on_the_right_ids(estimator, recognizer, speech_with_pauses):
    audio, spans, texts = speech_with_pauses
    results = stream(make_pipeline(estimator, recognizer), audio)
    assert len(results) == 3
    assert len({r.utterance_id for r in results}) == 3
    # a forced two-word grammar sometimes inserts a word on the pre-roll noise; the spoken word is
    # always the last one, and a result landing on the wrong id would show the other word there
    assert [r.transcript.text.split()[-1] for r in results] == [t for t, _, _ in texts]
    for result, (begin, end) in zip(results, spans, strict=True):
        assert (
            result.speech_start_ns
            < result.speech_end_ns
            <= result.vad_closed_ns
            <= result.stt_done_ns
        )
        assert result.duration_s == pytest.approx((end - begin) / 16000, abs=0.4)
        assert result.age.group_probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        assert not result.truncated
    assert [r.age.group_label for r in results] == [g for _, g, _ in texts]


def test_endless_speech_is_cut_at_max_length(estimator, recognizer):
    speech = np.concatenate(
        [synthesize_speech(s, 'adult', 4) for s in DEMO_SENTENCES['adult'] * 2]
    )
    pipeline = make_pipeline(estimator, recognizer, max_utterance_s=2.0, end_silence_s=1.5)
    results = stream(pipeline, speech)
    assert results and results[0].truncated
    assert all(r.duration_s <= 2.1 for r in results)


def test_silence_nan_and_reset(estimator, recognizer):
    pipeline = make_pipeline(estimator, recognizer)
    assert stream(pipeline, np.zeros(48000, np.float32)) == []
    speech = synthesize_speech('안녕하세요', 'child', 5)
    half = speech.size // 2
    assert stream(pipeline, speech[:half]) == [] and pipeline.in_utterance
    pipeline.reset()  # e.g. the agent started speaking
    assert not pipeline.in_utterance and pipeline.cancelled
    assert stream(pipeline, np.zeros(16000, np.float32)) == []
    loud = np.clip(speech * 20, -1, 1)  # clipped input still works
    results = stream(pipeline, np.concatenate([loud, np.zeros(16000, np.float32)]))
    assert len(results) == 1


def test_shipped_model_on_unseen_demo_voices(estimator):
    """Held-out seeds (never used in training or default_model's evaluation), demo sentences."""
    correct = total = 0
    for group in ('child', 'adult', 'senior'):
        for k in range(8):
            text = DEMO_SENTENCES[group][k % len(DEMO_SENTENCES[group])]
            result = estimator.predict(synthesize_speech(text, group, 300_000 + k))
            correct += result.group_label == group
            total += 1
    assert correct / total >= 0.85, f'{correct}/{total}'
