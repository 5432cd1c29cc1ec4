#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job (README: first command): the whole comparison at a quick size.
#   scripts/main.sh          quick size, about 15 minutes on 2 cores (build included)
#   scripts/main.sh --full   the article's sizes, for real multicore machines
# Installs what a fresh Debian 12 lacks (scripts/bootstrap.sh, including
# linux-source-6.12 for the maple tree peer), builds the harnesses and
# benchmarks of the release preset, runs the skiplist_test replica, the
# IOMMU model (random write, random read, streaming write at 16 submitters;
# random write in page-sized requests; allocator capacity versus submitters
# in 512 KiB and in 4 KiB requests), each figure repeated and interleaved,
# and every benchmark binary, then writes bench/results/<date>-<host>.json
# and a markdown report (verdict table first, then the details, with SVG
# plots) beside it, and prints the verdict.
# Exit status: 0; 3 when a verdict row is inconsistent (the run's figures
# contradict each other: the report says which); other non-zero on errors.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
size=quick
if [ "${1:-}" = "--full" ]; then size=full; elif [ -n "${1:-}" ]; then
  echo "usage: scripts/main.sh [--full]" >&2; exit 2
fi
jobs=${RCUKIT_JOBS:-$(nproc)}
start=$(date +%s)
step() { echo; echo "=== [$(( $(date +%s) - start ))s] $*"; }

step "install missing packages"
scripts/bootstrap.sh gnuplot-nox python3
# The kernel's maple tree as a peer (built from this package's source at
# build time, never committed): optional, the job runs without it.
scripts/bootstrap.sh linux-source-6.12 ||
  echo "main.sh: linux-source-6.12 could not be installed: the maple tree peer is left out" >&2
step "configure + build the harnesses and benchmarks (release preset)"
cmake --preset release >/dev/null
bin=build/release
if [ -f "$bin/Makefile" ]; then
  # Only what this job runs (the tests and examples are scripts/test.sh's).
  for dir in stress bench; do make -s -C "$bin/$dir" -j "$jobs"; done
else
  cmake --build --preset release -j "$jobs"
fi

stamp="$(date -u +%Y-%m-%d)-$(hostname -s)"
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT
mkdir -p bench/results
export RCUKIT_MAIN_COMMAND="scripts/main.sh${1:+ $1}"
RCUKIT_MAIN_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD 2>/dev/null; then RCUKIT_MAIN_COMMIT="$RCUKIT_MAIN_COMMIT+local changes"; fi
export RCUKIT_MAIN_COMMIT

# The maple tree peer is built when linux-source-6.12 is installed (the
# RCUKIT_MAPLE option); its binaries (bench/peers/maple/, GPL-2.0: see the
# README there) are the same harnesses plus the maple tree.
maple_dir="$bin/bench/peers/maple"
maple_allocs=""
[ -x "$maple_dir/rcukit-iommu-sim-maple" ] && maple_allocs=",maple,maple-node-cache"

if [ "$size" = full ]; then
  sl_args=(--items 100000 --rounds 100000 --threads 1,2,4,8,16 --repeat 3)   # the article's 100,000 x 100,000
  sl_maple_args=(--items 100000 --rounds 20000 --threads 1,2,4,8 --repeat 3)
  io_threads=1,2,4,8,16   # the pattern runs draw the scaling curve themselves
  io_time=(--seconds 5 --warmup 1 --capacity-seconds 2 --repeat 3)
  cap_threads=1,2,4,8,16
  bm_time=1.0
  bm_filter=.
else
  sl_args=(--items 100000 --rounds 20000 --threads 1,2,4,8 --repeat 3)       # the article's 1, 2, 4 threads, plus 8
  sl_maple_args=(--items 100000 --rounds 5000 --threads 1,2 --repeat 2)
  io_threads=16
  io_time=(--seconds 0.8 --warmup 0.3 --capacity-seconds 0.4 --repeat 3)
  cap_threads=1,2,16
  bm_time=0.2
  bm_filter='-.*[/:]1000000'   # quick: sizes up to 10^5 (the full run adds 10^6)
fi

