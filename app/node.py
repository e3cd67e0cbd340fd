"""What the tasks share: link flags, counters, the clock, the log, and the retry delay."""
import asyncio
import gc
import sys
from random import getrandbits
from time import ticks_add, ticks_diff, ticks_ms

from micropython import const

# ticks_ms wraps here: 2^30 on a board, 2^62 on the 64-bit unix port. (Not from
# ticks_ms(): ticks_add refuses a delta past half the period, 6.2 days of uptime.)
_PERIOD = ticks_add(0, -1) + 1  # type: ignore[type-var]  # 0 is a ticks value; the stubs type ticks as opaque
_MASK = const(0x3FFFFFFF)
_WATCH_MS = const(500)  # how soon supervise() sees a task that ended

VERSION = b"0.11.0"  # the firmware's, as the telemetry and Home Assistant show it

# Heartbeat states, most urgent first.
BOOTING = 0
SENSOR_FAILING = 1
NO_WIFI = 2
NO_BROKER = 3
OK = 4
STATE_NAMES = (b"booting", b"sensor failing", b"no wifi", b"no broker", b"ok")  # as the telemetry sends them

# Progress marks (node.alive), one byte per watched task, at these indexes: heartbeat
# 0, sampler 1, wifi 2, publisher 3, status 4, mqtt_as's reconnect loop 5 (it looks
# at the station, app/wifi.py's Link, at least once a cycle). Each sets its own to 1
# (moved) as it goes round, or to 2 (parked) before a wait that another watched task
# ends (the publisher waiting for readings, or for mqtt_as's reconnect loop).
# Byte 6 counts MemoryError crashes (supervise()), mod 256.
# app/watchdog.py clears the 1s and feeds the WDT only while none has stayed clear
# longer than its bound. A store into a bytearray: no allocation. Each module names
# its indexes with const() of its own: no module global per name (ESP8266 heap).


class Node:
    # Class attributes, set on the instance only where they change (app/watchdog.py,
    # tests): each instance attribute costs an ESP8266's heap for good.
    restart_ms = 5000  # pause before a crashed task is restarted
    safe_mode = False

    def __init__(self, device):
        self.device = device
        self.booted = False  # set once the first reading or failure is in
        self.wifi_up = False
        self.broker_up = False
        self.sensor_ok = True
        self.seq = 0  # readings taken this boot
        self.sensor_errors = 0
        self.dropped = 0  # readings pushed out of a full queue unpublished
        self.published = 0
        self.filtered = 0  # good readings the filters held back (app/filters.py): not published, not lost
        self.wifi_drops = 0  # times the station lost its link
        self.broker_connects = 0
        self.restarts = 0  # task crashes survived
        self.alive = bytearray(7)  # progress marks, as above; [6]: MemoryError crashes, mod 256
        self.client_started = False  # mqtt_as made its first connection: it reconnects on its own
        self.interval_ms = 5000  # sampling period; a command may change it at run time
        self.identify_ms = 0  # asked by the identify command; the heartbeat takes it
        # Per-boot id: with it seq is unique across reboots. Two 16-bit draws: no bigint on a board.
        self.boot = "%04x%04x" % (getrandbits(16), getrandbits(16))
        self._last = ticks_ms()
        self._wraps = 0  # ticks_ms wraps every 2^30 ms (12.4 days): uptime counts on
        self.min_free = gc.mem_free() if hasattr(gc, "mem_free") else 0
        # The clock: uptime() at an NTP answer and the UTC it said (s, ms); None until synced.
        self.synced = None
        self.first_sync = False  # the first NTP request is under way: the publisher waits for it

    def state(self):
        if not self.booted:
            return BOOTING
        if not self.sensor_ok:
            return SENSOR_FAILING
        if not self.wifi_up:
            return NO_WIFI
        if not self.broker_up:
            return NO_BROKER
        return OK

    def uptime(self):
        """Milliseconds on ticks_ms's clock, counting on past its wrap (2^30 ms, 12.4
        days, on a board): called at least once a wrap (the status task: every second)."""
        now = ticks_ms()
        if now < self._last:
            self._wraps += 1
        self._last = now
        return self._wraps * _PERIOD + now

    def stamp(self):
        """Now, as the backlog keeps it: uptime's low 30 bits (an int32, a small int on a board)."""
        return self.uptime() & _MASK

    def taken(self, stamp):
        """The uptime at which stamp was taken (no more than 12.4 days ago)."""
        up = self.uptime()
        return up - ((up - stamp) & _MASK)

    def utc(self, up):
        """(s, ms) UTC of the instant uptime read up, from the latest NTP answer:
        readings taken before it are back-filled; None before the first sync.
        Integer arithmetic (a board's floats cannot hold UTC seconds with ms)."""
        if self.synced is None:
            return None
        at, s, ms = self.synced
        ms += up - at
        return s + ms // 1000, ms % 1000

    def free(self):
        """Free heap now, remembering the least seen (sampled every second by the status task)."""
        if not hasattr(gc, "mem_free"):  # CPython (tests)
            return 0
        f = gc.mem_free()
        if f < self.min_free:
            self.min_free = f
        return f


