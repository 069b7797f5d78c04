"""Unit tests of avatar_node's pure core.

Text chunking and visemes, real espeak-ng synthesis, the paced Speaker, expression
mapping/smoothing, and the renderer's pixels.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from avatar_node.core import expressions as ex
from avatar_node.core.playback import LocalPlayer
from avatar_node.core.render import AvatarRenderer, FacePose, Scene, find_font
from avatar_node.core.speech import Speaker, SpeechRequest
from avatar_node.core.text import (
    clean_text,
    split_sentences,
    syllable_visemes,
    truncate,
    viseme_of,
)
from avatar_node.core.tts import (
    DEFAULT_PROSODY,
    EspeakStreamSynth,
    VoiceUnavailable,
    check_voice,
    find_data_dir,
)

SENTENCE = '안녕하세요, 오늘 기분은 어떠세요?'


# -- text -----------------------------------------------------------------------------------------
def test_sentences_are_split_at_ends_and_long_ones_at_clauses():
    assert split_sentences('안녕하세요! 반가워요. 잘 지내셨어요?\n네') == [
        '안녕하세요!',
        '반가워요.',
        '잘 지내셨어요?',
        '네',
    ]
    long_sentence = '오늘은, ' + '아주 ' * 60 + '좋아요.'
    parts = split_sentences(long_sentence, max_chars=50)
    assert all(len(p) <= 50 for p in parts) and parts[0] == '오늘은,'
    assert ''.join(parts).replace(' ', '') == long_sentence.replace(' ', '')


def test_truncate_prefers_a_sentence_end_and_clean_removes_symbols():
    text, cut = truncate('첫 문장입니다. 둘째 문장은 아주 아주 길어요.', 20)
    assert cut and text == '첫 문장입니다.'
    assert truncate('짧아요.', 20) == ('짧아요.', False)
    assert clean_text('  안녕 😀\t\x00하세요  ') == '안녕 하세요'
    assert clean_text('🎉🎉') == ''


def test_hangul_vowels_map_to_vrm_visemes():
    assert [viseme_of(c) for c in '아이우에오'] == ['aa', 'ih', 'ou', 'ee', 'oh']
    assert [viseme_of(c) for c in '한글봐요'] == ['aa', 'ou', 'aa', 'oh']
    assert viseme_of('!') is None and viseme_of(' ') is None
    assert syllable_visemes('네, 좋아요!') == ['ee', 'oh', 'aa', 'oh']


# -- TTS (real espeak-ng) -------------------------------------------------------------------------
@pytest.fixture(scope='module')
def synth():
    """libespeak-ng may be initialised once per process: one synthesizer for this module."""
    return EspeakStreamSynth('ko+f3')


def _say(synth, text, prosody):
    chunks, marks = [], []

    def on_audio(pcm, new_marks):
        chunks.append(pcm)
        marks.extend(new_marks)
        return True

    total = synth.synthesize(text, prosody, on_audio)
    pcm = np.concatenate(chunks).astype(np.float32) / 32768.0
    assert total == len(pcm)
    return pcm, marks, chunks


def test_espeak_streams_korean_speech_in_small_buffers_with_word_marks(synth):
    assert synth.sample_rate == 22050
    pcm, marks, chunks = _say(synth, SENTENCE, DEFAULT_PROSODY['adult'])
    assert 1.0 < len(pcm) / 22050 < 6.0
    assert np.sqrt(np.mean(pcm**2)) > 0.03
    # streamed in small buffers (libespeak-ng hands out ~50 ms), the sentence pause comes last
    assert len(chunks) > 20 and max(len(c) for c in chunks[:-1]) <= 22050 * 0.06
    assert [m.char_start for m in marks] == [0, 7, 10, 14]  # 안녕하세요, 오늘 기분은 어떠세요?
    assert all(a.sample < b.sample for a, b in zip(marks, marks[1:], strict=False))


def test_duration_grows_with_text_and_age_groups_change_the_voice(synth):
    short, _, _ = _say(synth, '안녕하세요.', DEFAULT_PROSODY['adult'])
    long, _, _ = _say(synth, SENTENCE + ' 저는 오늘 정말 즐거워요.', DEFAULT_PROSODY['adult'])
    assert len(long) > 2.5 * len(short)
    child, _, _ = _say(synth, SENTENCE, DEFAULT_PROSODY['child'])
    senior, _, _ = _say(synth, SENTENCE, DEFAULT_PROSODY['senior'])
    assert len(senior) > 1.2 * len(child)
    assert np.sqrt(np.mean(senior**2)) > np.sqrt(np.mean(child**2))  # louder for seniors


def test_cancel_stops_synthesis_early(synth):
    count = []

    def stop_after_three(pcm, marks):
        count.append(len(pcm))
        return len(count) < 3

    synth.synthesize(SENTENCE * 3, DEFAULT_PROSODY['adult'], stop_after_three)
    assert len(count) == 3


def test_missing_data_or_voice_is_reported_clearly(tmp_path):
    with pytest.raises(VoiceUnavailable, match='phontab'):
        find_data_dir(str(tmp_path))
    data = find_data_dir()
    check_voice(data, 'ko+f3')
    with pytest.raises(VoiceUnavailable, match="voice 'xx' is missing"):
        check_voice(data, 'xx')
    with pytest.raises(VoiceUnavailable, match="variant 'nope' is missing"):
        check_voice(data, 'ko+nope')


def test_pyttsx3_save_to_file_backend_speaks_too():
    """pyttsx3's public API path (run in a child: libespeak-ng is initialised once per process)."""
    code = (
        'import json, numpy as np\n'
        'from avatar_node.core.tts import Pyttsx3FileSynth, DEFAULT_PROSODY\n'
        's = Pyttsx3FileSynth("ko")\n'
        'out = []\n'
        'n = s.synthesize("안녕하세요, 반가워요.", DEFAULT_PROSODY["adult"], '
        'lambda p, m: out.append(p) or True)\n'
        'pcm = np.concatenate(out) / 32768.0\n'
        'print(json.dumps({"n": int(n), "rms": float(np.sqrt(np.mean(pcm ** 2))), '
        '"rate": s.sample_rate}))\n'
    )
    result = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values['rate'] == 22050 and values['n'] > 22050 * 0.8 and values['rms'] > 0.03


