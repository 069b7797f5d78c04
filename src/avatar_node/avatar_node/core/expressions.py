"""Facial expressions of the two avatars, as VRM 1.0 expression weights.

- FER2013's 7 classes -> VRM presets (happy, angry, sad, relaxed, surprised, neutral): the
  :data:`FER_TO_VRM` table; a probability vector maps to the probability-weighted blend.
- The user avatar follows the user's emotion through an exponential smoother (time constant
  `tau_s`), and relaxes to neutral when no face is seen.
- The agent's expression is chosen for the reply it speaks (:func:`agent_emotion_for_reply`):
  words of the reply first, else an empathic answer to the user's emotion.
"""

from __future__ import annotations

import math
import re
from typing import Dict, Optional, Sequence

import numpy as np

from agechat_ros.labels import EMOTIONS as FER_LABELS  # FaceEmotion class order (ANGRY .. NEUTRAL)

#: VRM 1.0 emotion expression presets, in the order AvatarState lists them.
VRM_EXPRESSIONS = ('happy', 'angry', 'sad', 'relaxed', 'surprised', 'neutral')

#: FER class -> VRM weights. VRM has no disgust or fear preset: disgust is shown as a mild
#: frown (angry + sad), fear as wide eyes with a worried brow (surprised + sad).
FER_TO_VRM: Dict[str, Dict[str, float]] = {
    'angry': {'angry': 1.0},
    'disgust': {'angry': 0.6, 'sad': 0.4},
    'fear': {'surprised': 0.6, 'sad': 0.5},
    'happy': {'happy': 1.0},
    'sad': {'sad': 1.0},
    'surprise': {'surprised': 1.0},
    'neutral': {'neutral': 1.0},
}

#: How the agent looks for each expression label it may take (softer than the user's mirror:
#: a friendly agent; 'neutral' is a calm, slight smile).
AGENT_TO_VRM: Dict[str, Dict[str, float]] = {
    'happy': {'happy': 0.9, 'relaxed': 0.1},
    'sad': {'sad': 0.55, 'relaxed': 0.45},
    'surprise': {'surprised': 0.8, 'happy': 0.2},
    'neutral': {'relaxed': 0.6, 'neutral': 0.4},
    'fear': {'surprised': 0.4, 'sad': 0.4, 'relaxed': 0.2},
    'angry': {'relaxed': 0.7, 'neutral': 0.3},  # the agent never shows anger: it stays calm
    'disgust': {'sad': 0.3, 'relaxed': 0.4, 'neutral': 0.3},
}

#: The agent's empathic answer to the user's emotion when the reply's words give no cue.
EMPATHY = {
    'happy': 'happy',
    'surprise': 'surprise',
    'sad': 'sad',
    'fear': 'sad',
    'angry': 'neutral',
    'disgust': 'neutral',
    'neutral': 'neutral',
}

# Word cues in the reply (Korean and a few English words), checked in this order.
_CUES = (
    (
        'sad',
        re.compile(
            r'미안|죄송|안타깝|속상|슬프|슬펐|힘드|힘들|괜찮으세요|걱정|아프|sorry|sad', re.I
        ),
    ),
    ('surprise', re.compile(r'우와|와아|깜짝|놀라|정말요\?|진짜요\?|대박|wow', re.I)),
    (
        'happy',
        re.compile(
            r'축하|좋아|좋네|좋은|기뻐|기쁘|반가|재미|멋지|멋져|최고|행복|신나|고마|감사|ㅎㅎ|하하|great|happy',
            re.I,
        ),
    ),
)


def vrm_from_probabilities(probabilities: Sequence[float]) -> Dict[str, float]:
    """Return the VRM weights for 7 FER class probabilities.

    They are the probability-weighted blend of the FER_TO_VRM rows.
    """
    weights = {name: 0.0 for name in VRM_EXPRESSIONS}
    for label, p in zip(FER_LABELS, probabilities, strict=True):
        for name, w in FER_TO_VRM[label].items():
            weights[name] += float(p) * w
    return {name: float(min(1.0, max(0.0, w))) for name, w in weights.items()}


def vrm_for_agent(label: str) -> Dict[str, float]:
    """VRM weights of the agent's expression `label` (a FER label)."""
    weights = {name: 0.0 for name in VRM_EXPRESSIONS}
    weights.update(AGENT_TO_VRM.get(label, AGENT_TO_VRM['neutral']))
    return weights


def agent_emotion_for_reply(reply_text: str, user_emotion: str) -> str:
    """Return the agent's expression (a FER label) for a reply.

    The reply's word cues decide; without any, the empathic answer to the user's emotion.
    """
    for label, pattern in _CUES:
        if pattern.search(reply_text):
            return label
    return EMPATHY.get(user_emotion, 'neutral')


def one_hot(label: str) -> np.ndarray:
    """Return a 7-class probability vector with all mass on `label`."""
    vector = np.zeros(len(FER_LABELS), np.float32)
    vector[FER_LABELS.index(label)] = 1.0
    return vector


class EmotionSmoother:
    """Exponential smoothing of 7 class probabilities over time (time constant tau_s).

    Without a face for `face_timeout_s` the target becomes neutral, so the avatar relaxes.
    """

    def __init__(self, tau_s: float = 0.35, face_timeout_s: float = 2.0):
        self.tau_s = max(1e-3, tau_s)
        self.face_timeout_s = face_timeout_s
        self.state = one_hot('neutral')
        self.target = one_hot('neutral')
        self.face_found = False
        self._last_update: Optional[float] = None
        self._last_face: Optional[float] = None

    def observe(self, probabilities: Sequence[float], face_found: bool, now: float) -> None:
        """Set a new target from a FaceEmotion (probabilities must sum to 1)."""
        if face_found:
            self.target = np.asarray(probabilities, np.float32)
            self._last_face = now
        self.face_found = face_found
        if not face_found and (
            self._last_face is None or now - self._last_face >= self.face_timeout_s
        ):
            self.target = one_hot('neutral')

    def step(self, now: float) -> np.ndarray:
        """Advance to `now` and return the smoothed probabilities."""
        if self._last_face is not None and now - self._last_face >= self.face_timeout_s:
            self.target = one_hot('neutral')
            self.face_found = False
        if self._last_update is None:
            self._last_update = now
        dt = max(0.0, now - self._last_update)
        self._last_update = now
        alpha = 1.0 - math.exp(-dt / self.tau_s)
        self.state = self.state + alpha * (self.target - self.state)
        return self.state

    @property
    def label(self) -> str:
        """The smoothed state's most likely class."""
        return FER_LABELS[int(np.argmax(self.state))]


class WeightSmoother:
    """Exponential smoothing of a VRM weight dict (the agent's expression changes gently too)."""

    def __init__(self, tau_s: float = 0.25, initial: Optional[Dict[str, float]] = None):
        self.tau_s = max(1e-3, tau_s)
        self.state = dict(initial or vrm_for_agent('neutral'))
        self._last: Optional[float] = None

    def step(self, target: Dict[str, float], now: float) -> Dict[str, float]:
        """Move towards `target` by the time elapsed since the previous step."""
        dt = 0.0 if self._last is None else max(0.0, now - self._last)
        self._last = now
        alpha = 1.0 - math.exp(-dt / self.tau_s)
        self.state = {
            k: self.state.get(k, 0.0) + alpha * (target.get(k, 0.0) - self.state.get(k, 0.0))
            for k in VRM_EXPRESSIONS
        }
        return self.state
