"""fireant's benchmark: issue 3's fault scenarios, fireant beside a blocking node.

    python -m bench                 # a table
    python -m bench --json          # one JSON object keyed by scenario
    python -m bench --only wifi_drop half_open
    python -m bench --only fleet --fleet-n 100   # issue 13: a fleet on a RabbitMQ cluster

Not a test: it measures and prints, it asserts nothing. docs/bench.md explains
every figure and where mqtt_as itself bounds it.
"""
import asyncio
import contextlib
import os
import tempfile
import time

from sim import firmware  # noqa: F401  (puts the sim board on sys.path first)

from . import battery, clock, drain, esp8266, features, filters, fleet, heap, metrics
from .scenarios import BLOCKING, FIREANT, SCENARIOS, run_scenario

SHOWN = metrics.FIGURES
UNIX_PORT = "unix_port"  # not a fault scenario: fireant alone on MicroPython, for its heap
ESP8266_MODEL = "esp8266_model"  # nor this: fireant and a bare mqtt_as client on the ESP8266 RAM model
FEATURES = "features"  # nor this: the heap commands and discovery add
FILTERS = "filters"  # nor this: the heap cost of app/filters.py, loaded only when configured
CLOCK = "clock"  # nor this: the heap cost of the clock (NTP) and the periodic telemetry
FLEET = "fleet"  # nor this: N firmware processes on a RabbitMQ cluster (bench/fleet.py)
DRAIN = "drain"  # nor this: a 1000-reading backlog drained, window against one PUBACK at a time
BATTERY = "battery"  # nor this: battery mode's awake time per sample
# Rows with a module of their own: module.TITLE, measure(short), section(entry).
MODULES = {FEATURES: features, FILTERS: filters, CLOCK: clock, DRAIN: drain, BATTERY: battery}
HEAP_ROWS = (UNIX_PORT, ESP8266_MODEL, FEATURES, FILTERS, CLOCK, DRAIN, BATTERY, FLEET)  # rows outside the fault table


def _rounded(v):
    if isinstance(v, float):
        return round(v, 4)
    if isinstance(v, dict):
        return {k: _rounded(x) for k, x in v.items()}
    return v


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
    return _rounded(entry)


def _unix_port(short):
    entry = dict.fromkeys(SHOWN)  # every scenario has every key; null: not measured here
    try:
        entry.update(heap.measure(short))
    except (RuntimeError, OSError) as e:  # no micropython or mpy-cross on this host
        entry.update(title="firmware under the MicroPython unix port", error=str(e))
    return _rounded(entry)


def _esp8266_model(short):
    try:
        return _rounded(esp8266.measure(short))
    except (RuntimeError, OSError) as e:  # no model, no mpy-cross, no Mosquitto on this host
        return {"title": esp8266.TITLE, "error": str(e)}


def _fleet(short, n, progress):
    if fleet.cl.missing():
        return {"title": fleet.TITLE, "error": "not installed: %s (./fireant cluster --install)"
                % " ".join(fleet.cl.missing())}
    try:
        return _rounded(fleet.measure(n, short, progress or (lambda m: None)))
    except (RuntimeError, OSError) as e:  # no lib/ (real mqtt_as), a broker that would not start
        return {"title": fleet.TITLE, "error": str(e)}


def run(names=None, short=False, log_path=None, progress=None, fleet_n=fleet.DEFAULT_N):
    """Run the named scenarios (all but the fleet by default: it needs RabbitMQ and
    takes minutes) and return {name: entry}. The firmware's log goes to log_path
    (a temporary file by default)."""
    known = list(SCENARIOS) + [UNIX_PORT, ESP8266_MODEL, FEATURES, FILTERS, CLOCK, DRAIN, BATTERY, FLEET]
    names = list(names or known[:-1])
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError("unknown scenario(s) %s; known: %s" % (", ".join(unknown), ", ".join(known)))
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
            if name == UNIX_PORT:
                results[name] = _unix_port(short)
            elif name == ESP8266_MODEL:
                results[name] = _esp8266_model(short)
            elif name in MODULES:
                try:
                    results[name] = MODULES[name].measure(short)
                except (RuntimeError, OSError) as e:  # no micropython, mpy-cross or Mosquitto on this host
                    results[name] = {"title": MODULES[name].TITLE, "error": str(e)}
            elif name == FLEET:
                results[name] = _fleet(short, fleet_n, progress)
            else:
                results[name] = _entry(asyncio.run(run_scenario(SCENARIOS[name], short)))
            results[name]["wall_s"] = round(time.monotonic() - t0, 1)
    for entry in results.values():
        entry["log"] = log_path
    return results


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, int):
        return str(v)
    return "%.2f" % v if abs(v) < 100 else "%.0f" % v


def table(results):
    cols = SHOWN
    heads = ("max_gap", "missed", "lost", "dup", "recov_s", "drain/s", "p50_ms", "p99_ms")
    w = 9
    lines = ["%-18s %-9s" % ("scenario", "node") + "".join("%*s" % (w, h) for h in heads)]
    lines.append("-" * len(lines[0]))
    for name, e in results.items():
        if name in HEAP_ROWS:
            continue
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


def unix_port_section(results):
    e = results.get(UNIX_PORT)
    if e is None:
        return ""
    if "heap_peak_bytes" not in e:
        return "unix port: not measured: %s" % e.get("error")
    lines = ["%s (%s)" % (e["title"], e["run"]),
             "  heap live: steady %s B, peak %s B; after stop %s B" % (
                 e["heap_steady_bytes"], e["heap_peak_bytes"], e["heap_after_stop_bytes"]),
             "  fireant: max_gap %s, lost %s, dup %s over %s readings" % (
                 _fmt(e["max_gap_ratio"]), e["lost"], e["duplicates"], e["readings"]),
             "  " + e["note"]]
    if e.get("error"):
        lines.append("  run FAILED: " + e["error"])
    return "\n".join(lines)


def module_section(results, name):
    e = results.get(name)
    return "" if e is None else MODULES[name].section(e)


def esp8266_section(results):
    e = results.get(ESP8266_MODEL)
    return "" if e is None else esp8266.section(e)


def notes(results):
    out = []
    for name, e in results.items():
        if name in HEAP_ROWS:
            continue
        out.append("%s: %s (interval %.1f s). %s" % (name, e["title"], e["interval_s"], e["note"]))
    return "\n".join(out)
