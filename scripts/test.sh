#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The test suite, as CI runs it (README: second command).
#   0. repository checks: SPDX licence lines, docs/API.md true to the headers
#   1. release preset: unit + concurrent tests, and the per-component
#      examples (examples/*.cpp: ctest tests labelled `example concurrent`;
#      each checks its own results and exits non-zero if one is wrong)
#   2. asan preset (ASan + UBSan + LeakSanitizer): the same, sanitized
#   3. tsan preset: concurrent tests and the examples (grace periods
#      annotated; canary must fire)
#   3b. fuzz preset (clang): differential libFuzzer targets, bounded runs
#   3c. warning-free headers: scripts/werror.sh (every public header alone and
#       one translation unit per component, -Wall -Wextra -Werror, -O0/-O2/-O3,
#       g++ and clang++-14); the liburcu include-order programs
#       (tests/interop) run in every ctest stage
#   4. planted-bug canaries: scripts/canaries.sh ("caught N of N")
#   5. the library-only build and install (the `lib` preset, as the README
#      says), then examples/consumer built with -Wall -Wextra -Werror against
#      it through find_package (g++ and clang++-14) and pkg-config, and
#      through add_subdirectory
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

stage "repository checks: licence lines (scripts/spdx.py), docs/API.md against the headers (scripts/api_check.py)"
if python3 scripts/spdx.py; then
  total_pass=$((total_pass + 1))
else
  failed_stages+=("spdx"); total_fail=$((total_fail + 1))
fi
if python3 scripts/api_check.py; then
  total_pass=$((total_pass + 1))
else
  failed_stages+=("api-doc"); total_fail=$((total_fail + 1))
fi

run_ctest release
run_ctest asan
run_ctest tsan
run_ctest fuzz    # libFuzzer targets, a bounded number of executions each (>= 10^6 in total)

stage "warning-free headers: -Wall -Wextra -Werror, g++ and clang++-14, -O0/-O2/-O3"
if scripts/werror.sh; then
  total_pass=$((total_pass + 1))
else
  failed_stages+=("werror"); total_fail=$((total_fail + 1))
fi

stage "planted-bug canaries (each deliberate bug must be caught)"
if scripts/canaries.sh; then
  total_pass=$((total_pass + 1))
else
  failed_stages+=("canaries"); total_fail=$((total_fail + 1))
fi

stage "library-only build and install (the README's commands), then examples/consumer built -Wall -Wextra -Werror: find_package (g++, clang++-14), add_subdirectory, pkg-config"
prefix="$root/build/lib/install"
rm -rf "$prefix" build/consumer build/consumer-clang build/consumer-sub build/consumer-pc
# pass_or_fail <stage name> <command...>: one counted result per consumer.
pass_or_fail() {
  local name=$1
  shift
  if "$@"; then
    total_pass=$((total_pass + 1))
  else
    failed_stages+=("$name"); total_fail=$((total_fail + 1))
  fi
}
consumer_find_package() {  # <build dir> <c++ compiler>
  cmake -S examples/consumer -B "$1" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_CXX_COMPILER="$2" >/dev/null &&
    cmake --build "$1" -j "$jobs" && "./$1/consumer"
}
consumer_subdirectory() {
  cmake -S examples/consumer -B build/consumer-sub -DRCUKIT_SOURCE_DIR="$root" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
    cmake --build build/consumer-sub -j "$jobs" && ./build/consumer-sub/consumer &&
    [ ! -e build/consumer-sub/rcukit/tests ]
}
consumer_pkg_config() {
  mkdir -p build/consumer-pc &&
    # shellcheck disable=SC2046  # pkg-config's flags are meant to split
    g++ -O2 -Wall -Wextra -Werror examples/consumer/main.cpp -o build/consumer-pc/consumer \
        $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs rcukit) &&
    ./build/consumer-pc/consumer
}
if cmake --preset lib >/dev/null && cmake --build --preset lib -j "$jobs" >/dev/null &&
   cmake --install build/lib --prefix "$prefix" >/dev/null; then
  total_pass=$((total_pass + 1))
  pass_or_fail consumer-find_package-g++ consumer_find_package build/consumer g++
  pass_or_fail consumer-find_package-clang consumer_find_package build/consumer-clang clang++-14
  pass_or_fail consumer-pkg-config consumer_pkg_config
else
  failed_stages+=("lib-install"); total_fail=$((total_fail + 1))
fi
pass_or_fail consumer-add_subdirectory consumer_subdirectory
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
