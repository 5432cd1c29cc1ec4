#!/usr/bin/env python3
"""Turns the main job's raw outputs into one results JSON, a markdown report
with tables, and SVG plots drawn by gnuplot.

Usage: report.py <raw-dir> <out-stem>
  <raw-dir>   holds skiplist_test.json, iommu-*.json (harness tables, as
              printed by --format json) and bench-*.json (Google Benchmark
              --benchmark_format=json)
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


def load(path):
    with open(path) as f:
        return json.load(f)


def md_table(columns, rows):
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


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
                x = v[i]
                vals.append("NaN" if x is None else repr(float(x)))
            f.write('"%s" %s\n' % (lab, " ".join(vals)))
    cols = " , ".join(
        "'%s' using %d:xtic(1) title columnheader(%d)" % (data, i + 2, i + 2) for i in range(len(series)))
    script = "\n".join([
        "set terminal svg size 900,480 dynamic background rgb 'white'",
        "set output '%s'" % svg,
        "set title '%s'" % title.replace("'", ""),
        "set ylabel '%s'" % ylabel,
        "set style data histogram",
        "set style histogram clustered gap 1",
        "set style fill solid 0.8 border -1",
        "set key outside right top",
        "set grid ytics",
        "set xtics rotate by -20",
        "set logscale y" if logscale else "set yrange [0:*]",
        "plot " + cols,
    ])
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    os.remove(data)
    if r.returncode != 0:
        sys.stderr.write("report: gnuplot failed: %s\n" % r.stderr)
        return False
    return True


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


def main():
    raw, stem = sys.argv[1], sys.argv[2]
    base = os.path.basename(stem)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "command": os.environ.get("RCUKIT_MAIN_COMMAND", ""),
        "skiplist_test": None,
        "iommu": [],
        "benchmarks": {},
    }
    md = ["# rcukit comparison report", "",
          "Date %s, host `%s`, %d CPUs (%s). Command: `%s`." % (
              result["date"], result["host"], result["machine"]["cpus"], result["machine"]["platform"],
              result["command"]), "",
          "All ratios below come from one run on this machine; a 2-core machine oversubscribed at 8+ "
          "threads is noisy, so read differences under ~10% as noise.", ""]

    # --- skiplist_test --------------------------------------------------------
    p = os.path.join(raw, "skiplist_test.json")
    if os.path.exists(p):
        t = load(p)
        result["skiplist_test"] = t
        rows = t["rows"]
        md += ["## skiplist_test replica", "", t["title"], ""]
        md.append(md_table(["ADT", "Threads", "Fill ms", "Check ms", "Delete ms", "Avg thread time s"],
                           [[r["structure"], r["threads"], r["fill_ms"], r["check_ms"], r["delete_ms"],
                             r["avg_thread_s"]] for r in rows]))
        # skiplist / rbtree ratios per thread count
        by = {(r["structure"], r["threads"]): r for r in rows}
        ratio_rows = []
        for (s, th), r in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            if s != "skiplist" or ("rbtree", th) not in by:
                continue
            b = by[("rbtree", th)]
            ratio_rows.append([th] + ["%.2fx" % (b[k] / r[k]) if r[k] else "n/a"
                                      for k in ("fill_ms", "check_ms", "delete_ms", "avg_thread_s")])
        if ratio_rows:
            md += ["", "Speed-up of the skiplist over the 2013 rbtree baseline (rbtree time / skiplist time; "
                   ">1 means the skiplist is faster):", "",
                   md_table(["Threads", "Fill", "Check", "Delete", "Avg thread time"], ratio_rows)]
        structures = sorted({r["structure"] for r in rows})
        threads = sorted({r["threads"] for r in rows})
        svg = stem + "-skiplist-test.svg"
        if gnuplot_bars(svg, "skiplist_test: avg thread time (s), lower is better", "seconds",
                        ["%d threads" % th for th in threads],
                        [(s, [by.get((s, th), {}).get("avg_thread_s") for th in threads]) for s in structures]):
            md += ["", "![skiplist_test avg thread time](%s)" % os.path.basename(svg)]
        md.append("")

    # --- IOMMU ------------------------------------------------------------------
    for p in sorted(glob.glob(os.path.join(raw, "iommu-*.json"))):
        t = load(p)
        result["iommu"].append(t)
        rows = t["rows"]
        name = os.path.basename(p)[len("iommu-"):-len(".json")]
        md += ["## IOMMU model: %s" % name, "", t["title"], "",
               md_table(["Allocator", "MB/s", "% of off"], [[r["allocator"], r["mbps"], r["pct_of_off"]]
                                                             for r in rows])]
        svg = "%s-iommu-%s.svg" % (stem, name)
        if gnuplot_bars(svg, "IOMMU model %s: %% of IOMMU-off throughput" % name, "% of off",
                        [r["allocator"] for r in rows], [("% of off", [r["pct_of_off"] for r in rows])]):
            md += ["", "![IOMMU %s](%s)" % (name, os.path.basename(svg))]
        md.append("")

    # --- Google Benchmark outputs ------------------------------------------------
    for p in sorted(glob.glob(os.path.join(raw, "bench-*.json"))):
        name = os.path.basename(p)[len("bench-"):-len(".json")]
        try:
            b = load(p)
        except json.JSONDecodeError:
            md += ["## %s" % name, "", "(benchmark output unreadable)", ""]
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
        md += ["## Benchmarks: %s" % name, "",
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
                            ["%d threads" % t for t in threads],
                            [(s, [v.get(t) for t in threads]) for s, v in sorted(series.items())]):
                md += ["![mixed workload](%s)" % os.path.basename(svg), ""]

    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1)
    with open(stem + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    print("report: wrote %s.json and %s.md" % (stem, stem))


if __name__ == "__main__":
    main()
