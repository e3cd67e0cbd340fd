"""The watchdog and the boot-loop safe mode (watchdog.timeout_s > 0; docs/watchdog.md).

The hardware WDT is fed every second, and only while every watched task has shown
progress (node.alive) within its bound: watchdog.timeout_s, and for mqtt_as's
reconnect loop that plus one reconnect's own waits (mqtt.reconnect_spread_s and
two mqtt.response_time_s). A task parked on a wait another watched task ends (the
publisher during an outage: on mqtt_as's reconnect loop) is not counted against,
so an outage of any length never resets the node: only a hung task, a dead
reconnect loop, or a heap in pieces (_MEMORY MemoryError crashes within one
timeout) do, and a loop blocked for seconds, by the WDT's own timeout.

Before a reset the reason goes to RTC memory (it survives the reset, not a power
cut), with the count of crashes in a row each within _EARLY_MS of its boot; the
next boot publishes the reason in the telemetry ("reset"), and with
watchdog.crashes of them in a row starts in safe mode: Wi-Fi, the broker and the
command topic only, no sampling. Safe mode ends by a reset after watchdog.stable_s,
or by the safe_mode command (app/commands.py).
"""
from time import ticks_diff, ticks_ms

from micropython import const

from . import board
from .node import log, sleep_ms

_FEED_MS = const(1000)
_HW_MS = const(8000)  # an ESP32's WDT timeout: the loop blocked this long resets (an ESP8266's: ~3 s, fixed)
_EARLY_MS = const(60000)  # a crash sooner than this after boot counts towards safe mode
_MEMORY = const(3)  # MemoryError crashes within one timeout: the heap is too broken up to go on
_MAGIC = b"fireant"
_MQTT = const(5)  # node.alive's indexes (app/node.py)
_MOVED = const(1)
_LED = (50, 100, 50, 100, 50, 100, 50, 100, 50, 1350)  # safe mode's heartbeat: unlike every other pattern
# Resets asked for: the next boot is no crash.
_ASKED = (b"safe mode off", b"safe mode: stable")


_crashes = 0  # crashes in a row, each early in its boot, before this one


def boot(crashes):
    """(safe mode?, why this boot happened) from what the last boot left in RTC
    memory and the chip's reset cause; the record is rewritten for this boot."""
    global _crashes
    c, memory, (power, wdt, soft, pin, deep) = board.boot_record()
    cause = b"power-on" if c == power else b"watchdog" if c == wdt else b"reset" if c == soft else \
        b"reset pin" if c == pin else b"deep sleep" if c == deep else b"crash"  # an ESP8266's exception or soft WDT
    try:
        magic, n, safe, reason = memory.split(b" ", 3)
        if magic != _MAGIC:
            raise ValueError
        n, safe = int(n), int(safe)
    except ValueError:  # power-on: the memory holds whatever it holds
        n, safe, reason = 0, 0, b""
    if cause == b"power-on":
        n, safe, reason = 0, 0, cause
    else:
        # None of ours written: the chip's cause, a crash unless machine.reset() (the
        # restart command) or the reset pin.
        asked = reason in _ASKED if reason else cause in (b"reset", b"reset pin", b"deep sleep")  # battery mode
        reason = reason or cause
        n = 0 if asked else n + 1
    if crashes and n >= crashes:
        safe = 1
    _crashes = n
    _write(n, safe, b"")
    return safe == 1, reason


def setup(fw, w, m):
    """At start-up (app/start.py): the record read, safe mode's jobs when the last
    boots crashed, the watchdog's own. w, m: the watchdog and mqtt settings."""
    node = fw.node
    node.safe_mode, reason = boot(w["crashes"])
    fw.status.reset = b'"%s"' % reason  # as the telemetry's JSON has it
    if node.safe_mode:
        fw.status.presence = b"safe_mode"
    watched = b"\x00\x01\x02\x03\x04\x05"  # every task (app/node.py's indexes)
    if node.safe_mode:  # no sampling, no publishing: the link, the status and the commands only
        log("app", "SAFE MODE: %d crashes in a row, each within a minute of boot; normal again after "
                   "watchdog.stable_s or the safe_mode command" % w["crashes"])
        from . import heartbeat

        for state in heartbeat.PATTERNS:  # the LED's own pattern whatever the state: five flickers, a pause
            heartbeat.PATTERNS[state] = _LED
        fw.jobs[1] = ("connect", connect, (node, fw.client, fw.cfg))
        del fw.jobs[3]
        watched = b"\x00\x02\x04\x05"  # heartbeat, wifi, status, mqtt_as's loop
    timeout = int(w["timeout_s"] * 1000) + node.restart_ms  # a crashed task is down that long
    fw.jobs.append(("watchdog", run, (node, watched, timeout, timeout + int(
        m["reconnect_spread_s"] * 1000) + 2000 * m["response_time_s"], int(w["stable_s"] * 1000))))


def _write(n, safe, reason):
    board.boot_record(b"%s %d %d %s" % (_MAGIC, n, safe, reason))


def reset(node, reason):
    """Reset now, the reason kept for the next boot, which counts it as a crash
    unless it was asked for (_ASKED). Safe mode lasts across it unless it ends it."""
    log("watchdog", "reset: %s" % reason.decode())
    _write(_crashes, 1 if node.safe_mode and reason[:9] != b"safe mode" else 0, reason)
    board.reset()


async def run(node, watched, timeout_ms, mqtt_ms, stable_ms):
    """watched: the node.alive indexes of the tasks that run (MQTT is watched once
    mqtt_as's loop exists); mqtt_ms: that loop's bound."""
    wdt = board.watchdog(_HW_MS)
    alive = node.alive
    last = [ticks_ms()] * len(alive)  # when each was last seen moving
    global _crashes
    t0 = window = ticks_ms()
    early = True
    errors = alive[6]  # MemoryError crashes (supervise()), mod 256
    while True:
        now = ticks_ms()
        stuck = None
        for i in watched:
            if i == _MQTT and not node.client_started:
                last[i] = now
                continue
            if alive[i]:
                last[i] = now
                if alive[i] == _MOVED:
                    alive[i] = 0
            elif ticks_diff(now, last[i]) > (mqtt_ms if i == _MQTT else timeout_ms):
                stuck = i
        if early and ticks_diff(now, t0) >= _EARLY_MS:
            early, _crashes = False, 0  # past a minute: the next crash is no boot loop
            _write(0, 1 if node.safe_mode else 0, b"")
        if ticks_diff(now, window) >= timeout_ms:
            window, errors = now, alive[6]
        why = None
        if (alive[6] - errors) & 255 >= _MEMORY:
            why = b"memory"
        elif stuck is not None:
            why = b"mqtt reconnect loop dead" if stuck == _MQTT else b"hung: " + _NAMES[stuck]
        elif node.safe_mode and ticks_diff(now, t0) >= stable_ms:
            why = b"safe mode: stable"
        if why:
            reset(node, why)
            return  # a board never gets here; the sim's in-process board does, its WDT left unfed
        wdt.feed()
        await sleep_ms(_FEED_MS)


_NAMES = (b"heartbeat", b"sampler", b"wifi", b"publisher", b"status")


async def connect(node, client, cfg):
    """Safe mode's stand-in for the publisher: the broker connection (the commands
    and the status topic need it), no readings."""
    if not node.client_started:
        from .connect import first_connect

        await first_connect(node, client, cfg)
    while True:
        await sleep_ms(60000)
