#!/usr/bin/env bash
# avatar_node: a Korean TrueType font for the avatar captions (OpenCV's Hershey fonts have no Hangul).
# Idempotent: does nothing when fonts-nanum is installed. Without it avatar_node still runs, with ASCII captions.
set -euo pipefail
if dpkg-query -W -f='${Status}' fonts-nanum 2>/dev/null | grep -q "install ok installed"; then
  exit 0
fi
echo "[setup] installing fonts-nanum (Korean captions for avatar_node)"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install fonts-nanum (avatar captions)" >&2; exit 1; }
  SUDO="sudo"
fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends fonts-nanum
