"""Battery mode (issue 12, point 6): how long a wake keeps the radio on.

The firmware on the 64-bit unix port (mpy build, the real mqtt_as against a
Mosquitto), sleep.interval_s 8 s, sleep.awake_s 3 s (the host starts the next wake at once), woken WAKES times on one
directory, as a board wakes from deep sleep: the first a power-on (Home Assistant
discovery goes out then), one with no Wi-Fi (its reading waits on flash for the
next), the rest ordinary wakes. Each wake's awake time is the firmware's own
figure (sleep: awake N ms: from its start to the deep sleep); a board adds its
boot (~0.3 s on an ESP32 from deep sleep) and the chip's Wi-Fi association and
DHCP, which the sim board puts at 0.2 s. Beside it, the peak live heap of a
wake against the always-on firmware's over the same first seconds.
"""
import re
import statistics
import tempfile

from sim import paths, unixport
from sim.firmware import sim_config
from sim.mosquitto import Mosquitto

TITLE = "battery mode: awake time per sample (unix port, real mqtt_as)"
INTERVAL_S, AWAKE_S = 8, 3
WAKES = 8
_AWAKE = re.compile(r"sleep: awake (\d+) ms; (\d+) readings kept on flash")


def _raw(broker, sleep=True):
    extra = {"sleep": {"interval_s": INTERVAL_S, "awake_s": AWAKE_S}} if sleep else {}
    return sim_config(broker, spool={"size": 1000}, **extra)


def _peak(r):
    samples = [live for _, live in r.heap[:-1]]
    return max(samples) if samples else None


def measure(short=False):
    if not paths.lib_dir():
        return {"title": TITLE, "error": "no mqtt_as/primitives in lib/ or the cache"}
    n = 4 if short else WAKES
    wakes = []
    with Mosquitto() as broker:
        work = tempfile.mkdtemp(prefix="fireant-bench-sleep-")
        for i in range(n):
            offline = i == 2
            r = unixport.run(_raw(broker), heapsize="256K", build="mpy", libs="real", broker=broker,
                             seconds=AWAKE_S + 10, workdir=work, board={"link": False} if offline else {},
                             heap_every_ms=100)
            m = [_AWAKE.search(ln) for ln in r.lines]
            m = [x for x in m if x]
            if not m:
                return {"title": TITLE, "error": "wake %d did not sleep:\n%s" % (i + 1, r.output())}
            wakes.append({"kind": "power-on" if i == 0 else "no Wi-Fi" if offline else "wake",
                          "awake_ms": int(m[0].group(1)), "kept": int(m[0].group(2)),
                          "published": len(r.readings()), "heap_peak_bytes": _peak(r)})
        on = unixport.run(_raw(broker, sleep=False), heapsize="256K", build="mpy", libs="real", broker=broker,
                          seconds=wakes[1]["awake_ms"] / 1000, heap_every_ms=100)
    plain = [w["awake_ms"] for w in wakes if w["kind"] == "wake"]
    samples = sum(1 for _ in wakes)
    return {"title": TITLE, "interval_s": INTERVAL_S, "awake_s": AWAKE_S, "wakes": wakes,
            "awake_mean_ms": int(statistics.mean(plain)),
            "awake_per_sample_ms": int(sum(w["awake_ms"] for w in wakes) / samples),
            "always_on_heap_peak_bytes": _peak(on)}


def section(e):
    if "wakes" not in e:
        return "%s: not measured: %s" % (TITLE, e.get("error"))
    lines = [e["title"] + "; sleep.interval_s %s, sleep.awake_s %s" % (e["interval_s"], e["awake_s"]),
             "  wake  kind       awake ms  published  kept on flash  heap peak"]
    for i, w in enumerate(e["wakes"], 1):
        lines.append("  %4d  %-9s  %8d  %9d  %13d  %9s" % (i, w["kind"], w["awake_ms"], w["published"], w["kept"],
                                                            w["heap_peak_bytes"]))
    lines.append("  ordinary wake: %d ms awake on average; over every wake above, %d ms per sample "
                 "(always on: the whole interval, %d ms)" % (e["awake_mean_ms"], e["awake_per_sample_ms"],
                                                             e["interval_s"] * 1000))
    lines.append("  heap peak always on, over a wake's first seconds: %s bytes" % e["always_on_heap_peak_bytes"])
    return "\n".join(lines)


if __name__ == "__main__":
    print(section(measure()))
