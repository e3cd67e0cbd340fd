"""Shared state of the simulated board: the radio medium and the sensor's script.

Tests set it in-process with set(); another process steers it through a JSON file
named by FIREANT_SIM_CONTROL, e.g. {"link": false} to drop the Wi-Fi, or
{"dht": "fail"} to unplug the sensor, or {"ctrl_c": true}: Ctrl-C as a board takes
it from its UART, a KeyboardInterrupt raised in the code that runs (here: the
next call into the board). The unix port's SIGINT is not that: its handler
longjmps out of wherever it lands, the collector included, which leaves the heap
locked for good ("heap is locked" in the goodbye). Works under CPython and MicroPython.
"""
import json
import os
import time

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython without sim.hostpy: plain milliseconds are enough here
    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

STATE = {
    "chip": os.getenv("FIREANT_SIM_CHIP"),  # esp32 | esp8266 | None (sys.platform decides); read at import
    "link": True,  # the access point is reachable
    "wifi_password": None,  # when set, a join with another password fails
    "join_ms": 200,  # association + DHCP time
    "dht": "ok",  # ok | fail | checksum | garbage (dht.py) | flaky | spike (simweather.py)
    "dht_block_ms": 0,  # how long measure() blocks the loop (a board: ~270)
    "temperature": 21.5,  # what the sensor reads; with day_s, the day's mean
    "humidity": 45.0,
    # day_s, swing, noise, seed: the air's day and noise when set (simweather.py)
    "broker": True,  # for the in-memory broker stand-in: up
    "mqtt_password": None,  # when set, the in-memory broker refuses any other (CONNACK 5)
}
_path = os.getenv("FIREANT_SIM_CONTROL")
_mtime = None
_checked = None
_link_since = 0  # ticks when the medium last came up


def _poll():
    global _mtime, _checked
    now = ticks_ms()
    if _path is None or (_checked is not None and ticks_diff(now, _checked) < 50):
        return
    _checked = now
    try:
        mtime = os.stat(_path)[8]
    except OSError:
        return
    if mtime != _mtime:
        try:
            with open(_path) as f:
                update = json.loads(f.read())
        except (OSError, ValueError):
            return  # caught mid-write; next poll
        _mtime = mtime
        ctrl_c = update.pop("ctrl_c", False)
        set(**update)
        if ctrl_c:
            with open(_path + ".taken", "w"):
                pass  # tells the host not to fall back on SIGINT
            raise KeyboardInterrupt


def set(**changes):
    global _link_since
    if changes.get("link") and not STATE["link"]:
        _link_since = ticks_ms()
    if "seed" in changes:  # simweather's generator starts over
        changes["_rng"] = changes["seed"]
    if "day_s" in changes:  # the day starts at midnight
        changes["_day0"] = ticks_ms()
    STATE.update(changes)


def get(key):
    _poll()
    import machine

    machine.wdt_check()  # a starved watchdog resets the board (sim/board/machine.py)
    return STATE[key]


def link_up_for_ms():
    """How long the medium has been up, or -1 while it is down."""
    if not get("link"):
        return -1
    return ticks_diff(ticks_ms(), _link_since)
