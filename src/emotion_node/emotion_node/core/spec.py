"""The classifier's contract, without importing torch: class order and input size.

Kept apart from :mod:`emotion_node.core.model` so that the node's run-time path (preprocessing, the
pipeline, the LiteRT classifier) never imports PyTorch.
"""

from typing import Tuple

from agechat_ros.labels import EMOTIONS

#: Class order of the weights (index = FaceEmotion constant).
LABELS: Tuple[str, ...] = EMOTIONS
NUM_CLASSES = len(LABELS)
#: Side of the square grey face crop the network takes.
INPUT_SIZE = 64
