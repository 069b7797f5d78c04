"""Real age-labelled speech: the manifest of ``../shared/data/speech/age`` and its fixed split.

No torch here (age_node's run time imports nothing of this, but tests and the CLI do).

Manifest columns (UTF-8 CSV with a header row; ``../shared/data/README.md``)::

    path, speaker_id, age_years, age_band, age_group, gender, language, transcript, source, license

``path`` is relative to the manifest (any format ffmpeg reads: MP3, FLAC, WAV); ``age_years`` is
exact when known, else ``age_band`` (``20-29``, ``13-19``, ``60-69``, ...) gives the range;
``age_group`` is child / adult / senior (``adult (50+)``-like labels are read by their first
word). The older manifest format of :mod:`age_node.core.data` (``path, age, speaker_id``) is read
too.

**The split** (:func:`assign_splits`) is fixed in code before any training: speakers are grouped
into strata by (source, age group, sex); inside a stratum they are ordered by the SHA-1 of their
id and the first :data:`TEST_FRACTION` go to ``test``, the next :data:`VAL_FRACTION` to ``val``,
the rest to ``train``. So a speaker is in one split only, every source x group x sex cell is
represented in each split in the same proportions, and adding speakers to one stratum never moves
the speakers of another. Only sources in :data:`TRAINING_SOURCES` (licences that allow shipping
weights) can be ``train`` or ``val``; every other source (e.g. the CC BY-NC-SA Korean set) is
``test`` only.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from age_node.core import ages

#: Sources whose licence allows shipping weights trained on them (CC0; speechocean762's terms);
#: a manifest's source is matched by its first word.
TRAINING_SOURCES = ('commonvoice-6.1', 'commonvoice-en', 'speechocean762', 'commonvoice-v1-dev')
#: speaker_id of rows without one: each such clip is its own speaker, and always `train` (the
#: same person may recur, so such clips can never be held out).
UNKNOWN_SPEAKER = 'unknown'


def trainable_source(source: str) -> bool:
    """Return True when weights trained on this source may be shipped (its first word)."""
    return (source.split() or [''])[0] in TRAINING_SOURCES


TEST_FRACTION = 0.20
VAL_FRACTION = 0.15
SPLITS = ('train', 'val', 'test')
SAMPLE_RATE = 16000


@dataclass
class AgeClip:
    """One manifest row."""

    path: Path
    speaker_id: str
    group: int  # ages.GROUP_*
    age_low: float  # years, inclusive
    age_high: float  # years, inclusive (== age_low when exact)
    gender: str  # female / male / other / ''
    language: str
    source: str
    split: str = ''

    @property
    def exact_age(self) -> Optional[float]:
        """The age in years when the manifest gives it exactly, else None."""
        return self.age_low if self.age_low == self.age_high else None

    @property
    def age_years(self) -> float:
        """Best point value of the age: the exact age or the middle of the band."""
        return 0.5 * (self.age_low + self.age_high)


def normalise_gender(value: str) -> str:
    """'female' / 'male' / 'other' / '' from the manifests' spellings (f, m, female, ...)."""
    value = (value or '').strip().lower()
    if value in ('f', 'female', 'woman', 'w'):
        return 'female'
    if value in ('m', 'male', 'man'):
        return 'male'
    return 'other' if value else ''


def _band(row: dict) -> tuple:
    """Return (low, high) years from age_years or age_band (None, None when neither parses)."""
    exact = (row.get('age_years') or row.get('age') or '').strip()
    if exact:
        return float(exact), float(exact)
    band = (row.get('age_band') or '').strip()
    numbers = [float(n) for n in re.findall(r'\d+(?:\.\d+)?', band)]
    if len(numbers) >= 2:
        return numbers[0], numbers[1]
    if len(numbers) == 1 and '+' in band:
        return numbers[0], float(ages.MAX_AGE)
    if len(numbers) == 1:
        return numbers[0], numbers[0]
    return None, None


