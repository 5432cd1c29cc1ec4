#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Warning-free headers (docs/API.md, "Common rules"): compiles every public
# header alone, and one translation unit per component (the examples and
# tests/warnings/, which call every public member), with
#   -std=c++20 -Wall -Wextra -Werror
# at -O0, -O2 and -O3 (CMake's Release default, where g++ 12 inlines deeper
# and warns more), under each compiler in RCUKIT_WERROR_COMPILERS (default:
# Debian 12's g++ 12 and clang++-14). The headers are found with -I, as a
# consumer that vendors rcukit would; -isystem would hide warnings.
# Prints one line per failing compile with the compiler's output, then
# "werror: N of M compiles clean"; exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
read -r -a compilers <<<"${RCUKIT_WERROR_COMPILERS:-g++ clang++-14}"
jobs=${RCUKIT_JOBS:-$(nproc)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for h in include/rcukit/*.hpp; do
  printf '#include <rcukit/%s>\n' "$(basename "$h")" >"$work/header_$(basename "$h" .hpp).cpp"
done
shopt -s nullglob
tus=("$work"/header_*.cpp examples/*.cpp examples/consumer/main.cpp tests/warnings/*.cpp)
shopt -u nullglob

: >"$work/list"
for cxx in "${compilers[@]}"; do
  command -v "$cxx" >/dev/null || { echo "werror: compiler $cxx not found" >&2; exit 1; }
  for opt in -O0 -O2 -O3; do
    for tu in "${tus[@]}"; do printf '%s %s %s\n' "$cxx" "$opt" "$tu" >>"$work/list"; done
  done
done
total=$(wc -l <"$work/list")
echo "werror: $total compiles (${#tus[@]} translation units x ${#compilers[@]} compilers x -O0/-O2/-O3), $jobs at a time"

# One compile: writes its output to a log named after it when it fails.
compile_one() {
  local cxx=$1 opt=$2 tu=$3 work=$4
  local log
  log="$work/fail.$(echo "$cxx $opt $tu" | tr ' /' '__').log"
  if ! "$cxx" -std=c++20 -Wall -Wextra -Werror "$opt" -Iinclude -Iexamples -c "$tu" -o /dev/null >"$log.tmp" 2>&1; then
    { echo "FAIL: $cxx $opt -Wall -Wextra -Werror $tu"; cat "$log.tmp"; } >"$log"
  fi
  rm -f "$log.tmp"
}
export -f compile_one
xargs -P "$jobs" -L 1 bash -c 'compile_one "$0" "$1" "$2" '"$work" <"$work/list"

failed=$(find "$work" -name 'fail.*.log' | wc -l)
for f in "$work"/fail.*.log; do
  [ -e "$f" ] || continue
  head -40 "$f"
  echo
done
echo "werror: $((total - failed)) of $total compiles clean"
[ "$failed" -eq 0 ]
