"""A simulated acoustic loop for barge-in tests and the bench. No ROS here.

The agent's TTS audio (espeak-ng, real Korean sentences) goes out of a virtual loudspeaker and
comes back into the virtual microphone: delayed (20-80 ms), filtered by a synthetic room impulse
response (exponentially decaying noise after a direct path, seeded), attenuated, plus noise.
Optionally a user's voice (real Korean read speech from ../shared/data/speech/korean, chosen by
speaker with a seed; or a synthetic one) starts in the middle of the reply.
"""

from __future__ import annotations

import csv
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np

SAMPLE_RATE = 16000

#: Agent replies spoken by the TTS in the loop (our own sentences, in the three registers).
REPLIES = (
    '오늘 날씨가 정말 좋네요. 산책하기 딱 좋은 날이에요.',
    '그 얘기 정말 재미있다! 더 들려줄래?',
    '말씀하신 내용을 잘 알겠습니다. 천천히 말씀해 주십시오.',
    '점심은 맛있게 드셨어요? 저는 김치찌개를 좋아해요.',
    '숙제는 다 했어? 모르는 문제가 있으면 같이 풀어 보자.',
    '건강이 제일 중요합니다. 오늘도 물을 충분히 드십시오.',
    '주말에 가족들과 어디 다녀오셨어요?',
    '우와, 그림을 정말 잘 그렸구나. 무엇을 그린 거야?',
    '요즘 잠은 잘 주무십니까? 편안한 밤 보내시기 바랍니다.',
    '좋아하는 노래가 있으면 알려 주세요. 같이 들어 봐요.',
)


@dataclass
class LoopConfig:
    """The echo path: delay, room, level, noise (dB relative to the TTS's full scale)."""

    delay_ms: float = 50.0
    rt60_s: float = 0.3
    rir_length_s: float = 0.25
    echo_gain_db: float = -6.0
    noise_dbfs: float = -60.0
    seed: int = 0


