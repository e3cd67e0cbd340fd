"""fireant's heap under the real MicroPython unix port (issue 4's figures).

One run through sim.unixport: the mpy build (what deploy.py uploads), the real
mqtt_as and primitives from lib/ against the benchmark's Mosquitto when lib/
has them (else the stand-ins and their in-memory broker), a Wi-Fi drop in the
middle so the backlog and a reconnect are in the figures. The firmware logs
its live heap after gc.collect() every HEAP_EVERY_MS.
"""
import statistics

from sim import paths, unixport
from sim.firmware import sim_config
from sim.mosquitto import Mosquitto

HEAP_EVERY_MS = 250
INTERVAL_S = 0.5
DOWN_S, UP_S, RUN_S = 4, 7, 16  # from the firmware's "starting" line

NOTE = ("Live bytes after gc.collect(), sampled every %d ms: the peak sample is not a true "
        "high-water mark (sim.unixport.smallest_heap() bisects -X heapsize for that). The unix "
        "port is 64-bit, so objects take up to twice the bytes they take on an ESP32."
        % HEAP_EVERY_MS)


def _gaps(readings):
    by_seq = {}
    for r in readings:
        by_seq.setdefault(r["seq"], r)
    seqs = sorted(by_seq)
    ratios = [(by_seq[b]["uptime_ms"] - by_seq[a]["uptime_ms"]) / (INTERVAL_S * 1000)
              for a, b in zip(seqs, seqs[1:]) if b == a + 1]
    return {"readings": len(seqs), "max_gap_ratio": max(ratios) if ratios else None,
            "lost": (seqs[-1] - len(seqs)) if seqs else 0, "duplicates": len(readings) - len(seqs)}


def measure(short=False):
    """Returns the benchmark entry for the unix-port run."""
    scale = 0.5 if short else 1
    with Mosquitto() as broker:
        use_broker = broker if paths.lib_dir() else None
        heapsize = unixport.HEAP_BUDGET[("mpy", "real" if use_broker else "standin")]  # the tier's budget
        r = unixport.run(sim_config(broker, sensor={"interval_s": INTERVAL_S}), heapsize=heapsize,
                         build="mpy", broker=use_broker, seconds=RUN_S * scale, heap_every_ms=HEAP_EVERY_MS,
                         faults=[(DOWN_S * scale, {"link": False}), (UP_S * scale, {"link": True})])
    samples = r.heap[:-1] or r.heap  # the last one is taken after app.run() returned
    t0 = samples[0][0] if samples else 0
    healthy = [live for t, live in samples if t - t0 < DOWN_S * scale * 1000]
    entry = {
        "title": "firmware under the MicroPython unix port, Wi-Fi down %g s" % ((UP_S - DOWN_S) * scale),
        "run": r.describe(),
        "heapsize": heapsize,
        "returncode": r.returncode,
        "heap_peak_bytes": max(live for _, live in samples) if samples else None,
        "heap_steady_bytes": int(statistics.median(healthy)) if healthy else None,
        "heap_after_stop_bytes": r.heap[-1][1] if r.heap else None,
        "note": NOTE,
    }
    entry.update(_gaps(r.readings()))
    if r.returncode != 0 or not r.logged("app: stopped:"):
        entry["error"] = "\n".join(r.lines[-10:])
    return entry
