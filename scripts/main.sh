#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job (README: first command): the whole comparison at a quick size.
#   scripts/main.sh          quick size, a few minutes on 2 cores
#   scripts/main.sh --full   the article's sizes, for real multicore machines
# Builds the release preset, runs the skiplist_test replica, the IOMMU model
# (random write, random read, streaming write at 16 threads; random write in
# page-sized requests; allocator capacity versus threads) and every benchmark
# binary, then writes bench/results/<date>-<host>.json and a markdown report
# (verdict table first, then the details, with SVG plots) beside it, and
# prints the verdict.
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
step "configure + build (release preset)"
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"

bin=build/release
stamp="$(date -u +%Y-%m-%d)-$(hostname -s)"
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT
mkdir -p bench/results
export RCUKIT_MAIN_COMMAND="scripts/main.sh${1:+ $1}"

if [ "$size" = full ]; then
  sl_args=(--items 100000 --rounds 100000 --threads 1,2,4,8,16)   # the article's table: 100,000 x 100,000
  io_threads=1,2,4,8,16   # the pattern runs draw the scaling curve themselves
  io_secs=10
  cap_secs=3
  bm_time=1.0
  bm_filter=.
else
  sl_args=(--items 100000 --rounds 20000 --threads 1,2,4,8)       # the article's 1, 2, 4 threads, plus 8
  io_threads=16
  io_secs=2
  cap_secs=1
  bm_time=0.2
  bm_filter='-.*/1000000'   # quick: sizes up to 10^5 (the full run adds 10^6)
fi

if [ -x "$bin/stress/rcukit-skiplist-test" ]; then
  step "skiplist_test replica: ${sl_args[*]}"
  "$bin/stress/rcukit-skiplist-test" "${sl_args[@]}" --format json >"$raw/skiplist_test.json"
fi
if [ -x "$bin/stress/rcukit-iommu-sim" ]; then
  allocs=off,rbtree,rbtree-augmented,skiplist,magazine+rbtree,magazine+skiplist
  sim() { "$bin/stress/rcukit-iommu-sim" --iodepth 10 --io-size 20M --allocator "$allocs" --format json "$@"; }
  for run in random:write random:read stream:write; do
    pattern=${run%%:*}; rw=${run##*:}
    step "IOMMU model: $pattern $rw, threads $io_threads x iodepth 10 x 20M in 512 KiB requests," \
      "${io_secs}s device + ${cap_secs}s capacity per allocator"
    sim --threads "$io_threads" --pattern "$pattern" --rw "$rw" --seconds "$io_secs" \
      --capacity-seconds "$cap_secs" >"$raw/iommu-$pattern-$rw.json"
  done
  # Page-sized requests, as a driver that maps every page on its own: the
  # sizes the per-core magazines cache (requests above 32 pages bypass them).
  step "IOMMU model: random write, 16 threads, 4 KiB requests (per-page mapping)"
  sim --threads 16 --segment-kb 4 --pattern random --rw write --seconds "$io_secs" \
    --capacity-seconds "$cap_secs" >"$raw/iommu-random-write-4k.json"
  if [ "$size" = quick ]; then
    step "IOMMU allocator capacity versus threads 1,2,4,8,16 (random write, no device)"
    sim --threads 1,2,4,8,16 --measure capacity --pattern random --rw write --capacity-seconds "$cap_secs" \
      >"$raw/iommuscale-random-write.json"
  fi
fi
for b in "$bin"/bench/*/bench_* "$bin"/bench/*/*_bench; do
  [ -x "$b" ] && [ -f "$b" ] || continue
  name=$(basename "$b"); name=${name#bench_}; name=${name%_bench}; name=${name//_/-}
  step "benchmark $name (min time ${bm_time}s per case)"
  "$b" --benchmark_min_time="$bm_time" --benchmark_filter="$bm_filter" --benchmark_format=json --benchmark_out="$raw/bench-$name.json" \
    --benchmark_out_format=json >/dev/null
done

step "report"
python3 scripts/report.py "$raw" "bench/results/$stamp"
echo
echo "=== summary ($(( $(date +%s) - start ))s)"
python3 - "$root/bench/results/$stamp.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
v = r.get("verdict", [])
print("verdict: %d targets hold, %d missed (figure: article -> ours)" % (
    sum(1 for x in v if x["holds"] is True), sum(1 for x in v if x["holds"] is False)))
for x in v:
    mark = {True: "holds ", False: "MISSED", None: "      "}[x["holds"]]
    print("  %s %s: %s -> %s" % (mark, x["figure"], x["article_text"], x["ours_text"]))
PY
echo "full report: bench/results/$stamp.md"
