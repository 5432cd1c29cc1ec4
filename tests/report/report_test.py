#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""scripts/report.py's verdict on harness outputs that are consistent, and on
ones that contradict each other or the IOMMU model's bounds (the newcomer's
run of issue 25: IOMMU-off at 84 MB/s, every allocator at 2514-2593 MB/s,
"holds" at 3056% of off). Runs report.py as the main job does, in a
subprocess, and reads the JSON it writes.

Usage: report_test.py <path of scripts/report.py>
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

REPORT = None
DEVICE = {"random-write": 2575, "random-read": 2861, "stream-write": 2575, "random-write-4k": 2575}
ALLOCS = ("rbtree", "rbtree-augmented", "skiplist", "magazine+rbtree", "magazine+skiplist")


def iommu_table(off_runs, alloc_runs, device=2575, threads=16, capacity=None):
    """A harness table as rcukit-iommu-sim --format json prints it: off and
    each allocator with its per-repeat MB/s (alloc_runs: name -> list)."""
    rows = []
    for name, runs in [("off", off_runs)] + list(alloc_runs.items()):
        cap = (capacity or {}).get(name, [5e5] * len(runs))
        rows.append({
            "allocator": name, "pattern": "random", "rw": "write", "threads": threads, "workers": 2,
            "iodepth": 10, "runs": len(runs), "device_mbps": device, "mbps": sorted(runs)[len(runs) // 2],
            "mbps_range": "%d-%d" % (min(runs), max(runs)), "pct_of_off": "-", "cpu_s_per_gb": 0.001,
            "capacity_mbps": sorted(cap)[len(cap) // 2], "capacity_range": "-", "above_4g_pct": "0.0",
            "mbps_runs": " ".join(str(x) for x in runs), "capacity_mbps_runs": " ".join(str(x) for x in cap),
        })
    return {"title": "IOMMU model (test input)", "rows": rows}


def healthy(name="random-write", device=2575):
    return iommu_table([device, device - 2, device + 1], {a: [device - 5, device - 3, device] for a in ALLOCS},
                       device=device)


class ReportRun:
    """Writes the given raw files, runs report.py, loads its JSON."""

    def __init__(self, files):
        with tempfile.TemporaryDirectory() as tmp:
            self._run(files, tmp)

    def _run(self, files, tmp):
        raw = os.path.join(tmp, "raw")
        os.mkdir(raw)
        for name, content in files.items():
            with open(os.path.join(raw, name), "w") as f:
                json.dump(content, f)
        stem = os.path.join(tmp, "out")
        env = dict(os.environ, PATH="/nonexistent")  # no gnuplot: tables only
        self.proc = subprocess.run([sys.executable, REPORT, raw, stem], capture_output=True, text=True, env=env)
        self.result = None
        if os.path.exists(stem + ".json"):
            with open(stem + ".json") as f:
                self.result = json.load(f)
            with open(stem + ".md") as f:
                self.md = f.read()

    def rows(self, contains):
        return [r for r in self.result["verdict"] if contains in r["figure"]]

    def row(self, contains):
        found = self.rows(contains)
        assert len(found) == 1, "%d rows contain %r" % (len(found), contains)
        return found[0]


def all_device_runs(**override):
    files = {"iommu-%s.json" % n: healthy(n, d) for n, d in DEVICE.items()}
    files.update(override)
    return files


class Verdict(unittest.TestCase):
    def test_consistent_run_holds_and_exits_zero(self):
        run = ReportRun(all_device_runs())
        self.assertEqual(run.proc.returncode, 0, run.proc.stderr)
        row = run.row("IOMMU random write, 16 threads: skiplist % of off")
        self.assertEqual(row["state"], "holds")
        self.assertTrue(row["holds"])
        self.assertEqual(row["runs"], 3)
        self.assertIn("3 runs", row["spread_text"])
        self.assertEqual(run.row("IOMMU random write, 16 threads: IOMMU off MB/s")["state"], "holds")
        self.assertEqual([r for r in run.result["verdict"] if r["state"] == "inconsistent"], [])
        self.assertIn("| Spread |", run.md)

    def test_newcomer_run_is_inconsistent_never_holds(self):
        # Issue 25: off at 84 MB/s, every allocator at 2514-2593 MB/s.
        t = iommu_table([84, 84, 84], {a: [2514, 2560, 2593] for a in ALLOCS})
        run = ReportRun(all_device_runs(**{"iommu-random-write-4k.json": t}))
        self.assertEqual(run.proc.returncode, 3, run.proc.stderr)
        self.assertIn("inconsistent", run.proc.stderr)
        for alloc in ("magazine+rbtree", "magazine+skiplist"):
            row = run.row("per-core IOVA caching (%s)" % alloc)
            self.assertEqual(row["state"], "inconsistent")
            self.assertIsNone(row["holds"])
            self.assertIn("IOMMU-off", row["note"])
        self.assertIn("INCONSISTENT", run.md)

    def test_off_away_from_the_device_rate_is_inconsistent(self):
        t = iommu_table([84, 90, 2575], {a: [2514, 2560, 2593] for a in ALLOCS})
        run = ReportRun(all_device_runs(**{"iommu-random-write.json": t}))
        self.assertEqual(run.proc.returncode, 3)
        self.assertEqual(run.row("IOMMU random write, 16 threads: IOMMU off MB/s")["state"], "inconsistent")
        self.assertEqual(run.row("IOMMU random write, 16 threads: skiplist % of off")["state"], "inconsistent")
        self.assertEqual(run.row("IOMMU random write, 16 threads: rbtree % of off")["state"], "inconsistent")

    def test_above_off_beyond_noise_is_inconsistent(self):
        allocs = {a: [2570, 2572, 2575] for a in ALLOCS}
        allocs["skiplist"] = [2700, 2710, 2705]  # 105% of an off that varied by 0.1%
        t = iommu_table([2575, 2574, 2576], allocs)
        run = ReportRun(all_device_runs(**{"iommu-random-write.json": t}))
        self.assertEqual(run.proc.returncode, 3)
        row = run.row("IOMMU random write, 16 threads: skiplist % of off")
        self.assertEqual(row["state"], "inconsistent")
        self.assertIn("above 100%", row["note"])

    def test_above_off_within_noise_is_not_inconsistent(self):
        allocs = {a: [2570, 2572, 2575] for a in ALLOCS}
        allocs["skiplist"] = [2590, 2600, 2595]  # 100.6-101%: under the 2-point floor
        t = iommu_table([2575, 2574, 2576], allocs)
        run = ReportRun(all_device_runs(**{"iommu-random-write.json": t}))
        self.assertEqual(run.proc.returncode, 0, run.proc.stderr)
        self.assertEqual(run.row("IOMMU random write, 16 threads: skiplist % of off")["state"], "holds")

    def test_range_straddling_the_target_is_within_noise(self):
        allocs = {a: [2570, 2572, 2575] for a in ALLOCS}
        allocs["skiplist"] = [2200, 2400, 2500]  # 85.4-97.1% of off against ">= 90%"
        t = iommu_table([2575, 2575, 2575], allocs)
        run = ReportRun(all_device_runs(**{"iommu-random-write.json": t}))
        self.assertEqual(run.proc.returncode, 0)
        row = run.row("IOMMU random write, 16 threads: skiplist % of off")
        self.assertEqual(row["state"], "within noise")
        self.assertIsNone(row["holds"])

    def test_repeats_that_do_not_pair_are_inconsistent(self):
        allocs = {a: [2570, 2572, 2575] for a in ALLOCS}
        allocs["skiplist"] = [2570, 2572]
        t = iommu_table([2575, 2575, 2575], allocs)
        run = ReportRun(all_device_runs(**{"iommu-random-write.json": t}))
        self.assertEqual(run.proc.returncode, 3)
        self.assertEqual(run.row("IOMMU random write, 16 threads: skiplist % of off")["state"], "inconsistent")

    def test_missing_device_rate_is_inconsistent(self):
        t = healthy()
        for r in t["rows"]:
            del r["device_mbps"]
        run = ReportRun(all_device_runs(**{"iommu-random-write.json": t}))
        self.assertEqual(run.proc.returncode, 3)
        self.assertEqual(run.row("IOMMU random write, 16 threads: IOMMU off MB/s")["state"], "inconsistent")

    def test_skiplist_test_zero_time_is_inconsistent(self):
        def sl(structure, threads, thread_s):
            return {"structure": structure, "threads": threads, "items": 1000, "rounds": 10, "runs": 2,
                    "fill_ms": 1.0, "check_ms": 1.0, "delete_ms": 1.0, "avg_thread_s": thread_s[0],
                    "fill_ms_runs": "1.0 1.1", "check_ms_runs": "1.0 1.0", "delete_ms_runs": "1.0 1.2",
                    "avg_thread_s_runs": " ".join(str(x) for x in thread_s)}
        t = {"title": "skiplist_test (test input)", "rows": [sl("skiplist", 1, [0.0, 0.1]), sl("rbtree", 1, [0.2, 0.2]),
                                                           sl("skiplist", 2, [0.1, 0.1]), sl("rbtree", 2, [0.3, 0.2])]}
        run = ReportRun({"skiplist_test.json": t})
        self.assertEqual(run.proc.returncode, 3)
        self.assertEqual(run.row("skiplist_test, 1 thread, avg thread time")["state"], "inconsistent")
        row = run.row("skiplist_test, 2 threads, avg thread time")
        self.assertEqual(row["state"], "holds")  # 3.0x and 2.0x, paired by repeat
        self.assertAlmostEqual(row["ours"], 2.5)

    def test_magazine_capacity_rows(self):
        def cap(runs_by_alloc, threads):
            return [{"allocator": a, "threads": threads, "workers": min(threads, 2), "runs": len(v),
                     "device_mbps": 2575, "mbps": "-", "capacity_mbps": sorted(v)[1],
                     "capacity_mbps_runs": " ".join(str(x) for x in v)} for a, v in runs_by_alloc.items()]
        rows = cap({"off": [1e7] * 3, "rbtree": [100, 110, 105], "magazine+rbtree": [250, 260, 300],
                    "skiplist": [100, 100, 100], "magazine+skiplist": [150, 260, 300]}, 1)
        run = ReportRun({"iommucap-4k.json": {"title": "t", "rows": rows}})
        self.assertEqual(run.proc.returncode, 0, run.proc.stderr)
        self.assertEqual(run.row("4 KiB requests (cached sizes), 1 thread: magazine+rbtree")["state"], "holds")
        self.assertEqual(run.row("4 KiB requests (cached sizes), 1 thread: magazine+skiplist")["state"],
                         "within noise")


if __name__ == "__main__":
    REPORT = sys.argv.pop(1)
    unittest.main(verbosity=2)
