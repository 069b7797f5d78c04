#!/usr/bin/env bash
# age_node: the GE2E speaker encoder its age head reads (Resemblyzer 0.1.4, Apache-2.0).
#   1. pip download --no-deps resemblyzer==0.1.4 into .cache/wheels/ (the wheel ships the encoder's
#      weights, resemblyzer/pretrained.pt; resemblyzer itself and its librosa/webrtcvad are not installed);
#   2. check the wheel's and the weights' sha256, rebuild the LSTM with the venv's torch, export it to ONNX
#      (torch.onnx.export needs the onnx package), check onnxruntime against torch, and write ge2e.onnx +
#      ge2e.json into the user cache beside the Whisper model
#      (age_node.core.speaker_encoder.default_encoder_dir). Idempotent: a valid copy is only re-hashed.
set -euo pipefail
REPO="${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
VENV="${VENV:-$REPO/.venv}"
WHEEL_DIR="$REPO/.cache/wheels"
WHEEL="$WHEEL_DIR/Resemblyzer-0.1.4-py3-none-any.whl"
export PYTHONPATH="$REPO/src/age_node:$REPO/src/agechat_ros${PYTHONPATH:+:$PYTHONPATH}"
if "$VENV/bin/python" -m age_node.core.speaker_encoder --check >/dev/null 2>&1; then
  exit 0
fi
if [ ! -f "$WHEEL" ]; then
  mkdir -p "$WHEEL_DIR"
  "$VENV/bin/python" -m pip download --no-deps --only-binary=:all: --disable-pip-version-check -q \
    -d "$WHEEL_DIR" resemblyzer==0.1.4
fi
"$VENV/bin/python" -m age_node.core.speaker_encoder --wheel "$WHEEL"
