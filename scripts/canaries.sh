#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Planted-bug canaries (docs/RELIABILITY.md): for each deliberate bug in
# tests/canaries/list, applies its patch (tests/canaries/<id>-*.patch) to a
# scratch copy of the tree, builds the named tests there and requires at
# least one of them to FAIL by an assertion, a sanitizer report or a fatal
# check. A test that hangs until the timeout does not count as a catch.
# The shipped headers never mention a planted bug: the bugs exist only as
# patches. Prints "caught N of N"; exits non-zero if any bug slipped through
# or a patch no longer applies. Called by scripts/test.sh.
#   scripts/canaries.sh          every canary
#   scripts/canaries.sh 3 7      only these ids
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=${RCUKIT_JOBS:-$(nproc)}
export RCUKIT_TEST_SECONDS=${RCUKIT_TEST_SECONDS:-1}
timeout_s=${RCUKIT_CANARY_TIMEOUT:-120}
src=build/canary-src

# The scratch copy: tracked and untracked (not ignored) files, copied only when
# they differ, so unchanged files keep their timestamps and rebuilds stay
# incremental. A patch is applied before its build and reversed after it (both
# give the touched files a new timestamp, so the next build sees the change).
mkdir -p "$src"
git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
  [ -f "$f" ] || continue
  if ! cmp -s "$f" "$src/$f"; then mkdir -p "$src/$(dirname "$f")" && cp "$f" "$src/$f"; fi
done

wanted=" $* "
caught=0
total=0
missed=()
while IFS='|' read -r id name san targets args; do
  case "$id" in '' | \#*) continue ;; esac
  if [ -n "${*:-}" ] && [[ "$wanted" != *" $id "* ]]; then continue; fi
  total=$((total + 1))
  patch_file=$(ls tests/canaries/"$(printf '%02d' "$id")"-*.patch 2>/dev/null | head -1)
  if [ -z "$patch_file" ]; then echo "canary $id: no patch tests/canaries/$(printf '%02d' "$id")-*.patch"; exit 1; fi
  dir=build/canary-${san:-release}
  type=Release
  [ -n "$san" ] && type=RelWithDebInfo
  echo "=== canary $id: $name (${san:-release} build; expect a failure of: $targets)"
  if ! patch -d "$src" -p1 --forward --quiet <"$patch_file"; then
    echo "canary $id: $patch_file no longer applies to the tree: regenerate it (docs/RELIABILITY.md)"
    exit 1
  fi
  ok=1
  if ! cmake -S "$src" -B "$dir" -DCMAKE_BUILD_TYPE=$type -DRCUKIT_SANITIZER="$san" \
    -DRCUKIT_BUILD_BENCH=OFF -DRCUKIT_BUILD_EXAMPLES=OFF >"$dir.log" 2>&1; then
    cat "$dir.log"; ok=0
  fi
  build_targets=()
  for t in $targets; do
    [ "$t" = torture_bounded ] && build_targets+=(rcukit-torture) || build_targets+=("$t")
  done
  if [ "$ok" = 1 ] && ! cmake --build "$dir" -j "$jobs" --target "${build_targets[@]}" >"$dir.log" 2>&1; then
    tail -30 "$dir.log"; echo "canary $id: build failed"; ok=0
  fi
  # Each named test binary runs directly under a hard timeout.
  failed_any=0
  hung=0
  log=build/canary-$id.log
  : >"$log"
  if [ "$ok" = 1 ]; then
    for t in $targets; do
      exe=$(find "$dir" -type f -perm -u+x -name "$t" | head -1)
      if [ -z "$exe" ]; then echo "canary $id: test binary $t not built"; ok=0; break; fi
      one=$log.$t
      # shellcheck disable=SC2086  # args is a word list by design
      TSAN_OPTIONS="halt_on_error=1:suppressions=$root/tests/tsan.supp" \
        ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="halt_on_error=1" \
        timeout --kill-after=5 "$timeout_s" "$exe" $args >"$one" 2>&1
      rc=$?
      cat "$one" >>"$log"
      if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "Terminated: $t did not finish in $timeout_s s" >>"$log"
        # A test case that failed its assertion before a later one hung is a
        # failure: the bug was caught; the hang came after.
        if grep -q '^\[  FAILED  \]' "$one"; then failed_any=1; else hung=1; fi
      elif [ "$rc" -ne 0 ]; then
        failed_any=1
      fi
      rm -f "$one"
    done
  fi
  patch -d "$src" -p1 -R --quiet <"$patch_file" || { echo "canary $id: could not reverse $patch_file"; exit 1; }
  [ "$ok" = 1 ] || exit 1
  if [ "$failed_any" -eq 1 ]; then
    echo "canary $id: caught"
    grep -E "FAILED|ThreadSanitizer|AddressSanitizer|Failure|fatal|error" "$log" | head -4 | sed 's/^/    /'
    caught=$((caught + 1))
  elif [ "$hung" -eq 1 ]; then
    echo "canary $id: NOT caught (a test hung until the timeout; a hang is not an assertion)"
    missed+=("$id:$name")
  else
    echo "canary $id: NOT caught (the tests passed with the bug in)"
    missed+=("$id:$name")
  fi
done <tests/canaries/list
echo "canaries: caught ${caught} of ${total}"
[ "$total" -gt 0 ] || { echo "canaries: none selected"; exit 1; }
[ ${#missed[@]} -eq 0 ] || { echo "missed: ${missed[*]}"; exit 1; }
