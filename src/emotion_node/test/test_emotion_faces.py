"""BlazeFace detector, fer-matching crops, tracking and the pipeline evaluation CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from emotion_node.core import synthetic
from emotion_node.core.expression import expression
from emotion_node.core.faces import BlazeFaceDetector
from emotion_node.core.pipeline import haar_equivalent
from emotion_node.core.tracking import FaceTracker, iou


@pytest.fixture(scope='module')
def detector():
    try:
        return BlazeFaceDetector()
    except FileNotFoundError as error:
        pytest.fail(f'{error}')


def test_closeups_and_fer_style_crops_are_found(detector):
    samples = synthetic.closeups(40, seed=3) + synthetic.fer_style_crops(48)[:40]
    rate, count = synthetic.hit_rate(samples, lambda im: [f.int_box() for f in detector.sweep(im)])
    assert count == 80 and rate >= 0.9, rate


def test_small_portrait_faces_in_a_640x480_scene_are_found(detector):
    faces = {f.source: f for f in synthetic.portraits()}
    for size in (32, 64, 160):
        frame = synthetic.background('grass').copy()
        truth = synthetic.place(frame, faces['astronaut'], 300, 200, size)
        found = [f.int_box() for f in detector.sweep(frame)]
        assert any(synthetic.matches(b, truth) for b in found), (size, found)
    assert detector.sweep(np.zeros((480, 640, 3), np.uint8)) == []


def test_blazeface_box_maps_to_the_haar_box_fer_would_crop(detector):
    """The mapped BlazeFace box matches the frontalface_default box fer crops (+ 10 px)."""
    from skimage import data

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + 'haarcascade_frontalface_default.xml')
    bgr = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    (haar,) = cascade.detectMultiScale(
        cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), 1.1, 5, minSize=(40, 40)
    )
    (face,) = detector.sweep(bgr)
    assert iou(haar_equivalent(face.int_box()), tuple(int(v) for v in haar)) > 0.8
    assert iou(face.int_box(), tuple(int(v) for v in haar)) < iou(
        haar_equivalent(face.int_box()), tuple(int(v) for v in haar)
    )


def first_id(tracker: FaceTracker) -> str:
    """Confirm one face and return its id."""
    for _ in range(tracker.appear_after):
        tracker.update([(100, 100, 80, 80)], frame_shape=(480, 640))
    return tracker.confirmed[0].id


def test_tracker_ids_differ_across_restarts_unless_seeded():
    rest = np.eye(7)[6]
    # a restarted node must not hand out its previous run's ids (26**5 names: a clash ~1e-7)
    assert first_id(FaceTracker(rest)) != first_id(FaceTracker(rest))
    assert first_id(FaceTracker(rest, seed=3)) == first_id(FaceTracker(rest, seed=3))


def test_tracker_hysteresis_ids_and_attention():
    rest = np.eye(7)[6]
    tracker = FaceTracker(rest, appear_after=4, drop_after=4)
    a, b = (100, 100, 80, 80), (400, 120, 40, 40)
    for _ in range(3):
        tracker.update([a, b], frame_shape=(480, 640))
        assert tracker.confirmed == []
    tracker.update([a, b], frame_shape=(480, 640))
    ids = {t.id for t in tracker.confirmed}
    assert len(ids) == 2
    assert tracker.attended.int_box() == a  # larger
    for _ in range(3):
        tracker.update([a], frame_shape=(480, 640))
        assert {t.id for t in tracker.confirmed} == ids  # b missed 1..3 times: kept
    tracker.update([a], frame_shape=(480, 640))
    assert len(tracker.confirmed) == 1 and tracker.confirmed[0].id in ids
    tracker.update([a, b], frame_shape=(480, 640))  # b returns: a new, tentative id
    assert len(tracker.confirmed) == 1 and len(tracker.tracks) == 2
    assert tracker.tracks[1].id not in ids


def test_expression_mapping():
    p = np.zeros(7)
    p[3] = 1.0
    assert expression(p) == ('happy', 0.8, 0.5, 1.0)
    name, valence, arousal, confidence = expression(np.full(7, 1 / 7))
    assert name == 'angry' and -1 <= valence <= 1 and -1 <= arousal <= 1
    assert expression(np.eye(7)[2])[0] == 'scared' and expression(np.eye(7)[5])[0] == 'surprised'


def test_evaluate_pipeline_cli(tmp_path):
    from skimage import data

    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(tmp_path / 'astronaut.png'), astronaut)
    cv2.imwrite(str(tmp_path / 'closeup.png'), astronaut[60:200, 160:290])
    cv2.imwrite(str(tmp_path / 'blank.png'), np.full((240, 320, 3), 90, np.uint8))
    (tmp_path / 'labels.csv').write_text(
        'path,label\nastronaut.png,happy\ncloseup.png,happy\nblank.png,neutral\n'
    )
    run = subprocess.run(
        [
            sys.executable,
            '-m',
            'emotion_node.cli',
            'evaluate-pipeline',
            '--images',
            str(tmp_path / 'labels.csv'),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result['count'] == 3 and result['no_face'] == 1
    assert result['per_class_recall']['happy'] == 1.0
    assert result['per_class_recall']['neutral'] == 0.0
    assert result['accuracy'] == pytest.approx(2 / 3)
    assert result['confusion_matrix'][3][3] == 2 and result['confusion_matrix'][6][7] == 1
    (tmp_path / 'bad.csv').write_text('path,label\nastronaut.png,joy\n')
    bad = subprocess.run(
        [
            sys.executable,
            '-m',
            'emotion_node.cli',
            'evaluate-pipeline',
            '--images',
            str(tmp_path / 'bad.csv'),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and 'joy' in bad.stderr
