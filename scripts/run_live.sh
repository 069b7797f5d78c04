#!/usr/bin/env bash
# `make live`: the whole graph on this machine's default microphone, camera and speaker.
# Extra launch arguments pass through, e.g. scripts/run_live.sh camera_device:=/dev/video2
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck disable=SC1091
. scripts/env.sh
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
python -m agechat_tools.live "$@"
