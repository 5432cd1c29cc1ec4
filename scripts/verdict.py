# SPDX-License-Identifier: MIT
"""The verdict of the main job's report (scripts/report.py): each figure the
2013 article published (LWN "Skiplists II"; per-core IOVA caching: Peleg et
al. 2015) and each of the project's own targets, ours beside it with its
spread over the run's repeats, and a state that checks the inputs before it
compares anything:

  holds         every repeat meets the target
  missed        no repeat meets it
  within noise  the repeats' range straddles the target: the difference
                asked for is smaller than the spread, so the run cannot say
  inconsistent  the inputs contradict each other or the model's bounds: a
                device-model row above 100% of off beyond the measured
                noise, IOMMU-off away from the device's rate (off does no
                allocator work, so anything else means the model did not
                run as designed), a time or capacity of zero, repeats that
                do not pair up. Never counted as holding; the main job
                exits non-zero when any row is inconsistent.
  no target     shown for comparison only

Each row is a dict: figure, article, article_text, ours (the median),
ours_text, spread_text, runs, ratio (ours / article), target, state, note,
and holds (True for holds, False for missed, None otherwise).
"""
import statistics

HOLDS, MISSED, NOISE, INCONSISTENT, NO_TARGET = "holds", "missed", "within noise", "inconsistent", "no target"
STATES = (HOLDS, MISSED, NOISE, INCONSISTENT, NO_TARGET)

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

# IOMMU-off must move the device's rate within this share: it does no
# allocator work, so the device is never left waiting for it.
OFF_TOLERANCE = 0.05
# The least tolerance, in points of off, before a device-model row counts as
# above 100% of off: the window's edges and timer granularity are well under
# one point; the measured spread of off widens it.
NOISE_FLOOR_POINTS = 2.0
# Not a check: a device-model throughput above the same allocator's capacity.
# Capacity is the allocator flat out, every worker in it at once; paced by
# the device, one worker at a time is usually inside, so a lock that
# collapses under contention (the 2013 rbtree at 4 KiB: 0.5-1.8 GB/s flat
# out) can keep up with a 2.6 GB/s device.


def num(x):
    """A harness cell as a float, or None for '-', 'n/a' and missing cells."""
    if x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def runs(row, key):
    """The per-repeat values of a harness column: `<key>_runs` (one value per
    repeat, space-separated, in repeat order) when the harness printed it,
    else the cell itself as one run; [] when missing."""
    if row is None:
        return []
    many = row.get(key + "_runs")
    if isinstance(many, str) and many.strip() and many.strip() != "-":
        vals = [num(v) for v in many.split()]
        return [] if any(v is None for v in vals) else vals
    one = num(row.get(key))
    return [] if one is None else [one]


def paired(a, b, f):
    """f(a_i, b_i) per repeat; None if the repeats do not pair up."""
    if not a or len(a) != len(b):
        return None
    return [f(x, y) for x, y in zip(a, b)]


def spread_text(vals, fmt):
    if not vals:
        return "—"
    if len(vals) == 1:
        return "1 run"
    return "%s–%s (%d runs)" % (fmt % min(vals), fmt % max(vals), len(vals))


def judge(vals, meets):
    """holds / missed / within noise for a target tested on each repeat."""
    ok = [meets(v) for v in vals]
    if all(ok):
        return HOLDS
    if not any(ok):
        return MISSED
    return NOISE


def row(figure, article, article_text, vals, fmt, unit, target, meets=None, inconsistent=None, ratio_to=None):
    """One verdict row from the repeats `vals` (a list, possibly empty).
    meets: the target's test on one repeat (None: no target). inconsistent:
    a reason the inputs cannot be compared (None: they can)."""
    med = statistics.median(vals) if vals else None
    if inconsistent:
        state, note = INCONSISTENT, inconsistent
    elif med is None:
        state, note = NO_TARGET, "not run"
    elif meets is None:
        state, note = NO_TARGET, ""
    else:
        state = judge(vals, meets)
        note = "the range straddles the target" if state == NOISE else ""
    return {
        "figure": figure, "article": article, "article_text": article_text,
        "ours": med, "ours_text": (fmt % med + unit) if med is not None else "not run",
        "spread_text": spread_text(vals, fmt), "runs": len(vals),
        "ratio": (med / ratio_to) if (med is not None and ratio_to) else None,
        "target": target, "state": state, "note": note,
        "holds": {HOLDS: True, MISSED: False}.get(state),
    }


