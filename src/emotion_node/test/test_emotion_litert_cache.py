"""The node's run-time classifier path is torch-free.

It runs a cached float32 TFLite export matched by sha256. The torch-free claim is checked in fresh
subprocesses (this test process has torch loaded by other tests): each loads the classifier the
way the node does, classifies the astronaut's face and reports whether `torch` ended up in
`sys.modules`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from emotion_node.core import litert_model
from emotion_node.core.classifier import EmotionClassifier
from emotion_node.core.litert_model import (
    find_current,
    is_current,
    resolve_litert_model,
    tflite_name,
    weights_sha256,
)
from emotion_node.core.model import MiniXception, load_weights, save_weights

torch.set_num_threads(1)

#: Run in a fresh interpreter: load like the node, classify one real face, report torch and the
#: source.
PROBE = textwrap.dedent('''
    import json, sys
    import cv2
    from skimage import data
    from emotion_node.core.classifier import EmotionClassifier
    from emotion_node.core.detector import HaarDetector
    from emotion_node.core.preprocess import crop_face

    weights, cache_dir = sys.argv[1], sys.argv[2]
    frame = cv2.cvtColor(cv2.resize(data.astronaut(), (400, 400)), cv2.COLOR_RGB2GRAY)
    box = HaarDetector().detect(frame)[0]
    classifier = EmotionClassifier.from_file(weights, cache_dir=cache_dir)
    probabilities = classifier.probabilities(crop_face(frame, box)[None])[0]
    print(json.dumps({'torch_imported': 'torch' in sys.modules, 'source': classifier.source,
                      'probabilities': probabilities.tolist()}))
''')


def probe(weights: Path, cache_dir: Path) -> dict:
    """Classify the astronaut in a fresh process with EmotionClassifier.from_file(weights)."""
    done = subprocess.run(
        [sys.executable, '-c', PROBE, str(weights), str(cache_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture()
def fine_tuned(weights_path, tmp_path) -> Path:
    """Return weights a user could have fine-tuned: the shipped ones with the head nudged.

    They are saved in a fresh folder.
    """
    model = load_weights(weights_path)
    with torch.no_grad():
        model.head.bias += torch.linspace(-0.3, 0.3, model.head.bias.numel())
    path = tmp_path / 'weights' / 'my_fer.safetensors'
    save_weights(model, path)
    return path


def test_shipped_weights_classify_without_importing_torch(weights_path, tmp_path):
    if find_current(weights_path, cache_dir=tmp_path) is None:
        pytest.fail(
            f'no float32 TFLite export beside {weights_path}: '
            'run scripts/setup.d/20-emotion-weights.sh'
        )
    result = probe(weights_path, tmp_path / 'cache')
    assert result['source'].startswith('cached export'), result['source']
    assert result['torch_imported'] is False
    assert np.argmax(result['probabilities']) == 3 and result['probabilities'][3] > 0.9  # happy
    assert not (tmp_path / 'cache').exists()  # nothing was exported


def test_new_weights_are_exported_once_then_run_torch_free(fine_tuned, tmp_path):
    first = probe(fine_tuned, tmp_path / 'cache')
    sha = weights_sha256(fine_tuned)
    written = fine_tuned.parent / tflite_name(fine_tuned, sha)
    assert first['source'] == f'new export {written}'
    assert first['torch_imported'] is True  # exporting needs torch
    assert is_current(written, sha)

    second = probe(fine_tuned, tmp_path / 'cache')
    assert second['source'] == f'cached export {written}'
    assert second['torch_imported'] is False
    # the cached file is the export of exactly these weights: same output as eager torch on them
    np.testing.assert_allclose(second['probabilities'], first['probabilities'], atol=1e-6)
    # the same face as in the probe, through eager PyTorch
    import cv2
    from skimage import data

    from emotion_node.core.detector import HaarDetector
    from emotion_node.core.preprocess import crop_face

    gray = cv2.cvtColor(cv2.resize(data.astronaut(), (400, 400)), cv2.COLOR_RGB2GRAY)
    face = crop_face(gray, HaarDetector().detect(gray)[0])[None]
    eager = EmotionClassifier(load_weights(fine_tuned), backend='torch').probabilities(face)[0]
    np.testing.assert_allclose(second['probabilities'], eager, atol=1e-4)


def test_changed_weights_make_the_export_stale(fine_tuned, tmp_path):
    first = resolve_litert_model(fine_tuned, cache_dir=tmp_path / 'cache')
    assert first.source == 'exported' and first.path.parent == fine_tuned.parent
    assert resolve_litert_model(fine_tuned, cache_dir=tmp_path / 'cache').source == 'cached'
    # overwrite the weights in place (e.g. another fine-tuning run): the old file no longer matches
    save_weights(MiniXception().eval(), fine_tuned)
    new_sha = weights_sha256(fine_tuned)
    assert not is_current(first.path, new_sha)
    # a file renamed to the new weights' name is still refused: the full sha256 inside must match
    shutil.copy(first.path, fine_tuned.parent / tflite_name(fine_tuned, new_sha))
    assert find_current(fine_tuned, new_sha, cache_dir=tmp_path / 'cache') is None
    again = resolve_litert_model(fine_tuned, cache_dir=tmp_path / 'cache')
    assert again.source == 'exported' and is_current(again.path, new_sha)


def test_read_only_weights_folder_caches_in_the_cache_dir(fine_tuned, tmp_path, monkeypatch):
    real_write = litert_model._write_atomic

    def write_refused_beside_weights(path, data):
        if path.parent == fine_tuned.parent:
            raise PermissionError(13, 'Permission denied', str(path))
        real_write(path, data)

    monkeypatch.setattr(litert_model, '_write_atomic', write_refused_beside_weights)
    messages = []
    cache = tmp_path / 'cache'
    exported = resolve_litert_model(fine_tuned, cache_dir=cache, log=messages.append)
    assert exported.source == 'exported' and exported.path.parent == cache
    assert any('cannot cache' in m and str(fine_tuned.parent) in m for m in messages)
    cached = resolve_litert_model(fine_tuned, cache_dir=cache)
    assert cached.source == 'cached' and cached.path == exported.path


def test_foreign_or_missing_weights_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError):
        EmotionClassifier.from_file(tmp_path / 'none.safetensors', cache_dir=tmp_path)
    junk = tmp_path / 'junk.safetensors'
    junk.write_bytes(b'not weights')
    with pytest.raises(ValueError, match='junk.safetensors'):
        EmotionClassifier.from_file(junk, cache_dir=tmp_path)
    assert not list(tmp_path.glob('*.tflite'))
