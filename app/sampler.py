"""DHT sampler: one reading per interval into the backlog, whatever the network does.

It awaits nothing but its own timer. A failed read (whatever the driver raises:
OSError, its plain Exception("checksum error"), an impossible value) is counted
and retried at the next tick; it is never published as a stale copy of the last
good value. The read itself blocks the loop ~270 ms (the driver's start pulse):
a reading is stamped when it is in, and the schedule does not drift by it.

Plausibility is always checked: the board refuses NaN and values outside the
sensor's range; here a temperature more than 20 C away from the last good one
taken less than a minute before is refused too (a flipped bit with a matching
checksum; no DHT in its case moves that fast). After _JUMPS such refusals in a
row the new level is believed: the earlier reading was the wrong one.
filt (app/filters.py, when configured) may hold a reading back: it then takes
no seq number, as a failed read takes none, so a gap in seq still means a
reading lost; held-back readings are counted in node.filtered.
"""
from time import ticks_add, ticks_diff, ticks_ms

from micropython import const

from .node import log, sleep_ms

_JUMP_T10 = const(200)  # tenths of a degree
_JUMP_MS = const(60000)
_JUMPS = const(3)
_SAMPLER = const(1)  # node.alive's index (app/node.py)


async def run(node, sensor, backlog, filt=None):
    """Every node.interval_ms: a command may change it; the wait in progress follows."""
    due = last_ms = ticks_ms()
    last_t10 = jumps = 0
    good = False  # last_t10 holds a reading
    while True:
        node.alive[_SAMPLER] = 1
        try:
            t, h = sensor.read()
            now = ticks_ms()
            # Tenths as ints (round: 22.3 * 10 is 222.99999...).
            t10, h10 = round(t * 10), round(h * 10)
            if (good and jumps < _JUMPS and abs(t10 - last_t10) > _JUMP_T10
                    and ticks_diff(now, last_ms) < _JUMP_MS):
                jumps += 1
                raise ValueError("implausible jump: %s C after %s C" % (t, last_t10 / 10))
            good, jumps = True, 0
            last_t10, last_ms = t10, now
        except Exception as e:  # the driver's checksum error is a bare Exception
            node.sensor_errors += 1
            if node.sensor_ok or node.sensor_errors % 100 == 0:
                log("sensor", "read failed (%d so far): %r" % (node.sensor_errors, e))
            node.sensor_ok = False
        else:
            if filt is None:
                node.seq += 1
                backlog.put(node.seq, node.stamp(), t10, h10)
            elif filt.feed(t10, h10, now):
                node.seq += 1
                backlog.put(node.seq, node.stamp(), filt.t10, filt.h10)
            else:
                node.filtered += 1
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
            node.alive[_SAMPLER] = 1
            await sleep_ms(min(wait, 1000))
            slept = True
        # Overrun, or the interval shortened while it waited (due then lies a long way
        # back): the schedule starts again from now, not with reads back to back.
        if wait < 0 and (not slept or wait < -(node.interval_ms >> 1)):
            due = ticks_ms()
        if not slept:  # a read longer than the interval: the other tasks' turn all the same
            await sleep_ms(0)
