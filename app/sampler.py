"""DHT sampler: one reading per interval into the backlog, whatever the network does.

It awaits nothing but its own timer. A failed read (whatever the driver raises:
OSError, its plain Exception("checksum error"), an impossible value) is counted
and retried at the next tick; it is never published as a stale copy of the last
good value. The read itself blocks the loop ~270 ms (the driver's start pulse):
a reading is stamped when it is in, and the schedule does not drift by it.
"""
from time import ticks_add, ticks_diff, ticks_ms

from .node import log, sleep_ms


async def run(node, sensor, backlog, interval_ms):
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
            backlog.put(node.seq, node.stamp(), round(t * 10), round(h * 10))
            if not node.sensor_ok:
                log("sensor", "reading again")
            node.sensor_ok = True
        node.booted = True
        # A fixed schedule, not sleep(interval): read time and overruns do not drift it.
        due = ticks_add(due, interval_ms)
        wait = ticks_diff(due, ticks_ms())
        if wait < 0:
            due = ticks_ms()
            wait = 0
        await sleep_ms(wait)
