"""The firmware in an ESP8266's heap: the ESP8266 RAM model tier (issue 10).

The model (sim/upstream.py, docs/esp8266.md) is the MicroPython unix port built
32-bit with the ESP8266's object model, the sim board frozen in as a board has
its modules in ROM, and a ROMFS partition mounted at /rom. The firmware runs as
deploy.py installs it on a board: app/ and the real mqtt_as/primitives .mpy in
the ROMFS image (build.romfs_image), `import app; app.run()`, against the test
Mosquitto, in sim.unixport.ESP8266_HEAP: what an ESP8266 leaves free after boot.
The same fault scenario as tests/test_unixport.py (a Wi-Fi drop long enough for
a backlog, mqtt_as's reconnection, a sensor fault, Ctrl-C), asserted from the
outside: the readings at the broker and the log. No periodic gc.collect() from
the runner (heap_every_ms=0): the firmware's own gc.threshold only, as on a board.

TLS, as an ESP8266 has it (axTLS, its buffers on the GC heap): the model's
allocator, and the validator's refusal of mqtt.tls on an ESP8266, which the
measurements in docs/esp8266.md ("TLS") led to.

Skipped, saying why, where the model cannot be had (no MicroPython source in
the cache, no gcc-multilib, no real libraries). The heap figures (smallest heap,
the bare mqtt_as client's, where the heap goes) are the benchmark's:
`python -m bench --only esp8266_model`.
"""
import json
import os
import signal
import statistics
import subprocess

import pytest

from sim import paths, unixport, upstream
from sim.firmware import sim_config

HEAP = unixport.ESP8266_HEAP
INTERVAL_MS = 200
LED_PIN = 2  # active low in sim_config: level 1 is off
# Seconds after "starting": the link away 2 s (mqtt_as then needs ~7 s to come
# back: its 5 s stability check), later the sensor for 1.5 s.
LINK_DOWN, LINK_UP, DHT_FAIL, DHT_OK, STOP = 2.0, 4.0, 13.0, 14.5, 17.0
SCRIPT = [(LINK_DOWN, {"link": False}), (LINK_UP, {"link": True}),
          (DHT_FAIL, {"dht": "fail"}), (DHT_OK, {"dht": "ok"})]
QUEUE = 64  # the outage (~9 s, ~45 readings) fits: nothing may be lost

_said = set()
_runs = {}


def _say(request, text):
    """Shown once in the test output even when pytest captures it."""
    if text in _said:
        return
    _said.add(text)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(text)
        return
    with capture.global_and_fixture_disabled():
        print(text, flush=True)


def _skip_unless_model(request, frozen=False):
    why = upstream.model_unavailable(frozen)
    if why is None and not paths.lib_dir():
        why = "the real mqtt_as and primitives are neither in lib/ nor in the cache (./fireant upstream --from DIR)"
    if why:
        _say(request, "\nESP8266 model tier skipped: %s" % why)
        pytest.skip("ESP8266 model unavailable: %s" % why)


def _caught_up(r):
    """The newest published reading is fresh: the backlog has drained (mqtt_as
    waits ~100 ms per PUBACK). The node's clock from the host's: with no heap
    lines the log can be silent for seconds."""
    readings, now = r.readings(), r.node_ticks()
    return bool(readings) and now is not None and readings[-1]["uptime_ms"] >= now - 3 * INTERVAL_MS


def _ticks_of(line):
    return int(line[1:line.index("]")])


def _ticks(r, text):
    """ticks_ms of the first log line containing text."""
    return _ticks_of(r.logged(text)[0])


def _final_stats(r):
    line = r.logged("app: stopped: ")[-1]
    return json.loads(line.split("app: stopped: ", 1)[1])


@pytest.fixture
def run(request):
    _skip_unless_model(request)
    if "romfs" not in _runs:
        broker = request.getfixturevalue("broker")
        # An ESP8266's defaults (config.py): no clock, no spool, no commands or discovery
        # (each refused there by name), telemetry every 60 s.
        raw = sim_config(broker, sensor={"interval_s": INTERVAL_MS / 1000}, queue={"size": QUEUE})
        del raw["ntp"], raw["spool"]
        r = unixport.run(raw, SCRIPT, heapsize=HEAP, interp="esp8266", broker=broker, seconds=STOP,
                         until=_caught_up, max_seconds=STOP + 30, heap_every_ms=0)
        _say(request, "\nESP8266 model ran: %s; %.1f s; live heap after stop %s bytes" % (
            r.describe(), r.seconds, r.heap[-1][1] if r.heap else "-"))
        _runs["romfs"] = r
    r = _runs["romfs"]
    assert not r.logged("MemoryError"), "the firmware does not fit in %s:\n%s" % (HEAP, r.output())
    assert r.returncode == 0 and not r.logged("Traceback"), r.output()
    return r