# -- Speaker (real synthesis, real threads) -------------------------------------------------------
def test_speaker_paces_chunks_in_real_time_and_moves_the_mouth(synth):
    chunks, ends, firsts = [], [], []
    done = threading.Event()

    def on_chunk(reply, data, first):
        chunks.append((time.monotonic(), len(data)))
        if first:
            firsts.append(reply.request.utterance_id)

    def on_end(reply):
        ends.append((time.monotonic(), reply.duration_s))
        done.set()

    speaker = Speaker(
        synth,
        chunk_ms=20,
        lead_ms=40,
        tail_ms=100,
        max_pending=1,
        on_chunk=on_chunk,
        on_end=on_end,
    )
    try:
        request = SpeechRequest(
            'u1', SENTENCE, split_sentences(SENTENCE), DEFAULT_PROSODY['adult']
        )
        requested = time.monotonic()
        assert speaker.say(request)
        assert not speaker.say(request)  # max_pending=1: refused while busy
        openings = []
        while not done.wait(0.02):
            state = speaker.mouth()
            if state.speaking:
                openings.append(state.mouth_open)
                assert state.caption == SENTENCE and state.utterance_id == 'u1'
        assert firsts == ['u1']
        assert all(n == 882 for _, n in chunks[:-1])  # 20 ms of S16LE at 22.05 kHz
        total_s = sum(n for _, n in chunks) / 2 / 22050
        assert ends[0][1] == pytest.approx(total_s)
        played_for = chunks[-1][0] - chunks[0][0]
        assert played_for > total_s - 0.3  # paced, not burst
        assert ends[0][0] - chunks[0][0] >= total_s + 0.1 - 0.01  # end = audio length + tail
        assert chunks[0][0] - requested < 1.0
        openings = np.array(openings)
        assert openings.max() > 0.5 and openings.std() > 0.1 and (openings < 0.2).any()
        assert not speaker.mouth().speaking and speaker.mouth().mouth_open == 0.0
    finally:
        speaker.close()


LONG_SENTENCES = (
    '안녕하세요, 반가워요. 오늘은 날씨가 참 맑고 따뜻하네요. 점심은 맛있게 드셨어요? '
    '저는 이야기를 나누는 게 정말 즐거워요. 궁금한 것이 있으면 언제든지 물어보세요.'
)


class _Recorder:
    """Speaker callbacks that record (time, utterance id) of every chunk and end."""

    def __init__(self):
        self.lock = threading.Lock()
        self.chunks, self.ends = [], []

    def on_chunk(self, reply, data, first):
        with self.lock:
            self.chunks.append((time.monotonic(), reply.request.utterance_id, len(data)))

    def on_end(self, reply):
        with self.lock:
            self.ends.append((time.monotonic(), reply.request.utterance_id))

    def chunks_of(self, uid):
        with self.lock:
            return [c for c in self.chunks if c[1] == uid]

    def ended(self, uid):
        with self.lock:
            return [e for e in self.ends if e[1] == uid]


def _request(uid, text):
    return SpeechRequest(uid, text, split_sentences(text), DEFAULT_PROSODY['adult'])


