"""Synthetic Korean speech whose voice carries an age: espeak-ng with per-speaker voice variants.

No age-labelled real speech can be had offline, so the shipped default age model is trained on
speech made here. A *voice* (one synthetic speaker) is drawn from a seed and an age in years:

- fundamental frequency (espeak variant ``pitch``) follows age and sex: high for young children,
  dropping through the teens (more for boys), slightly rising for old men and falling for old
  women;
- vocal-tract length (all ``formant`` frequencies scaled): short for children, adult by ~17;
- speaking rate (``-s`` words per minute): slower for young children and for the elderly;
- voice quality of ageing: F0 jitter (``flutter``), ``roughness``, breathiness, and a 4-7 Hz
  amplitude tremolo added after synthesis, all growing from about 55 years on;
- per-recording nuisance: gain, background noise (SNR 18-40 dB), a little rate variation.

The espeak-ng data folder is mirrored (symlinks) into a private temp folder so that the generated
variant files can be used without touching the system installation.

Public API:
    synthesize_speech(text, age_group, voice_seed, sample_rate=16000) -> float32 mono array
    synthesize_for_age(text, age_years, voice_seed, ...)              -> float32 mono array
    voice_for(age_years, voice_seed) / render(text, voice, ...)        (lower level)
    DEMO_SENTENCES[group]                                              (short demo turns)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from scipy.signal import resample_poly

from age_node.core.ages import GROUP_ADULT, GROUP_CHILD, GROUP_SENIOR, group_from_label

ESPEAK = 'espeak-ng'
ESPEAK_RATE = 22050

#: Ages that `synthesize_speech` draws for a group: the typical range of each group (the
#: boundaries 19/20 and 59/60 are ambiguous by nature and are left to `synthesize_for_age`).
GROUP_DEMO_AGES = {GROUP_CHILD: (6, 12), GROUP_ADULT: (24, 48), GROUP_SENIOR: (66, 88)}

#: Short Korean turns per age group, for demo bags (the voice, not the text, carries the age).
DEMO_SENTENCES: Dict[str, List[str]] = {
    'child': [
        '안녕! 나는 초등학생이야.',
        '오늘 학교에서 그림을 그렸어.',
        '우리 같이 놀자!',
        '공룡 이야기 해 줘.',
    ],
    'adult': [
        '안녕하세요, 반갑습니다.',
        '오늘 회의가 길어서 좀 피곤하네요.',
        '주말에 영화를 볼까 해요.',
        '요즘 일이 많아서 바빠요.',
    ],
    'senior': [
        '안녕하세요, 오늘 날씨가 참 좋네요.',
        '요즘 무릎이 아파서 산책을 못 했어요.',
        '손주들이 보고 싶어요.',
        '옛날 노래를 들으면 기분이 좋아져요.',
    ],
}

#: Everyday sentences shared by every age group (so text never tells the age) for training sets.
TRAINING_SENTENCES: List[str] = [
    '안녕하세요.',
    '오늘 날씨가 좋네요.',
    '밥 먹었어요?',
    '지금 몇 시예요?',
    '어디에 가고 싶어요?',
    '이것 좀 도와주세요.',
    '고맙습니다.',
    '잘 모르겠어요.',
    '다시 한 번 말해 주세요.',
    '배가 고파요.',
    '물 한 잔 주세요.',
    '오늘은 기분이 좋아요.',
    '내일 또 만나요.',
    '이름이 뭐예요?',
    '음악을 틀어 주세요.',
    '창문 좀 열어 주세요.',
    '텔레비전을 보고 싶어요.',
    '산책하러 가요.',
    '이야기 좀 해 주세요.',
    '조금 피곤해요.',
    '가족이 보고 싶어요.',
    '저녁에 뭐 먹을까요?',
    '책을 읽어 주세요.',
    '사진을 찍어 볼까요?',
    '노래를 불러요.',
    '집에 가고 싶어요.',
    '친구를 만났어요.',
    '재미있는 일이 있었어요.',
    '날씨가 추워졌어요.',
    '비가 올 것 같아요.',
    '공원에 사람이 많아요.',
    '커피를 마시고 싶어요.',
    '병원에 다녀왔어요.',
    '시장에서 과일을 샀어요.',
    '버스를 타고 왔어요.',
    '전화 좀 걸어 주세요.',
    '오늘 무슨 요일이에요?',
    '약을 먹을 시간이에요.',
    '강아지가 귀여워요.',
    '꽃이 예쁘게 피었어요.',
    '천천히 말해 주세요.',
    '잠이 안 와요.',
    '숙제가 너무 많아요.',
    '주말에 뭐 했어요?',
    '축구 경기를 봤어요.',
    '이 옷 어때요?',
]
#: Sentences never used in training: held-out evaluation uses only these.
HELDOUT_SENTENCES: List[str] = [
    '아침에 일찍 일어났어요.',
    '오랜만에 바다에 가고 싶네요.',
    '점심은 김치찌개를 먹었어요.',
    '이 근처에 도서관이 있어요?',
    '감기에 걸려서 목이 아파요.',
    '새로운 게임을 배웠어요.',
]


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: espeak-ng variant settings plus post-processing."""

    age_years: float
    female: bool
    f0_hz: float  # espeak variant pitch base
    f0_range_hz: float  # espeak variant pitch range (intonation width)
    formant_scale: float  # all formant frequencies, percent / 100 (vocal-tract length)
    rate_wpm: int  # espeak -s
    flutter: int  # espeak F0 jitter, 0..60
    roughness: int  # espeak roughness, 0..7
    breath: int  # espeak breath amplitude for formants 1-8, 0..15
    tremolo_hz: float  # amplitude tremolo frequency
    tremolo_depth: float  # 0 = none
    snr_db: float  # background noise
    gain: float  # peak level


