"""The firmware itself (`import app; app.run()`) on the MicroPython unix port.

CPython tests prove the logic; this tier proves it on the interpreter the board
runs (its asyncio, stdlib and heap), in a small heap, as source and as the .mpy
build deploy.py uploads. Each run is scripted from outside (sim/unixport.py):
a Wi-Fi drop and a sensor fault, then Ctrl-C. Everything is asserted from what
the process printed and published: seq and uptime_ms of the readings, its log.

Variants: "standin" (sim/standin's mqtt_as with an in-memory broker, always
runs), "real" (the real mqtt_as and primitives from lib/ or the cache against the
test Mosquitto; skipped, saying why, where neither has them) and "real-tls" (the
same over TLS with the broker's certificate verified; its own heap budget).
"""
import json
import re
import statistics
import subprocess

import pytest

from sim import paths, unixport
from sim.firmware import sim_config

# Heap budgets: sim.unixport.HEAP_BUDGET (measured; the 64K is not met
# yet, docs/unixport.md has the per-module figures and what would close the gap).
HEAP = unixport.HEAP_BUDGET
INTERVAL_MS = 200
LED_PIN = 2  # active low in sim_config: level 1 is off
# Seconds after "starting": the link is away for 2 s (mqtt_as then needs ~7 s to
# come back: a 5 s stability check), later the sensor garbles its bits for 1.5 s
# (the driver's checksum error, a bare Exception).
LINK_DOWN, LINK_UP, DHT_FAIL, DHT_OK, STOP = 2.0, 4.0, 13.0, 14.5, 17.0
SCRIPT = [(LINK_DOWN, {"link": False}), (LINK_UP, {"link": True}),
          (DHT_FAIL, {"dht": "checksum"}), (DHT_OK, {"dht": "ok"})]
QUEUE = 64  # the outage (~9 s, ~45 readings) fits: nothing may be lost
# Not ASCII: mqtt_as sends len() as the length, so a str would be cut on the wire.
LOCATION = "K\u00fcche, 1. Stock"

_runs = {}
_said = set()


def _say(request, text):
    """Shown once in the test output even when pytest captures it: which variant ran."""
    if text in _said:
        return
    _said.add(text)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(text)
        return
    with capture.global_and_fixture_disabled():
        print(text, flush=True)


def _variant(build, libs, broker, request):
    key = (build, libs)
    if key not in _runs:
        real = libs != "standin"
        raw = sim_config(broker if real else None, sensor={"interval_s": INTERVAL_MS / 1000},
                         queue={"size": QUEUE}, location=LOCATION)
        if libs == "real-tls":  # the broker verified against the test CA, as a careful ESP32 user would
            # DER: this build's mbedtls parses no PEM (an ESP32's does); the failed PEM
            # attempt and its backoff would put the first connect after the scripted drop.
            der = request.getfixturevalue("tmp_path_factory").mktemp("ca") / "ca.der"
            subprocess.run(["openssl", "x509", "-in", broker.certs["ca"], "-outform", "DER", "-out", str(der)], check=True)
            raw["mqtt"].update(port=broker.tls_port, tls=True, ca=str(der))
        r = unixport.run(raw, SCRIPT, heapsize=HEAP[key], build=build, libs="real" if real else libs, seconds=STOP,
                         broker=broker if real else None, until=_caught_up, max_seconds=STOP + 30)
        _say(request, "\nunix port ran: %s; %.1f s; live heap max %s, after stop %s bytes" % (
            r.describe(), r.seconds, max((h for _, h in r.heap), default="-"), r.heap[-1][1] if r.heap else "-"))
        _runs[key] = r
    return _runs[key]


def _caught_up(r):
    """The newest published reading is fresh: the backlog has drained (the real
    mqtt_as waits ~100 ms per PUBACK, so it drains slower than the stand-in)."""
    readings, now = r.readings(), r.last_ticks()
    return bool(readings) and now is not None and readings[-1]["uptime_ms"] >= now - 3 * INTERVAL_MS


def _ticks(r, text):
    """ticks_ms of the first log line containing text."""
    line = r.logged(text)[0]
    return int(line[1:line.index("]")])


def _final_stats(r):
    line = r.logged("app: stopped: ")[-1]
    return json.loads(line.split("app: stopped: ", 1)[1])


def _needs_real(request, libs):
    if libs != "standin" and not paths.lib_dir():
        _say(request, "\nunix port: real-library variant skipped, neither lib/ nor the cache has "
                      "mqtt_as/primitives; the stand-in variant runs")
        pytest.skip("the real mqtt_as and primitives are neither in lib/ nor in the cache "
                    "(./fireant upstream --from DIR fills it from a clone or mirror): the stand-in variant ran instead")


