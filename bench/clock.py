"""Heap cost of issue 11's switchable features (true time, telemetry): the firmware
run with and without them, on the 64-bit unix port (mpy build) and on the ESP8266
model (ROMFS), against Mosquitto and a local NTP server.

"clock": ntp.resync_s at its default (app/clock.py's task; app/ntp.py and
app/dns.py loaded for each sync and dropped after it) against 0 (not loaded).
"telemetry": telemetry.interval_s 1 against 0 (status.run() then only polls).
Figures: live bytes after gc.collect(), the median of the samples once
connected (steady) and the largest (peak, which catches a sync in progress).
"""
import os
import statistics

from sim import paths, unixport
from sim.firmware import sim_config
from sim.mosquitto import Mosquitto
from sim.ntpserver import ThreadedNtpServer

TITLE = "heap cost of the clock (NTP) and the periodic telemetry (unix port, ESP8266 model)"

INTERVAL_S = 0.5
RUN_S = 12
HEAP_EVERY_MS = 100
SETTINGS = {  # name: (ntp, telemetry)
    "neither": ({"resync_s": 0}, {"interval_s": 0}),
    "clock": ({"server": "127.0.0.1", "resync_s": 60}, {"interval_s": 0}),
    "telemetry": ({"resync_s": 0}, {"interval_s": 1}),
    "both (defaults' kind)": ({"server": "127.0.0.1", "resync_s": 60}, {"interval_s": 1}),
}
TARGETS = {"unix_64bit": dict(interp="unix", build="mpy", heapsize="256K"),
           "esp8266_model": dict(interp="esp8266", heapsize="64K")}


def _one(broker, target, ntp, telemetry):
    raw = sim_config(broker, sensor={"interval_s": INTERVAL_S}, queue={"size": 64}, ntp=ntp, telemetry=telemetry)
    r = unixport.run(raw, broker=broker, libs="real", seconds=RUN_S, heap_every_ms=HEAP_EVERY_MS, **TARGETS[target])
    connected = r.logged("mqtt: connected")
    if r.returncode != 0 or not connected or r.logged("MemoryError"):
        return {"error": "\n".join(r.lines[-5:])}
    t_conn = int(connected[0][1:connected[0].index("]")])
    samples = [live for t, live in r.heap[:-1] if t >= t_conn + 1000]
    return {"steady_bytes": int(statistics.median(samples)), "peak_bytes": max(samples),
            "synced": bool(r.logged("ntp: clock set"))}


def measure(short=False):
    if not paths.lib_dir():
        return {"error": "no mqtt_as/primitives in lib/ or the cache"}
    out = {}
    with Mosquitto() as broker, ThreadedNtpServer() as ntp:
        os.environ["FIREANT_SIM_NTP_PORT"] = str(ntp.port)
        try:
            for target in TARGETS:
                rows = out[target] = {}
                for name, (n, t) in SETTINGS.items():
                    rows[name] = _one(broker, target, n, t)
                base = rows["neither"].get("steady_bytes")
                for name, row in rows.items():
                    if base and "steady_bytes" in row:
                        row["added_steady_bytes"] = row["steady_bytes"] - base
                        row["added_peak_bytes"] = row["peak_bytes"] - rows["neither"]["peak_bytes"]
        finally:
            os.environ.pop("FIREANT_SIM_NTP_PORT", None)
    return out


def section(e):
    if e.get("error"):
        return "features (issue 11): not measured: %s" % e["error"]
    lines = ["heap cost of issue 11's features (live bytes after gc.collect(); added vs neither)"]
    for target, rows in e.items():
        for name, row in rows.items():
            if "error" in row:
                lines.append("  %-14s %-22s FAILED: %s" % (target, name, row["error"].splitlines()[-1]))
            else:
                lines.append("  %-14s %-22s steady %6d (%+5d)  peak %6d (%+5d)%s" % (
                    target, name, row["steady_bytes"], row.get("added_steady_bytes", 0), row["peak_bytes"],
                    row.get("added_peak_bytes", 0), "  synced" if row["synced"] else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    print(section(measure()))
