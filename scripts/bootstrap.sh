#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages rcukit needs, only those that are missing.
# Usage: scripts/bootstrap.sh [extra-package...]
# Runs apt-get as root, or through sudo when not root.
set -euo pipefail

packages=(
  build-essential cmake pkg-config python3
  liburcu-dev libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  libcds-dev libtbb-dev libjudy-dev
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo_cmd=()
elif command -v sudo >/dev/null 2>&1; then
  sudo_cmd=(sudo)
else
  echo "bootstrap: missing packages: ${missing[*]}" >&2
  echo "bootstrap: not root and no sudo; install them and rerun" >&2
  exit 1
fi
echo "bootstrap: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