@pytest.fixture(params=["standin", "real"])
def libs(request):
    _needs_real(request, request.param)
    return request.param


# (build, libs): .py and .mpy with the stand-ins and the real libraries, and the
# .mpy build (what deploy.py installs) with TLS to the broker, verified.
VARIANTS = [("py", "standin"), ("mpy", "standin"), ("py", "real"), ("mpy", "real"), ("mpy", "real-tls")]


@pytest.fixture(params=VARIANTS, ids=["-".join(v) for v in VARIANTS])
def run(request):
    build, libs = request.param
    _needs_real(request, libs)
    broker = request.getfixturevalue("broker") if libs != "standin" else None
    r = _variant(build, libs, broker, request)
    assert r.returncode == 0 and not r.logged("Traceback"), r.output()
    return r


def test_runs_within_the_heap_budget(run):
    assert not run.logged("MemoryError"), run.output()
    assert run.logged("app: stopped:"), run.output()
    assert run.heap, "no heap figures in the output"


def test_samples_at_cadence_through_link_drop_and_sensor_fault(run):
    readings = run.readings()
    seqs = [r["seq"] for r in readings]
    assert seqs == sorted(seqs), "published out of order: %s" % seqs
    # Sensor fault window in the node's own clock (uptime_ms is ticks_ms at sampling).
    fail_from, fail_to = _ticks(run, "sensor: read failed"), _ticks(run, "sensor: reading again")
    by_seq = {r["seq"]: r["uptime_ms"] for r in readings}
    gaps = [by_seq[s + 1] - by_seq[s] for s in sorted(by_seq)[:-1]
            if s + 1 in by_seq and not by_seq[s] < fail_from <= by_seq[s + 1]]
    assert len(gaps) > 40
    # One loop for four tasks on a loaded 2-core host: single late ticks happen,
    # the schedule must not drift or stall.
    assert max(gaps) <= 3 * INTERVAL_MS, gaps
    assert abs(statistics.median(gaps) - INTERVAL_MS) <= INTERVAL_MS * 0.1, gaps
    assert fail_to - fail_from >= 1000  # the fault was seen as it was scripted


def test_nothing_lost_through_the_outage(run):
    seqs = {r["seq"] for r in run.readings()}
    assert {r["location"] for r in run.readings()} == {LOCATION}  # every payload whole, as bytes
    stats = _final_stats(run)
    assert stats["wifi_drops"] >= 1 and stats["broker_connects"] >= 2, stats
    assert stats["dropped"] == 0, stats
    # Every reading from the first to the newest arrived, and the newest is fresh:
    # the backlog had drained before Ctrl-C (readings taken while stop() runs may
    # stay unsent: the real mqtt_as gets no PUBACKs once Ctrl-C has hit its reader).
    assert seqs == set(range(1, max(seqs) + 1))
    newest = max(r["uptime_ms"] for r in run.readings())
    assert newest >= _ticks(run, "app: Ctrl-C") - 1000, (newest, stats)
    # Readings taken during the outage were published after it.
    lost_at = _ticks(run, "wifi: link lost")
    assert [r for r in run.readings() if r["uptime_ms"] > lost_at + 1000]


def test_sensor_fault_is_counted_and_readings_resume(run):
    stats = _final_stats(run)
    assert stats["sensor_errors"] >= 1
    resumed = _ticks(run, "sensor: reading again")
    assert len([r for r in run.readings() if r["uptime_ms"] >= resumed]) >= 5


def test_ctrl_c_stops_cleanly(run):
    # Taken from the sim board as from a board's UART; the unix port's SIGINT can
    # land inside the collector and lock the heap for good (sim/board/simboard.py).
    assert not run.logged("SIGINT sent"), run.output()
    assert run.logged("app: Ctrl-C") and run.logged("app: stopped:")
    assert run.on("fireant/sim-node/status")[-1] == "offline"
    levels = run.logged("unixrun: app.run() returned; pin levels")[0]
    assert "(%d, 1)" % LED_PIN in levels, levels  # LED off (active low)


# -- leak check: heap in use after repeated outage/recovery cycles

CYCLE_S = 11  # link away 1 s, mqtt_as's ~7 s reconnection, the backlog drains, then steady
CYCLES = 6
# With the stand-ins the cycles after the first measure flat to the byte; the sim's
# radio-call log once leaked ~100 B a cycle. The real mqtt_as alternates between
# steady states a few hundred bytes apart from one cycle to the next (twice in CI:
# [97248, 97024, 97248, 97024, 97376]), so a leak is what raises the floor: the least
# of the last two cycles against the least of the first two after the warm-up, three
# cycles apart (a leak of ~86 B a cycle or more fails). The slack is for a reading in flight.
LEAK_TOLERANCE = 256


