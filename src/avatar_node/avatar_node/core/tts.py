"""Offline Korean text-to-speech with espeak-ng, through pyttsx3's libespeak-ng bindings.

Two synthesizers share one interface (``synthesize(text, prosody, on_audio)``):

- :class:`EspeakStreamSynth` (default) drives libespeak-ng through ``pyttsx3.drivers._espeak`` in
  synchronous mode: PCM arrives in small buffers while the sentence is being synthesised, with the
  audio position of every word (used for visemes). The first buffer is ready well under 1 ms
  after the call.
- :class:`Pyttsx3FileSynth` uses pyttsx3's public engine API (``save_to_file`` + ``runAndWait``)
  and reads the WAV back; it delivers a sentence only when it is complete and has no word timing.

libespeak-ng is a process-wide singleton (it may be initialised once per process), so a process
uses one of the two. A missing data directory or voice is reported *before* libespeak-ng is
initialised, because libespeak-ng exits the whole process when its data files are missing.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import io
import os
import tempfile
import threading
import wave
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

from agechat_ros.labels import AGE_GROUPS  # noqa: F401 - re-exported for avatar_node.node

#: Where Debian/Ubuntu/Fedora/Homebrew put espeak-ng's data (searched when no path is configured).
DATA_DIR_CANDIDATES = (
    '/usr/lib/x86_64-linux-gnu/espeak-ng-data',
    '/usr/lib/aarch64-linux-gnu/espeak-ng-data',
    '/usr/share/espeak-ng-data',
    '/usr/local/share/espeak-ng-data',
    '/usr/lib/espeak-ng-data',
    '/opt/homebrew/share/espeak-ng-data',
)
INSTALL_HINT = 'install it with `sudo apt-get install espeak-ng libespeak-ng1` (Debian/Ubuntu)'

# espeak_PARAMETER values (speak_lib.h).
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7


class VoiceUnavailable(FileNotFoundError):
    """espeak-ng, its data or the requested voice is missing; the text says what to install."""


@dataclass(frozen=True)
class Prosody:
    """How the voice speaks: espeak-ng parameters plus a pause between sentences."""

    rate_wpm: int = 165  # words per minute (espeak-ng default 175)
    pitch: int = 50  # base pitch 0..100
    pitch_range: int = 50  # intonation range 0..100 (0 = monotone)
    word_gap_10ms: int = 0  # extra pause between words, in 10 ms units
    volume: int = 100  # 0..200 (100 = espeak-ng default)
    sentence_pause_ms: int = 120  # silence added after each sentence


#: Default voice per listener age group (see README: slower, lower and louder for seniors,
#: brighter and livelier for children).
DEFAULT_PROSODY: Dict[str, Prosody] = {
    'child': Prosody(
        rate_wpm=160, pitch=68, pitch_range=80, word_gap_10ms=0, volume=105, sentence_pause_ms=150
    ),
    'adult': Prosody(
        rate_wpm=170, pitch=52, pitch_range=55, word_gap_10ms=0, volume=100, sentence_pause_ms=120
    ),
    'senior': Prosody(
        rate_wpm=130, pitch=44, pitch_range=45, word_gap_10ms=2, volume=125, sentence_pause_ms=300
    ),
}


@dataclass
class WordMark:
    """A word's place in the text (character offset/length) and in the audio (sample offset)."""

    char_start: int
    char_length: int
    sample: int


#: on_audio(pcm int16 mono, word marks in this buffer) -> True to go on, False to cancel.
AudioCallback = Callable[[np.ndarray, List[WordMark]], bool]


def find_data_dir(configured: str = '') -> str:
    """Return espeak-ng's data directory.

    That is `configured`, else $ESPEAK_DATA_PATH, else the first standard place that holds it.

    Raises VoiceUnavailable naming what was searched when none holds espeak-ng's `phontab`.
    """
    if configured:
        candidates, origin = [configured], "parameter 'espeak_data_path'"
    elif os.environ.get('ESPEAK_DATA_PATH'):
        candidates, origin = (
            [os.environ['ESPEAK_DATA_PATH']],
            'environment variable ESPEAK_DATA_PATH',
        )
    else:
        candidates = list(DATA_DIR_CANDIDATES) + sorted(glob.glob('/usr/lib/*/espeak-ng-data'))
        origin = 'the standard locations'
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, 'phontab')):
            return candidate
    raise VoiceUnavailable(
        f"espeak-ng data (phontab) not found in {', '.join(candidates)} (from {origin}); "
        f"{INSTALL_HINT}, or point parameter 'espeak_data_path' at the espeak-ng-data folder"
    )