# --- skiplist_test -----------------------------------------------------------------
def skiplist_test_rows(t):
    """Speed-ups rbtree time / skiplist time per phase and thread count, one
    per repeat (the replica interleaves structures within a repeat)."""
    out = []
    by = {(r["structure"], int(r["threads"])): r for r in t["rows"]}
    threads = sorted({th for (s, th) in by if s == "skiplist" and ("rbtree", th) in by})
    for th in sorted(set(threads) | {th for (_, th) in ARTICLE_SKIPLIST_TEST}):
        for i, (key, label) in enumerate(PHASES):
            art = None
            if ("rbtree", th) in ARTICLE_SKIPLIST_TEST:
                art = ARTICLE_SKIPLIST_TEST[("rbtree", th)][i] / ARTICLE_SKIPLIST_TEST[("skiplist", th)][i]
            vals, bad = [], None
            if th in threads:
                rb, sl = runs(by[("rbtree", th)], key), runs(by[("skiplist", th)], key)
                if any(v <= 0 for v in rb + sl):
                    bad = "a phase time of zero or less (rbtree %s, skiplist %s)" % (rb, sl)
                else:
                    vals = paired(rb, sl, lambda a, b: a / b)
                    if vals is None:
                        bad, vals = "rbtree and skiplist have different repeat counts", []
            out.append(row("skiplist_test, %d thread%s, %s: rbtree ÷ skiplist time" % (th, "s" if th > 1 else "", label),
                           art, "%.2fx" % art if art is not None else "— (not in the article)", vals, "%.2f", "x",
                           "> 1 (skiplist faster)", (lambda v: v > 1.0) if th in threads else None, bad, art))
    return out


# --- IOMMU model --------------------------------------------------------------------
def rows_at(t, threads):
    return {r["allocator"]: r for r in t["rows"] if int(r["threads"]) == threads} if t else {}


def device_rate(t, off):
    """The device's configured MB/s: the rows' device_mbps column."""
    return num((off or {}).get("device_mbps"))


def off_check(t, at):
    """(off repeats, reason the off row is inconsistent or None, noise in points)."""
    off = at.get("off")
    vals = runs(off, "mbps")
    if not vals:
        return vals, None, NOISE_FLOOR_POINTS
    rate = device_rate(t, off)
    bad = None
    if rate is None or rate <= 0:
        bad = "the device's rate is missing from the input"
    else:
        far = [v for v in vals if abs(v - rate) > OFF_TOLERANCE * rate]
        if far:
            bad = "IOMMU-off moved %s MB/s of the device's %.0f: off does no allocator work, so the model's " \
                  "submitters did not keep the device busy" % (", ".join("%.0f" % v for v in far), rate)
    med = statistics.median(vals)
    noise = max(NOISE_FLOOR_POINTS, 100.0 * (max(vals) - min(vals)) / med if med > 0 else 0.0)
    return vals, bad, noise


def device_pct(at, alloc, off_vals, off_bad, noise):
    """(% of off per repeat, reason the row is inconsistent or None)."""
    r = at.get(alloc)
    mb = runs(r, "mbps")
    if not mb:
        return [], None
    if off_bad:
        return [], "its IOMMU-off row is inconsistent (%s)" % off_bad
    pct = paired(mb, off_vals, lambda a, o: 100.0 * a / o if o > 0 else float("inf"))
    if pct is None:
        return [], "its repeats do not pair with the IOMMU-off row's"
    high = [p for p in pct if p > 100.0 + noise]
    if high:
        return pct, "%s%% of off is above 100%% beyond the measured noise (%.1f points)" % (
            ", ".join("%.1f" % p for p in high), noise)
    return pct, None


