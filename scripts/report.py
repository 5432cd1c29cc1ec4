#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Turns the main job's raw outputs into one results JSON, a markdown report
that opens with a verdict table (each figure the 2013 article published and
each project target, ours beside it with its spread, and a state checked
against the inputs: scripts/verdict.py), then the details with tables and
SVG plots drawn by gnuplot.

Usage: report.py <raw-dir> <out-stem>
  <raw-dir>   holds skiplist_test.json, iommu-*.json (device runs) and
              iommucap-*.json (capacity runs), harness tables as printed by
              --format json, and bench-*.json (Google Benchmark
              --benchmark_format=json)
  <out-stem>  writes <out-stem>.json, <out-stem>.md and <out-stem>-*.svg
Exit status: 0; 3 when any verdict row is inconsistent (the files are
written first); 1 on unreadable input.
"""
import glob
import json
import os
import platform
import shutil
import subprocess
import statistics
import sys
from datetime import datetime, timezone

import verdict as V


def load(path):
    with open(path) as f:
        return json.load(f)


def tagged(raw, prefix):
    """(tag, table) for each <raw>/<prefix>-<tag>.json, in name order."""
    for p in sorted(glob.glob(os.path.join(raw, prefix + "-*.json"))):
        yield os.path.basename(p)[len(prefix) + 1:-len(".json")], load(p)


def md_table(columns, rows):
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


num = V.num


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


def stat3(v):
    """(median, min, max) of a list of repeats, or of one value; None if empty."""
    vals = [x for x in (v if isinstance(v, list) else [num(v)]) if x is not None]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)


def write_series(f, label, series, logy=False):
    """One data line: label, then median, min, max per series (NaN if absent)."""
    cells = []
    for _, v in series:
        s = stat3(v)
        if s is None or (logy and s[1] <= 0):
            cells += ["NaN"] * 3
        else:
            cells += [repr(x) for x in s]
    f.write("%s %s\n" % (label, " ".join(cells)))


def gnuplot_bars(svg, title, ylabel, labels, series, logscale=False):
    """series: list of (name, [values aligned with labels]); a value is one
    figure or a list of repeats (drawn as its median with a min-max bar)."""
    if not shutil.which("gnuplot") or not labels or not series:
        return False
    data = svg + ".dat"
    with open(data, "w") as f:
        for i, lab in enumerate(labels):
            write_series(f, '"%s"' % lab, [(n, v[i]) for n, v in series], logscale)
    cols = " , ".join("%s using %d:%d:%d:xtic(1) title %s" % (gp_quote(data), 3 * i + 2, 3 * i + 3, 3 * i + 4,
                                                             gp_quote(name)) for i, (name, _) in enumerate(series))
    ok = run_gnuplot(svg, [
        "set title %s" % gp_quote(title),
        "set ylabel %s" % gp_quote(ylabel),
        "set style data histogram",
        "set style histogram errorbars gap 1 lw 1",
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
    """series: list of (name, [values aligned with xs]); one line per series
    through the medians, with min-max bars when a value is a list of repeats."""
    if not shutil.which("gnuplot") or not xs or not series:
        return False
    data = svg + ".dat"
    with open(data, "w") as f:
        for i, x in enumerate(xs):
            write_series(f, str(x), [(n, v[i]) for n, v in series], logy)
    plots = " , ".join("%s using 1:%d:%d:%d with yerrorlines lw 2 pt 7 title %s" % (
        gp_quote(data), 3 * i + 2, 3 * i + 3, 3 * i + 4, gp_quote(name)) for i, (name, _) in enumerate(series))
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


def with_range(r, key, fmt="%.0f"):
    """A cell as "median [min-max]" over the row's repeats ("-" if absent)."""
    s = stat3(V.runs(r, key))
    if s is None:
        return "-"
    return fmt % s[0] if s[1] == s[2] else "%s [%s-%s]" % (fmt % s[0], fmt % s[1], fmt % s[2])


IOMMU_NOTE = ("MB/s and % of off come from the device model (median [min-max] over the repeats; % of off pairs each "
              "repeat with the `off` run of the same repeat); CPU s/GB is the allocator's CPU time (thread CPU clock "
              "around the allocations and the frees) per GB mapped plus per GB unmapped, and CPU % the share of one "
              "CPU that makes at the measured throughput; capacity is MB/s of IO the allocator maps and unmaps with no "
              "device in the way (same submitters, IOs and completion order).")