def test_heap_does_not_grow_across_outage_cycles(libs, request):
    """The .mpy build: after a warm-up cycle (the backlog ring fills in its
    outage), the live heap in the steady phase before each outage stays flat."""
    broker = request.getfixturevalue("broker") if libs == "real" else None
    raw = sim_config(broker, sensor={"interval_s": 0.1}, queue={"size": QUEUE})
    script, marks = [], []
    for i in range(CYCLES):
        t = 4 + i * CYCLE_S
        script += [(t, {"link": False}), (t + 1, {"link": True})]
        marks.append(t)
    r = unixport.run(raw, script, heapsize=HEAP[("mpy", libs)], build="mpy", libs=libs, broker=broker,
                     seconds=marks[-1] + 0.5, heap_every_ms=100)
    assert r.returncode == 0 and not r.logged("Traceback"), r.output()
    assert len(r.logged("mqtt: connected")) >= CYCLES, r.output()
    t0 = _ticks(r, " starting: ")  # the clock the script's times count from
    steady = []
    for t in marks:
        window = [h for at, h in r.heap if t0 + (t - 1.5) * 1000 <= at < t0 + t * 1000]
        assert window, "no heap samples before the outage at %s s" % t
        steady.append(min(window))
    _say(request, "\nleak check (%s): steady live heap before each outage: %s bytes" % (r.describe(), steady))
    assert min(steady[-2:]) - min(steady[1:3]) <= LEAK_TOLERANCE, steady


# Filters on cost heap on this 64-bit port: bench --only filters gives ~3 KB of
# module and Filter. This run needs more than that, as measured (smallest_heap, 1 KB
# steps, after issue 11's merges; the sim's air loaded first, sim/unixport.py):
# real mqtt_as 111-112K against 101K for the same script without filter keys;
# with discovery and commands off, 103K against 93K. Where the other ~7 KB go was
# not found (the allocations that fail are 640-byte blocks with 16 KB free: the
# heap is in pieces). The ESP8266 model, which has no such gap, runs the filters
# at its 33K (tests/test_esp8266.py). Budget: the measured need plus 2 KB.
FILTERS_EXTRA_K = 12


def test_filters_and_plausibility_on_micropython(libs, request):
    """The .mpy build with calibration, a median and delta/heartbeat, the sim
    sensor drifting through a compressed day with a spike every fourth read: no
    spike is published, seq has no gap, the held-back readings and the refused
    spikes are counted, and the readings' JSON is the same as without filters."""
    broker = request.getfixturevalue("broker") if libs == "real" else None
    raw = sim_config(broker, sensor={"interval_s": INTERVAL_MS / 1000}, queue={"size": QUEUE},
                     filter={"temperature_offset": -0.5, "smoothing": "median", "window": 3,
                             "delta_temperature": 0.3, "heartbeat_s": 1})
    script = [(0.0, {"day_s": 6, "noise": 0.1, "seed": 5, "dht": "spike"})]
    heapsize = "%dK" % (int(HEAP[("mpy", libs)][:-1]) + FILTERS_EXTRA_K)
    r = unixport.run(raw, script, heapsize=heapsize, build="mpy", libs=libs, broker=broker, seconds=6)
    assert r.returncode == 0 and not r.logged("Traceback"), r.output()
    readings = r.readings()
    seqs = sorted({x["seq"] for x in readings})
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 5, seqs
    temps = [x["temperature_C"] for x in readings]
    assert all(21.5 - 3.5 - 0.5 - 0.5 <= t <= 21.5 + 3.5 for t in temps), temps  # never a spike (+25.6)
    assert max(temps) - min(temps) >= 1  # the day went by, and the delta let it through
    assert set(readings[0]) == {"device", "location", "boot", "seq", "uptime_ms", "ts", "temperature_C",
                                "temperature_F", "humidity"}
    stats = _final_stats(r)
    assert stats["filtered"] >= 3 and stats["sensor_errors"] >= 3, stats
    assert stats["seq"] + stats["filtered"] + stats["sensor_errors"] >= 25  # ~30 reads in 6 s at 0.2 s
    assert r.logged("implausible jump")
    _say(request, "\nfilters on the unix port (%s): %d published, %d filtered, %d spikes refused" % (
        r.describe(), stats["seq"], stats["filtered"], stats["sensor_errors"]))
