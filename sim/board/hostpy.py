"""Give CPython the MicroPython extensions app/ relies on (tests and sim runs).

Import once before app: adds time.ticks_ms/ticks_add/ticks_diff (30-bit wrap, as
on the board), asyncio.sleep_ms, sys.print_exception, and gc.mem_free (0: CPython has no fixed heap).
"""
import asyncio
import gc
import sys
import time
import traceback

_PERIOD = 1 << 30
_HALF = _PERIOD // 2
_t0 = time.monotonic()


def ticks_ms():
    return int((time.monotonic() - _t0) * 1000) % _PERIOD


def start_at(ms):
    """Make ticks_ms() read ms now (tests of the 2^30 wrap: start just before it)."""
    global _t0
    _t0 = time.monotonic() - ms / 1000


def ticks_add(t, delta):
    if not -_HALF < delta < _HALF:  # as MicroPython's: ticks_diff could not undo it
        raise OverflowError("ticks interval overflow")
    return (t + delta) % _PERIOD


def ticks_diff(a, b):
    return ((a - b + _HALF) % _PERIOD) - _HALF


def sleep_ms(ms):
    ticks_add(0, max(0, ms))  # MicroPython's asyncio adds ms to the ticks: the same limit
    return asyncio.sleep(ms / 1000)


def print_exception(e, file=None):
    traceback.print_exception(type(e), e, e.__traceback__, file=file)


if sys.implementation.name != "micropython":
    time.ticks_ms, time.ticks_add, time.ticks_diff = ticks_ms, ticks_add, ticks_diff
    asyncio.sleep_ms = sleep_ms
    sys.print_exception = print_exception
    gc.mem_free = lambda: 0
