#!/usr/bin/env bash
# The main job (README: first command). Until the comparative benchmark
# report lands, it builds the release preset and runs every example.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${RCUKIT_JOBS:-$(nproc)}
scripts/bootstrap.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"
for ex in build/release/examples/*; do
  if [ -x "$ex" ] && [ -f "$ex" ]; then
    echo "== $(basename "$ex")"
    "$ex"
  fi
done
