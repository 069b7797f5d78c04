#!/usr/bin/env bash
# `make bench`: every node's benchmark, then the end-to-end one; JSON results in out/bench/.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck disable=SC1091
. scripts/env.sh
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}"
mkdir -p out/bench
status=0
run() {  # name, command...
  echo "[bench] $1"
  shift
  "$@" || { echo "[bench] FAILED: $*" >&2; status=1; }
}
run emotion  python -m emotion_node.bench  --out out/bench/emotion.json
run voice    python -m age_node.bench      --out out/bench/voice.json
run bargein  python -m age_node.bargein    --out out/bench/bargein.json
run dialogue python -m dialogue_node.bench --out out/bench/dialogue.json
run avatar   python -m avatar_node.bench   --out out/bench/avatar.json
run e2e      python -m agechat_tools.bench_e2e --out out/bench/e2e.json
ls -1 out/bench/*.json
exit $status
