#!/usr/bin/env bash
# The main job (README: first command): the whole comparison at a quick size.
#   scripts/main.sh          quick size, a few minutes on 2 cores
#   scripts/main.sh --full   the article's sizes, for real multicore machines
# Builds the release preset, runs the skiplist_test replica, the IOMMU model
# (random write, random read, streaming write) and the peer benchmarks,
# then writes bench/results/<date>-<host>.json, a markdown report with tables
# and SVG plots beside it, and prints a short summary.
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
  sl_args=(--items 1000000 --rounds 100000 --threads 1,2,4,8,16)
  io_secs=10
  bm_time=1.0
  bm_filter=.
else
  sl_args=(--items 100000 --rounds 20000 --threads 1,2,8)
  io_secs=3
  bm_time=0.2
  bm_filter='-.*/1000000'   # quick: sizes up to 10^5 (the full run adds 10^6)
fi

if [ -x "$bin/stress/rcukit-skiplist-test" ]; then
  step "skiplist_test replica: ${sl_args[*]}"
  "$bin/stress/rcukit-skiplist-test" "${sl_args[@]}" --format json >"$raw/skiplist_test.json"
fi
if [ -x "$bin/stress/rcukit-iommu-sim" ]; then
  allocs=off,rbtree,rbtree-augmented,skiplist,magazine+rbtree,magazine+skiplist
  for run in random:write random:read stream:write; do
    pattern=${run%%:*}; rw=${run##*:}
    step "IOMMU model: $pattern $rw, 16 threads x iodepth 10 x 20M, ${io_secs}s per allocator"
    "$bin/stress/rcukit-iommu-sim" --threads 16 --iodepth 10 --io-size 20M --pattern "$pattern" --rw "$rw" \
      --allocator "$allocs" --seconds "$io_secs" --format json >"$raw/iommu-$pattern-$rw.json"
  done
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
for t in r["iommu"]:
    print(t["title"])
    for row in t["rows"]:
        print("  %-26s %7s MB/s  %6s%% of off" % (row["allocator"], row["mbps"], row["pct_of_off"]))
sl = r.get("skiplist_test")
if sl:
    by = {(x["structure"], x["threads"]): x for x in sl["rows"]}
    for (s, th), x in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if s == "skiplist" and ("rbtree", th) in by:
            b = by[("rbtree", th)]
            print("  skiplist_test %2d threads: avg thread time skiplist %.3fs vs rbtree %.3fs (%.2fx)"
                  % (th, x["avg_thread_s"], b["avg_thread_s"], b["avg_thread_s"] / max(x["avg_thread_s"], 1e-9)))
PY
echo "full report: bench/results/$stamp.md"
