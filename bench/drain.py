"""Issue 12, point 2: how fast a backlog drains after an outage.

A 1000-reading backlog (an earlier boot's, written to the spool in the board's
format by app/spool.py itself) waits on the board's flash; the firmware starts
online on the MicroPython unix port with the real mqtt_as against Mosquitto and
sends it, while it goes on sampling every INTERVAL_S. Run with mqtt.window 1 (one
PUBACK at a time, polled every 10 ms), the default 16 and 32.

The reference, "the current design" before the window: mqtt_as's own
publish(), one reading at a time, as the firmware published until 0.11 (and
sim/bareclient.py, mqtt_as's README example, does): the bare client in the
ESP8266 model publishing back to back (interval 1 ms) for REF_SECONDS, the
same real mqtt_as and Mosquitto; its rate is bounded by publish()'s 100 ms
PUBACK poll, not by the CPU, so the 32-bit model and the 64-bit port compare. Figures from the subscriber's side: readings
per second from the first to the last of the backlog, time to empty from the
connection, whether they arrived in order (repeats aside), and the live
readings' largest gap while the drain ran (sampling on time).
"""
import os
import shutil
import tempfile
from array import array

from sim import paths, unixport
from sim.firmware import sim_config
from sim.mosquitto import Mosquitto

TITLE = "backlog drain: 1000 readings from the spool, window against one PUBACK at a time (unix port, real mqtt_as)"
BACKLOG = 1000
INTERVAL_S = 0.5
WINDOWS = (1, 16, 32)
HEAP = "160K"
OLD_BOOT = "0ldb007e"
REF_SECONDS = 10


def _prefill(work, n):
    """n readings of boot OLD_BOOT on work/spool, as a board would have left them."""
    cwd = os.getcwd()
    os.chdir(work)
    try:
        from app.node import Node
        from app.spool import BATCH, Spool

        sp = Spool(Node("bench"), 20000)
        size = BATCH
        stamps, tenths = array("i", bytearray(4 * size)), array("h", bytearray(4 * size))
        for first in range(1, n + 1, BATCH):
            k = min(BATCH, n + 1 - first)
            for j in range(k):
                stamps[j], tenths[2 * j], tenths[2 * j + 1] = 1000 * (first + j), 215, 450
            sp.write(OLD_BOOT.encode(), first, (0, 1764000000, 0), stamps, tenths, 0, k, size)
    finally:
        os.chdir(cwd)


def _one(broker, window, n):
    work = tempfile.mkdtemp(prefix="fireant-drain-")
    try:
        _prefill(work, n)
        raw = sim_config(broker, sensor={"interval_s": INTERVAL_S}, queue={"size": 32}, spool={"size": 20000},
                         mqtt={"window": window})

        done_at = []

        def drained(r):  # then 3 s more: the live readings taken during the drain arrive after it
            import time

            if not done_at and len({x["seq"] for x in r.readings() if x["boot"] == OLD_BOOT}) >= n:
                done_at.append(time.monotonic())
            return bool(done_at) and time.monotonic() - done_at[0] > 3

        r = unixport.run(raw, heapsize=HEAP, build="mpy", libs="real", broker=broker, seconds=2, until=drained,
                         max_seconds=n / 5 + 60, workdir=work, heap_every_ms=0)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    msgs = [(at, m) for at, m in zip(r.arrived, r.messages) if m[0] == "sensors/environmental"]
    import json

    got = [(at, json.loads(m[2])) for at, m in msgs]
    old = [(at, x) for at, x in got if x["boot"] == OLD_BOOT]
    live = [x for _, x in got if x["boot"] != OLD_BOOT]
    seqs = [x["seq"] for _, x in old]
    first = sorted(set(seqs), key=seqs.index)
    out = {"window": window, "backlog": n, "delivered": len(first), "repeats": len(seqs) - len(first),
           "in_order": first == sorted(first), "ok": r.returncode == 0 and not r.logged("Traceback")}
    connected = r.logged("mqtt: connected")
    if connected and len(old) > 1 and r.started:
        host0, ticks0 = r.started
        t_conn = host0 + (int(connected[0][1:connected[0].index("]")]) - ticks0) / 1000
        out["rate_per_s"] = round((len(old) - 1) / (old[-1][0] - old[0][0]), 1)
        out["to_empty_s"] = round(old[-1][0] - t_conn, 1)
    ticks = sorted(x["uptime_ms"] for x in live)
    out["live_max_gap_ms"] = max((b - a for a, b in zip(ticks, ticks[1:])), default=None)
    return out