def iommu_details(stem, name, t):
    rows = t["rows"]
    md = ["## IOMMU model: %s" % name, "", t["title"], "", IOMMU_NOTE, ""]
    off_runs = {int(r["threads"]): V.runs(r, "mbps") for r in rows if r["allocator"] == "off"}
    table_rows = []
    for r in rows:
        th = int(r["threads"])
        pct = V.paired(V.runs(r, "mbps"), off_runs.get(th, []), lambda a, o: 100.0 * a / o if o else float("nan"))
        cpu, mbps = num(r.get("cpu_s_per_gb")), num(r.get("mbps"))
        share = "%.2f" % (100.0 * cpu * mbps / 1000.0) if cpu is not None and mbps is not None else "-"
        table_rows.append([r["allocator"], r["threads"], with_range(r, "mbps"),
                           with_range({"p_runs": " ".join(repr(x) for x in pct)}, "p", "%.1f") if pct else "-",
                           r.get("cpu_s_per_gb", "-"), share, with_range(r, "capacity_mbps"),
                           r.get("above_4g_pct", "-")])
    md.append(md_table(["Allocator", "Threads", "MB/s", "% of off", "CPU s/GB", "CPU %", "Capacity MB/s",
                        "% above 4 GiB"], table_rows))
    threads = sorted({int(r["threads"]) for r in rows})
    top = threads[-1]
    at = [r for r in rows if int(r["threads"]) == top]
    svg = "%s-iommu-%s.svg" % (stem, name)
    series = [("this run", [V.paired(V.runs(r, "mbps"), off_runs.get(top, []),
                                     lambda a, o: 100.0 * a / o if o else float("nan")) or None for r in at])]
    art = V.ARTICLE_IOMMU.get(name)
    if art and top == 16:
        series.append(("2013 article", [100.0 * art[r["allocator"]] / art["off"] if r["allocator"] in art else None
                                        for r in at]))
    if gnuplot_bars(svg, "IOMMU model %s, %d threads: %% of IOMMU-off throughput" % (name, top), "% of off",
                    [r["allocator"] for r in at], series):
        md += ["", "![IOMMU %s](%s)" % (name, os.path.basename(svg))]
    at_cap = [r for r in at if r["allocator"] != "off" and V.runs(r, "capacity_mbps")]
    svg = "%s-iommu-%s-capacity.svg" % (stem, name)
    if at_cap and gnuplot_bars(svg, "IOMMU model %s, %d threads: allocator capacity (GB/s of IO mapped and "
                               "unmapped, no device), log scale" % (name, top), "GB/s", [r["allocator"] for r in at_cap],
                               [("capacity", [[x / 1000.0 for x in V.runs(r, "capacity_mbps")] for r in at_cap])],
                               logscale=True):
        md += ["", "![IOMMU %s capacity](%s)" % (name, os.path.basename(svg))]
    md.append("")
    return md


def rtt_cell(rows):
    """The line round trips of every run at one thread count, median [min-max]."""
    vals = [v for r in rows for v in V.runs(r, "line_rtt_ns") if v > 0]
    if not vals:
        return "-"
    return with_range({"x_runs": " ".join(repr(v) for v in vals)}, "x")


def capacity_details(stem, t, tag):
    """Capacity versus threads: median [min-max] per allocator and thread count."""
    rows = [r for r in t["rows"] if V.runs(r, "capacity_mbps")]
    threads = sorted({int(r["threads"]) for r in rows})
    allocs = []
    for r in rows:
        if r["allocator"] != "off" and r["allocator"] not in allocs:
            allocs.append(r["allocator"])
    by = {(r["allocator"], int(r["threads"])): r for r in rows}
    md = ["## IOMMU allocator capacity versus threads (%s)" % tag, "", t["title"], "",
          "MB/s of IO mapped and unmapped with no device in the way, median [min-max] over the repeats (interleaved: "
          "each repeat runs every allocator in turn). Submitters beyond the machine's CPUs are multiplexed onto one "
          "worker thread per CPU (stress/README.md), so on a 2-CPU machine counts above 2 add IOs in flight, not "
          "parallelism; run `scripts/main.sh --full` on a larger machine for the real curve. `off` (no allocator: the "
          "harness's own ceiling) is left out.", "",
          md_table(["Allocator"] + ["%d thr" % th for th in threads],
                   [[a] + [with_range(by.get((a, th)), "capacity_mbps") for th in threads] for a in allocs] +
                   [["*line round trip between the workers' CPUs, ns*"] +
                    [rtt_cell([by.get((a, th)) for a in allocs]) for th in threads]]), "",
          "The last row is the time a cache line takes between the two workers' CPUs and back, measured before and "
          "after each run (the slower kept): on a VM it is where the hypervisor runs the two vCPUs (about 60 ns on "
          "one core's hyperthreads, about 300 ns apart, changing within seconds), and every allocator's capacity at "
          "2 or more workers follows it (stress/README.md). A range that spans both states spans both capacities."]
    svg = "%s-iommu-capacity-threads-%s.svg" % (stem, tag)
    if gnuplot_lines(svg, "IOMMU allocator capacity versus threads, %s (no device), log scale" % tag, "threads",
                     "GB/s of IO mapped and unmapped", threads,
                     [(a, [[x / 1000.0 for x in V.runs(by.get((a, th)), "capacity_mbps")] or None for th in threads])
                      for a in allocs], logx=True, logy=True):
        md += ["", "![IOMMU capacity versus threads](%s)" % os.path.basename(svg)]
    md.append("")
    return md


