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
run_pytest() {
  python -m pytest "$@"
  local code=$?
  if [ "$code" -eq 5 ]; then
    echo "[test] pytest collected no tests: failing" >&2
    return 1
  fi
  return "$code"
}
if [ $# -gt 0 ]; then
  run_pytest "$@"
  exit $?
fi
# The end-to-end replays hold the recorded run (~3 GB) in the test process; they run in a pytest
# process of their own so that memory the other tests leave behind cannot add up to an OOM kill.
run_pytest --ignore=tests/test_end_to_end.py --ignore=tests/test_end_to_end_voices.py
first=$?
run_pytest tests/test_end_to_end.py tests/test_end_to_end_voices.py
second=$?
[ "$first" -eq 0 ] && [ "$second" -eq 0 ]
