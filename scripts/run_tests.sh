#!/usr/bin/env bash
# Run every agechat test on an isolated DDS domain. Extra arguments go to pytest.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# shellcheck disable=SC1091
. scripts/env.sh
# Our own domain for this run (1..100), and discovery limited to this host.
export ROS_DOMAIN_ID="${AGECHAT_TEST_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
echo "[test] ROS_DOMAIN_ID=$ROS_DOMAIN_ID ROS_AUTOMATIC_DISCOVERY_RANGE=$ROS_AUTOMATIC_DISCOVERY_RANGE"
python -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "[test] pytest collected no tests: failing" >&2
  exit 1
fi
exit "$status"
