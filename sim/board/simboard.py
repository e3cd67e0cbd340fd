"""Shared state of the simulated board: the radio medium and the sensor's script.

Tests set it in-process with set(); another process steers it through a JSON file
named by FIREANT_SIM_CONTROL, e.g. {"link": false} to drop the Wi-Fi, or
{"dht": "fail"} to unplug the sensor. Works under CPython and MicroPython.
"""
import json
import math
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
    "dht": "ok",  # ok | fail | checksum | garbage | flaky | spike: sim/board/dht.py
    "dht_block_ms": 0,  # how long measure() blocks the loop (a board: ~270)
    "temperature": 21.5,  # what the sensor reads; with day_s, the day's mean
    "humidity": 45.0,
    # A day/night cycle (0: off, the values above read as they are) compressed into
    # day_s seconds: temperature +-swing C around its mean, warmest mid-afternoon,
    # relative humidity the other way (4x); noise: the spread of each reading's
    # noise in C (humidity 3x), drawn from a generator seeded with seed.
    "day_s": 0,
    "swing": 3.0,
    "noise": 0.0,
    "seed": 1,
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
        set(**update)


def set(**changes):
    global _link_since, _rng, _day0
    if changes.get("link") and not STATE["link"]:
        _link_since = ticks_ms()
    if "seed" in changes:
        _rng = changes["seed"] & 0xFFFFFFFF
    if "day_s" in changes:
        _day0 = ticks_ms()  # the day starts at midnight
    STATE.update(changes)


_rng = STATE["seed"]
_day0 = ticks_ms()


def rand():
    """The next number in [0, 1) of the seeded generator (a 32-bit LCG: the same
    sequence under CPython and MicroPython)."""
    global _rng
    _rng = (_rng * 1664525 + 1013904223) & 0xFFFFFFFF
    return _rng / 4294967296


def weather(ms=None):
    """(temperature C, humidity %) the air has ms after the day started (default: now)."""
    t, h, day_s = get("temperature"), get("humidity"), STATE["day_s"]
    if day_s:
        if ms is None:
            ms = ticks_diff(ticks_ms(), _day0)
        # Coolest at 03:00, warmest at 15:00 of the compressed day.
        c = math.cos(2 * math.pi * ((ms / 1000 / day_s) % 1 - 0.625))
        t, h = t + STATE["swing"] * c, h - 4 * STATE["swing"] * c
    noise = STATE["noise"]
    if noise:
        t += noise * (rand() + rand() - 1) * 2  # triangular, +-2 noise
        h += 3 * noise * (rand() + rand() - 1) * 2
    return t, (min(100.0, max(0.0, h)) if day_s or noise else h)


def get(key):
    _poll()
    return STATE[key]


def link_up_for_ms():
    """How long the medium has been up, or -1 while it is down."""
    if not get("link"):
        return -1
    return ticks_diff(ticks_ms(), _link_since)
