"""The label sets of the graph: age groups, facial emotions and speech registers.

The one source of truth for labels. Pure Python (no rclpy, no messages), so pure cores import it
too. Index order is the order of the message constants (``AgeEstimate.GROUP_*``,
``FaceEmotion.ANGRY..NEUTRAL``); ``src/agechat_ros/test/test_labels.py`` checks both against the
generated ``agechat_msgs`` constants.
"""

from __future__ import annotations

#: Age groups, indexed by ``AgeEstimate.GROUP_*`` (child 0, adult 1, senior 2).
AGE_GROUPS = ('child', 'adult', 'senior')
CHILD, ADULT, SENIOR = AGE_GROUPS
#: Inclusive age range in years of each group.
AGE_GROUP_YEARS = {CHILD: (5, 19), ADULT: (20, 59), SENIOR: (60, 89)}
#: The group assumed when none is known: adult gets 해요체, the safe default in Korean.
DEFAULT_AGE_GROUP = ADULT


def addressed_group(group: str, unsure: bool) -> str:
    """Return the group a reply addresses (an unsure estimate: the default adult, 해요체).

    ``AgeEstimate.unsure`` marks a guess; a guessed 반말 or 하십시오체 is not safe, 해요체 is.
    """
    return DEFAULT_AGE_GROUP if unsure else group


#: The seven FER2013 classes, indexed by ``FaceEmotion.ANGRY..NEUTRAL`` (the classifier's order).
EMOTIONS = ('angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral')
DEFAULT_EMOTION = 'neutral'

#: Korean speech levels the dialogue answers in: 반말, 해요체, 하십시오체.
CASUAL, POLITE, FORMAL = 'casual', 'polite', 'formal'
REGISTERS = (CASUAL, POLITE, FORMAL)
#: The register each age group is answered in.
REGISTER_FOR_AGE = {CHILD: CASUAL, ADULT: POLITE, SENIOR: FORMAL}
