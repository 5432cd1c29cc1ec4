#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Turns the main job's raw outputs into one results JSON, a markdown report
that opens with a verdict table (each figure the 2013 article published, ours
beside it, and whether the project's target holds), then the details with
tables and SVG plots drawn by gnuplot.

Usage: report.py <raw-dir> <out-stem>
  <raw-dir>   holds skiplist_test.json, iommu-*.json and iommuscale-*.json
              (harness tables, as printed by --format json) and bench-*.json
              (Google Benchmark --benchmark_format=json)
  <out-stem>  writes <out-stem>.json, <out-stem>.md and <out-stem>-*.svg
"""
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone

# --- what the article published -------------------------------------------------
# LWN "Skiplists II" (June 2013), skiplist_test module, 100,000 items,
# 100,000 rounds: (fill ms, check ms, delete ms, avg thread time s).
ARTICLE_SKIPLIST_TEST = {
    ("rbtree", 1): (37, 9, 12, 0.752),
    ("skiplist", 1): (18, 15, 23, 2.615),
    ("rbtree", 2): (36, 8, 12, 2.766),
    ("skiplist", 2): (19, 19, 27, 2.713),
    ("rbtree", 4): (36, 11, 10, 6.660),
    ("skiplist", 4): (23, 24, 21, 3.161),
}
PHASES = (("fill_ms", "fill"), ("check_ms", "check"), ("delete_ms", "delete"), ("avg_thread_s", "avg thread time"))
# The IOMMU comparison, 16 threads, iodepth 10, 20 MB IOs: MB/s.
ARTICLE_IOMMU = {
    "random-write": {"off": 2548, "skiplist": 1649, "rbtree": 33},
    "random-read": {"off": 2861, "skiplist": 2484, "rbtree": 99},
    "stream-write": {"off": 2575, "skiplist": 1715, "rbtree": 1659},
}
# Per-core IOVA caching (Peleg et al., USENIX ATC 2015; Linux 4.7):
# 88.5-100% of the no-IOMMU throughput.
ARTICLE_MAGAZINES = "88.5-100%"


def load(path):
    with open(path) as f:
        return json.load(f)


def md_table(columns, rows):
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def num(x):
    """A harness cell as a float, or None for '-' and missing cells."""
    if x is None or isinstance(x, str):
        try:
            return float(x)
        except (TypeError, ValueError):
            return None
    return float(x)


def gp_quote(s):
    """A gnuplot single-quoted string (titles are drawn noenhanced, so '_'
    and '^' print as themselves)."""
    return "'" + str(s).replace("'", "''") + "'"


def run_gnuplot(svg, lines):
    script = "\n".join([
        # noenhanced: enhanced text would turn "skiplist_test" into a
        # subscript and garble legend names such as "magazine+rbtree".
        "set terminal svg size 900,480 dynamic background rgb 'white' noenhanced",
        "set output %s" % gp_quote(svg),
    ] + lines)
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        sys.stderr.write("report: gnuplot failed: %s\n" % r.stderr)
        return False
    return True


def threads_label(th):
    return "%d thread%s" % (th, "" if th == 1 else "s")


def gnuplot_bars(svg, title, ylabel, labels, series, logscale=False):
    """series: list of (name, [values aligned with labels]); clustered bars."""
    if not shutil.which("gnuplot") or not labels or not series:
        return False
    data = svg + ".dat"
    with open(data, "w") as f:
        f.write("label " + " ".join('"%s"' % s for s, _ in series) + "\n")
        for i, lab in enumerate(labels):
            vals = []
            for _, v in series:
                x = num(v[i])
                vals.append("NaN" if x is None else repr(x))
            f.write('"%s" %s\n' % (lab, " ".join(vals)))
    cols = " , ".join(
        "%s using %d:xtic(1) title columnheader(%d)" % (gp_quote(data), i + 2, i + 2) for i in range(len(series)))
    ok = run_gnuplot(svg, [
        "set title %s" % gp_quote(title),
        "set ylabel %s" % gp_quote(ylabel),
        "set style data histogram",
        "set style histogram clustered gap 1",
        "set style fill solid 0.8 border -1",
        "set key outside right top",
        "set grid ytics",
        "set xtics rotate by -20",
        "set logscale y" if logscale else "set yrange [0:*]",
        "set format y '%g'",
        "unset key" if len(series) == 1 else "",
        "plot " + cols,
    ])
    os.remove(data)
    return ok


def gnuplot_lines(svg, title, xlabel, ylabel, xs, series, logx=False, logy=False):
    """series: list of (name, [values aligned with xs]); one line per series."""
    if not shutil.which("gnuplot") or not xs or not series:
        return False
    data = svg + ".dat"
    with open(data, "w") as f:
        for i, x in enumerate(xs):
            vals = []
            for _, v in series:
                y = num(v[i])
                vals.append("NaN" if y is None or (logy and y <= 0) else repr(y))
            f.write("%s %s\n" % (x, " ".join(vals)))
    plots = " , ".join("%s using 1:%d with linespoints lw 2 pt 7 title %s" % (gp_quote(data), i + 2, gp_quote(name))
                       for i, (name, _) in enumerate(series))
    ok = run_gnuplot(svg, [
        "set title %s" % gp_quote(title),
        "set xlabel %s" % gp_quote(xlabel),
        "set ylabel %s" % gp_quote(ylabel),
        "set key outside right top",
        "set grid xtics ytics",
        "set logscale x 2" if logx else "",
        "set xrange [%s:%s]" % ((xs[0] / 1.3, xs[-1] * 1.3) if logx else (xs[0], xs[-1])),
        "set xtics (%s)" % ", ".join('"%s" %s' % (x, x) for x in xs),
        "set logscale y" if logy else "set yrange [0:*]",
        "set format y '%g'",
        "plot " + plots,
    ])
    os.remove(data)
    return ok


def paired_figure(bm):
    """The <x>_median [<x>_min-<x>_max] counters of a paired benchmark
    (skiplist lookup_paired, judy readers_paired), whose real time is only
    the length of the run; empty for the others."""
    out = []
    for k in sorted(bm):
        if k.endswith("_median"):
            x = k[:-len("_median")]
            out.append("%s %.2f [%.2f-%.2f]" % (x, bm[k], bm.get(x + "_min", float("nan")),
                                                 bm.get(x + "_max", float("nan"))))
    return "; ".join(out)


def fmt_x(v):
    return "n/a" if v is None else ("%.2fx" % v)


def fmt_pct(v):
    return "n/a" if v is None else ("%.1f%%" % v)


def yes_no(ok):
    if ok is None:
        return "—"
    return "**yes**" if ok else "**no**"


# --- verdict rows ------------------------------------------------------------------
def verdict_skiplist_test(t):
    """Speed-ups rbtree time / skiplist time per phase and thread count."""
    rows = []
    by = {(r["structure"], r["threads"]): r for r in t["rows"]}
    threads = sorted({th for (s, th) in by if s == "skiplist" and ("rbtree", th) in by})
    for th in sorted(set(threads) | {th for (_, th) in ARTICLE_SKIPLIST_TEST}):
        for i, (key, label) in enumerate(PHASES):
            art = None
            if ("rbtree", th) in ARTICLE_SKIPLIST_TEST:
                a_rb, a_sl = ARTICLE_SKIPLIST_TEST[("rbtree", th)][i], ARTICLE_SKIPLIST_TEST[("skiplist", th)][i]
                art = a_rb / a_sl
            ours = None
            if th in threads and by[("skiplist", th)][key]:
                ours = by[("rbtree", th)][key] / by[("skiplist", th)][key]
            rows.append({
                "figure": "skiplist_test, %d thread%s, %s: rbtree ÷ skiplist time" % (th, "s" if th > 1 else "", label),
                "article": art, "ours": ours,
                "article_text": fmt_x(art) if art is not None else "— (not in the article)",
                "ours_text": fmt_x(ours) if ours is not None else "not run",
                "ratio": (ours / art) if (ours is not None and art) else None,
                "target": "> 1 (skiplist faster)",
                "holds": None if ours is None else ours > 1.0,
            })
    return rows


def iommu_rows_at(t, threads):
    return {r["allocator"]: r for r in t["rows"] if int(r["threads"]) == threads}


def verdict_iommu(runs):
    """runs: name -> table for the 16-thread device runs."""
    rows = []
    for name, art in ARTICLE_IOMMU.items():
        t = runs.get(name)
        at = iommu_rows_at(t, 16) if t else {}
        off = num(at.get("off", {}).get("mbps"))
        rows.append({
            "figure": "IOMMU %s, 16 threads: IOMMU off MB/s" % name.replace("-", " "),
            "article": art["off"], "ours": off, "article_text": "%d MB/s" % art["off"],
            "ours_text": "%.0f MB/s" % off if off is not None else "not run",
            "ratio": off / art["off"] if off is not None else None,
            "target": "the model's device rate", "holds": None,
        })
        for alloc in ("skiplist", "rbtree"):
            a_pct = 100.0 * art[alloc] / art["off"]
            ours = num(at.get(alloc, {}).get("pct_of_off"))
            target, holds = "(none set)", None
            if name == "random-write" and alloc == "skiplist":
                target, holds = "≥ 90% of off", (None if ours is None else ours >= 90.0)
            elif name in ("random-write", "random-read") and alloc == "rbtree":
                target, holds = "collapses, as in 2013 (< 10% of off)", (None if ours is None else ours < 10.0)
            rows.append({
                "figure": "IOMMU %s, 16 threads: %s %% of off" % (name.replace("-", " "), alloc),
                "article": a_pct, "ours": ours, "article_text": fmt_pct(a_pct), "ours_text": fmt_pct(ours),
                "ratio": (ours / a_pct) if ours is not None else None, "target": target, "holds": holds,
            })
        if name == "random-read":
            # "(100% system time)" for both: the allocators' CPU share.
            for alloc in ("skiplist", "rbtree"):
                r = at.get(alloc, {})
                cpu, mbps = num(r.get("cpu_s_per_gb")), num(r.get("mbps"))
                share = 100.0 * cpu * mbps / 1000.0 if cpu is not None and mbps is not None else None
                rows.append({
                    "figure": "IOMMU random read, 16 threads: %s allocator CPU" % alloc,
                    "article": None, "ours": share, "article_text": "100% system time",
                    "ours_text": ("%.2f%% of one CPU" % share) if share is not None else "not run",
                    "ratio": None, "target": "(none set)", "holds": None,
                })
        if name == "stream-write":
            pcts = [num(r.get("pct_of_off")) for a, r in at.items() if a != "off"]
            pcts = [p for p in pcts if p is not None]
            spread = (max(pcts) - min(pcts)) if pcts else None
            a_spread = 100.0 * (art["skiplist"] - art["rbtree"]) / art["off"]
            rows.append({
                "figure": "IOMMU stream write, 16 threads: spread between allocators (points of off)",
                "article": a_spread, "ours": spread, "article_text": "%.1f points" % a_spread,
                "ours_text": ("%.1f points" % spread) if spread is not None else "not run",
                "ratio": None, "target": "≤ 10 points", "holds": None if spread is None else spread <= 10.0,
            })
    return rows


def verdict_magazines(t4k):
    rows = []
    at = iommu_rows_at(t4k, 16) if t4k else {}
    for alloc in ("magazine+rbtree", "magazine+skiplist"):
        ours = num(at.get(alloc, {}).get("pct_of_off"))
        rows.append({
            "figure": "per-core IOVA caching (%s), random write in 4 KiB requests, 16 threads: %% of off" % alloc,
            "article": None, "ours": ours, "article_text": ARTICLE_MAGAZINES + " (Peleg et al. 2015)",
            "ours_text": fmt_pct(ours), "ratio": None, "target": "≥ 95% of off",
            "holds": None if ours is None else ours >= 95.0,
        })
    return rows


def main():
    raw, stem = sys.argv[1], sys.argv[2]
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "command": os.environ.get("RCUKIT_MAIN_COMMAND", ""),
        "verdict": [],
        "skiplist_test": None,
        "iommu": [],
        "iommu_scaling": [],
        "benchmarks": {},
    }
    details = []

    # --- skiplist_test --------------------------------------------------------
    p = os.path.join(raw, "skiplist_test.json")
    if os.path.exists(p):
        t = load(p)
        result["skiplist_test"] = t
        result["verdict"] += verdict_skiplist_test(t)
        rows = t["rows"]
        details += ["## skiplist_test replica", "", t["title"], ""]
        details.append(md_table(["ADT", "Threads", "Fill ms", "Check ms", "Delete ms", "Avg thread time s"],
                                [[r["structure"], r["threads"], r["fill_ms"], r["check_ms"], r["delete_ms"],
                                  r["avg_thread_s"]] for r in rows]))
        by = {(r["structure"], r["threads"]): r for r in rows}
        ratio_rows = []
        for (s, th), r in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            if s != "skiplist" or ("rbtree", th) not in by:
                continue
            b = by[("rbtree", th)]
            ratio_rows.append([th] + ["%.2fx" % (b[k] / r[k]) if r[k] else "n/a" for k, _ in PHASES])
        if ratio_rows:
            details += ["", "Speed-up of the skiplist over the 2013 rbtree baseline (rbtree time / skiplist time; "
                        ">1 means the skiplist is faster):", "",
                        md_table(["Threads", "Fill", "Check", "Delete", "Avg thread time"], ratio_rows)]
        structures = sorted({r["structure"] for r in rows})
        threads = sorted({r["threads"] for r in rows})
        svg = stem + "-skiplist-test.svg"
        if gnuplot_bars(svg, "skiplist_test: avg thread time (s), lower is better", "seconds",
                        [threads_label(th) for th in threads],
                        [(s, [by.get((s, th), {}).get("avg_thread_s") for th in threads]) for s in structures]):
            details += ["", "![skiplist_test avg thread time](%s)" % os.path.basename(svg)]
        details.append("")

    # --- IOMMU --------------------------------------------------------------------
    runs = {}
    for p in sorted(glob.glob(os.path.join(raw, "iommu-*.json"))):
        t = load(p)
        name = os.path.basename(p)[len("iommu-"):-len(".json")]
        t["name"] = name
        runs[name] = t
        result["iommu"].append(t)
    if runs:
        result["verdict"] += verdict_iommu(runs)
        result["verdict"] += verdict_magazines(runs.get("random-write-4k"))
    for name, t in runs.items():
        rows = t["rows"]
        details += ["## IOMMU model: %s" % name, "", t["title"], "",
                    "MB/s and % of off come from the device model; CPU s/GB is the allocator's CPU time (thread "
                    "CPU clock around the allocations and the frees) per GB mapped plus per GB unmapped, and "
                    "CPU % the share of one CPU that makes at the measured throughput; capacity is MB/s of IO "
                    "the allocator maps and unmaps with no device in the way (same threads, IOs and completion "
                    "order).", ""]
        table_rows = []
        for r in rows:
            cpu, mbps = num(r.get("cpu_s_per_gb")), num(r.get("mbps"))
            share = "%.2f" % (100.0 * cpu * mbps / 1000.0) if cpu is not None and mbps is not None else "-"
            table_rows.append([r["allocator"], r["threads"], r["mbps"], r["pct_of_off"], r.get("cpu_s_per_gb", "-"),
                               share, r.get("capacity_mbps", "-"), r.get("above_4g_pct", "-")])
        details.append(md_table(["Allocator", "Threads", "MB/s", "% of off", "CPU s/GB", "CPU %",
                                 "Capacity MB/s", "% above 4 GiB"], table_rows))
        threads = sorted({int(r["threads"]) for r in rows})
        top = threads[-1]
        at = [r for r in rows if int(r["threads"]) == top]
        svg = "%s-iommu-%s.svg" % (stem, name)
        series = [("this run", [r["pct_of_off"] for r in at])]
        art = ARTICLE_IOMMU.get(name)
        if art and top == 16:
            series.append(("2013 article", [100.0 * art[r["allocator"]] / art["off"] if r["allocator"] in art else None
                                            for r in at]))
        if gnuplot_bars(svg, "IOMMU model %s, %d threads: %% of IOMMU-off throughput" % (name, top), "% of off",
                        [r["allocator"] for r in at], series):
            details += ["", "![IOMMU %s](%s)" % (name, os.path.basename(svg))]
        at_cap = [r for r in at if r["allocator"] != "off" and num(r.get("capacity_mbps")) is not None]
        svg = "%s-iommu-%s-capacity.svg" % (stem, name)
        if at_cap and gnuplot_bars(svg, "IOMMU model %s, %d threads: allocator capacity (GB/s of IO mapped and "
                                   "unmapped, no device), log scale" % (name, top), "GB/s",
                                   [r["allocator"] for r in at_cap],
                                   [("capacity", [num(r["capacity_mbps"]) / 1000.0 for r in at_cap])],
                                   logscale=True):
            details += ["", "![IOMMU %s capacity](%s)" % (name, os.path.basename(svg))]
        details.append("")

    # Capacity versus threads: the scaling run, else any run with a thread list.
    scaling = [load(p) for p in sorted(glob.glob(os.path.join(raw, "iommuscale-*.json")))]
    if not scaling:
        scaling = [t for t in runs.values() if len({int(r["threads"]) for r in t["rows"]}) > 1]
    for t in scaling:
        result["iommu_scaling"].append(t)
        rows = [r for r in t["rows"] if num(r.get("capacity_mbps")) is not None]
        threads = sorted({int(r["threads"]) for r in rows})
        allocs = []
        for r in rows:
            if r["allocator"] != "off" and r["allocator"] not in allocs:
                allocs.append(r["allocator"])
        cap = {(r["allocator"], int(r["threads"])): r["capacity_mbps"] for r in rows}
        details += ["## IOMMU allocator capacity versus threads", "", t["title"], "",
                    "MB/s of IO mapped and unmapped with no device in the way. On a 2-CPU machine, counts above "
                    "2 time-slice the threads; run `scripts/main.sh --full` on a larger machine for the real "
                    "curve. `off` (no allocator: the harness's own ceiling) is left out.", "",
                    md_table(["Allocator"] + ["%d thr" % th for th in threads],
                             [[a] + [cap.get((a, th), "-") for th in threads] for a in allocs])]
        svg = stem + "-iommu-capacity-threads.svg"
        if gnuplot_lines(svg, "IOMMU allocator capacity versus threads (no device), log scale", "threads",
                         "GB/s of IO mapped and unmapped", threads,
                         [(a, [num(cap.get((a, th))) / 1000.0 if num(cap.get((a, th))) is not None else None
                               for th in threads]) for a in allocs], logx=True, logy=True):
            details += ["", "![IOMMU capacity versus threads](%s)" % os.path.basename(svg)]
        details.append("")

    # --- Google Benchmark outputs ------------------------------------------------
    for p in sorted(glob.glob(os.path.join(raw, "bench-*.json"))):
        name = os.path.basename(p)[len("bench-"):-len(".json")]
        try:
            b = load(p)
        except json.JSONDecodeError:
            details += ["## %s" % name, "", "(benchmark output unreadable)", ""]
            continue
        result["benchmarks"][name] = b
        rows = []
        for bm in b.get("benchmarks", []):
            if bm.get("run_type") == "aggregate":
                continue
            if bm.get("error_occurred"):
                msg = bm.get("error_message", "")
                rows.append([bm["name"], msg if msg.startswith("N/A") else "N/A: " + msg, "", ""])
                continue
            ips = bm.get("items_per_second")
            rows.append([bm["name"], "%.3g" % ips if ips else "",
                         "%.1f %s" % (bm.get("real_time", 0), bm.get("time_unit", "")), paired_figure(bm)])
        details += ["## Benchmarks: %s" % name, "",
                    md_table(["Benchmark", "items/s", "real time", "paired ratio: median [min-max]"], rows), ""]
        if name == "peers-mixed":
            # throughput by structure and threads for the mixed workload
            series, threads = {}, set()
            for bm in b.get("benchmarks", []):
                n = bm["name"]
                if not n.startswith("mixed_") or bm.get("error_occurred"):
                    continue
                parts = n.split("/")
                structure = parts[1]
                th = int([x for x in parts if x.startswith("threads:")][0].split(":")[1])
                threads.add(th)
                series.setdefault(structure, {})[th] = bm.get("items_per_second", 0) / 1e6
            threads = sorted(threads)
            svg = stem + "-peers-mixed.svg"
            if gnuplot_bars(svg, "mixed 80/10/10 workload: Mops/s, higher is better", "Mops/s",
                            [threads_label(t) for t in threads],
                            [(s, [v.get(t) for t in threads]) for s, v in sorted(series.items())]):
                details += ["![mixed workload](%s)" % os.path.basename(svg), ""]

    # --- the report: verdict first ------------------------------------------------------
    v = result["verdict"]
    held = sum(1 for r in v if r["holds"] is True)
    missed = sum(1 for r in v if r["holds"] is False)
    md = ["# rcukit comparison report", "",
          "Date %s, host `%s`, %d CPUs (%s). Command: `%s`." % (
              result["date"], result["host"], result["machine"]["cpus"], result["machine"]["platform"],
              result["command"]), "",
          "## Verdict", "",
          "Each figure the 2013 article published (LWN \"Skiplists II\"; per-core caching: Peleg et al. 2015), "
          "ours from this run in the same form, ours ÷ article, and whether the project's target holds "
          "(%d hold, %d missed, the rest have no target). skiplist_test figures are speed-ups (rbtree time ÷ "
          "skiplist time), because the quick size runs fewer rounds than the article's 100,000; IOMMU figures "
          "are %% of IOMMU-off throughput in the device model. On a 2-CPU machine thread counts above 2 are "
          "time-sliced: read differences under ~10%% as noise." % (held, missed), "",
          md_table(["Figure", "Article", "Ours", "Ours ÷ article", "Target", "Holds"],
                   [[r["figure"], r["article_text"], r["ours_text"],
                     "%.2f" % r["ratio"] if r["ratio"] is not None else "—", r["target"], yes_no(r["holds"])]
                    for r in v]) if v else "(no replica output in this run)", "",
          "What to read first: the rows marked **no**, then each IOMMU run's capacity column below (where the "
          "allocators differ when the device is the bottleneck), then stress/README.md for why the model does "
          "or does not collapse.", ""]
    md += details

    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1)
    with open(stem + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    print("report: wrote %s.json and %s.md" % (stem, stem))


if __name__ == "__main__":
    main()