def test_runs_in_an_esp8266_heap(run):
    assert run.stopped(), run.output()
    stats = _final_stats(run)
    assert stats["restarts"] == 0, stats  # no task crashed (and was restarted) on the way
    # No clock on an ESP8266 (it does not fit): no NTP, "ts": null; every reading has the boot's id.
    assert not run.logged("ntp:") and not run.logged("spool"), run.output()
    assert all(r["ts"] is None and r["boot"] == stats["boot"] for r in run.readings())


def test_samples_at_cadence_through_link_drop_and_sensor_fault(run):
    readings = run.readings()
    seqs = [r["seq"] for r in readings]
    assert seqs == sorted(seqs), "published out of order: %s" % seqs
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
    stats = _final_stats(run)
    assert stats["wifi_drops"] >= 1 and stats["broker_connects"] >= 2, stats
    assert stats["dropped"] == 0, stats
    # Every reading from the first to the newest arrived, and the newest is fresh:
    # the backlog drained before Ctrl-C.
    assert seqs == set(range(1, max(seqs) + 1))
    newest = max(r["uptime_ms"] for r in run.readings())
    assert newest >= _ticks(run, "app: Ctrl-C") - 1000, (newest, stats)
    # Readings taken during the outage were published after it, from the backlog.
    lost_at = _ticks(run, "wifi: link lost")
    reconnected = [t for t in map(_ticks_of, run.logged("mqtt: connected")) if t > lost_at]
    assert reconnected, run.output()
    held = [r for r in run.readings() if lost_at + 1000 < r["uptime_ms"] < reconnected[0]]
    assert len(held) >= 10, len(held)


def test_sensor_fault_is_counted_and_readings_resume(run):
    stats = _final_stats(run)
    assert stats["sensor_errors"] >= 1
    resumed = _ticks(run, "sensor: reading again")
    assert len([r for r in run.readings() if r["uptime_ms"] >= resumed]) >= 5


def test_ctrl_c_stops_cleanly(run):
    assert run.logged("app: Ctrl-C") and run.logged("app: stopped:")
    assert run.on("fireant/sim-node/status")[-1] == "offline"
    levels = run.logged("unixrun: app.run() returned; pin levels")[0]
    assert "(%d, 1)" % LED_PIN in levels, levels  # LED off (active low)


def test_frozen_firmware_connects_publishes_and_stops(request):
    """The other install path: app/ and the libraries frozen into the firmware
    (manifest.py), nothing on /rom. A short healthy run in the same heap."""
    _skip_unless_model(request, frozen=True)
    broker = request.getfixturevalue("broker")
    raw = sim_config(broker, sensor={"interval_s": INTERVAL_MS / 1000}, queue={"size": QUEUE})
    r = unixport.run(raw, heapsize=HEAP, interp="esp8266-frozen", broker=broker, seconds=3,
                     until=_caught_up, max_seconds=20, heap_every_ms=0)
    _say(request, "\nESP8266 model ran: %s; %.1f s" % (r.describe(), r.seconds))
    assert r.returncode == 0 and not r.logged("Traceback") and not r.logged("MemoryError"), r.output()
    assert r.logged("mqtt: connected") and r.stopped(), r.output()
    seqs = [x["seq"] for x in r.readings()]
    assert len(seqs) >= 5 and seqs == sorted(seqs) and set(seqs) == set(range(1, max(seqs) + 1)), seqs
    assert r.on("fireant/sim-node/status")[-1] == "offline"


# What does not fit beside the firmware at the tier's heap, each measured on the
# model (docs/esp8266.md): refused at boot on the board itself, by name.
REFUSED = [({"filter": {"temperature_offset": -0.5}}, "filter.temperature_offset"),  # >33K; all stages 35K
           ({"ntp": {"server": "127.0.0.1", "resync_s": 3600}}, "ntp.resync_s"),  # the clock: 35K
           ({"spool": {"size": 17280}}, "spool.size"),  # the spool's first batch: >33K
           ({"wifi": {"ssid": "", "portal_after_s": 600}}, "wifi.portal_after_s")]  # the portal alone: 34K


