#!/usr/bin/env bash
# Idempotent setup of the agechat workspace on this kind of machine (Debian + PyPI, no ROS install):
#   1. Debian packages (only those missing);
#   2. the .venv virtual environment from requirements.txt (only when that file changed);
#   3. the CMake path fix the PyPI ROS 2 wheels need;
#   4. model assets that are produced locally (scripts/setup.d/*.sh; each skips when done);
#   5. colcon build of src/ (+ the audio_common_msgs and hri_msgs stand-ins where the real ones
#      are absent),
#      only when a package changed.
# A re-run on an unchanged tree does no work beyond these checks.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
cd "$REPO"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- 1. Debian packages -------------------------------------------------------------------------
# libportaudio2: the PortAudio library sounddevice loads (agechat_io's microphone and speaker; the
# Linux sounddevice wheel does not bundle it). pulseaudio: the sound server agechat_io's tests start
# with a null sink (tests skip without it). chromium + chromium-driver: the headless browser that tests
# avatar_node's browser view. libspeexdsp1: Speex's echo canceller, age_node's alternative
# `aec_backend: speex` (ctypes; the default webrtc one comes in the livekit wheel).
APT_PACKAGES=(cmake g++ espeak-ng libespeak-ng1 sox ffmpeg libportaudio2 pulseaudio chromium chromium-driver libspeexdsp1)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- 2. Python virtual environment ----------------------------------------------------------------
PYTHON="${AGECHAT_PYTHON:-$(command -v python3.11 || command -v python3)}"
req_hash="$(sha256sum requirements.txt | cut -d' ' -f1)"
stamp="$VENV/.agechat-requirements.sha256"
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$req_hash" ]; then
  say "installing pinned Python dependencies (requirements.txt)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r requirements.txt
  # --- 3. CMake path fix: the ROS wheels' exported targets name the wheel builder's Python. ---
  say "rewriting the ROS wheels' CMake paths to this venv's Python"
  "$VENV/bin/python" "$REPO/scripts/fix_ros_wheel_cmake.py" "$VENV"
  echo "$req_hash" > "$stamp"
  rm -f "$REPO/install/.agechat-build-stamp"   # new dependencies: rebuild the workspace
fi

# --- 4. Model assets produced on this machine (before the build, which installs them) ---------------
for step in scripts/setup.d/*.sh; do
  [ -e "$step" ] || continue
  VENV="$VENV" REPO="$REPO" bash "$step"
done

# --- 5. colcon build ------------------------------------------------------------------------------
build_stamp="$REPO/install/.agechat-build-stamp"
if [ ! -f "$build_stamp" ] || [ -n "$(find src compat -newer "$build_stamp" -print -quit)" ]; then
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
  paths=(src/*)
  if [ -z "$(find "$VENV/share" -maxdepth 1 -name audio_common_msgs -print -quit)" ]; then
    paths+=(compat/audio_common_msgs)   # no real audio_common_msgs: build the interface-identical stand-in
  fi
  if [ -z "$(find "$VENV/share" -maxdepth 1 -name hri_msgs -print -quit)" ]; then
    paths+=(compat/hri_msgs)   # no real hri_msgs (ROS4HRI, REP-155): build the interface-identical stand-in
  fi
  say "colcon build (${paths[*]})"
  # --symlink-install leaves links to deleted source files in build/; setup.py globs would trip on them.
  [ -d build ] && find build -xtype l -delete
  colcon --log-base log build --symlink-install --event-handlers console_direct- --paths "${paths[@]}" \
    --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF
  touch "$build_stamp"
fi

say "ready (source scripts/env.sh to use the workspace in a shell)"
