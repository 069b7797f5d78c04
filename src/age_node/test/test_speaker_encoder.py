"""The GE2E speaker encoder of the age head: its export from the Resemblyzer wheel, its front end.

The exported encoder is made by `make setup` (scripts/setup.d/35-age-speaker-encoder.sh); the
tests that need it skip, naming the folder and the command, when it is absent.
"""

import json

import numpy as np
import pytest

from age_node.core import speaker_encoder as se
from age_node.core.age_data import load_audio, load_split
from agechat_ros.files import shared_data_dir

AGE_MANIFEST = shared_data_dir() / 'speech' / 'age' / 'manifest.csv'


@pytest.fixture(scope='module')
def encoder():
    try:
        se.check_speaker_encoder()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    return se.SpeakerEncoder()


def test_a_missing_or_corrupt_encoder_names_the_folder_and_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match='make setup') as caught:
        se.check_speaker_encoder(tmp_path)
    assert str(tmp_path) in str(caught.value)
    (tmp_path / se.ONNX_FILE).write_bytes(b'not a model')
    info = {'weights_sha256': se.WEIGHTS_SHA256, 'onnx_sha256': '0' * 64}
    (tmp_path / se.INFO_FILE).write_text(json.dumps(info))
    assert 'corrupt' in se.problem(tmp_path)


def test_the_shipped_head_without_its_encoder_stops_naming_the_command(tmp_path, monkeypatch):
    from age_node.core.whisper_age import WhisperAgeEstimator, default_model_path

    monkeypatch.setenv('AGECHAT_SPEAKER_ENCODER_DIR', str(tmp_path / 'nothing'))
    with pytest.raises(FileNotFoundError, match='make setup'):
        WhisperAgeEstimator(default_model_path())


def test_the_exported_encoder_is_recorded_with_its_source(encoder):
    info = json.loads((encoder.path.parent / se.INFO_FILE).read_text())
    assert info['weights_sha256'] == se.WEIGHTS_SHA256 and info['wheel_sha256'] == se.WHEEL_SHA256
    assert se.problem(encoder.path.parent) is None
    assert se.ensure_speaker_encoder(encoder.path.parent) is False  # idempotent: nothing written


def test_partials_cover_the_utterance():
    assert se.partial_starts(16000) == [0]  # shorter than one partial: one, zero-padded
    starts = se.partial_starts(5 * 16000)
    assert starts[0] == 0 and np.all(np.diff(starts) == 77)  # 1.3 partials per second
    last_end = (starts[-1] + se.PARTIAL_FRAMES) * se.HOP
    assert last_end >= 5 * 16000 * 0.9


def test_mel_front_end_frames_and_bands():
    filters = se._mel_filters()
    assert filters.shape == (se.N_MELS, se.N_FFT // 2 + 1) and (filters >= 0).all()
    tone = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)
    mel = se.mel_power(tone, filters)
    assert mel.shape == (16000 // se.HOP + 1, se.N_MELS)
    centre = mel[10:-10].mean(0)
    assert 2 <= int(np.argmax(centre)) <= 12  # 440 Hz falls in a low band


def test_embedding_is_normalised_raises_quiet_voices_and_tells_speakers_apart(encoder):
    if not AGE_MANIFEST.is_file():
        pytest.skip(f'real age-labelled speech not found at {AGE_MANIFEST}')
    clips = load_split(AGE_MANIFEST, 'val')
    by_speaker = {}
    for clip in clips:
        by_speaker.setdefault(clip.speaker_id, []).append(clip)
    same = next(v for v in by_speaker.values() if len(v) >= 2)
    other = next(v[0] for v in by_speaker.values() if v[0].gender != same[0].gender)
    a, b, c = (encoder.embed(load_audio(x.path)) for x in (same[0], same[1], other))
    assert a.shape == (256,) and np.linalg.norm(a) == pytest.approx(1, abs=1e-4)
    audio = load_audio(same[0].path)
    quiet, quieter = (encoder.embed(gain * audio) for gain in (0.01, 0.002))
    assert (
        float(quiet @ quieter) > 0.999
    )  # a quiet voice is raised to -30 dBFS, whatever its level
    assert float(a @ b) > float(a @ c)  # one speaker's two clips are closer than another's