def read_age_manifest(path) -> List[AgeClip]:
    """Read an age manifest; ValueError names the first bad row. Splits are not assigned."""
    path = Path(path)
    clips = []
    with open(path, newline='', encoding='utf-8') as handle:
        reader = csv.DictReader(handle)
        fields = set(reader.fieldnames or [])
        if not {'path', 'speaker_id'} <= fields or not fields & {'age_group', 'age', 'age_years'}:
            raise ValueError(
                f'{path}: expected columns path, speaker_id and age_group (or age / age_years)'
            )
        for line, row in enumerate(reader, start=2):
            low, high = _band(row)
            label = (row.get('age_group') or '').strip().lower().split('(')[0].split()
            try:
                if label:
                    group = ages.group_from_label(label[0])
                elif low is not None:
                    group = ages.age_to_group(0.5 * (low + high))
                else:
                    raise ValueError('no age_group and no age')
            except ValueError as error:
                raise ValueError(f'{path}:{line}: {error}') from None
            if low is None:  # a group without years: the whole group's range
                low, high = {
                    ages.GROUP_CHILD: (ages.MIN_AGE, ages.ADULT_FROM_YEARS - 1),
                    ages.GROUP_ADULT: (ages.ADULT_FROM_YEARS, ages.SENIOR_FROM_YEARS - 1),
                    ages.GROUP_SENIOR: (ages.SENIOR_FROM_YEARS, ages.MAX_AGE),
                }[group]
            speaker = (row.get('speaker_id') or '').strip()
            if not speaker:
                raise ValueError(f'{path}:{line}: empty speaker_id')
            split = (row.get('split') or '').strip()
            if speaker.lower() == UNKNOWN_SPEAKER:
                speaker, split = f"{UNKNOWN_SPEAKER}:{path.name}:{row['path']}", 'train'
            audio = Path(row['path'])
            clips.append(
                AgeClip(
                    path=audio if audio.is_absolute() else path.parent / audio,
                    speaker_id=speaker,
                    group=group,
                    age_low=low,
                    age_high=high,
                    gender=normalise_gender(row.get('gender', '')),
                    language=(row.get('language') or '').strip(),
                    source=(row.get('source') or 'unknown').strip(),
                    split=split,
                )
            )
    if not clips:
        raise ValueError(f'{path}: no rows')
    return clips


def _speaker_hash(speaker_id: str) -> bytes:
    return hashlib.sha1(speaker_id.encode('utf-8')).digest()


def assign_splits(clips: Sequence[AgeClip]) -> List[AgeClip]:
    """Set each clip's split (see module doc); a split column in the manifest is kept as is."""
    strata: Dict[tuple, set] = {}
    for clip in clips:
        if trainable_source(clip.source) and not clip.split:
            strata.setdefault((clip.source, clip.group, clip.gender), set()).add(clip.speaker_id)
    split_of: Dict[str, str] = {}
    for speakers in strata.values():
        ordered = sorted(speakers, key=_speaker_hash)
        for rank, speaker in enumerate(ordered):
            position = (rank + 0.5) / len(ordered)
            if position < TEST_FRACTION:
                split_of[speaker] = 'test'
            elif position < TEST_FRACTION + VAL_FRACTION:
                split_of[speaker] = 'val'
            else:
                split_of.setdefault(speaker, 'train')
    for clip in clips:
        if clip.split:
            if clip.split not in SPLITS:
                raise ValueError(f'split {clip.split!r} is not one of {SPLITS}')
            if clip.split in ('train', 'val') and not trainable_source(clip.source):
                raise ValueError(f'{clip.path}: source {clip.source!r} may not be trained on')
        elif trainable_source(clip.source):
            clip.split = split_of[clip.speaker_id]
        else:
            clip.split = 'test'  # never trained on (licence): evaluation only
    seen: Dict[str, str] = {}
    for clip in clips:
        if seen.setdefault(clip.speaker_id, clip.split) != clip.split:
            raise ValueError(f'speaker {clip.speaker_id} is in two splits')
    return list(clips)


def load_split(path, split: str = 'all') -> List[AgeClip]:
    """Read a manifest, assign the fixed splits and keep `split` ('all' keeps every clip)."""
    clips = assign_splits(read_age_manifest(path))
    return [c for c in clips if split == 'all' or c.split == split]


def bin_targets(clip: AgeClip, sigma_years: float = 3.0) -> np.ndarray:
    """Soft target over the 17 age bins.

    Exact ages: a Gaussian around the age (plus the age's own bin); bands: spread over the years
    of the band (clamped into 5-89), so a '13-19' speaker puts 2/7 on 10-14 and 5/7 on 15-19.
    """
    centers = ages.BIN_CENTER_YEARS.astype(np.float64)
    if clip.exact_age is not None:
        weights = np.exp(-0.5 * ((centers - clip.exact_age) / sigma_years) ** 2)
        weights[ages.age_to_bin(clip.exact_age)] += 1.0
        weights[ages.BIN_GROUP != ages.age_to_group(clip.exact_age)] = 0.0
    else:
        weights = np.zeros(ages.NUM_BINS)
        low = int(np.clip(clip.age_low, ages.MIN_AGE, ages.MAX_AGE))
        high = int(np.clip(clip.age_high, low, ages.MAX_AGE))
        for year in range(low, high + 1):
            weights[ages.age_to_bin(year)] += 1.0
        weights[ages.BIN_GROUP != clip.group] = 0.0
        if weights.sum() == 0:
            weights[ages.BIN_GROUP == clip.group] = 1.0
    return (weights / weights.sum()).astype(np.float32)


def load_audio(path) -> np.ndarray:
    """Decode any audio file ffmpeg reads to 16 kHz float32 mono (faster-whisper's decoder)."""
    from faster_whisper.audio import decode_audio

    return np.asarray(decode_audio(str(path), sampling_rate=SAMPLE_RATE), dtype=np.float32)