def iommu_rows(iommu_runs):
    """iommu_runs: name -> table of the 16-thread device runs."""
    out = []
    for name, art in ARTICLE_IOMMU.items():
        t = iommu_runs.get(name)
        at = rows_at(t, 16)
        label = name.replace("-", " ")
        off_vals, off_bad, noise = off_check(t, at)
        rate = device_rate(t, at.get("off"))
        out.append(row("IOMMU %s, 16 threads: IOMMU off MB/s" % label, art["off"], "%d MB/s" % art["off"], off_vals,
                       "%.0f", " MB/s", "the device's rate ±%d%%" % (100 * OFF_TOLERANCE),
                       (lambda v, r=rate: abs(v - r) <= OFF_TOLERANCE * r) if rate else None, off_bad, art["off"]))
        pcts = {}
        for alloc in [a for a in at if a != "off"]:
            pcts[alloc] = device_pct(at, alloc, off_vals, off_bad, noise)
        for alloc in ("skiplist", "rbtree"):
            a_pct = 100.0 * art[alloc] / art["off"]
            vals, bad = pcts.get(alloc, ([], None))
            target, meets = "(none set)", None
            if name == "random-write" and alloc == "skiplist":
                target, meets = "≥ 90% of off", lambda v: v >= 90.0
            elif name in ("random-write", "random-read") and alloc == "rbtree":
                target, meets = "collapses, as in 2013 (< 10% of off)", lambda v: v < 10.0
            out.append(row("IOMMU %s, 16 threads: %s %% of off" % (label, alloc), a_pct, "%.1f%%" % a_pct, vals,
                           "%.1f", "%", target, meets, bad, a_pct))
        if name == "random-read":
            # "(100% system time)" for both: the allocators' CPU share.
            for alloc in ("skiplist", "rbtree"):
                r = at.get(alloc) or {}
                cpu, mbps = num(r.get("cpu_s_per_gb")), num(r.get("mbps"))  # medians
                share = [100.0 * cpu * mbps / 1000.0] if cpu is not None and mbps is not None else []
                out.append(row("IOMMU random read, 16 threads: %s allocator CPU (%% of one CPU, medians)" % alloc,
                               None, "100% system time", share, "%.2f", "%", "(none set)"))
        # Every allocator row is checked, also those without an article figure.
        for alloc, (vals, bad) in sorted(pcts.items()):
            if bad and alloc not in ("skiplist", "rbtree"):
                out.append(row("IOMMU %s, 16 threads: %s %% of off" % (label, alloc), None, "—", vals, "%.1f", "%",
                               "(none set)", None, bad))
        if name == "stream-write":
            per_alloc = [statistics.median(v) for a, (v, bad) in pcts.items() if v and not bad]
            bad = next((b for _, b in pcts.values() if b), None)
            spread = [max(per_alloc) - min(per_alloc)] if per_alloc else []
            a_spread = 100.0 * (art["skiplist"] - art["rbtree"]) / art["off"]
            out.append(row("IOMMU stream write, 16 threads: spread between allocators (points of off, medians)",
                           a_spread, "%.1f points" % a_spread, spread, "%.1f", " points", "≤ 10 points",
                           lambda v: v <= 10.0, bad))
    return out


def magazine_device_rows(t4k):
    out = []
    at = rows_at(t4k, 16)
    off_vals, off_bad, noise = off_check(t4k, at)
    for alloc in ("magazine+rbtree", "magazine+skiplist"):
        vals, bad = device_pct(at, alloc, off_vals, off_bad, noise) if at else ([], None)
        out.append(row("per-core IOVA caching (%s), random write in 4 KiB requests, 16 threads: %% of off" % alloc,
                       None, ARTICLE_MAGAZINES + " (Peleg et al. 2015)", vals, "%.1f", "%", "≥ 95% of off",
                       lambda v: v >= 95.0, bad))
    return out


def magazine_capacity_rows(t, what, target_text, meets, thread_counts=(1, 2)):
    """magazine+X ÷ X capacity per repeat, at each thread count."""
    out = []
    if not t:
        return out
    for th in thread_counts:
        at = rows_at(t, th)
        for base in ("rbtree", "skiplist"):
            mag, plain = runs(at.get("magazine+" + base), "capacity_mbps"), runs(at.get(base), "capacity_mbps")
            if not mag and not plain:
                continue
            bad, vals = None, []
            if any(v <= 0 for v in mag + plain):
                bad = "a capacity of zero"
            else:
                vals = paired(mag, plain, lambda a, b: a / b)
                if vals is None:
                    bad, vals = "magazine+%s and %s have different repeat counts" % (base, base), []
            out.append(row("IOMMU capacity, %s, %s: magazine+%s ÷ %s" % (what, threads_text(th), base, base), None,
                           "—", vals, "%.2f", "x", target_text, meets, bad))
    return out


def threads_text(th):
    return "%d thread%s" % (th, "" if th == 1 else "s")


def summary(rows):
    return {s: sum(1 for r in rows if r["state"] == s) for s in STATES}