def _wait(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        time.sleep(0.005)


def test_interrupt_cuts_the_reply_drops_the_queue_and_the_next_reply_plays(synth):
    rec = _Recorder()
    speaker = Speaker(
        synth, lead_ms=40, tail_ms=100, max_pending=3, on_chunk=rec.on_chunk, on_end=rec.on_end
    )
    try:
        for uid in ('long', 'queued-1', 'queued-2'):
            assert speaker.say(_request(uid, LONG_SENTENCES if uid == 'long' else SENTENCE))
        _wait(lambda: len(rec.chunks_of('long')) >= 25, 10, '0.5 s of the long reply')
        assert speaker.speaking_id == 'long' and speaker.mouth().speaking
        cut = speaker.interrupt('')  # empty id: whatever is being spoken
        after = time.monotonic()
        assert cut is not None and cut.reply.request.utterance_id == 'long'
        assert cut.dropped == ['queued-1', 'queued-2']
        emitted = len(rec.chunks_of('long'))
        assert cut.played_s == pytest.approx(emitted * 0.02, abs=0.021)
        # the mouth shuts and the speaker is free at once
        state = speaker.mouth()
        assert not state.speaking and state.mouth_open == 0.0 and state.utterance_id == ''
        assert not speaker.busy and speaker.speaking_id is None
        assert speaker.interrupt('') is None  # nothing left to cut: stale
        time.sleep(0.5)
        assert len(rec.chunks_of('long')) == emitted  # not one chunk after interrupt() returned
        assert all(t <= after for t, _, _ in rec.chunks_of('long'))
        assert rec.ended('long') == [] and rec.chunks_of('queued-1') == []
        assert rec.chunks_of('queued-2') == [] and rec.ends == []
        # the user's turn is over: the next reply is spoken normally, start to end
        assert speaker.say(_request('next', SENTENCE))
        _wait(lambda: rec.ended('next'), 15, 'the next reply to end')
        assert len(rec.chunks_of('next')) * 0.02 > 0.8
        assert rec.chunks_of('queued-1') == [] and rec.chunks_of('queued-2') == []
    finally:
        speaker.close()


def test_interrupt_of_another_reply_or_when_idle_is_stale_and_changes_nothing(synth):
    rec = _Recorder()
    speaker = Speaker(synth, tail_ms=100, max_pending=2, on_chunk=rec.on_chunk, on_end=rec.on_end)
    try:
        assert speaker.interrupt('') is None and speaker.interrupt('x') is None  # idle
        assert speaker.say(_request('a', SENTENCE)) and speaker.say(_request('b', SENTENCE))
        _wait(lambda: rec.chunks_of('a'), 10, "a's first chunk")
        assert speaker.interrupt('b') is None  # b is queued, not being spoken
        assert speaker.interrupt('old-reply') is None
        _wait(lambda: rec.ended('b'), 20, 'both replies to end')
        assert rec.ended('a') and rec.ended('a')[0][0] < rec.ended('b')[0][0]
    finally:
        speaker.close()


def test_interrupt_in_the_tail_ends_the_reply_without_its_normal_end(synth):
    rec = _Recorder()
    speaker = Speaker(synth, tail_ms=2000, max_pending=1, on_chunk=rec.on_chunk, on_end=rec.on_end)
    try:
        assert speaker.say(_request('short', '네.'))
        _wait(lambda: rec.chunks_of('short'), 10, 'the first chunk')
        last = len(rec.chunks_of('short'))
        while True:  # until the audio has been handed out: now in the 2 s tail
            time.sleep(0.1)
            count = len(rec.chunks_of('short'))
            if count == last:
                break
            last = count
        assert speaker.mouth().speaking and speaker.mouth().mouth_open == 0.0
        cut = speaker.interrupt('short')
        assert cut is not None and cut.dropped == []
        assert cut.played_s == pytest.approx(cut.reply.duration_s, abs=0.021)
        time.sleep(2.3)
        assert rec.ends == [] and not speaker.mouth().speaking and not speaker.busy
    finally:
        speaker.close()


def test_local_player_interrupt_drops_its_queue_and_stops_the_player(tmp_path):
    played = tmp_path / 'played.raw'
    # a player that does not read for 30 s: the pipe fills and PCM waits in our queue
    player = LocalPlayer(['sh', '-c', f'sleep 30; cat > {played}'])  # sh and its child sleep
    try:
        first = player.process
        for _ in range(200):  # 176 kB, more than a pipe holds
            player.write(bytes(882))
        time.sleep(0.2)
        dropped = player.interrupt()
        assert dropped > 0 and dropped % 882 == 0
        assert first.poll() is not None  # the player process (and its buffer) is gone
        assert player.process is None
        player.write(bytes(882))  # the next reply starts a fresh player
        assert player.process is not None and player.process.poll() is None
        assert player.starts == 2
    finally:
        player.interrupt()  # stops the second player's process group
        player.close()


# -- expressions ----------------------------------------------------------------------------------
def test_fer_to_vrm_table_covers_every_class_with_vrm_names():
    assert set(ex.FER_TO_VRM) == set(ex.FER_LABELS)
    for label, row in ex.FER_TO_VRM.items():
        assert set(row) <= set(ex.VRM_EXPRESSIONS) and sum(row.values()) >= 0.99, label
    assert ex.vrm_from_probabilities(ex.one_hot('happy'))['happy'] == 1.0
    blend = ex.vrm_from_probabilities([0, 0, 0, 0.5, 0.5, 0, 0])
    assert blend['happy'] == pytest.approx(0.5) and blend['sad'] == pytest.approx(0.5)
    assert ex.vrm_for_agent('angry')['angry'] == 0.0  # the agent stays calm


def test_smoother_follows_the_user_and_relaxes_without_a_face():
    smoother = ex.EmotionSmoother(tau_s=0.2, face_timeout_s=1.0)
    smoother.step(0.0)
    smoother.observe(ex.one_hot('sad'), True, 0.0)
    assert smoother.step(0.05)[4] < 0.5  # not at once
    smoother.observe(ex.one_hot('sad'), True, 0.5)
    smoother.observe(ex.one_hot('sad'), True, 0.9)
    assert smoother.step(1.0)[4] > 0.95 and smoother.label == 'sad'
    smoother.observe(ex.one_hot('neutral'), False, 1.2)
    assert smoother.label == 'sad'  # a short miss keeps the expression
    smoother.step(2.5)
    assert smoother.step(4.0)[6] > 0.95 and not smoother.face_found


def test_agent_expression_fits_the_reply():
    assert ex.agent_emotion_for_reply('생일 축하해요!', 'neutral') == 'happy'
    assert (
        ex.agent_emotion_for_reply('그런 일이 있었군요, 정말 속상하셨겠어요.', 'neutral') == 'sad'
    )
    assert ex.agent_emotion_for_reply('우와, 정말요?', 'neutral') == 'surprise'
    assert ex.agent_emotion_for_reply('그렇군요.', 'happy') == 'happy'
    assert ex.agent_emotion_for_reply('그렇군요.', 'angry') == 'neutral'


# -- renderer -------------------------------------------------------------------------------------
def _scene(label='neutral', mouth=0.0, viseme='aa', caption='', speaking=False):
    p = ex.one_hot(label)
    return Scene(
        t=0.0,
        user=FacePose(weights=ex.vrm_from_probabilities(p)),
        user_face_found=True,
        user_probabilities=p,
        user_label=label,
        agent=FacePose(
            weights=ex.vrm_for_agent('neutral'), mouth_open=mouth, visemes={viseme: mouth}
        ),
        agent_speaking=speaking,
        caption=caption,
        progress=0.5,
    )


def test_renderer_draws_each_emotion_differently_and_the_mouth_opens():
    renderer = AvatarRenderer(640, 360, find_font(), idle_motion=False)
    frames = {label: renderer.render(_scene(label)).astype(np.int16) for label in ex.FER_LABELS}
    left = np.s_[50:220, :320]
    for a in ex.FER_LABELS:
        for b in ex.FER_LABELS:
            if a < b:
                assert np.abs(frames[a][left] - frames[b][left]).mean() > 0.3, (a, b)
    assert np.array_equal(renderer.render(_scene('sad')), frames['sad'].astype(np.uint8))
    closed = renderer.render(_scene(mouth=0.0)).astype(np.int16)
    shapes = {
        v: renderer.render(_scene(mouth=0.8, viseme=v)).astype(np.int16)
        for v in ('aa', 'ou', 'ee')
    }
    right = np.s_[50:220, 320:]
    for v, frame in shapes.items():
        assert np.abs(frame[right] - closed[right]).mean() > 0.2, v
    assert np.abs(shapes['aa'][right] - shapes['ou'][right]).mean() > 0.1


def test_caption_is_drawn_in_korean_and_without_a_font_the_avatars_still_render():
    with_font = AvatarRenderer(640, 360, find_font(), idle_motion=False)
    assert with_font.text.has_hangul, 'no Korean font installed (fonts-nanum)'
    empty = with_font.render(_scene()).astype(np.int16)
    captioned = with_font.render(_scene(caption='안녕하세요, 반가워요!', speaking=True)).astype(
        np.int16
    )
    box = np.s_[290:350, 20:620]
    assert np.abs(captioned[box] - empty[box]).mean() > 2.0
    fallback = AvatarRenderer(640, 360, None, idle_motion=False)
    frame = fallback.render(_scene('happy', caption='안녕하세요'))
    assert frame.shape == (360, 640, 3)
    with pytest.raises(FileNotFoundError, match='fonts-nanum'):
        find_font('/nonexistent/font.ttf')
    with pytest.raises(ValueError, match='too small'):
        AvatarRenderer(100, 100)