def skiplist_test_details(stem, t, tag=""):
    rows = t["rows"]
    md = ["## skiplist_test replica%s" % (": " + tag if tag else ""), "", t["title"], "",
          "Phase times are medians [min-max] over the repeats (each repeat runs every structure in turn)."]
    md.append(md_table(["ADT", "Threads", "Fill ms", "Check ms", "Delete ms", "Avg thread time s"],
                       [[r["structure"], r["threads"], with_range(r, "fill_ms", "%.1f"), with_range(r, "check_ms", "%.1f"),
                         with_range(r, "delete_ms", "%.1f"), with_range(r, "avg_thread_s", "%.3f")] for r in rows]))
    by = {(r["structure"], int(r["threads"])): r for r in rows}
    structures = []
    for r in rows:
        if r["structure"] not in structures:
            structures.append(r["structure"])
    threads = sorted({th for (_, th) in by})
    svg = "%s-skiplist-test%s.svg" % (stem, "-" + tag if tag else "")
    if gnuplot_bars(svg, "skiplist_test%s: avg thread time (s), lower is better" % (" (" + tag + ")" if tag else ""),
                    "seconds",
                    [threads_label(th) for th in threads],
                    [(s, [V.runs(by.get((s, th)), "avg_thread_s") or None for th in threads]) for s in structures]):
        md += ["", "![skiplist_test avg thread time](%s)" % os.path.basename(svg)]
    md.append("")
    return md


def benchmark_details(stem, name, b):
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
    md = ["## Benchmarks: %s" % name, "",
          md_table(["Benchmark", "items/s", "real time", "paired ratio: median [min-max]"], rows), ""]
    if name in ("peers-mixed", "peers-maple"):
        # throughput by structure and threads for each workload
        for workload in ("mixed_80r_10i_10e", "read_insert_90r_10i"):
            series, threads = {}, set()
            for bm in b.get("benchmarks", []):
                n = bm["name"]
                if not n.startswith(workload + "/") or bm.get("error_occurred") or bm.get("run_type") == "aggregate":
                    continue
                parts = n.split("/")
                th = int([x for x in parts if x.startswith("threads:")][0].split(":")[1])
                threads.add(th)
                series.setdefault(parts[1], {}).setdefault(th, []).append(bm.get("items_per_second", 0) / 1e6)
            threads = sorted(threads)
            svg = "%s-peers-%s.svg" % (stem, workload)
            if series and gnuplot_bars(svg, "%s: Mops/s, higher is better" % workload, "Mops/s",
                                       [threads_label(t) for t in threads],
                                       [(s, [v.get(t) for t in threads]) for s, v in sorted(series.items())]):
                md += ["![%s](%s)" % (workload, os.path.basename(svg)), ""]
    return md