def _smoothstep(x: float, lo: float, hi: float) -> float:
    t = float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))
    return t * t * (3 - 2 * t)


def voice_for(age_years: float, voice_seed: int) -> Voice:
    """Draw the voice of one synthetic speaker of the given age (deterministic for a seed)."""
    age = float(np.clip(age_years, 5, 89))
    rng = np.random.default_rng([int(voice_seed) & 0xFFFFFFFF, int(round(age * 10))])
    female = bool(rng.random() < 0.5)
    puberty = _smoothstep(age, 10.0, 17.0)  # 0 child -> 1 adult voice
    ageing = _smoothstep(age, 52.0, 85.0)  # 0 adult -> 1 very old
    child_f0 = 290.0 - 4.0 * (min(age, 12.0) - 5.0)  # ~290 Hz at 5, ~262 at 12
    adult_f0 = 205.0 if female else 115.0
    old_shift = -22.0 if female else 18.0  # women's F0 falls, men's rises
    f0 = (1 - puberty) * child_f0 + puberty * adult_f0 + ageing * old_shift
    f0 *= float(np.exp(rng.normal(0.0, 0.07)))
    child_formants = 1.32 - 0.02 * (min(age, 12.0) - 5.0)
    adult_formants = 1.10 if female else 0.98
    formant_scale = (1 - puberty) * child_formants + puberty * adult_formants - 0.03 * ageing
    formant_scale *= float(np.exp(rng.normal(0.0, 0.025)))
    if age < 12:
        rate = 125 + 5 * (age - 5)
    elif age < 55:
        rate = 170.0
    else:
        rate = 170.0 - 55.0 * _smoothstep(age, 55.0, 89.0)
    rate *= float(np.exp(rng.normal(0.0, 0.08)))
    f0_range = f0 * (0.55 if age < 12 else 0.4) * float(np.exp(rng.normal(0.0, 0.15)))
    return Voice(
        age_years=age,
        female=female,
        f0_hz=round(f0, 1),
        f0_range_hz=round(f0_range, 1),
        formant_scale=round(formant_scale, 3),
        rate_wpm=int(round(rate)),
        flutter=int(round(np.clip(4 + 45 * ageing + rng.normal(0, 4), 0, 60))),
        roughness=int(round(np.clip(1 + 5 * ageing + rng.normal(0, 0.8), 0, 7))),
        breath=int(round(np.clip(10 * ageing + rng.normal(0, 1.5), 0, 15))),
        tremolo_hz=round(float(rng.uniform(4.0, 7.0)), 2),
        tremolo_depth=round(float(np.clip(0.28 * ageing + rng.normal(0, 0.03), 0.0, 0.4)), 3),
        snr_db=round(float(rng.uniform(18.0, 40.0)), 1),
        gain=round(float(rng.uniform(0.25, 0.9)), 3),
    )


_DATA_LOCK = threading.Lock()
_DATA_DIR: Optional[Path] = None


def _espeak_data_dir() -> Path:
    """Return the system espeak-ng-data folder (from `espeak-ng --version`)."""
    if shutil.which(ESPEAK) is None:
        raise FileNotFoundError(
            f'{ESPEAK} is not installed; install it with `apt-get install espeak-ng`'
        )
    out = subprocess.run([ESPEAK, '--version'], capture_output=True, text=True, check=True).stdout
    marker = 'Data at:'
    if marker not in out:
        raise RuntimeError(f'cannot find the espeak-ng data folder in: {out!r}')
    return Path(out.split(marker, 1)[1].strip())


def _private_data_root() -> Path:
    """Return a private espeak-ng data root whose voices/!v folder accepts new variants.

    It mirrors the system data with symlinks, in a folder per user in the temporary directory.
    """
    global _DATA_DIR
    with _DATA_LOCK:
        if _DATA_DIR is not None and _DATA_DIR.is_dir():
            return _DATA_DIR
        system = _espeak_data_dir()
        root = Path(tempfile.gettempdir()) / f'agechat-espeak-{os.getuid()}'
        data = root / 'espeak-ng-data'
        variants = data / 'voices' / '!v'
        variants.mkdir(parents=True, exist_ok=True)
        for entry in system.iterdir():
            if entry.name != 'voices' and not (data / entry.name).exists():
                (data / entry.name).symlink_to(entry)
        for entry in (system / 'voices').iterdir():
            if entry.name != '!v' and not (data / 'voices' / entry.name).exists():
                (data / 'voices' / entry.name).symlink_to(entry)
        _DATA_DIR = root
        return root