def forget(name):
    """Let the GC have app.<name>, a module needed only at start-up (config, dns)."""
    sys.modules.pop("app." + name, None)
    try:
        delattr(sys.modules["app"], name)
    except (AttributeError, KeyError):
        pass


def log(tag, *msg):
    # The message printed as it is, not copied into one line first: on an ESP8266
    # a long one (the telemetry) would need a second free piece of its size.
    print("[%9d] %s:" % (ticks_ms(), tag), *msg)


def log_exception(tag, e):
    log(tag, "%s: %s" % (type(e).__name__, e))
    sys.print_exception(e)


sleep_ms = asyncio.sleep_ms  # under CPython sim/board/hostpy.py provides it, as it does ticks_ms


def backoff_ms(attempt, lo_ms, hi_ms):
    """Capped exponential backoff with jitter in [d/2, d]: nodes that lost the
    same access point do not all come back in the same instant."""
    d = lo_ms << min(attempt, 16)
    d = min(d, hi_ms)
    return d // 2 + (getrandbits(16) * (d // 2)) // 65536


async def supervise(node, jobs):
    """Run each job, (name, fn, args), as a task and keep it running: one that
    crashes (or returns) is logged with its traceback, counted in node.restarts
    and started again after node.restart_ms, so no task is ever silently dead.
    One watcher for all of them (a watcher per task costs ~110 bytes of an
    ESP8266's heap each). Never returns; cancelled, it ends every task first."""
    tasks = [asyncio.create_task(fn(*args)) for _, fn, args in jobs]
    down = [False] * len(jobs)  # ended, not yet restarted
    died = [ticks_ms()] * len(jobs)  # when it ended
    loop = asyncio.get_event_loop()
    # MicroPython reports a task that died unawaited at once ("Task exception
    # wasn't retrieved"); ours are reported below, mqtt_as's in our log.
    loop.set_exception_handler(lambda _, ctx: None if ctx.get("future") in tasks else log_exception(
        "asyncio", ctx.get("exception")))
    try:
        while True:
            await sleep_ms(_WATCH_MS)
            for i in range(len(tasks)):  # range(): no iterator object per round, unlike enumerate()
                t, name = tasks[i], jobs[i][0]
                if not down[i] and t.done():
                    down[i], died[i] = True, ticks_ms()
                    try:
                        await t  # a finished task hands over its exception
                        log(name, "returned; restarting")
                    except Exception as e:  # CancelledError and KeyboardInterrupt are not Exceptions
                        node.restarts += 1
                        if isinstance(e, MemoryError):  # app/watchdog.py counts them: a heap in pieces
                            node.alive[6] = (node.alive[6] + 1) & 255
                        log_exception(name, e)
                        log(name, "crashed; restarting in %d ms" % node.restart_ms)
                elif down[i] and ticks_diff(ticks_ms(), died[i]) >= node.restart_ms:
                    down[i] = False
                    _, fn, args = jobs[i]
                    tasks[i] = asyncio.create_task(fn(*args))
    finally:
        loop.set_exception_handler(None)  # it holds the tasks: let them go with the loop
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except BaseException:  # CancelledError; what a task raised was reported above
                pass
