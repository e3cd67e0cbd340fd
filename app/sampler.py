"""DHT sampler: one reading per interval into the backlog, whatever the network does.

It awaits nothing but its own timer. A failed read (whatever the driver raises:
OSError, its plain Exception("checksum error"), an impossible value) is counted
and retried at the next tick; it is never published as a stale copy of the last
good value. The read itself blocks the loop ~270 ms (the driver's start pulse):
a reading is stamped when it is in, and the schedule does not drift by it.
"""
from time import ticks_add, ticks_diff, ticks_ms

from .node import log, sleep_ms


async def run(node, sensor, backlog):
    """Every node.interval_ms: a command may change it; the wait in progress follows."""
    due = ticks_ms()
    while True:
        try:
            t, h = sensor.read()
        except Exception as e:  # the driver's checksum error is a bare Exception
            node.sensor_errors += 1
            if node.sensor_ok or node.sensor_errors % 100 == 0:
                log("sensor", "read failed (%d so far): %r" % (node.sensor_errors, e))
            node.sensor_ok = False
        else:
            node.seq += 1
            # Tenths as ints (round: 22.3 * 10 is 222.99999...).
            backlog.put(node.seq, ticks_ms(), round(t * 10), round(h * 10))
            if not node.sensor_ok:
                log("sensor", "reading again")
            node.sensor_ok = True
        node.booted = True
        # A fixed schedule, not sleep(interval): read time and overruns do not drift it.
        # Slept in steps of at most 1 s: a new interval applies to the wait in progress.
        last, slept = due, False
        while True:
            due = ticks_add(last, node.interval_ms)
            wait = ticks_diff(due, ticks_ms())
            if wait <= 0:
                break
            await sleep_ms(min(wait, 1000))
            slept = True
        if wait < 0 and not slept:  # overrun: the schedule starts again from now
            due = ticks_ms()
