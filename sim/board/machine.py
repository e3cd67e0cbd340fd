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
        wdt_check()
        if v is None:
            return Pin.levels.get(self.id, 0)
        Pin.levels[self.id] = 1 if v else 0
        Pin.writes += 1


resets = 0  # machine.reset() calls, for tests
wdt_resets = 0  # resets by a starved WDT, for tests (in-process: counted, the process goes on)

# reset_cause()'s values, as the ESP8266 port numbers them (the SDK's rst_info reasons).
PWRON_RESET = 0
WDT_RESET = 1
SOFT_RESET = 4
DEEPSLEEP_RESET = 5
HARD_RESET = 6
_CAUSE = "reset_cause"  # in the board's directory: why the last run ended; none = power-on
_RTC = "rtc_memory"  # RTC memory: survives a reset, not a power cut (a new directory)


def _end(cause, hard=False):
    """A board restarts: under MicroPython (the unix port, the emulator) the process
    ends, the cause left for the next run; in-process (CPython tests) it cannot:
    the call returns. hard: nothing of the firmware's runs after (a watchdog: the
    process killed, SIGKILL, as a board's chip resets), else SystemExit."""
    if sys.implementation.name == "micropython":
        with open(_CAUSE, "w") as f:
            f.write(str(cause))
        if hard:
            import os

            os.system("kill -9 $PPID")  # the shell's parent: this process
        sys.exit(0)


sleeps = []  # machine.deepsleep() calls (ms), for tests


def deepsleep(ms=0):
    """A board powers down: nothing after the call runs, no finally, no goodbye;
    the next run in the same directory is its wake (reset_cause DEEPSLEEP_RESET).
    In-process (CPython tests) the call is recorded and returns."""
    sleeps.append(ms)
    print("machine: deepsleep %d ms" % ms)
    _end(DEEPSLEEP_RESET, True)


def reset():
    """machine.reset(): counted in resets (in-process the call returns)."""
    global resets
    resets += 1
    print("machine: reset")
    _end(SOFT_RESET)


def reset_cause():
    """Why this run started: what the last one left (once), else power-on."""
    import os

    try:
        with open(_CAUSE) as f:
            cause = int(f.read())
        os.remove(_CAUSE)
    except (OSError, ValueError):
        return PWRON_RESET
    return cause


_wdt = None  # the started WDT: [timeout_ms, ticks of the last feed]


def wdt_check():
    """A starved WDT resets the board. Boards count in hardware; here every call
    into the sim board (simboard's poll, the LED) looks, so a loop blocked for
    longer than the timeout resets as soon as it runs again."""
    global _wdt, wdt_resets
    if _wdt is None:
        return
    from time import ticks_diff, ticks_ms

    if ticks_diff(ticks_ms(), _wdt[1]) > _wdt[0]:
        _wdt = None  # a board starts again without one
        wdt_resets += 1
        print("machine: watchdog reset")
        _end(WDT_RESET, True)


def WDT(id=0, timeout=5000):
    """Started, it cannot be stopped (as on both chips). A function here, its class
    in simwdt.py, loaded when one is started: the model's heap holds no class for
    what a firmware with the watchdog off never uses (machine is C on a board)."""
    from simwdt import WDT

    return WDT(timeout)


class RTC:
    """memory(): RTC memory, a file in the board's directory (it survives a reset).
    Setting the time moves the process's clock where libfaketime runs it (tests of a
    board whose clock reads 2000): FAKETIME_TIMESTAMP_FILE holds the offset from
    the real time, re-read on every call (FAKETIME_NO_CACHE)."""

    def memory(self, data=None):
        if data is None:
            try:
                with open(_RTC, "rb") as f:
                    return f.read()
            except OSError:
                return b""
        with open(_RTC, "wb") as f:
            f.write(data)

    def datetime(self, dt=None):
        import time

        if dt is None:
            t = time.gmtime(time.time())
            return (t[0], t[1], t[2], t[6] + 1, t[3], t[4], t[5], 0)
        import os

        path = os.getenv("FIREANT_SIM_CLOCK")
        if path:
            y, mo, d, _, h, mi, s = dt[:7]
            y -= mo <= 2  # days from 1970-01-01 to the date (proleptic Gregorian)
            era = y // 400
            yoe = y - era * 400
            doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + d - 1
            days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
            with open(path) as f:
                offset = int(f.read().strip() or 0)
            new = days * 86400 + h * 3600 + mi * 60 + s - (int(time.time()) - offset)
            with open(path, "w") as f:
                f.write("%+d" % new)

