"""hri_msgs (ours where no real one is installed) has the ros4hri/hri_msgs 2.x interfaces exactly.

The tables below were written from the 2.x message definitions (2.0.0 + the 2.1-2.2.1 changes to
LiveSpeech and Gesture; 2.3.x changed no interface). A subscriber built against the real package
only matches ours if every field name, type and their order is the same (that is what the ROS 2
type hash covers); constants are not part of the hash but code written for the real package uses
them, so they are checked here too.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
from ament_index_python.packages import get_package_share_directory

REPO = Path(__file__).resolve().parents[1]
STAND_IN = REPO / 'compat' / 'hri_msgs'

EXPRESSIONS = (
    'neutral angry sad happy surprised disgusted scared pleading vulnerable despaired guilty '
    'disappointed embarrassed horrified skeptical annoyed furious suspicious rejected bored tired '
    'asleep confused amazed excited'
).split()

# FACS codes of FacialActionUnits, in the order of the definition.
ACTION_UNITS = dict(
    NEUTRAL_FACE=0, INNER_BROW_RAISER=1, OUTER_BROW_RAISER=2, BROW_LOWERER=4, UPPER_LID_RAISER=5,
    CHEEK_RAISER=6, LID_TIGHTENER=7, LIPS_TOWARD_EACH_OTHER=8, NOSE_WRINKLER=9,
    UPPER_LIP_RAISER=10, NASOLABIAL_DEEPENER=11, LIP_CORNER_PULLER=12, SHARP_LIP_PULLER=13,
    DIMPLER=14, LIP_CORNER_DEPRESSOR=15, LOWER_LIP_DEPRESSOR=16, CHIN_RAISER=17, LIP_PUCKER=18,
    TONGUE_SHOW=19, LIP_STRETCHER=20, NECK_TIGHTENER=21, LIP_FUNNELER=22, LIP_TIGHTENER=23,
    LIP_PRESSOR=24, LIPS_PART=25, JAW_DROP=26, MOUTH_STRETCH=27, LIP_SUCK=28,
    HEAD_TURN_LEFT=51, HEAD_TURN_RIGHT=52, HEAD_UP=53, HEAD_DOWN=54, HEAD_TILT_LEFT=55,
    HEAD_TILT_RIGHT=56, HEAD_FORWARD=57, HEAD_BACK=58,
    EYES_TURN_LEFT=61, EYES_TURN_RIGHT=62, EYES_UP=63, EYES_DOWN=64, WALLEYE=65, CROSS_EYE=66,
    EYES_POSITIONED_TO_LOOK_AT_OTHER_PERSON=69,
    BROWS_AND_FOREHEAD_NOT_VISIBLE=70, EYES_NOT_VISIBLE=71, LOWER_FACE_NOT_VISIBLE=72,
    ENTIRE_FACE_NOT_VISIBLE=73, UNSOCIABLE=74,
    JAW_THRUST=29, JAW_SIDEWAYS=30, JAW_CLENCHER=31, LIP_BITE=32, CHEEK_BLOW=33, CHEEK_PUFF=34,
    CHEEK_SUCK=35, TONGUE_BULGE=36, LIP_WIPE=37, NOSTRIL_DILATOR=38, NOSTRIL_COMPRESSOR=39,
    SNIFF=40, LID_DROOP=41, SLIT=42, EYES_CLOSED=43, SQUINT=44, BLINK=45, WINK=46, SPEECH=50,
    SWALLOW=80, CHEWING=81, SHOULDER_SHRUG=82, HEAD_SHAKE_BACK_AND_FORTH=84,
    HEAD_NOD_UP_AND_DOWN=85, FLASH=91, PARTIAL_FLASH=92, SHIVER_TREMBLE=97, FAST_UP_DOWN_LOOK=98,
)  # fmt: skip


def _landmarks() -> dict[str, int]:
    codes = {'RIGHT_EAR': 0, 'MENTON': 8, 'LEFT_EAR': 16, 'RIGHT_PUPIL': 68, 'LEFT_PUPIL': 69}
    codes |= {f'RIGHT_PROFILE_{i}': i for i in range(1, 8)}
    codes |= {f'LEFT_PROFILE_{i}': 16 - i for i in range(1, 8)}
    codes |= {'RIGHT_EYEBROW_OUTSIDE': 17, 'RIGHT_EYEBROW_INSIDE': 21}
    codes |= {f'RIGHT_EYEBROW_{i}': 17 + i for i in range(1, 4)}
    codes |= {'LEFT_EYEBROW_OUTSIDE': 26, 'LEFT_EYEBROW_INSIDE': 22}
    codes |= {f'LEFT_EYEBROW_{i}': 26 - i for i in range(1, 4)}
    codes |= dict(RIGHT_EYE_OUTSIDE=36, RIGHT_EYE_TOP_1=37, RIGHT_EYE_TOP_2=38,
                  RIGHT_EYE_INSIDE=39, RIGHT_EYE_BOTTOM_1=41, RIGHT_EYE_BOTTOM_2=40)  # fmt: skip
    codes |= dict(LEFT_EYE_OUTSIDE=45, LEFT_EYE_TOP_1=44, LEFT_EYE_TOP_2=43,
                  LEFT_EYE_INSIDE=42, LEFT_EYE_BOTTOM_1=46, LEFT_EYE_BOTTOM_2=47)  # fmt: skip
    codes |= {'SELLION': 27, 'NOSE_1': 28, 'NOSE_2': 29, 'NOSE': 30}
    codes |= {f'NOSTRIL_{i}': 30 + i for i in range(1, 6)}
    codes |= {'MOUTH_OUTER_RIGHT': 48, 'MOUTH_OUTER_LEFT': 54}
    codes |= {f'MOUTH_OUTER_TOP_{i}': 48 + i for i in range(1, 6)}
    codes |= {f'MOUTH_OUTER_BOTTOM_{i}': 60 - i for i in range(1, 6)}
    codes |= {'MOUTH_INNER_RIGHT': 60, 'MOUTH_INNER_LEFT': 64}
    codes |= {f'MOUTH_INNER_TOP_{i}': 60 + i for i in range(1, 4)}
    codes |= {f'MOUTH_INNER_BOTTOM_{i}': 68 - i for i in range(1, 4)}
    return codes


SKELETON = (
    'NOSE NECK RIGHT_SHOULDER RIGHT_ELBOW RIGHT_WRIST LEFT_SHOULDER LEFT_ELBOW LEFT_WRIST '
    'RIGHT_HIP RIGHT_KNEE RIGHT_ANKLE LEFT_HIP LEFT_KNEE LEFT_ANKLE LEFT_EYE RIGHT_EYE LEFT_EAR '
    'RIGHT_EAR'
).split()

H = ('header', 'std_msgs/Header')
POI = 'hri_msgs/NormalizedPointOfInterest2D'

# message -> (fields in order as (name, type as the Python binding spells it), constants)
INTERFACES: dict[str, tuple[list[tuple[str, str]], dict[str, object]]] = {
    'AudioFeatures': (
        [('zcr', 'float'), ('rms', 'float'), ('pitch', 'float'), ('hnr', 'float'),
         ('mfcc', 'sequence<float>')],
        {},
    ),
    'BodyPosture': (
        [H, ('posture', 'uint8')],
        dict(STANDING=1, SITTING=2, CROUCHING=3, LAYING=4, OTHER=0),
    ),
    'EngagementLevel': (
        [H, ('level', 'uint8')],
        dict(UNKNOWN=0, DISENGAGED=1, ENGAGING=2, ENGAGED=3, DISENGAGING=4),
    ),
    'Expression': (
        [H, ('expression', 'string'), ('valence', 'float'), ('arousal', 'float'),
         ('confidence', 'float')],
        {name.upper(): name for name in EXPRESSIONS},
    ),
    'FacialActionUnits': (
        [H, ('intensity', 'float[99]'), ('confidence', 'float[99]')],
        ACTION_UNITS,
    ),
    'FacialLandmarks': (
        [H, ('landmarks', f'{POI}[70]'), ('height', 'uint32'), ('width', 'uint32')],
        _landmarks(),
    ),
    'Gaze': ([H, ('sender', 'string'), ('receiver', 'string')], {}),
    'Gesture': (
        [H, ('gesture', 'uint8'), ('handedness', 'uint8')],
        dict(HANDS_ON_FACE=1, ARMS_CROSSED=2, LEFT_HAND_RAISED=3, RIGHT_HAND_RAISED=4,
             BOTH_HANDS_RAISED=5, WAVING=6, CLOSED_FIST=7, OPEN_PALM=8, POINTING_UP=9,
             THUMB_DOWN=10, THUMB_UP=11, VICTORY=12, LOVE=13, OTHER=0,
             RIGHT=1, LEFT=2, INDEPENDENT=0),
    ),
    'Group': ([H, ('group_id', 'string'), ('members', 'sequence<string>')], {}),
    'IdsList': ([H, ('ids', 'sequence<string>')], {}),
    'IdsMatch': (
        [('id1', 'string'), ('id1_type', 'int8'), ('id2', 'string'), ('id2_type', 'int8'),
         ('confidence', 'float')],
        dict(UNSET=0, PERSON=1, FACE=2, BODY=3, VOICE=4),
    ),
    'LiveSpeech': (
        [H, ('incremental', 'string'), ('final', 'string'), ('confidence', 'double'),
         ('locale', 'string')],
        {},
    ),
    'NormalizedPointOfInterest2D': ([('x', 'float'), ('y', 'float'), ('c', 'float')], {}),
    'NormalizedPointOfInterest2DStamped': (
        [H, ('x', 'float'), ('y', 'float'), ('c', 'float')],
        {},
    ),
    'NormalizedRegionOfInterest2D': (
        [H, ('xmin', 'float'), ('ymin', 'float'), ('xmax', 'float'), ('ymax', 'float'),
         ('c', 'float')],
        {},
    ),
    'Skeleton2D': ([H, ('skeleton', f'{POI}[18]')], {n: i for i, n in enumerate(SKELETON)}),
    'SoftBiometrics': (
        [H, ('age', 'uint8'), ('age_confidence', 'float'), ('gender', 'uint8'),
         ('gender_confidence', 'float')],
        dict(UNDEFINED=0, FEMALE=1, MALE=2, OTHER=3),
    ),
}  # fmt: skip

# RIHS01 type hashes of the 2.x definitions (computed with rosidl_generator_type_description from
# the upstream .msg files, 2.0.0 tag + the LiveSpeech/Gesture definitions of 2.2.1).
TYPE_HASHES = {
    'AudioFeatures': '46156ee863fb71fa7fe15f290d168ce7ffee7c1fc2494f709edd3a62fe98573e',
    'BodyPosture': 'fa4258f18cc616a912e5aa1d48dbfead0fa5235a8546b4c69b70d64db7cef570',
    'EngagementLevel': '275391f46d2e6cc0d21085f8e02dce6a8150baa57539ec99bd9f4e0321443788',
    'Expression': '411b88e0604397d44775d8ec6a4bc69398fb0dfbfe864c33a40fa99ee85f1b00',
    'FacialActionUnits': '43f431104624b6ff7f84350f1faa3747efc8a9330dee942b717a08830a267ed3',
    'FacialLandmarks': 'f1d6b0ba159f4d6be1632e5dfc9cb79ce5e35da73888da2a4789bd9b35112a63',
    'Gaze': 'e8c46fafadbeca4367ca1987944b54863fcfc0175319002a76df5298570f4ab3',
    'Gesture': '06e95e9d3a204e075adfa05b9d737e48c51e1a2004ef762886ff82438bc9958d',
    'Group': '8a5322be10347f118545806061283201525b8f572bfe6131b4b45b70c56f2935',
    'IdsList': '7e0812d1ac945c98fd3e393568d581ad0ab567f37b24eff633eab778c1bfe62d',
    'IdsMatch': '1c649d4a87ca2d4fe5f606395e83a863640e411c9192dfda6d399a68019966f0',
    'LiveSpeech': '2cfdf359eed836b1d32ac2d62e1476f2048212e7ed79a17c0a594b04c33f8783',
    'NormalizedPointOfInterest2D': (
        'cc1d2f720c82afeb850ff1dbf66f41ecb7caf19f842987f1247e66160cf03953'
    ),
    'NormalizedPointOfInterest2DStamped': (
        'df6a2ae5ef6385c1f30077bcd89ae87106fb4f3edf4dedf4fc06fb9f1e5d037e'
    ),
    'NormalizedRegionOfInterest2D': (
        '2e50c93f1ca166ee77af9a5424dc951ae4e452b740162a7f83c082d917dcaff5'
    ),
    'Skeleton2D': '1cb61f012db6ca43c48fa0097ccab9a00108ea39323c13f01bb983323c1e3420',
    'SoftBiometrics': 'b71b1b988b22c4a7f4f04b5395ae89a3168dff71ddd44bbf29ea84d4645fd69e',
}

MSG = importlib.import_module('hri_msgs.msg')


def _constants(msg_type) -> dict[str, object]:
    meta = type(msg_type)
    return dict(getattr(meta, f'_{meta.__name__}__constants'))


def test_the_package_has_every_2x_message_and_no_other():
    names = {
        n for n in dir(MSG) if not n.startswith('_') and hasattr(getattr(MSG, n), 'SLOT_TYPES')
    }
    assert names == set(INTERFACES)
    assert len(ACTION_UNITS) == 76 and len(_landmarks()) == 70 and len(EXPRESSIONS) == 25


@pytest.mark.parametrize('name', sorted(INTERFACES))
def test_fields_types_order_and_constants(name):
    fields, constants = INTERFACES[name]
    msg_type = getattr(MSG, name)
    assert list(msg_type.get_fields_and_field_types().items()) == fields
    assert _constants(msg_type) == constants
    for constant, value in constants.items():
        assert getattr(msg_type, constant) == value


@pytest.mark.parametrize('name', sorted(INTERFACES))
def test_type_hash_is_that_of_the_real_package(name):
    share = Path(get_package_share_directory('hri_msgs'))
    description = json.loads((share / 'msg' / f'{name}.json').read_text(encoding='utf-8'))
    top = description['type_hashes'][0]
    assert top['type_name'] == f'hri_msgs/msg/{name}'
    assert top['hash_string'] == f'RIHS01_{TYPE_HASHES[name]}'


def test_stand_in_sources_list_every_message_once():
    """The stand-in's CMakeLists builds exactly the .msg files it ships (nothing half-added)."""
    shipped = sorted(p.stem for p in (STAND_IN / 'msg').glob('*.msg'))
    cmake = (STAND_IN / 'CMakeLists.txt').read_text(encoding='utf-8')
    listed = sorted(re.findall(r'"msg/(\w+)\.msg"', cmake))
    assert shipped == listed == sorted(INTERFACES)