def check_voice(data_dir: str, voice: str) -> None:
    """Raise VoiceUnavailable unless `voice` ('ko', 'ko+f3') has its language and variant files."""
    language, _, variant = voice.partition('+')
    if not language:
        raise VoiceUnavailable(f"voice '{voice}' names no language; use e.g. 'ko' or 'ko+f3'")
    dictionary = os.path.join(data_dir, f'{language}_dict')
    language_files = glob.glob(os.path.join(data_dir, 'lang', '**', language), recursive=True)
    if not language_files or not os.path.isfile(dictionary):
        raise VoiceUnavailable(
            f"espeak-ng voice '{language}' is missing in {data_dir} "
            f"(need lang/**/{language} and {language}_dict); "
            f"{INSTALL_HINT} (espeak-ng-data ships the Korean voice 'ko'), "
            "or set parameter 'voice'"
        )
    if variant and not os.path.isfile(os.path.join(data_dir, 'voices', '!v', variant)):
        available = (
            sorted(os.listdir(os.path.join(data_dir, 'voices', '!v')))
            if os.path.isdir(os.path.join(data_dir, 'voices', '!v'))
            else []
        )
        raise VoiceUnavailable(
            f"espeak-ng voice variant '{variant}' is missing in {data_dir}/voices/!v; "
            f"use one of {', '.join(available[:20]) or '(none installed)'} "
            "or no variant (voice 'ko')"
        )


def _load_bindings():
    """Import pyttsx3's libespeak-ng bindings, turning a missing library into VoiceUnavailable."""
    try:
        from pyttsx3.drivers import _espeak
    except Exception as error:  # noqa: BLE001 - pyttsx3 raises RuntimeError/OSError when the library is absent
        raise VoiceUnavailable(
            f'libespeak-ng could not be loaded ({error}); {INSTALL_HINT}'
        ) from error
    return _espeak


def _apply_prosody(espeak, prosody: Prosody) -> None:
    for parameter, value in (
        (_RATE, prosody.rate_wpm),
        (_VOLUME, prosody.volume),
        (_PITCH, prosody.pitch),
        (_RANGE, prosody.pitch_range),
        (_WORDGAP, prosody.word_gap_10ms),
    ):
        espeak.SetParameter(parameter, int(value), 0)


class EspeakStreamSynth:
    """Streaming espeak-ng synthesis (libespeak-ng in synchronous mode via pyttsx3's bindings).

    One instance per process. `synthesize` runs in the calling thread and calls `on_audio` for
    every buffer of `buffer_ms` as it is produced.
    """

    name = 'espeak-ng (libespeak-ng via pyttsx3 bindings, streaming)'
    _instance_lock = threading.Lock()
    _initialised = False

    def __init__(self, voice: str = 'ko', data_path: str = '', buffer_ms: int = 20):
        self.data_dir = find_data_dir(data_path)
        check_voice(self.data_dir, voice)
        self.voice = voice
        espeak = _load_bindings()
        with EspeakStreamSynth._instance_lock:
            if EspeakStreamSynth._initialised:
                raise RuntimeError(
                    'libespeak-ng is already initialised in this process; create one synthesizer'
                )
            rate = espeak.Initialize(
                espeak.AUDIO_OUTPUT_SYNCHRONOUS, int(buffer_ms), self.data_dir.encode(), 0
            )
            if rate <= 0:
                raise VoiceUnavailable(
                    f'libespeak-ng failed to initialise with data in {self.data_dir}; '
                    f'{INSTALL_HINT}'
                )
            EspeakStreamSynth._initialised = True
        self._espeak = espeak
        self.sample_rate = int(rate)
        if espeak.SetVoiceByName(voice.encode()) != 0:
            raise VoiceUnavailable(f"espeak-ng refused voice '{voice}'; {INSTALL_HINT}")
        self._lock = threading.Lock()
        self._on_audio: Optional[AudioCallback] = None
        self._samples = 0
        self._cancelled = False
        self._error: Optional[BaseException] = None
        espeak.SetSynthCallback(self._callback)

    def _callback(self, wav, numsamples, events) -> int:
        try:
            marks = []
            index = 0
            while events[index].type != self._espeak.EVENT_LIST_TERMINATED:
                event = events[index]
                if event.type == self._espeak.EVENT_WORD:
                    marks.append(
                        WordMark(
                            char_start=max(0, event.text_position - 1),
                            char_length=event.length,
                            sample=int(event.audio_position * self.sample_rate / 1000),
                        )
                    )
                index += 1
            pcm = (
                np.frombuffer(ctypes.string_at(wav, numsamples * 2), dtype='<i2').copy()
                if numsamples > 0 and wav
                else np.zeros(0, np.int16)
            )
            self._samples += len(pcm)
            if (
                (len(pcm) or marks)
                and self._on_audio is not None
                and not self._on_audio(pcm, marks)
            ):
                self._cancelled = True
                return 1
        except BaseException as error:  # noqa: BLE001 - never let an exception cross the C callback
            self._error = error
            return 1
        return 0

    def synthesize(self, text: str, prosody: Prosody, on_audio: AudioCallback) -> int:
        """Synthesize one sentence, streaming it to on_audio; return its sample count.

        The count includes the pause after the sentence.
        """
        with self._lock:
            self._on_audio, self._samples, self._cancelled, self._error = on_audio, 0, False, None
            try:
                if text.strip():
                    _apply_prosody(self._espeak, prosody)
                    status = self._espeak.Synth(
                        text.encode('utf-8'), flags=self._espeak.CHARS_UTF8 | self._espeak.ENDPAUSE
                    )
                    if status != 0 and not self._cancelled:
                        raise RuntimeError(f'espeak_Synth failed with status {status}')
                if self._error is not None:
                    raise self._error
                pause = int(self.sample_rate * prosody.sentence_pause_ms / 1000)
                if pause and not self._cancelled:
                    on_audio(np.zeros(pause, np.int16), [])
                    self._samples += pause
                return self._samples
            finally:
                self._on_audio = None