def _reference(broker, seconds):
    """mqtt_as's publish() one at a time: the bare client in the ESP8266 model."""
    import json

    from sim import upstream

    why = upstream.model_unavailable()
    if why:
        return {"error": why}
    raw = sim_config(broker, sensor={"interval_s": 0.001})
    r = unixport.run(raw, heapsize="64K", libs="real", broker=broker, seconds=seconds, interp="esp8266",
                     program="bareclient", heap_every_ms=0)
    at = [a for a, m in zip(r.arrived, r.messages) if m[0] == "sensors/environmental"]
    seqs = [json.loads(m[2])["seq"] for m in r.messages if m[0] == "sensors/environmental"]
    if len(at) < 2:
        return {"error": "the bare client published %d readings:\n%s" % (len(at), r.output())}
    rate = (len(at) - 1) / (at[-1] - at[0])
    return {"delivered": len(at), "in_order": seqs == sorted(seqs), "rate_per_s": round(rate, 1),
            "to_empty_s": round(BACKLOG / rate, 1)}


def measure(short=False):
    if not paths.lib_dir():
        return {"title": TITLE, "error": "no mqtt_as/primitives in lib/ or the cache"}
    n = 300 if short else BACKLOG
    out = {"title": TITLE, "interval_s": INTERVAL_S, "backlog": n, "runs": {}}
    with Mosquitto() as broker:
        for w in WINDOWS:
            out["runs"][str(w)] = _one(broker, w, n)
        out["reference"] = ref = _reference(broker, REF_SECONDS // 2 if short else REF_SECONDS)
    default = out["runs"].get("16", {})
    if ref.get("rate_per_s") and default.get("rate_per_s"):
        out["speedup"] = round(default["rate_per_s"] / ref["rate_per_s"], 1)
    return out


def section(e):
    if "runs" not in e:
        return "%s: not measured: %s" % (TITLE, e.get("error"))
    lines = [e["title"], "  window  delivered  repeats  in order  readings/s  to empty s  live max gap ms"]
    for w, r in e["runs"].items():
        lines.append("  %6s  %9s  %7s  %8s  %10s  %10s  %15s" % (
            w, "%d/%d" % (r["delivered"], r["backlog"]), r["repeats"], "yes" if r["in_order"] else "NO",
            r.get("rate_per_s", "-"), r.get("to_empty_s", "-"), r.get("live_max_gap_ms", "-")))
    ref = e.get("reference") or {}
    if "rate_per_s" in ref:
        lines.append("  %6s  %9s  %7s  %8s  %10s  %10s  %15s" % (
            "ref", "%d sent" % ref["delivered"], "-", "yes" if ref["in_order"] else "NO", ref["rate_per_s"],
            "(%s)" % ref["to_empty_s"], "-"))
        lines.append("  ref: mqtt_as's publish(), one at a time (the bare client, ESP8266 model); its time to "
                     "empty is %d / rate" % e.get("backlog", BACKLOG))
    else:
        lines.append("  ref: not measured: %s" % ref.get("error"))
    if "speedup" in e:
        lines.append("  the default window (16) drains %sx faster than mqtt_as's publish() one at a time; "
                     "sampling every %s s meanwhile" % (e["speedup"], e["interval_s"]))
    return "\n".join(lines)


if __name__ == "__main__":
    print(section(measure()))
