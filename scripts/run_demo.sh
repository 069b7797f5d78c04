#!/usr/bin/env bash
# `make demo`: the whole graph on the demo bag; the report lands in out/demo/report.html.
# `make demo WEB=1` (or WEB=1 scripts/run_demo.sh) also starts the browser view and prints its URL
# (port WEB_PORT, default 8765).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck disable=SC1091
. scripts/env.sh
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}"
demo_args=()
case "${WEB:-0}" in
  0 | '' | false | no) ;;
  *) demo_args+=(--web --web-port "${WEB_PORT:-8765}") ;;
esac
python -m agechat_tools.demo "${demo_args[@]}" "$@"
