"""Battery mode (sleep.interval_s set): wake, sample, send or keep on flash, deep sleep.

Loaded only when configured. Each wake is a boot of the board: the tasks start as
usual (one reading, since the sampling interval is the sleep interval), and this
one ends the wake once the reading is in, the backlog has drained and the
telemetry went out, or once sleep.awake_s has passed; what is left goes to the
flash spool, and the next wake sends it first. It then says "asleep" (retained:
Home Assistant keeps the entities available, unlike "offline") and sleeps until
the next sample is due. Home Assistant discovery (retained at the broker) goes out
at power-on only, not on every wake: ~1.4 s of the wake. The boot id and seq carry over from wake to wake in a
small file, read once and removed: a wake is not a new boot to the subscriber,
and a crash after it cannot hand out a seq twice.
"""
import asyncio
from time import ticks_diff, ticks_ms

from . import board
from .node import log, sleep_ms

_FILE = "wake"
_woke = ticks_ms()  # the firmware's start in this wake (imported at build)


def resume(node):
    """The boot id and seq of the previous wake, if it went to sleep: True; else
    this is a power-on, a new boot: False."""
    import os

    try:
        with open(_FILE) as f:
            boot, seq = f.read().split()
        os.remove(_FILE)
        node.boot, node.seq = boot, int(seq)
        return True
    except (OSError, ValueError):
        return False


async def run(fw, interval_ms, awake_ms):
    node, backlog, status, client, inbox = fw.node, fw.backlog, fw.status, fw.client, fw.inbox
    told = status._at  # the telemetry's last report: one goes out on each connection
    rounds = inbox.rounds if inbox else 0
    while ticks_diff(ticks_ms(), _woke) < awake_ms:
        # The reading in and acknowledged, the telemetry sent, and the inbox's work for
        # the connection (subscriptions, discovery, a command) done.
        if node.booted and not len(backlog) and status._at != told and (not inbox or inbox.rounds != rounds and not (
                inbox.connect or inbox.discover or inbox.msg is not None)):
            break
        await sleep_ms(50)
    fw.led.set(False)
    kept = backlog.flush()
    if node.broker_up:
        try:
            await asyncio.wait_for(client.publish(status.topic, b"asleep", True, 1), 2)
            await asyncio.wait_for(client.disconnect(), 2)  # clean: the broker keeps its will
        except Exception as e:  # TimeoutError, OSError: the will may say offline
            log("sleep", "could not say asleep (%r)" % e)
    with open(_FILE, "w") as f:
        f.write("%s %d" % (node.boot, node.seq))
    awake = ticks_diff(ticks_ms(), _woke)
    log("sleep", "awake %d ms; %d readings kept on flash; sleeping %d ms" % (
        awake, kept, max(0, interval_ms - awake)))
    board.deepsleep(max(0, interval_ms - awake))
