# app/filters.py's integer arithmetic as the board does it: calibration, the
# sliding median, the exponential average, delta / throttle / heartbeat, and
# that a reading allocates nothing (MicroPython's gc.mem_alloc; CPython: skipped).
import gc

from app.filters import Filter
from app.publisher import payload

BASE = {"temperature_offset": 0, "temperature_multiply": 1, "humidity_offset": 0, "humidity_multiply": 1,
        "smoothing": "none", "window": 5, "alpha": 0.3, "delta_temperature": 0, "delta_humidity": 0,
        "throttle_s": 0, "heartbeat_s": 0}


def make(**kw):
    f = dict(BASE)
    f.update(kw)
    return Filter(f)


def run(f, readings, step_ms=1000):
    out = []
    for i, (t, h) in enumerate(readings):
        out.append((f.t10, f.h10) if f.feed(t, h, i * step_ms) else None)
    return out


print("calibrate", run(make(temperature_offset=-1.2, temperature_multiply=1.05, humidity_offset=3,
                            humidity_multiply=0.9), [(215, 450), (-105, 0), (800, 1000), (0, 990)]))
print("negative", run(make(temperature_offset=-0.06), [(0, 500), (1, 500), (-1, 500)]))
print("median", run(make(smoothing="median", window=5), [(215, 450), (900, 450), (216, 10), (214, 452), (217, 449),
                                                         (-400, 451), (218, 450)]))
print("median 1", run(make(smoothing="median", window=1), [(215, 450), (900, 451)]))
print("average", run(make(smoothing="average", alpha=0.5), [(200, 400), (300, 500), (300, 500), (300, 500),
                                                            (-100, 500)]))
print("delta", run(make(delta_temperature=0.5, delta_humidity=2), [(215, 450), (217, 455), (220, 455), (221, 455),
                                                                   (221, 470), (215, 470)]))
print("delta + heartbeat", run(make(delta_temperature=1, heartbeat_s=3), [(215, 450)] * 8))
print("heartbeat alone", run(make(heartbeat_s=2), [(215, 450), (216, 450), (217, 450), (218, 450), (219, 450)]))
print("throttle", run(make(throttle_s=3), [(215, 450), (300, 450), (400, 450), (500, 450), (600, 450)]))
print("throttle + delta", run(make(throttle_s=2, delta_temperature=1), [(215, 450), (300, 450), (300, 450),
                                                                        (300, 450), (400, 450)]))
# Heartbeat after a longer interval (the interval changed at run time): time, not counts.
print("interval change", run(make(delta_temperature=1, heartbeat_s=10), [(215, 450)] * 5, 4000))
f = make(smoothing="median", window=3, temperature_offset=0.5)
f.feed(215, 450, 0)
print(payload(b"{", b"0badf00d", (7, 1234, f.t10, f.h10), 1234, None))

f = make(smoothing="median", window=15, temperature_multiply=1.01, delta_temperature=0.2, heartbeat_s=30)
g = make(smoothing="average", alpha=0.1, humidity_offset=-2, throttle_s=5)
for i in range(20):  # warm up: the window full, every attribute set once
    f.feed(200 + i, 450, i * 100)
    g.feed(200 + i, 450, i * 100)
if hasattr(gc, "mem_alloc"):
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for i in range(200):
        f.feed(200 + i % 7, 450 - i % 5, 2000 + i * 100)
        g.feed(200 + i % 7, 450 - i % 5, 2000 + i * 100)
    allocated = gc.mem_alloc() - before
    gc.enable()
else:
    allocated = 0
print("allocated per 400 readings:", allocated)
