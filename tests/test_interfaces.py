"""Every agechat interface crosses a process boundary over real DDS with its fields intact."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from rosidl_parser.definition import (
    AbstractNestedType,
    AbstractString,
    AbstractWString,
    Array,
    BasicType,
    BoundedSequence,
    NamespacedType,
)

import agechat_msgs.msg
import agechat_msgs.srv
from agechat_msgs.srv import Chat
from audio_common_msgs.msg import AudioData, AudioDataStamped, AudioInfo
from hri_msgs.msg import (
    Expression,
    IdsList,
    LiveSpeech,
    NormalizedRegionOfInterest2D,
    SoftBiometrics,
)
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

RELAY = Path(__file__).resolve().parent / 'tools' / 'relay.py'

AGECHAT_MESSAGES = [
    getattr(agechat_msgs.msg, name)
    for name in dir(agechat_msgs.msg)
    if not name.startswith('_') and hasattr(getattr(agechat_msgs.msg, name), 'SLOT_TYPES')
]
AUDIO_MESSAGES = [AudioData, AudioDataStamped, AudioInfo]
# the REP-155 (ROS4HRI) messages agechat publishes; tests/test_hri_msgs.py checks the whole package
HRI_MESSAGES = [IdsList, LiveSpeech, SoftBiometrics, Expression, NormalizedRegionOfInterest2D]

_INT_RANGES = {
    'int8': (-128, 127),
    'uint8': (0, 255),
    'int16': (-(2**15), 2**15 - 1),
    'uint16': (0, 2**16 - 1),
    'int32': (-(2**31), 2**31 - 1),
    'uint32': (0, 2**32 - 1),
    'int64': (-(2**63), 2**63 - 1),
    'uint64': (0, 2**64 - 1),
    'byte': (0, 255),
    'octet': (0, 255),
}
_TEXTS = ['안녕하세요, 할머니!', 'child', '오늘 날씨가 좋네 ☀', '', 'x' * 300]


def _value(slot, rng: random.Random):
    """Return a random value for one field type, exactly representable on the wire."""
    if isinstance(slot, BasicType):
        kind = slot.typename
        if kind in ('float', 'double'):
            return rng.randint(-4000, 4000) / 8.0  # representable in float32
        if kind == 'boolean':
            return rng.random() < 0.5
        if kind == 'char':
            return rng.randint(0, 127)
        low, high = _INT_RANGES[kind]
        return rng.randint(low, high)
    if isinstance(slot, (AbstractString, AbstractWString)):
        return rng.choice(_TEXTS)
    if isinstance(slot, NamespacedType):
        return fill(_import(slot), rng)
    raise TypeError(f'no value generator for {slot}')


def _import(slot: NamespacedType):
    module = __import__('.'.join(slot.namespaces), fromlist=[slot.name])
    return getattr(module, slot.name)


def fill(msg_type, rng: random.Random):
    """Return a msg_type message with every field (nested, arrays, sequences) set at random."""
    msg = msg_type()
    for name, slot in zip(msg.get_fields_and_field_types(), msg_type.SLOT_TYPES, strict=True):
        if isinstance(slot, AbstractNestedType):
            if isinstance(slot, Array):
                length = slot.size
            elif isinstance(slot, BoundedSequence):
                length = rng.randint(0, slot.maximum_size)
            else:
                length = rng.randint(1, 5)
            values = [_value(slot.value_type, rng) for _ in range(length)]
            if isinstance(slot.value_type, BasicType) and slot.value_type.typename in (
                'float',
                'double',
            ):
                values = np.array(
                    values, dtype=np.float32 if slot.value_type.typename == 'float' else np.float64
                )
            elif isinstance(slot.value_type, BasicType) and slot.value_type.typename in (
                'uint8',
                'octet',
                'byte',
            ):
                values = bytes(values) if slot.value_type.typename != 'uint8' else values
            setattr(msg, name, values)
        else:
            setattr(msg, name, _value(slot, rng))
    return msg


def test_agechat_msgs_has_every_interface_the_graph_needs():
    names = {m.__name__ for m in AGECHAT_MESSAGES}
    assert {
        'Utterance',
        'AgeEstimate',
        'FaceEmotion',
        'DialogueReply',
        'AvatarState',
        'SpeechState',
        'ExpressionWeight',
        'BargeIn',
    } <= names
    assert hasattr(agechat_msgs.srv, 'Chat')


def test_fill_sets_every_field_to_a_non_default_value():
    """Guards the round trip below: a filled message must differ from a default one."""
    for msg_type in AGECHAT_MESSAGES + AUDIO_MESSAGES + HRI_MESSAGES:
        assert fill(msg_type, random.Random(1)) != msg_type(), msg_type.__name__


@pytest.mark.parametrize(
    'msg_type', AGECHAT_MESSAGES + AUDIO_MESSAGES + HRI_MESSAGES, ids=lambda t: t.__name__
)
def test_message_round_trip_through_another_process(graph, msg_type):
    type_name = f'{msg_type.__module__.split(".")[0]}/msg/{msg_type.__name__}'
    graph.start_python('relay', RELAY, type_name, '/relay/in', '/relay/out')
    # transient local as in the relay: a message sent before a late match is not lost
    latched = QoSProfile(
        depth=10,
        reliability=QoSReliabilityPolicy.RELIABLE,
        durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
    )
    received = graph.collect('/relay/out', msg_type, latched)
    publisher = graph.publisher('/relay/in', msg_type, latched)
    graph.wait_for_subscribers(publisher)
    graph.wait_for_publishers('/relay/out')
    sent = [fill(msg_type, random.Random(seed)) for seed in range(3)]
    for msg in sent:
        publisher.publish(msg)
    got = received.wait_for(len(sent), timeout=15)
    assert got == sent


def test_chat_service_types_round_trip():
    """Chat request/response carry their fields (the service is tested with dialogue_node)."""
    rng = random.Random(7)
    request = fill(Chat.Request, rng)
    response = fill(Chat.Response, rng)
    assert request.text and isinstance(response.reply, agechat_msgs.msg.DialogueReply)
    assert Chat.Request.get_fields_and_field_types() == {
        'text': 'string',
        'age_group': 'string',
        'emotion': 'string',
        'conversation_id': 'string',
    }


def test_label_constants_match_documented_order():
    FaceEmotion = agechat_msgs.msg.FaceEmotion
    labels = [
        FaceEmotion.LABEL_ANGRY,
        FaceEmotion.LABEL_DISGUST,
        FaceEmotion.LABEL_FEAR,
        FaceEmotion.LABEL_HAPPY,
        FaceEmotion.LABEL_SAD,
        FaceEmotion.LABEL_SURPRISE,
        FaceEmotion.LABEL_NEUTRAL,
    ]
    assert labels == ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral']
    assert [FaceEmotion.ANGRY, FaceEmotion.NEUTRAL] == [0, 6]
    AgeEstimate = agechat_msgs.msg.AgeEstimate
    assert (AgeEstimate.GROUP_CHILD, AgeEstimate.GROUP_ADULT, AgeEstimate.GROUP_SENIOR) == (
        0,
        1,
        2,
    )
    assert (AgeEstimate.LABEL_CHILD, AgeEstimate.LABEL_ADULT, AgeEstimate.LABEL_SENIOR) == (
        'child',
        'adult',
        'senior',
    )