def espeak_korean(text: str, rate_wpm: int = 175, voice: str = 'ko') -> np.ndarray:
    """Speak `text` with the espeak-ng CLI; 16 kHz float32 mono."""
    from scipy.signal import resample_poly

    wav = subprocess.run(
        ['espeak-ng', '-v', voice, '-s', str(rate_wpm), '--stdout', text],
        check=True,
        capture_output=True,
    ).stdout
    # RIFF header: sample rate at byte 24, data after the 'data' chunk header
    rate = int.from_bytes(wav[24:28], 'little')
    data = wav[wav.index(b'data') + 8 :]
    samples = np.frombuffer(data[: len(data) // 2 * 2], dtype='<i2').astype(np.float32) / 32768.0
    if rate != SAMPLE_RATE:
        samples = resample_poly(samples, SAMPLE_RATE, rate).astype(np.float32)
    return samples


def synthetic_rir(rt60_s: float, length_s: float, seed: int) -> np.ndarray:
    """Make a room impulse response: a direct path, then noise decaying by 60 dB in `rt60_s`."""
    rng = np.random.default_rng(seed)
    n = max(1, int(length_s * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60_s)
    tail[:40] = 0.0  # first reflection ~2.5 ms after the direct path
    rir = 0.3 * tail / np.sqrt(np.sum(tail**2))
    rir[0] = 1.0
    return (rir / np.sqrt(np.sum(rir**2))).astype(np.float32)


def echo_of(tts: np.ndarray, config: LoopConfig) -> np.ndarray:
    """Return what the microphone hears of `tts` (same length as `tts` + the path's delay)."""
    from scipy.signal import fftconvolve

    rir = synthetic_rir(config.rt60_s, config.rir_length_s, config.seed)
    delay = int(round(config.delay_ms * SAMPLE_RATE / 1000.0))
    wet = fftconvolve(tts, rir)[: tts.size]
    out = np.zeros(tts.size + delay, np.float32)
    out[delay:] = wet * 10.0 ** (config.echo_gain_db / 20.0)
    return out


def noise(n: int, dbfs: float, seed: int) -> np.ndarray:
    """White noise at `dbfs` RMS."""
    rng = np.random.default_rng(seed + 7919)
    return (rng.standard_normal(n) * 10.0 ** (dbfs / 20.0)).astype(np.float32)


def scale_to_dbfs(samples: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale `samples` so that their speech (frames within 30 dB of the peak) is at `dbfs`."""
    frames = samples[: samples.size // 512 * 512].reshape(-1, 512)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-12
    active = rms[rms > rms.max() * 10 ** (-30 / 20)]
    level = 20 * np.log10(np.sqrt(np.mean(active**2)))
    return (samples * 10.0 ** ((dbfs - level) / 20.0)).astype(np.float32)


@dataclass
class Trial:
    """One reply in the loop: the far end (TTS), the microphone, and the user's voice if any."""

    tts: np.ndarray
    microphone: np.ndarray
    config: LoopConfig
    reply_text: str
    user_onset_s: Optional[float] = None  # in the microphone signal (s from its start)
    user_audio: Optional[np.ndarray] = None
    user_transcript: str = ''
    user_speaker: str = ''
    extra: dict = field(default_factory=dict)


def make_trial(
    tts: np.ndarray,
    config: LoopConfig,
    reply_text: str = '',
    user: Optional[np.ndarray] = None,
    user_onset_s: float = 0.0,
    user_dbfs: float = -26.0,
    tail_s: float = 0.8,
    transcript: str = '',
    speaker: str = '',
) -> Trial:
    """Mix the loop: echo + noise, and the user's voice from `user_onset_s` on."""
    echo = echo_of(tts, config)
    length = echo.size + int(tail_s * SAMPLE_RATE)
    if user is not None:
        voice = scale_to_dbfs(user, user_dbfs)
        start = int(user_onset_s * SAMPLE_RATE)
        length = max(length, start + voice.size + int(tail_s * SAMPLE_RATE))
    mic = noise(length, config.noise_dbfs, config.seed)
    mic[: echo.size] += echo
    onset = None
    if user is not None:
        # the true onset: the first 32 ms frame of the voice within 25 dB of its loudest
        frames = voice[: voice.size // 512 * 512].reshape(-1, 512)
        rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
        first = int(np.argmax(rms > rms.max() * 10 ** (-25 / 20)))
        onset = (start + first * 512) / SAMPLE_RATE
        mic[start : start + voice.size] += voice
    return Trial(
        tts,
        np.clip(mic, -1.0, 1.0).astype(np.float32),
        config,
        reply_text,
        onset,
        user,
        transcript,
        speaker,
    )


def random_config(rng: random.Random, seed: int) -> LoopConfig:
    """Draw a loop: delay 20-80 ms, RT60 0.2-0.5 s, echo -12..-3 dB, noise -65..-50 dBFS."""
    return LoopConfig(
        delay_ms=rng.uniform(20.0, 80.0),
        rt60_s=rng.uniform(0.2, 0.5),
        echo_gain_db=rng.uniform(-12.0, -3.0),
        noise_dbfs=rng.uniform(-65.0, -50.0),
        seed=seed,
    )


@dataclass
class UserClip:
    """A real recording of a user (16 kHz float32) and its reference transcript."""

    audio: np.ndarray
    transcript: str
    speaker: str
    path: str


def korean_clips(
    data_dir: Path, count: int, seed: int, min_s: float = 1.5, max_s: float = 4.0
) -> List[UserClip]:
    """`count` clips of `min_s`..`max_s` from distinct speakers where possible (seeded)."""
    from age_node.core.age_data import load_audio

    manifest = Path(data_dir) / 'manifest.csv'
    with open(manifest, encoding='utf-8') as handle:
        rows = list(csv.DictReader(handle))
    by_speaker: dict = {}
    for row in rows:
        by_speaker.setdefault(row['speaker_id'], []).append(row)
    rng = random.Random(seed)
    speakers = sorted(by_speaker)
    rng.shuffle(speakers)
    clips: List[UserClip] = []
    tries = 0
    while len(clips) < count and tries < count * 20:
        speaker = speakers[tries % len(speakers)]
        tries += 1
        row = rng.choice(by_speaker[speaker])
        if any(c.path == row['path'] for c in clips):
            continue
        audio = load_audio(Path(data_dir) / row['path'])
        if not min_s <= audio.size / SAMPLE_RATE <= max_s:
            continue
        clips.append(UserClip(audio, row['transcript'], speaker, row['path']))
    return clips
