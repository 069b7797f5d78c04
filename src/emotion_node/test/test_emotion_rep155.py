"""REP-155 (ROS4HRI) face topics of the real node over DDS: ids, hysteresis, fields, deactivate."""

from __future__ import annotations

import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image

from agechat_msgs.msg import FaceEmotion
from agechat_ros import qos
from agechat_ros.image import bgr_to_image
from agechat_ros.testing import publish_until_answered

from emotion_node.core import synthetic

hri_msgs = pytest.importorskip('hri_msgs.msg', reason='hri_msgs not built (make setup)')


def two_people(step: int, both: bool = True) -> np.ndarray:
    """Return a 320x240 frame (fits Fast DDS' default shared memory) with two real faces."""
    faces = {f.source: f for f in synthetic.portraits()}
    frame = synthetic.background('brick', 320, 240).copy()
    synthetic.place(frame, faces['astronaut'], 30 + step % 5, 60, 64)
    if both:
        synthetic.place(frame, faces['grace_hopper'], 200 - step % 5, 70, 70)
    return frame


class Sender:
    """Publishes frames one at a time and waits for the node's answer to each (by stamp)."""

    def __init__(self, graph):
        self.emotions = graph.collect('/agechat/face_emotion', FaceEmotion)
        self.tracked = graph.collect('/humans/faces/tracked', hri_msgs.IdsList)
        self.publisher = graph.publisher('/image', Image, qos.SENSOR_DATA)
        graph.wait_for_subscribers(self.publisher)
        graph.wait_for_publishers('/humans/faces/tracked')
        self.sec = 100

    def send(self, frame: np.ndarray, timeout: float = 20.0):
        """Return the IdsList the node published for this frame."""
        self.sec += 1
        msg = bgr_to_image(frame, frame_id='cam', encoding='bgr8')
        msg.header.stamp = Time(sec=self.sec, nanosec=7)
        return publish_until_answered(self.publisher, msg, self.tracked, timeout)


def test_two_people_get_stable_ids_and_a_leaving_face_is_dropped(graph):
    graph.start_node('emotion_node', 'emotion_node', parameters={'smoothing_s': 0.0})
    sender = Sender(graph)
    lists = [list(sender.send(two_people(i)).ids) for i in range(8)]
    # hysteresis: nobody is published before the 4th detection in a row
    assert lists[0] == [] and lists[2] == []
    assert len(lists[3]) == 2, lists
    ids = set(lists[3])
    assert all(set(ids_) == ids for ids_ in lists[3:]), lists
    assert all(len(i) == 5 and i.isalpha() for i in ids)

    # per-face topics of a confirmed face: fields and stamps
    rois = {
        i: graph.collect(f'/humans/faces/{i}/roi', hri_msgs.NormalizedRegionOfInterest2D)
        for i in ids
    }
    expressions = {
        i: graph.collect(f'/humans/faces/{i}/expression', hri_msgs.Expression) for i in ids
    }
    crops = {i: graph.collect(f'/humans/faces/{i}/cropped', Image) for i in ids}
    for i in ids:
        for kind in ('roi', 'expression', 'cropped'):
            graph.wait_for_publishers(f'/humans/faces/{i}/{kind}')
    deadline = time.monotonic() + 30
    while not all(c.snapshot() for group in (rois, expressions, crops) for c in group.values()):
        assert time.monotonic() < deadline, 'a per-face topic delivered nothing'
        assert set(sender.send(two_people(0)).ids) == ids  # frames keep coming, ids do not change
    sec = sender.sec
    for i in ids:
        roi = rois[i].snapshot()[-1]
        assert 0 <= roi.xmin < roi.xmax <= 1 and 0 <= roi.ymin < roi.ymax <= 1
        assert 0.5 <= roi.c <= 1.0 and roi.header.frame_id == 'cam'
        assert roi.header.stamp.sec <= sec and roi.header.stamp.nanosec == 7
        # about 64-70 px faces in a 320 px wide frame
        assert 0.12 < roi.xmax - roi.xmin < 0.35, roi
        expression = expressions[i].snapshot()[-1]
        assert expression.expression in {
            'neutral',
            'angry',
            'sad',
            'happy',
            'surprised',
            'disgusted',
            'scared',
        }
        assert -1 <= expression.valence <= 1 and -1 <= expression.arousal <= 1
        assert 0 < expression.confidence <= 1 and expression.header.stamp.nanosec == 7
        crop = crops[i].snapshot()[-1]
        assert (crop.width, crop.height, crop.encoding) == (128, 128, 'bgr8')
    astronaut_id = min(ids, key=lambda i: rois[i].snapshot()[-1].xmin)  # the left-hand face
    assert expressions[astronaut_id].snapshot()[-1].expression == 'happy'

    # the right-hand person leaves: dropped after 4 frames without it, the other id unchanged
    after = [list(sender.send(two_people(8 + i, both=False)).ids) for i in range(6)]
    assert set(after[0]) == ids  # one miss: still tracked
    assert after[-1] == [astronaut_id], after
    first_gone = next(k for k, a in enumerate(after) if len(a) == 1)
    assert first_gone == 3, after  # misses 1..3 kept, the 4th drops it
    graph.assert_alive()


def test_deactivate_sends_an_empty_tracked_list(graph):
    graph.start_node('emotion_node', 'emotion_node', parameters={'appear_after': 1})
    sender = Sender(graph)
    assert len(sender.send(two_people(0)).ids) == 2  # appear_after 1: published at once
    count = len(sender.tracked.snapshot())
    assert graph.change_state('emotion_node', 'deactivate')
    last = sender.tracked.wait_for(count + 1, timeout=10)[-1]
    assert list(last.ids) == []
    graph.assert_alive()
