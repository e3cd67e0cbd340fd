"""The heap cost of calibration and filters (app/filters.py), loaded only when a
filter.* key is set: what importing it and making the Filter adds (every filter
on, the largest median window), and what a reading allocates (0 is the goal;
the ESP8266 model allocates a few bytes once, in the first run of the loop that
calls it, then nothing).
Measured under the MicroPython unix port (the .mpy build, 64-bit) and, where the
model is built, on the ESP8266 model with the firmware's ROMFS image at /rom
(bytecode run from flash, as deploy.py installs it on an ESP8266)."""
import os
import shutil
import subprocess
import tempfile

from sim import unixport

TITLE = "calibration and filters (app/filters.py): heap cost"
# Every stage on, the largest window: the most the module can cost.
CONFIG = {"temperature_offset": -0.5, "temperature_multiply": 1.02, "humidity_offset": 2, "humidity_multiply": 0.98,
          "smoothing": "median", "window": 15, "alpha": 0.3, "delta_temperature": 0.2, "delta_humidity": 1,
          "throttle_s": 10, "heartbeat_s": 60}
READINGS = 1000
PROBE = """
import gc
import app  # the package (asyncio, app.node) is loaded by then on a board; not the filters' cost
import array, time, micropython
gc.collect()
a0 = gc.mem_alloc()
from app.filters import Filter
gc.collect()
a1 = gc.mem_alloc()
f = Filter(%r)
gc.collect()
a2 = gc.mem_alloc()
def readings(n, t0):  # in a function, as the sampler runs it: no global stores
    for i in range(n):
        f.feed(200 + i %% 9, 450 - i %% 7, t0 + i * 5000)
readings(20, 0)  # the window full, every attribute set
gc.collect()
gc.disable()
b = gc.mem_alloc()
readings(%d, 100000)
first = gc.mem_alloc() - b
b = gc.mem_alloc()
readings(%d, 10000000)
per = gc.mem_alloc() - b
gc.enable()
print("filters", a1 - a0, a2 - a1, per, first)
""" % (CONFIG, READINGS, READINGS)


def _parse(out):
    for line in out.splitlines():
        if line.startswith("filters "):
            module, instance, per, first = (int(x) for x in line.split()[1:])
            return {"module_bytes": module, "instance_bytes": instance, "total_bytes": module + instance,
                    "allocated_per_%d_readings" % READINGS: per, "allocated_first_%d_readings" % READINGS: first}
    raise RuntimeError("filters probe failed: %s" % out[-500:])


def _unix():
    work = tempfile.mkdtemp(prefix="fireant-filters-")
    try:
        env = dict(os.environ, MICROPYPATH=unixport.prepare(work, "mpy", "standin"))
        p = subprocess.run([unixport.micropython_exe(), "-X", "heapsize=64K", "-c", PROBE], cwd=work, env=env,
                           capture_output=True, text=True, timeout=60)
        return _parse(p.stdout + p.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _model():
    from bench.esp8266 import _model_program

    code, out = _model_program("esp8266", PROBE)
    return _parse(out)


def measure(short=False):
    entry = {"title": TITLE, "config": CONFIG, "unix_port": _unix()}
    try:
        entry["esp8266_model"] = _model()
    except (RuntimeError, OSError) as e:  # the model is not built on this host
        entry["esp8266_model"] = {"error": str(e)}
    return entry


def section(e):
    if "unix_port" not in e:
        return "%s: not measured: %s" % (TITLE, e.get("error"))
    lines = [e["title"] + " (every stage on, median window 15)"]
    for where, label in (("unix_port", "unix port, .mpy, 64-bit"), ("esp8266_model", "ESP8266 model, ROMFS")):
        r = e.get(where) or {}
        if "error" in r or "module_bytes" not in r:
            lines.append("  %-26s not measured: %s" % (label, r.get("error")))
            continue
        lines.append("  %-26s import %d B + Filter %d B = %d B; allocated by %d readings: %d B (the first %d: %d B)"
                     % (label, r["module_bytes"], r["instance_bytes"], r["total_bytes"], READINGS,
                        r["allocated_per_%d_readings" % READINGS], READINGS,
                        r["allocated_first_%d_readings" % READINGS]))
    lines.append("  Not loaded at all with the defaults (no filter.* key set): 0 B.")
    return "\n".join(lines)
