"""FER2013 classes in ROS4HRI's vocabulary (hri_msgs/Expression), without ROS.

- class -> `Expression.expression` string: the seven FER classes are hri_msgs' first seven
  constants (fear -> "scared", surprise -> "surprised", disgust -> "disgusted").
- valence / arousal in [-1, 1]: the probability-weighted mean of one point per class on Russell's
  circumplex (our rounded placement of the class names, not a measured model): happy (0.8, 0.5),
  surprise (0.2, 0.8), angry (-0.6, 0.7), fear (-0.6, 0.6), disgust (-0.7, 0.3), sad (-0.7, -0.4),
  neutral (0, 0).
- confidence: the probability of the chosen class.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from emotion_node.core.spec import LABELS

#: FER2013 label -> hri_msgs/Expression constant value
EXPRESSIONS: Dict[str, str] = {
    'angry': 'angry',
    'disgust': 'disgusted',
    'fear': 'scared',
    'happy': 'happy',
    'sad': 'sad',
    'surprise': 'surprised',
    'neutral': 'neutral',
}
CIRCUMPLEX: Dict[str, Tuple[float, float]] = {
    'angry': (-0.6, 0.7),
    'disgust': (-0.7, 0.3),
    'fear': (-0.6, 0.6),
    'happy': (0.8, 0.5),
    'sad': (-0.7, -0.4),
    'surprise': (0.2, 0.8),
    'neutral': (0.0, 0.0),
}
_POINTS = np.array([CIRCUMPLEX[label] for label in LABELS])


def expression(probabilities) -> Tuple[str, float, float, float]:
    """Return (expression, valence, arousal, confidence) for 7 probabilities in LABELS order."""
    p = np.asarray(probabilities, dtype=np.float64)
    total = p.sum()
    p = p / total if total > 0 else np.eye(len(LABELS))[LABELS.index('neutral')]
    best = int(np.argmax(p))
    valence, arousal = (p @ _POINTS).tolist()
    return EXPRESSIONS[LABELS[best]], float(valence), float(arousal), float(p[best])
