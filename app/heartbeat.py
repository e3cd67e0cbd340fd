"""LED heartbeat: one blink pattern per node state, from its own task.

The LED keeps blinking only while the scheduler runs, so a frozen loop shows as
a stuck LED. Patterns are (on_ms, off_ms, ...) cycles.
"""
from .node import BOOTING, NO_BROKER, NO_WIFI, OK, SENSOR_FAILING, sleep_ms

PATTERNS = {
    BOOTING: (100, 100),  # fast flicker
    SENSOR_FAILING: (100, 150, 100, 150, 100, 900),  # three blinks
    NO_WIFI: (500, 500),  # slow even blink
    NO_BROKER: (100, 150, 100, 1150),  # two blinks
    OK: (50, 1950),  # a short flash every 2 s
}


async def run(node, led):
    while True:
        pattern = PATTERNS[node.state()]
        for i in range(len(pattern)):
            led.set(not i & 1)
            await sleep_ms(pattern[i])
