#!/usr/bin/env bash
# Build selected packages only (e.g. while developing one node): scripts/build_package.sh emotion_node [more…]
# Uses its own log folder so that parallel builds of different packages do not collide.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck disable=SC1091
. .venv/bin/activate
export AMENT_PREFIX_PATH="$REPO/.venv" CMAKE_PREFIX_PATH="$REPO/.venv"
colcon --log-base "/tmp/agechat-colcon-log-$1" build --symlink-install --event-handlers console_direct- \
  --paths $(printf "src/%s " "$@") \
  --cmake-args -DPython3_EXECUTABLE="$REPO/.venv/bin/python" -DBUILD_TESTING=OFF
