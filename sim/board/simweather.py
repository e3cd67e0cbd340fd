"""The sim sensor's air when simboard's day_s or noise is set, and its "flaky"
and "spike" failures: a separate module so that the unix-port tiers, where the
sim board's Python costs heap a board does not spend, load it only when used.

- "flaky": a loose wire: one read in four (drawn from the seeded generator)
  fails, half of them with no answer, half garbled;
- "spike": every fourth read has bit 8 of the temperature flipped (+25.6 C)
  with a checksum that still matches: in range, but no DHT moves that fast.

A day/night cycle compressed into day_s seconds: temperature +-swing C around
simboard's temperature, coolest at 03:00 and warmest at 15:00; relative humidity
the other way (4x the swing); noise: triangular, +-2x noise C (humidity 3x), from
a 32-bit LCG seeded with simboard's seed, the same sequence under CPython and
MicroPython. The day restarts at midnight whenever day_s is set.
"""
import math
from errno import ETIMEDOUT

import simboard

_day0 = simboard.ticks_ms()  # before any day_s was set: from the first use


def rand():
    """The next number in [0, 1) of the seeded generator."""
    state = simboard.STATE
    state["_rng"] = (state.get("_rng", 1) * 1664525 + 1013904223) & 0xFFFFFFFF
    return state["_rng"] / 4294967296


def read(mode, reads):
    """dht.measure()'s reading, or its failure, in this mode; reads: measure() calls so far."""
    if mode == "flaky":
        r = rand()
        if r < 0.125:
            raise OSError(ETIMEDOUT)
        if r < 0.25:
            raise Exception("checksum error")
    t, h = weather()
    if mode == "spike" and reads % 4 == 0:
        t += 25.6
    return t, h


def weather(ms=None):
    """(temperature C, humidity %) of the air ms after the day started (default: now)."""
    state = simboard.STATE
    t, h, day_s = simboard.get("temperature"), simboard.get("humidity"), state.get("day_s")
    if day_s:
        if ms is None:
            ms = simboard.ticks_diff(simboard.ticks_ms(), state.get("_day0", _day0))
        c = math.cos(2 * math.pi * ((ms / 1000 / day_s) % 1 - 0.625))
        swing = state.get("swing", 3.0)
        t, h = t + swing * c, h - 4 * swing * c
    noise = state.get("noise")
    if noise:
        t += noise * (rand() + rand() - 1) * 2
        h += 3 * noise * (rand() + rand() - 1) * 2
    return t, (min(100.0, max(0.0, h)) if day_s or noise else h)