def verdict_md(result):
    v = result["verdict"]
    n = V.summary(v)
    text = ("Each figure the 2013 article published (LWN \"Skiplists II\"; per-core caching: Peleg et al. 2015) and "
            "each project target, ours from this run (the median over its repeats) with the repeats' range, ours ÷ "
            "article, and the state: **holds** when every repeat meets the target, **missed** when none does, "
            "**within noise** when the range straddles it, **inconsistent** when the inputs contradict each other or "
            "the model's bounds (never a success; the main job exits non-zero). %d hold, %d missed, %d within noise, "
            "%d inconsistent, %d without a target. skiplist_test figures are speed-ups (rbtree time ÷ skiplist "
            "time), because the quick size runs fewer rounds than the article's 100,000; IOMMU figures are %% of "
            "IOMMU-off throughput in the device model. On a 2-CPU machine, submitters beyond 2 are multiplexed onto "
            "two workers (stress/README.md)." % (n[V.HOLDS], n[V.MISSED], n[V.NOISE], n[V.INCONSISTENT],
                                                 n[V.NO_TARGET]))
    marks = {V.HOLDS: "**holds**", V.MISSED: "**missed**", V.NOISE: "within noise",
             V.INCONSISTENT: "**INCONSISTENT**", V.NO_TARGET: "—"}
    table = md_table(["Figure", "Article", "Ours", "Spread", "Ours ÷ article", "Target", "State", "Why"],
                     [[r["figure"], r["article_text"], r["ours_text"], r["spread_text"],
                       "%.2f" % r["ratio"] if r["ratio"] is not None else "—", r["target"], marks[r["state"]],
                       r["note"]] for r in v]) if v else "(no replica output in this run)"
    return ["## Verdict", "", text, "", table, "",
            "What to read first: the rows marked **INCONSISTENT** (the run itself is not trustworthy), then **missed**, "
            "then each IOMMU run's capacity column below (where the allocators differ when the device is the "
            "bottleneck), then stress/README.md for why the model does or does not collapse.", ""]


def main():
    raw, stem = sys.argv[1], sys.argv[2]
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "command": os.environ.get("RCUKIT_MAIN_COMMAND", ""),
        "commit": os.environ.get("RCUKIT_MAIN_COMMIT", ""),
        "verdict": [],
        "skiplist_test": None,
        "iommu": [],
        "iommu_capacity": [],
        "benchmarks": {},
    }
    details = []

    p = os.path.join(raw, "skiplist_test.json")
    if os.path.exists(p):
        t = load(p)
        result["skiplist_test"] = t
        result["verdict"] += V.skiplist_test_rows(t)
        details += skiplist_test_details(stem, t)
    # Further replica runs (the maple tree's, GPL-2.0 binaries): details only.
    for tag, t in tagged(raw, "skiplist_test"):
        result.setdefault("skiplist_test_more", {})[tag] = t
        details += skiplist_test_details(stem, t, tag)

    runs = {}
    for tag, t in tagged(raw, "iommu"):
        t["name"] = tag
        runs[tag] = t
        result["iommu"].append(t)
    if runs:
        result["verdict"] += V.iommu_rows(runs)
        result["verdict"] += V.magazine_device_rows(runs.get("random-write-4k"))
    for name, t in runs.items():
        details += iommu_details(stem, name, t)

    # Capacity runs without a device: iommucap-<tag>.json.
    caps = {}
    for tag, t in tagged(raw, "iommucap"):
        t["name"] = tag
        caps[tag] = t
        result["iommu_capacity"].append(t)
        details += capacity_details(stem, t, tag)
    result["verdict"] += V.magazine_capacity_rows(caps.get("4k"), "4 KiB requests (cached sizes)", "≥ 2x",
                                                  lambda v: v >= 2.0)
    result["verdict"] += V.magazine_capacity_rows(caps.get("512k"), "512 KiB requests (above the cached sizes)",
                                                  "≥ 0.95x", lambda v: v >= 0.95)

    for p in sorted(glob.glob(os.path.join(raw, "bench-*.json"))):
        name = os.path.basename(p)[len("bench-"):-len(".json")]
        try:
            b = load(p)
        except json.JSONDecodeError:
            details += ["## %s" % name, "", "(benchmark output unreadable)", ""]
            continue
        result["benchmarks"][name] = b
        details += benchmark_details(stem, name, b)

    md = ["# rcukit comparison report", "",
          "Date %s, host `%s`, %d CPUs (%s), commit %s. Command: `%s`." % (
              result["date"], result["host"], result["machine"]["cpus"], result["machine"]["platform"],
              result["commit"] or "(unknown)", result["command"]), ""]
    md += verdict_md(result)
    md += details

    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1)
    with open(stem + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    print("report: wrote %s.json and %s.md" % (stem, stem))
    bad = V.summary(result["verdict"])[V.INCONSISTENT]
    if bad:
        sys.stderr.write("report: %d verdict row%s inconsistent: the run's figures contradict each other or the "
                         "model's bounds (see the Verdict)\n" % (bad, "" if bad == 1 else "s"))
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
