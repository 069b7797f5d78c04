"""REP-155 face ids over a replayed two-person bag (issue #14: "ids stable across a replayed bag").

The test writes an MCAP bag (in tmp_path, at test time) of 320x240 bgr8 camera frames at 12 FPS,
recorded best effort as a camera driver offers them: two real portraits moving and approaching
each other, one of them walking out of the frame, and later a third person walking in. The bag is
replayed with the project's bag player (recorded QoS and timing, as `ros2 bag play`) into a real
emotion_node over DDS. The generator knows where each person is in every frame (by image stamp),
so every `/humans/faces/<id>/roi` the node sends can be matched to the person it is on.

Frames may be lost (best effort, the node keeps the newest frame only), so the assertions are
about identity, counted in the frames the node processed (one `/humans/faces/tracked` each). (With
the node skipping half the frames, `max_rate_hz` 7, ids can be lost after gaps: see the README's
limits; that case is not asserted here.) A second
test replays one person walking across in front of the other (measured: no swap; the covered
face loses its id and gets a new one when it shows again, see the README).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from agechat_ros.testing import Collector
from agechat_tools.bag import BagPlayer, bag_qos

from emotion_node.core import synthetic

hri_msgs = pytest.importorskip('hri_msgs.msg', reason='hri_msgs not built (make setup)')

WIDTH, HEIGHT, FPS = 320, 240, 12.0
START_NS = 1_000 * 10**9  # bag time (and image stamp) of the first frame
APPEAR_AFTER = DROP_AFTER = 4  # the node's defaults (REP-155's hri_face_detect convention)

# Phases, in frames at 12 FPS
LEAD_IN = 9  # background only (the node warms up)
BOTH = 36  # astronaut and Grace Hopper in view, moving, closest approach ~30 px apart
LEAVE = 18  # Grace Hopper walks out to the right (wholly out from the 15th of these on)
GAP = 9  # the astronaut alone
NEWCOMER = 30  # the cameraman walks in from the right and stays

Person = Tuple[float, float, int]  # face box corner x, y and face width (pixels)


def people_at(k: int) -> Dict[str, Person]:
    """Return who is where in frame k (face box corner and size), the ground truth."""
    people: Dict[str, Person] = {}
    s = (k - LEAD_IN) / FPS
    if k >= LEAD_IN:
        people['astronaut'] = (
            40 + 35 * np.sin(2 * np.pi * s / 3.0),
            70 + 8 * np.sin(2 * np.pi * s / 2.0),
            60,
        )
    if LEAD_IN <= k < LEAD_IN + BOTH + LEAVE:
        x = 215 - 35 * np.sin(2 * np.pi * s / 3.0)
        if k >= LEAD_IN + BOTH:
            x = 215 + 7.5 * (k - LEAD_IN - BOTH)
        people['grace_hopper'] = (x, 80 + 8 * np.cos(2 * np.pi * s / 2.5), 60)
    if k >= LEAD_IN + BOTH + LEAVE + GAP:
        j = k - (LEAD_IN + BOTH + LEAVE + GAP)
        people['camera'] = (max(210.0, 330.0 - 8 * j), 75, 58)
    return people


def crossing_at(k: int) -> Dict[str, Person]:
    """Return who is where in frame k of the crossing: the astronaut walks in front of Grace."""
    if k < LEAD_IN:
        return {}
    s = (k - LEAD_IN) / FPS
    # 72 px/s, from 1 s on; she stops at x 240: at 250 BlazeFace's full-range sweep finds a 32 px
    # false face on her portrait (a detector error, not the tracker's; see the README)
    walk = min(240.0, 10.0 + 6.0 * max(0, k - LEAD_IN - 12))
    return {  # pasted in this order: the astronaut on top
        'grace_hopper': (140, 80 + 6 * np.sin(2 * np.pi * s / 2.5), 60),
        'astronaut': (walk, 72 + 6 * np.sin(2 * np.pi * s / 2.0), 60),
    }


@dataclass
class Frame:
    """One generated frame: its stamp, and where each person is and how much of them shows."""

    stamp_ns: int
    image: np.ndarray
    #: face box (pixels, the part inside the frame, covered or not) of each person in the frame
    boxes: Dict[str, Tuple[int, int, int, int]]
    #: bounding box of the part of each person's face box that shows (not covered, in the frame)
    shows: Dict[str, Tuple[int, int, int, int]]
    #: fraction of each person's face box that is inside the frame and not covered by a portrait
    #: pasted over it (0 = gone)
    visible: Dict[str, float]

    def in_view(self, at_least: float = 0.5) -> set:
        return {name for name, v in self.visible.items() if v >= at_least}


def render(people_at: Callable[[int], Dict[str, Person]], count: int) -> List[Frame]:
    """Render `count` frames; portraits are pasted in the order people_at lists them."""
    faces = {f.source: f for f in synthetic.portraits()}
    frames = []
    for k in range(count):
        image = synthetic.background('brick', WIDTH, HEIGHT).copy()
        on_top = np.zeros((HEIGHT, WIDTH), np.int16)  # 1 + index of the portrait seen there
        placed = {}
        for n, (name, (x, y, size)) in enumerate(people_at(k).items(), start=1):
            face, x, y = faces[name], int(round(x)), int(round(y))
            placed[name] = synthetic.place(image, face, x, y, size)
            scale = size / face.box[2]  # the pasted rectangle, as synthetic.place computes it
            ox, oy = x - int(round(face.box[0] * scale)), y - int(round(face.box[1] * scale))
            oh, ow = (int(round(v * scale)) for v in face.image.shape[:2])
            on_top[max(0, oy) : max(0, oy + oh), max(0, ox) : max(0, ox + ow)] = n
        boxes, shows, visible = {}, {}, {}
        for n, (name, (bx, by, bw, bh)) in enumerate(placed.items(), start=1):
            x1, y1, x2, y2 = max(0, bx), max(0, by), min(WIDTH, bx + bw), min(HEIGHT, by + bh)
            visible[name] = 0.0
            if x2 <= x1 or y2 <= y1:
                continue
            boxes[name] = (x1, y1, x2 - x1, y2 - y1)
            rows, cols = np.nonzero(on_top[y1:y2, x1:x2] == n)
            visible[name] = rows.size / float(bw * bh)
            if rows.size:
                sx, sy = x1 + int(cols.min()), y1 + int(rows.min())
                ex, ey = x1 + int(cols.max()) + 1, y1 + int(rows.max()) + 1
                shows[name] = (sx, sy, ex - sx, ey - sy)
        stamp = START_NS + int(round(k * 1e9 / FPS))
        frames.append(Frame(stamp, image, boxes, shows, visible))
    return frames


def write_bag(path, frames: List[Frame]) -> None:
    """Write the frames as a best-effort sensor_msgs/Image topic /image into an MCAP bag."""
    store = get_typestore(Stores.ROS2_KILTED)
    Image = store.types['sensor_msgs/msg/Image']
    Header = store.types['std_msgs/msg/Header']
    Time = store.types['builtin_interfaces/msg/Time']
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        camera = writer.add_connection(
            '/image',
            'sensor_msgs/msg/Image',
            typestore=store,
            offered_qos_profiles=[bag_qos(reliable=False, depth=5)],  # as a camera driver
        )
        for frame in frames:
            stamp = Time(sec=frame.stamp_ns // 10**9, nanosec=frame.stamp_ns % 10**9)
            msg = Image(
                header=Header(stamp=stamp, frame_id='cam'),
                height=HEIGHT,
                width=WIDTH,
                encoding='bgr8',
                is_bigendian=0,
                step=WIDTH * 3,
                data=np.ascontiguousarray(frame.image).reshape(-1),
            )
            writer.write(camera, frame.stamp_ns, store.serialize_cdr(msg, Image.__msgtype__))


def stamp_ns(header) -> int:
    return header.stamp.sec * 10**9 + header.stamp.nanosec


def iou(a, b) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def person_of(roi, frame: Frame) -> str:
    """Return the person the roi is clearly on: '' if on nobody, '?' if it is between two.

    Clearly on = IoU >= 0.3 with the person's true face box (the part in the frame, covered or
    not, or the part that shows: a half-covered face is found as the half that shows) and at least
    twice the IoU with anybody else. The box of a face that is missed (the 1..3
    frames before it is dropped) stays where the face was last found: on nobody once the person
    left the frame, or between two people while one walks over the other.
    """
    box = (roi.xmin * WIDTH, roi.ymin * HEIGHT, roi.xmax * WIDTH, roi.ymax * HEIGHT)

    def overlap(name: str) -> float:
        return max(
            iou(box, (x, y, x + w, y + h))
            for x, y, w, h in (frame.boxes[name], frame.shows.get(name, frame.boxes[name]))
        )

    scores = sorted(((overlap(name), name) for name in frame.boxes), reverse=True)
    if not scores or scores[0][0] < 0.3:
        return ''
    if len(scores) > 1 and scores[1][0] * 2 > scores[0][0]:
        return '?'
    return scores[0][1]


@dataclass
class Replay:
    """What the node published while the bag played."""

    frames: Dict[int, Frame]  # by stamp
    lists: List[Tuple[int, List[str]]]  # (stamp, ids) of every /humans/faces/tracked, in order
    person: Dict[str, str]  # id -> the one person all its rois were on
    life: Dict[str, List[int]]  # id -> indices in `lists` that hold it
    rois: Dict[str, list]  # id -> its rois, in order

    def held_at_end(self, face_id: str) -> int:
        """Return how many of the id's last rois have exactly its last box.

        A missed (or carried) face keeps its box unchanged, so this is the frame in which it was
        last found plus the frames it stayed listed after that.
        """
        key = [(r.xmin, r.ymin, r.xmax, r.ymax) for r in self.rois[face_id]]
        return next((n for n in range(1, len(key)) if key[-1 - n] != key[-1]), len(key))

    def in_view(self, k: int, at_least: float = 0.5) -> set:
        return self.frames[self.lists[k][0]].in_view(at_least)

    def visible(self, k: int, name: str) -> float:
        return self.frames[self.lists[k][0]].visible.get(name, 0.0)

    def ids_of(self, name: str) -> List[str]:
        """Ids that were on `name`, in the order they appeared."""
        return sorted((i for i, p in self.person.items() if p == name), key=lambda i: self.life[i])


def replay(graph, tmp_path, frames: List[Frame], max_rate_hz: float = 0.0) -> Replay:
    """Write the bag, play it into a real emotion_node, check the rois; return what came back."""
    bag = tmp_path / 'faces_bag'
    write_bag(bag, frames)
    parameters = {'smoothing_s': 0.0, 'max_rate_hz': max_rate_hz}
    graph.start_node('emotion_node', 'emotion_node', parameters=parameters)
    tracked = graph.collect('/humans/faces/tracked', hri_msgs.IdsList)
    player = BagPlayer(graph.node, bag)  # as `ros2 bag play`: recorded QoS and timing
    player.wait_for_subscribers(['/image'])
    graph.wait_for_publishers('/humans/faces/tracked')

    # play in the background; meanwhile subscribe to each new id's roi as soon as it is listed
    done = threading.Event()
    thread = threading.Thread(target=lambda: (player.play(), done.set()), daemon=True)
    thread.start()
    rois: Dict[str, Collector] = {}
    seen = 0
    while not done.is_set():
        messages = tracked.snapshot()
        for msg in messages[seen:]:
            for face_id in msg.ids:
                if face_id not in rois:
                    rois[face_id] = graph.collect(
                        f'/humans/faces/{face_id}/roi', hri_msgs.NormalizedRegionOfInterest2D
                    )
        seen = len(messages)
        time.sleep(0.01)
    thread.join(5)
    player.close()
    # the node answers the frames it got; the last one may be lost (best effort): wait until
    # nothing came for a second
    count = -1
    while count != len(tracked.snapshot()):
        count = len(tracked.snapshot())
        time.sleep(1.0)
    graph.assert_alive()

    by_stamp = {f.stamp_ns: f for f in frames}
    lists = [(stamp_ns(m.header), list(m.ids)) for m in tracked.snapshot()]
    assert all(s in by_stamp for s, _ in lists), 'a tracked list with a stamp not in the bag'
    assert [s for s, _ in lists] == sorted(s for s, _ in lists), 'tracked lists out of order'
    assert len(lists) >= 0.4 * len(frames), f'only {len(lists)} of {len(frames)} frames processed'
    assert set(rois) == {i for _, ids in lists for i in ids}

    # every roi an id sent that is clearly on somebody is on one and the same person, for the
    # whole time it was received (no switch, no swap)
    person: Dict[str, str] = {}
    on_whom: Dict[str, Counter] = {}
    for face_id, collector in rois.items():
        on = [person_of(r, by_stamp[stamp_ns(r.header)]) for r in collector.snapshot()]
        clear = [name for name in on if name not in ('', '?')]
        where = [
            (
                round((stamp_ns(r.header) - START_NS) * FPS / 1e9),
                round(r.xmin * WIDTH),
                round(r.ymin * HEIGHT),
                round((r.xmax - r.xmin) * WIDTH),
            )
            for r in collector.snapshot()
        ]  # (frame, x, y, width) for the message
        assert len(set(clear)) == 1, f'id {face_id} was on {Counter(on)}: {where}'
        assert len(clear) >= 0.75 * len(on), f'id {face_id} was on {Counter(on)}'
        person[face_id] = clear[0]
        on_whom[face_id] = Counter(on)
    life = {i: [k for k, (_, ids) in enumerate(lists) if i in ids] for i in rois}
    for face_id, ks in life.items():
        # listed without a gap (no flicker; an id that left never comes back) ...
        assert ks == list(range(ks[0], ks[-1] + 1)), f'id {face_id} flickered: {lists}'
        # ... and the rois (subscribed once it was listed) cover most of its life
        got = len(rois[face_id].snapshot())
        assert got >= 0.5 * len(ks), f'{face_id}: {got} rois in {len(ks)} frames'
    print(
        f'{len(frames)} frames, {len(lists)} processed; ids: '
        + '; '.join(f'{i} {len(ks)} frames, rois {dict(on_whom[i])}' for i, ks in life.items())
    )
    return Replay(by_stamp, lists, person, life, {i: c.snapshot() for i, c in rois.items()})


def test_ids_stay_on_their_person_across_a_replayed_two_person_bag(graph, tmp_path):
    frames = render(people_at, LEAD_IN + BOTH + LEAVE + GAP + NEWCOMER)
    run = replay(graph, tmp_path, frames)
    lists = run.lists

    # one id per person: none reused, nobody re-identified
    assert sorted(run.person.values()) == ['astronaut', 'camera', 'grace_hopper'], run.person
    id_of = {name: face_id for face_id, name in run.person.items()}

    # hysteresis: nobody before the 4th processed frame with a face; then exactly the two ids
    # while both are in view
    first = next(k for k in range(len(lists)) if run.in_view(k))
    assert all(ids == [] for _, ids in lists[first : first + APPEAR_AFTER - 1]), lists
    both = [
        k
        for k in range(first + APPEAR_AFTER - 1, len(lists))
        if run.in_view(k, 1.0) == {'astronaut', 'grace_hopper'}
    ]
    pair = sorted([id_of['astronaut'], id_of['grace_hopper']])
    assert len(both) >= 10 and all(sorted(lists[k][1]) == pair for k in both), lists

    # the leaver is dropped within drop_after processed frames of being out of the frame: a face
    # found at its last search may be carried one frame, then it is listed at misses 1..3 and
    # dropped at the 4th
    out = next(k for k in range(both[-1], len(lists)) if run.visible(k, 'grace_hopper') == 0)
    assert run.life[id_of['grace_hopper']][-1] < out + DROP_AFTER, (out, lists)
    # counted from the last frame it was found in: listed in the 3 misses after it (and one
    # carried frame at most), dropped at the 4th miss
    assert DROP_AFTER <= run.held_at_end(id_of['grace_hopper']) <= DROP_AFTER + 1

    # the newcomer has a new id; the astronaut kept hers from the hysteresis to the end
    assert run.life[id_of['camera']][0] > run.life[id_of['grace_hopper']][-1]
    assert run.life[id_of['astronaut']] == list(range(first + APPEAR_AFTER - 1, len(lists)))
    assert sorted(lists[-1][1]) == sorted([id_of['astronaut'], id_of['camera']]), lists


CROSSING = 9 + 12 + 40 + 18  # lead-in, 1 s still, the walk across, 1.5 s still


def test_a_face_walking_in_front_of_another_never_takes_its_id(graph, tmp_path):
    """Measured limit: the covered face loses its id and gets a new one when it shows again."""
    frames = render(crossing_at, CROSSING)
    covered = [k for k, f in enumerate(frames) if k > LEAD_IN and f.visible['grace_hopper'] == 0]
    assert covered, 'the walk must cover the face wholly at some point'
    run = replay(graph, tmp_path, frames)
    lists = run.lists

    # the one in front keeps one id the whole time, through the crossing
    fronts = run.ids_of('astronaut')
    assert len(fronts) == 1, run.person
    front = fronts[0]
    first = next(k for k in range(len(lists)) if run.in_view(k))
    assert run.life[front] == list(range(first + APPEAR_AFTER - 1, len(lists))), lists

    # the covered one: her first id ends within drop_after processed frames of being wholly
    # covered (no re-identification: REP-155 face ids are per track) and is never reused; she is
    # tracked again under a new id once she shows again
    behind = run.ids_of('grace_hopper')
    assert len(behind) >= 2, behind
    hidden = next(
        k for k in range(len(lists)) if k > first and run.visible(k, 'grace_hopper') == 0
    )
    assert run.life[behind[0]][-1] < hidden + DROP_AFTER, (hidden, lists)
    assert DROP_AFTER <= run.held_at_end(behind[0]) <= DROP_AFTER + 1
    assert run.life[behind[-1]][-1] == len(lists) - 1
    assert sorted(lists[-1][1]) == sorted([front, behind[-1]]), lists
