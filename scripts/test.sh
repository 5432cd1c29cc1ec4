#!/usr/bin/env bash
# The test suite, as CI runs it (README: second command).
#   1. release preset: unit + concurrent tests, and the per-component
#      examples (examples/*.cpp: ctest tests labelled `example concurrent`;
#      each checks its own results and exits non-zero if one is wrong)
#   2. asan preset (ASan + UBSan + LeakSanitizer): the same, sanitized
#   3. tsan preset: concurrent tests and the examples (grace periods
#      annotated; canary must fire)
#   3b. fuzz preset (clang): differential libFuzzer targets, bounded runs
#   4. planted-bug canaries: scripts/canaries.sh ("caught N of N")
#   5. install the release build and build/run examples/consumer against it
#      through find_package(rcukit)
# Concurrent tests run RCUKIT_TEST_SECONDS each (default 1). Long soaks carry
# the `stress` label and are not run here: `ctest --preset release -L stress`.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=${RCUKIT_JOBS:-$(nproc)}
export RCUKIT_TEST_SECONDS=${RCUKIT_TEST_SECONDS:-1}
export CTEST_OUTPUT_ON_FAILURE=1

scripts/bootstrap.sh clang-14 libclang-rt-14-dev || exit 1

total_pass=0
total_fail=0
failed_stages=()
start=$(date +%s)

stage() { echo; echo "=== [$(( $(date +%s) - start ))s] $*"; }

# run_ctest <preset> : configure, build, run the preset's test selection.
run_ctest() {
  local preset=$1
  mkdir -p build
  stage "configure + build: $preset"
  if ! cmake --preset "$preset" >"build/$preset-configure.log" 2>&1; then
    cat "build/$preset-configure.log"; failed_stages+=("$preset-configure"); total_fail=$((total_fail + 1)); return
  fi
  rm -f "build/$preset-configure.log"
  if ! cmake --build --preset "$preset" -j "$jobs"; then
    failed_stages+=("$preset-build"); total_fail=$((total_fail + 1)); return
  fi
  stage "ctest: $preset"
  local log
  log=$(mktemp)
  ctest --preset "$preset" -j "$jobs" 2>&1 | tee "$log"
  local line
  line=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$log" | tail -1)
  if [ -z "$line" ]; then
    failed_stages+=("$preset-ctest"); total_fail=$((total_fail + 1))
  else
    local failed all
    failed=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/')
    all=$(echo "$line" | sed -E 's/.* tests failed out of ([0-9]+).*/\1/')
    total_pass=$((total_pass + all - failed))
    total_fail=$((total_fail + failed))
    [ "$failed" -eq 0 ] || failed_stages+=("$preset-ctest")
  fi
  rm -f "$log"
}

run_ctest release
run_ctest asan
run_ctest tsan
run_ctest fuzz    # libFuzzer targets, a bounded number of executions each (>= 10^6 in total)

stage "planted-bug canaries (each deliberate bug must be caught)"
if scripts/canaries.sh; then
  total_pass=$((total_pass + 1))
else
  failed_stages+=("canaries"); total_fail=$((total_fail + 1))
fi

stage "examples/consumer: find_package(rcukit) on the installed package, and add_subdirectory"
prefix="$root/build/release/install"
rm -rf "$prefix" build/consumer build/consumer-sub
if cmake --install build/release --prefix "$prefix" >/dev/null &&
   cmake -S examples/consumer -B build/consumer -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
   cmake --build build/consumer -j "$jobs" && ./build/consumer/consumer; then
  total_pass=$((total_pass + 1))
else
  failed_stages+=("consumer-find_package"); total_fail=$((total_fail + 1))
fi
if cmake -S examples/consumer -B build/consumer-sub -DRCUKIT_SOURCE_DIR="$root" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
   cmake --build build/consumer-sub -j "$jobs" && ./build/consumer-sub/consumer &&
   [ ! -e build/consumer-sub/rcukit/tests ]; then
  total_pass=$((total_pass + 1))
else
  failed_stages+=("consumer-add_subdirectory"); total_fail=$((total_fail + 1))
fi
if ./build/release/examples/hello_rcu; then
  total_pass=$((total_pass + 1))
else
  failed_stages+=("hello_rcu"); total_fail=$((total_fail + 1))
fi

echo
echo "=== finished in $(( $(date +%s) - start ))s"
if [ ${#failed_stages[@]} -gt 0 ]; then echo "failed stages: ${failed_stages[*]}"; fi
echo "total: ${total_pass} passed, ${total_fail} failed"
[ "$total_fail" -eq 0 ]
