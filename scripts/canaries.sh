#!/usr/bin/env bash
# Planted-bug canaries: builds the suite with each deliberate bug compiled in
# (RCUKIT_PLANTED_BUG, see cmake/rcukitTesting.cmake and docs/RELIABILITY.md)
# and checks that the tests named for it FAIL. Prints "caught N of N"; exits
# non-zero if any bug slipped through. Called by scripts/test.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=${RCUKIT_JOBS:-$(nproc)}
export RCUKIT_TEST_SECONDS=${RCUKIT_TEST_SECONDS:-1}

# id | name | sanitizer ('' or thread) | test targets (the ctest names are the same)
canaries=(
  "1|missing grace period||rcu_test"
  "2|relaxed publish|thread|skiplist_concurrent_test"
  "3|skipped unlink||skiplist_model_test"
  "4|off-by-one in hole merging||rbtree_extent_map_test rbtree_index_suite_test"
  "5|skipped reorder step||ordered_executor_test"
)

caught=0
total=0
missed=()
for c in "${canaries[@]}"; do
  IFS='|' read -r id name san targets <<<"$c"
  total=$((total + 1))
  dir=build/canary-${san:-release}
  type=Release
  [ -n "$san" ] && type=RelWithDebInfo
  echo "=== canary $id: $name (${san:-release} build; expect failure of: $targets)"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=$type -DRCUKIT_SANITIZER="$san" -DRCUKIT_PLANTED_BUG="$id" \
    -DRCUKIT_BUILD_BENCH=OFF -DRCUKIT_BUILD_EXAMPLES=OFF >"$dir.log" 2>&1 || { cat "$dir.log"; exit 1; }
  build_targets=()
  for t in $targets; do
    [ "$t" = torture_bounded ] && build_targets+=(rcukit-torture) || build_targets+=("$t")
  done
  if ! cmake --build "$dir" -j "$jobs" --target "${build_targets[@]}" >"$dir.log" 2>&1; then
    tail -30 "$dir.log"; echo "canary $id: build failed"; exit 1
  fi
  # Run each named test binary directly under a hard timeout: a hang counts as
  # caught (lost wake-ups hang), and ctest's per-test TIMEOUT properties would
  # otherwise outlast --timeout.
  failed_any=0
  : >"build/canary-$id.log"
  for t in $targets; do
    exe=$(find "$dir" -type f -perm -u+x -name "$t" | head -1)
    if [ -z "$exe" ]; then echo "canary $id: test binary $t not built"; exit 1; fi
    TSAN_OPTIONS="halt_on_error=1:suppressions=$(pwd)/tests/tsan.supp" \
      ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="halt_on_error=1" \
      timeout --kill-after=5 120 "$exe" >>"build/canary-$id.log" 2>&1
    rc=$?
    if [ "$rc" -ne 0 ]; then
      failed_any=1
      if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then echo "Terminated: $t did not finish in 120 s" >>"build/canary-$id.log"; fi
    fi
  done
  if [ "$failed_any" -eq 0 ]; then
    echo "canary $id: NOT caught (the tests passed with the bug in)"
    missed+=("$id:$name")
  else
    echo "canary $id: caught"
    grep -E "FAILED|ThreadSanitizer|AddressSanitizer|Failure|fatal|Terminated" "build/canary-$id.log" | head -4 | sed 's/^/    /'
    caught=$((caught + 1))
  fi
done
# Leave the tree's build dirs without the bug compiled in for later runs.
for d in build/canary-release build/canary-address build/canary-thread; do
  [ -d "$d" ] && cmake -S . -B "$d" -DRCUKIT_PLANTED_BUG=0 >/dev/null 2>&1
done
echo "canaries: caught ${caught} of ${total}"
[ ${#missed[@]} -eq 0 ] || { echo "missed: ${missed[*]}"; exit 1; }