step "skiplist_test replica: ${sl_args[*]}"
"$bin/stress/rcukit-skiplist-test" "${sl_args[@]}" --format json >"$raw/skiplist_test.json"
if [ -x "$maple_dir/rcukit-skiplist-test-maple" ]; then
  step "skiplist_test replica with the kernel's maple tree: ${sl_maple_args[*]}"
  "$maple_dir/rcukit-skiplist-test-maple" "${sl_maple_args[@]}" --structure skiplist,rbtree,maple,maple-node-cache \
    --format json >"$raw/skiplist_test-maple.json"
fi

base=off,rbtree,rbtree-augmented,skiplist,magazine+rbtree,magazine+skiplist
io_bin="$bin/stress/rcukit-iommu-sim"
[ -n "$maple_allocs" ] && io_bin="$maple_dir/rcukit-iommu-sim-maple"
sim() { "$io_bin" --iodepth 10 --io-size 20M --format json "${io_time[@]}" "$@"; }
for run in random:write random:read stream:write; do
  pattern=${run%%:*}; rw=${run##*:}
  allocs=$base
  [ "$run" = random:write ] && allocs=$base$maple_allocs
  step "IOMMU model: $pattern $rw, $io_threads submitters x iodepth 10 x 20M in 512 KiB requests (${io_time[*]})"
  sim --allocator "$allocs" --threads "$io_threads" --pattern "$pattern" --rw "$rw" --measure device \
    >"$raw/iommu-$pattern-$rw.json"
done
# Page-sized requests, as a driver that maps every page on its own: the
# sizes the per-core magazines cache (requests above 32 pages bypass them).
# (The 512 KiB runs measure the device only: their capacity at 16
# submitters is in the capacity run below.)
step "IOMMU model: random write, 16 submitters, 4 KiB requests (per-page mapping)"
sim --allocator "$base$maple_allocs" --threads 16 --segment-kb 4 --pattern random --rw write \
  >"$raw/iommu-random-write-4k.json"
step "IOMMU allocator capacity versus submitters $cap_threads, 512 KiB requests (random write, no device)"
sim --allocator "${base#off,}$maple_allocs" --threads "$cap_threads" --measure capacity --pattern random --rw write \
  >"$raw/iommucap-512k.json"
step "IOMMU allocator capacity at 1 and 2 submitters, 4 KiB requests (random write, no device)"
sim --allocator "${base#off,}$maple_allocs" --threads 1,2 --segment-kb 4 --measure capacity --pattern random \
  --rw write >"$raw/iommucap-4k.json"

for b in "$bin"/bench/*/bench_* "$bin"/bench/*/*_bench "$bin"/bench/peers/maple/bench_*; do
  [ -x "$b" ] && [ -f "$b" ] || continue
  name=$(basename "$b"); name=${name#bench_}; name=${name%_bench}; name=${name//_/-}
  step "benchmark $name (min time ${bm_time}s per case)"
  "$b" --benchmark_min_time="$bm_time" --benchmark_filter="$bm_filter" --benchmark_format=json --benchmark_out="$raw/bench-$name.json" \
    --benchmark_out_format=json >/dev/null
done

step "report"
rc=0
python3 scripts/report.py "$raw" "bench/results/$stamp" || rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then exit "$rc"; fi
echo
echo "=== summary ($(( $(date +%s) - start ))s)"
python3 - "$root/bench/results/$stamp.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
v = r.get("verdict", [])
count = lambda s: sum(1 for x in v if x["state"] == s)
print("verdict: %d hold, %d missed, %d within noise, %d INCONSISTENT (figure: article -> ours [spread])" % (
    count("holds"), count("missed"), count("within noise"), count("inconsistent")))
marks = {"holds": "holds ", "missed": "MISSED", "within noise": "noise ", "inconsistent": "INCONS", "no target": "      "}
for x in v:
    print("  %s %s: %s -> %s [%s]%s" % (marks[x["state"]], x["figure"], x["article_text"], x["ours_text"],
                                       x["spread_text"], ("  (" + x["note"] + ")") if x["note"] else ""))
PY
echo "full report: bench/results/$stamp.md"
if [ "$rc" -eq 3 ]; then
  echo "main.sh: inconsistent figures in this run (see the verdict above); exiting non-zero" >&2
fi
exit "$rc"
