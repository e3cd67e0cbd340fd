"""LED heartbeat: one blink pattern per node state, from its own task.

The LED keeps blinking only while the scheduler runs, so a frozen loop shows as
a stuck LED. Patterns are (on_ms, off_ms, ...) cycles. The identify command shows IDENTIFY
over all of them for node.identify_ms, counted from when it shows (the step under way
finishes first), so a short identify is never spent behind a 2 s pause.
"""
from time import ticks_add, ticks_diff, ticks_ms

from .node import BOOTING, NO_BROKER, NO_WIFI, OK, SENSOR_FAILING, sleep_ms

PATTERNS = {
    BOOTING: (100, 100),  # fast flicker
    SENSOR_FAILING: (100, 150, 100, 150, 100, 900),  # three blinks
    NO_WIFI: (500, 500),  # slow even blink
    NO_BROKER: (100, 150, 100, 1150),  # two blinks
    OK: (50, 1950),  # a short flash every 2 s
}  # safe mode (app/watchdog.py) puts its own in place of every one
IDENTIFY = (1000, 200)  # long on, short off: unlike any state


async def run(node, led):
    until = None
    while True:
        if node.identify_ms:
            until = ticks_add(ticks_ms(), node.identify_ms)
            node.identify_ms = 0
        elif until is not None and ticks_diff(until, ticks_ms()) <= 0:
            until = None
        node.alive[0] = 1  # progress: heartbeat's mark (app/node.py)
        pattern = IDENTIFY if until is not None else PATTERNS[node.state()]
        for i in range(len(pattern)):
            led.set(not i & 1)
            await sleep_ms(pattern[i])
            if node.identify_ms:
                break
