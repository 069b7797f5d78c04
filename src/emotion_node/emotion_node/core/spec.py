"""The classifier's contract, without importing torch: class order and input size.

Kept apart from :mod:`emotion_node.core.model` so that the node's run-time path (preprocessing, the
pipeline, the LiteRT classifier) never imports PyTorch.
"""

from typing import Tuple

#: Class order of the weights (index = FaceEmotion constant).
LABELS: Tuple[str, ...] = ('angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral')
NUM_CLASSES = len(LABELS)
#: Side of the square grey face crop the network takes.
INPUT_SIZE = 64
