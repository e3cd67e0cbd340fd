"""What the tasks share: link flags, counters, the log, and the retry delay."""
import asyncio
import sys
from random import getrandbits
from time import ticks_ms

VERSION = "0.11.0"  # the firmware's, as Home Assistant shows it

# Heartbeat states, most urgent first.
BOOTING = 0
SENSOR_FAILING = 1
NO_WIFI = 2
NO_BROKER = 3
OK = 4
STATE_NAMES = ("booting", "sensor failing", "no wifi", "no broker", "ok")


class Node:
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
        self.client_started = False  # mqtt_as made its first connection: it reconnects on its own
        self.restart_ms = 5000  # pause before a crashed task is restarted
        self.interval_ms = 5000  # sampling period; a command may change it at run time
        self.identify_until = None  # ticks_ms until which the LED shows IDENTIFY

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

    def stats(self, extra=""):
        """The counters as JSON text (the device name is ASCII: config.py sees to it),
        extra (", \"key\": value" pairs) added at the end in the same allocation."""
        return ('{"device": "%s", "uptime_ms": %d, "seq": %d, "published": %d, "dropped": %d, "sensor_errors": %d, '
                '"filtered": %d, "wifi_drops": %d, "broker_connects": %d, "restarts": %d, "state": "%s"%s}') % (
            self.device, ticks_ms(), self.seq, self.published, self.dropped, self.sensor_errors, self.filtered,
            self.wifi_drops, self.broker_connects, self.restarts, STATE_NAMES[self.state()], extra)


def forget(name):
    """Let the GC have app.<name>, a module needed only at start-up (config, dns)."""
    sys.modules.pop("app." + name, None)
    try:
        delattr(sys.modules["app"], name)
    except (AttributeError, KeyError):
        pass


def log(tag, msg):
    print("[%9d] %s: %s" % (ticks_ms(), tag, msg))


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


async def supervise(node, name, fn, *args):
    """Run fn(*args) forever: a crash is logged and the task restarted after a
    pause, so no task is ever silently dead. Cancellation passes through."""
    while True:
        try:
            await fn(*args)
            log(name, "returned; restarting")
        except Exception as e:  # CancelledError and KeyboardInterrupt are not Exceptions
            node.restarts += 1
            log_exception(name, e)
            log(name, "crashed; restarting in %d ms" % node.restart_ms)
        await sleep_ms(node.restart_ms)