def _variant_text(voice: Voice) -> str:
    pct = int(round(voice.formant_scale * 100))
    lines = [
        'language variant',
        'name agechat',
        f'gender {"female" if voice.female else "male"}',
        f'pitch {int(voice.f0_hz)} {int(voice.f0_hz + voice.f0_range_hz)}',
        f'flutter {voice.flutter}',
        f'roughness {voice.roughness}',
    ]
    for formant in range(9):
        lines.append(f'formant {formant} {pct if formant < 6 else 100} 100 100')
    if voice.breath:
        lines.append('breath 0 ' + ' '.join(str(voice.breath) for _ in range(8)))
    return '\n'.join(lines) + '\n'


def render(text: str, voice: Voice, sample_rate: int = 16000, noise_seed: int = 0) -> np.ndarray:
    """Speak `text` with `voice`; return float32 mono samples at `sample_rate`.

    The samples have no leading or trailing padding.
    """
    root = _private_data_root()
    variant = _variant_text(voice)
    name = 'agechat_' + hashlib.sha1(variant.encode()).hexdigest()[:12]
    path = root / 'espeak-ng-data' / 'voices' / '!v' / name
    if not path.exists():
        tmp = path.with_suffix(f'.{os.getpid()}.{threading.get_ident()}')
        tmp.write_text(variant.replace('name agechat', f'name {name}'))
        os.replace(tmp, path)
    result = subprocess.run(
        [
            ESPEAK,
            f'--path={root}',
            '-v',
            f'ko+{name}',
            '-s',
            str(voice.rate_wpm),
            '--stdout',
            text,
        ],
        capture_output=True,
        check=True,
    )
    wav = result.stdout
    if len(wav) <= 44:
        raise RuntimeError(
            f'espeak-ng produced no audio for {text!r}: {result.stderr.decode(errors="replace")}'
        )
    samples = (
        np.frombuffer(wav[44 : 44 + (len(wav) - 44) // 2 * 2], dtype='<i2').astype(np.float32)
        / 32768.0
    )
    if sample_rate != ESPEAK_RATE:
        g = np.gcd(int(sample_rate), ESPEAK_RATE)
        samples = resample_poly(samples, int(sample_rate) // g, ESPEAK_RATE // g).astype(
            np.float32
        )
    rng = np.random.default_rng([abs(hash(voice)) & 0xFFFFFFFF, int(noise_seed)])
    if voice.tremolo_depth > 0:
        t = np.arange(samples.size, dtype=np.float32) / sample_rate
        phase = rng.uniform(0, 2 * np.pi)
        samples = samples * (
            1.0
            - voice.tremolo_depth * 0.5 * (1 + np.sin(2 * np.pi * voice.tremolo_hz * t + phase))
        )
    peak = float(np.max(np.abs(samples))) or 1.0
    samples = samples * (voice.gain / peak)
    signal_rms = float(np.sqrt(np.mean(samples**2))) or 1e-4
    noise = rng.normal(0.0, 1.0, samples.size).astype(np.float32)
    samples = samples + noise * signal_rms * 10 ** (-voice.snr_db / 20.0)
    return np.clip(samples, -1.0, 1.0).astype(np.float32)


def synthesize_for_age(
    text: str, age_years: float, voice_seed: int, sample_rate: int = 16000, noise_seed: int = 0
) -> np.ndarray:
    """Speak `text` with the synthetic speaker `voice_seed` aged `age_years`.

    Return float32 mono samples at `sample_rate`.
    """
    return render(text, voice_for(age_years, voice_seed), sample_rate, noise_seed)


def demo_age(age_group: str, voice_seed: int) -> float:
    """Return the age in years `synthesize_speech` uses for a group and seed (GROUP_DEMO_AGES)."""
    low, high = GROUP_DEMO_AGES[group_from_label(age_group)]
    rng = np.random.default_rng([int(voice_seed) & 0xFFFFFFFF, 977])
    return float(rng.uniform(low, high))


def synthesize_speech(
    text: str, age_group: str, voice_seed: int, sample_rate: int = 16000
) -> np.ndarray:
    """Speak Korean `text` in a synthetic voice of `age_group` ('child' | 'adult' | 'senior').

    The same (age_group, voice_seed) always gives the same speaker (age, sex, pitch, timbre, rate,
    voice quality), so several turns of one seed sound like one person. Returns float32 mono
    samples in [-1, 1] at `sample_rate`, without leading or trailing silence. Needs espeak-ng.
    """
    return synthesize_for_age(text, demo_age(age_group, voice_seed), voice_seed, sample_rate)


def voice_description(voice: Voice) -> dict:
    """Return the voice's parameters as a plain dict (for manifests and logs)."""
    return asdict(voice)
