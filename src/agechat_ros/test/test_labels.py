"""agechat_ros.labels agrees with the constants of the generated agechat_msgs messages."""

from agechat_msgs.msg import AgeEstimate, DialogueReply, FaceEmotion

from agechat_ros import labels


def test_age_groups_match_the_age_estimate_and_reply_constants():
    by_index = {
        AgeEstimate.GROUP_CHILD: AgeEstimate.LABEL_CHILD,
        AgeEstimate.GROUP_ADULT: AgeEstimate.LABEL_ADULT,
        AgeEstimate.GROUP_SENIOR: AgeEstimate.LABEL_SENIOR,
    }
    assert labels.AGE_GROUPS == tuple(by_index[i] for i in range(3))
    assert labels.AGE_GROUPS == (
        DialogueReply.AGE_CHILD,
        DialogueReply.AGE_ADULT,
        DialogueReply.AGE_SENIOR,
    )
    assert set(labels.AGE_GROUP_YEARS) == set(labels.AGE_GROUPS)
    assert labels.DEFAULT_AGE_GROUP in labels.AGE_GROUPS


def test_emotions_match_the_face_emotion_constants_in_index_order():
    names = ('ANGRY', 'DISGUST', 'FEAR', 'HAPPY', 'SAD', 'SURPRISE', 'NEUTRAL')
    assert [getattr(FaceEmotion, n) for n in names] == list(range(7))
    assert labels.EMOTIONS == tuple(getattr(FaceEmotion, f'LABEL_{n}') for n in names)
    assert labels.DEFAULT_EMOTION in labels.EMOTIONS


def test_every_age_group_has_its_own_register():
    assert set(labels.REGISTER_FOR_AGE) == set(labels.AGE_GROUPS)
    assert sorted(labels.REGISTER_FOR_AGE.values()) == sorted(labels.REGISTERS)