@pytest.mark.parametrize("sections, key", REFUSED, ids=[k for _, k in REFUSED])
def test_what_does_not_fit_is_refused_on_the_board_by_name(request, sections, key):
    _skip_unless_model(request)
    broker = request.getfixturevalue("broker")
    raw = sim_config(broker, sensor={"interval_s": INTERVAL_MS / 1000}, **sections)
    r = unixport.run(raw, heapsize=HEAP, interp="esp8266", broker=broker, seconds=2, heap_every_ms=0)
    assert r.returncode == 0, r.output()
    assert r.logged("config: %s: an ESP8266 has not the heap" % key), r.output()
    assert not r.logged("starting"), r.output()


# -- TLS as an ESP8266 has it: axTLS, its buffers on the GC heap (docs/esp8266.md, "TLS")

TLS_PROBE = """import gc, socket, ssl
gc.collect(); before = gc.mem_alloc()
s = socket.socket()
s.connect(socket.getaddrinfo("127.0.0.1", %d)[0][-1])
t = ssl.wrap_socket(s, server_hostname="localhost")
gc.collect(); held = gc.mem_alloc()
t.close(); del t, s
gc.collect()
print("tls", before, held, gc.mem_alloc())
"""
SSL_OBJECT_BYTES = 5316  # axTLS's SSL (its 1 + 4 KB record buffer within), 32-bit


def _tls_config(broker):
    raw = sim_config(broker, sensor={"interval_s": INTERVAL_MS / 1000}, queue={"size": QUEUE})
    raw["mqtt"].update(port=broker.tls_port, tls=True)  # no mqtt.ca: an ESP8266 cannot verify
    return raw


def test_axtls_takes_its_memory_from_the_gc_heap(request, broker):
    """micropython-lib's ssl (frozen, as bundle-networking has it on ESP8266
    firmware) over the C tls module with axTLS, whose malloc is the GC heap's: an
    open TLS connection shows in gc.mem_alloc() and is given back on close; in a
    heap too small for the handshake axTLS uses the NULL its allocator returns and
    the process dies (SIGSEGV), as a board resets: no MemoryError to catch."""
    _skip_unless_model(request)
    exe = upstream.model_exe()
    env = {k: v for k, v in os.environ.items() if k != "FIREANT_ROMFS"}  # no partition: nothing at /rom
    code = TLS_PROBE % broker.tls_port
    ok = subprocess.run([exe, "-X", "heapsize=64K", "-c", code], capture_output=True, text=True, timeout=30, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    before, held, after = map(int, ok.stdout.split()[1:4])
    _say(request, "\nESP8266 model: a TLS connection (axTLS) holds %d bytes of GC heap" % (held - before))
    assert held - before > SSL_OBJECT_BYTES, (before, held)
    assert after - before < 256, (before, after)
    short = subprocess.run([exe, "-X", "heapsize=12K", "-c", code], capture_output=True, text=True, timeout=30,
                           env=env)
    assert short.returncode == -signal.SIGSEGV, (short.returncode, short.stdout + short.stderr)


@pytest.mark.parametrize("interp", ["esp8266", "esp8266-frozen"])
def test_tls_is_refused_on_an_esp8266_by_name(request, interp):
    """On an ESP8266 the validator refuses mqtt.tls at boot, one line naming the key:
    as configured (do_handshake=False, right for mbedtls) axTLS sends mqtt_as's
    CONNECT unencrypted mid-handshake and never connects, and from ROMFS its 5.3 KB
    SSL object does not fit beside the firmware (the process died of SIGSEGV at
    the first connect: a reset, every boot). docs/esp8266.md has the figures,
    measured before this rule. The node says so and stops: no crash, no connect."""
    _skip_unless_model(request, frozen=interp == "esp8266-frozen")
    broker = request.getfixturevalue("broker")
    r = unixport.run(_tls_config(broker), heapsize=HEAP, interp=interp, broker=broker, seconds=2, heap_every_ms=0)
    assert r.returncode == 0, r.output()
    assert r.logged("config: mqtt.tls: not on an ESP8266"), r.output()
    assert not r.logged("starting") and not r.logged("cannot connect"), r.output()
