# Source this file (bash) to use the built agechat workspace: `. scripts/env.sh`
_agechat_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export AMENT_PREFIX_PATH="$_agechat_repo/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$_agechat_repo/.venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
# colcon's and the venv's scripts read unset variables: source them without `set -u`.
case $- in *u*) _agechat_nounset=1; set +u ;; *) _agechat_nounset= ;; esac
# shellcheck disable=SC1091
. "$_agechat_repo/.venv/bin/activate"
# shellcheck disable=SC1091
. "$_agechat_repo/install/local_setup.sh"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export PYTHONUNBUFFERED=1
# Fast DDS' default 512 KiB shared-memory segment cannot hold a 640x480 camera frame; over best-effort UDP
# most such frames are lost. This profile gives every process a 16 MiB segment (see emotion_node's README).
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_agechat_repo/src/emotion_node/config/fastdds_large_frames.xml}"
export AGECHAT_REPO="$_agechat_repo"
export PYTHONPATH="$_agechat_repo/tools${PYTHONPATH:+:$PYTHONPATH}"   # agechat_tools (launch runner, bag tools)
[ -n "$_agechat_nounset" ] && set -u
unset _agechat_repo _agechat_nounset
