"""Simulated machine module: only what app/board.py and mqtt_as use (on a board
machine is in ROM; here every name costs the unix port's heap)."""
import sys


def unique_id():
    return b"\xfa\x17\xa4\x70\x00\x01"


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1
    levels = {}  # pin id -> last value written, for tests
    writes = 0

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return Pin.levels.get(self.id, 0)
        Pin.levels[self.id] = 1 if v else 0
        Pin.writes += 1


resets = 0  # machine.reset() calls, for tests


def reset():
    """A board restarts. Under MicroPython (the unix port, the emulator) the process
    ends, and the emulator starts it again; in-process (CPython tests) the board
    cannot restart: the call is counted in resets and returns."""
    global resets
    resets += 1
    print("machine: reset")
    if sys.implementation.name == "micropython":
        sys.exit(0)


sleeps = []  # machine.deepsleep() calls (ms), for tests


def deepsleep(ms=0):
    """A board powers down: nothing after the call runs, no finally, no goodbye;
    the next run in the same directory is its wake. Under MicroPython the process
    is killed (SIGTERM from a shell: the unix port has no os._exit); in-process
    (CPython tests) the call is recorded and returns."""
    sleeps.append(ms)
    print("machine: deepsleep %d ms" % ms)
    if sys.implementation.name == "micropython":
        import os

        os.system("kill -TERM $PPID")
        while True:  # until the signal lands
            pass


class RTC:
    """Setting it moves the process's clock where libfaketime runs it (tests of a
    board whose clock reads 2000): FAKETIME_TIMESTAMP_FILE holds the offset from
    the real time, re-read on every call (FAKETIME_NO_CACHE)."""

    def datetime(self, dt=None):
        import time

        if dt is None:
            t = time.gmtime(time.time())
            return (t[0], t[1], t[2], t[6] + 1, t[3], t[4], t[5], 0)
        import os

        path = os.getenv("FIREANT_SIM_CLOCK")
        if path:
            y, mo, d, _, h, mi, s = dt[:7]
            days = _days(y, mo, d)
            with open(path) as f:
                offset = int(f.read().strip() or 0)
            new = days * 86400 + h * 3600 + mi * 60 + s - (int(time.time()) - offset)
            with open(path, "w") as f:
                f.write("%+d" % new)


def _days(y, m, d):
    """Days from 1970-01-01 to the date (proleptic Gregorian)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
