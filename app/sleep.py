"""Battery mode (sleep.interval_s set): wake, sample, send or keep on flash, deep sleep.

Loaded only when configured. Each wake is a boot of the board, with a boot id of
its own and counters from zero: the tasks start as usual (one reading, since the
sampling interval is the sleep interval), and this one ends the wake once the
reading is in and acknowledged, the telemetry is on its way and the inbox's work
is done, or once sleep.awake_s has passed; what is left goes to the flash spool,
and the next wake sends it first, each reading with its own wake's boot id and
clock. It then says "asleep" (retained: Home Assistant keeps the entities
available, unlike "offline") and sleeps until the next sample is due.

seq carries on from wake to wake (a small file, read once and removed: present,
the board woke from deep sleep; absent, a power-on). Home Assistant discovery
(retained at the broker) goes out at power-on only, not on every wake (~1.4 s of
one). The time comes from the real-time clock, which keeps running through deep
sleep once NTP has set it in an earlier wake: readings taken with no network have
their ts all the same, and NTP corrects the clock's drift when it answers.
"""
import asyncio
from time import ticks_diff, ticks_ms

from micropython import const

from . import board
from .node import log, sleep_ms

_FILE = "wake"
_MIN_SLEEP_MS = const(1000)  # an overrun wake still sleeps: an ESP32's deepsleep(0) is a reboot at once
_woke = ticks_ms()  # the firmware's start in this wake (imported at build): a board's boot before it is not counted


def resume(node, clock):
    """seq of the previous wake, if it went to sleep: True; else a power-on, False.
    clock: the settings keep the clock (ntp.resync_s): the node takes its time
    from the real-time clock where that has been set."""
    import os

    utc = clock and board.utc()
    if utc:
        node.synced = (node.uptime(), utc, 0)
    try:
        with open(_FILE) as f:
            seq = int(f.read())
        os.remove(_FILE)
        node.seq = seq
        return True
    except (OSError, ValueError):
        return False


async def run(fw, interval_ms, awake_ms):
    node, backlog, status, client, inbox = fw.node, fw.backlog, fw.status, fw.client, fw.inbox
    told = status._at  # when the telemetry last went out: once more on each connection
    rounds = inbox.rounds if inbox else 0
    while ticks_diff(ticks_ms(), _woke) < awake_ms:
        # The reading in and acknowledged, the telemetry published (its PUBACK may
        # still be on its way: "asleep" goes after it on the same connection), and
        # the inbox's work for the connection (subscriptions, discovery, a command) done.
        if node.booted and not len(backlog) and status._at != told and (not inbox or inbox.rounds != rounds and not (
                inbox.connect or inbox.discover or inbox.msg is not None)):
            break
        await sleep_ms(50)
    fw.led.set(False)
    kept = backlog.flush()
    if node.broker_up:
        try:
            await asyncio.wait_for(client.publish(status.topic, b"asleep", True, 1), 2)
            await asyncio.wait_for(client.disconnect(), 2)  # clean: the broker drops the will
        except Exception as e:  # TimeoutError, OSError: the will may say offline
            log("sleep", "could not say asleep (%r)" % e)
    with open(_FILE, "w") as f:
        f.write("%d" % node.seq)
    awake = ticks_diff(ticks_ms(), _woke)
    ms = max(_MIN_SLEEP_MS, interval_ms - awake)
    log("sleep", "awake %d ms; %d readings kept on flash; sleeping %d ms" % (awake, kept, ms))
    board.deepsleep(ms)