class Pyttsx3FileSynth:
    """pyttsx3's engine API: save_to_file into a temporary WAV, then deliver it in one piece."""

    name = 'pyttsx3 save_to_file (espeak driver)'

    def __init__(self, voice: str = 'ko', data_path: str = ''):
        self.data_dir = find_data_dir(data_path)
        check_voice(self.data_dir, voice)
        if data_path:
            os.environ['ESPEAK_DATA_PATH'] = (
                self.data_dir
            )  # pyttsx3 initialises with the default path
        self._espeak = _load_bindings()
        import pyttsx3

        self._engine = pyttsx3.init('espeak')
        self._engine.setProperty('voice', voice)
        self.voice = voice
        self.sample_rate = 22050  # pyttsx3's espeak driver writes 22.05 kHz WAV
        self._lock = threading.Lock()
        self._folder = tempfile.mkdtemp(prefix='agechat-tts-')

    def synthesize(self, text: str, prosody: Prosody, on_audio: AudioCallback) -> int:
        """Synthesize one sentence via a WAV file, pass it to on_audio; return the sample count."""
        with self._lock:
            pcm = np.zeros(0, np.int16)
            if text.strip():
                self._engine.setProperty('rate', int(prosody.rate_wpm))
                self._engine.setProperty('volume', prosody.volume / 100.0)
                self._engine.setProperty('pitch', int(prosody.pitch))
                self._espeak.SetParameter(_RANGE, int(prosody.pitch_range), 0)
                self._espeak.SetParameter(_WORDGAP, int(prosody.word_gap_10ms), 0)
                path = os.path.join(self._folder, 'sentence.wav')
                with contextlib.redirect_stdout(
                    io.StringIO()
                ):  # the driver prints "Audio saved to ..."
                    self._engine.save_to_file(text, path)
                    self._engine.runAndWait()
                with wave.open(path, 'rb') as wav:
                    pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype='<i2').copy()
                os.remove(path)
            pause = np.zeros(int(self.sample_rate * prosody.sentence_pause_ms / 1000), np.int16)
            pcm = np.concatenate([pcm, pause])
            if len(pcm):
                on_audio(pcm, [])
            return len(pcm)


BACKENDS = {'espeak': EspeakStreamSynth, 'pyttsx3': Pyttsx3FileSynth}


def create_synth(backend: str, voice: str, data_path: str = '', buffer_ms: int = 20):
    """Create the synthesizer named `backend` ('espeak' streaming, or 'pyttsx3' save_to_file)."""
    if backend == 'espeak':
        return EspeakStreamSynth(voice, data_path, buffer_ms)
    if backend == 'pyttsx3':
        return Pyttsx3FileSynth(voice, data_path)
    raise ValueError(f"unknown TTS backend '{backend}'; use one of {sorted(BACKENDS)}")
