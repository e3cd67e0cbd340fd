"""fireant's benchmark: issue 3's fault scenarios, fireant beside a blocking node.

    python -m bench                 # a table
    python -m bench --json          # one JSON object keyed by scenario
    python -m bench --only wifi_drop half_open

Not a test: it measures and prints, it asserts nothing. docs/bench.md explains
every figure and where mqtt_as itself bounds it.
"""
import asyncio
import contextlib
import os
import sys
import tempfile
import time

from sim import firmware  # noqa: F401  (puts the sim board on sys.path first)

from . import metrics
from .scenarios import BLOCKING, FIREANT, SCENARIOS, run_scenario

SHOWN = metrics.FIGURES


def _entry(result):
    """A scenario's JSON entry: fireant's figures at the top, then both sides and their ratios."""
    fa, bl = result[FIREANT], result[BLOCKING]
    entry = {k: fa.get(k) for k in SHOWN}
    entry.update({
        "title": result["title"],
        "interval_s": result["interval_s"],
        "settled": result["settled"],
        "note": result["note"],
        "fireant": fa,
        "blocking": bl,
        "ratio": {k: metrics.ratio(fa.get(k), bl.get(k)) for k in SHOWN},
    })
    return entry


def run(names=None, short=False, log_path=None, progress=None):
    """Run the named scenarios (all by default) and return {name: entry}. The
    firmware's log goes to log_path (a temporary file by default)."""
    names = list(names or SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError("unknown scenario(s) %s; known: %s" % (", ".join(unknown), ", ".join(SCENARIOS)))
    if log_path is None:
        fd, log_path = tempfile.mkstemp(prefix="fireant-bench-", suffix=".log")
        os.close(fd)
    results = {}
    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        for name in names:
            if progress:
                progress("bench: %s ..." % name)
            t0 = time.monotonic()
            print("=== %s" % name)
            results[name] = _entry(asyncio.run(run_scenario(SCENARIOS[name], short)))
            results[name]["wall_s"] = round(time.monotonic() - t0, 1)
    results_log = log_path
    for entry in results.values():
        entry["log"] = results_log
    return results


def _fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if v == float("inf"):
        return "inf"
    return ("%.2f" % v if abs(v) < 100 else "%.0f" % v) + unit


def table(results):
    cols = ("max_gap_ratio", "missed", "lost", "duplicates", "recovery_s", "drain_per_s", "p50_ms", "p99_ms")
    heads = ("max_gap", "missed", "lost", "dup", "recov_s", "drain/s", "p50_ms", "p99_ms")
    w = 9
    lines = ["%-18s %-9s" % ("scenario", "node") + "".join("%*s" % (w, h) for h in heads)]
    lines.append("-" * len(lines[0]))
    for name, e in results.items():
        rows = (("fireant", e["fireant"]), ("blocking", e["blocking"]), ("ratio", e["ratio"]))
        for i, (label, figs) in enumerate(rows):
            cells = "".join("%*s" % (w, _fmt(figs.get(c))) for c in cols)
            lines.append("%-18s %-9s%s" % (name if i == 0 else "", label, cells))
        extra = []
        fa = e["fireant"]
        if fa.get("dropped"):
            extra.append("fireant dropped %d (reported on reconnect: %s)" % (fa["dropped"], fa["dropped_reported"]))
        if not fa["in_order"]:
            extra.append("fireant readings OUT OF ORDER")
        if not e["settled"]:
            extra.append("did NOT settle within the timeout")
        if e["blocking"].get("crashed"):
            extra.append("blocking node crashed: %s" % e["blocking"]["crashed"])
        if extra:
            lines.append("%-18s %s" % ("", "; ".join(extra)))
    return "\n".join(lines)


def notes(results):
    out = []
    for name, e in results.items():
        out.append("%s: %s (interval %.1f s). %s" % (name, e["title"], e["interval_s"], e["note"]))
    return "\n".join(out)
