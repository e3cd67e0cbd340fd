"""Simulated DHT22/DHT11 driven by simboard, failing as the real driver does
(micropython-lib's dht.py over the port's dht_readinto):

- "fail": no answer on the line: OSError(ETIMEDOUT);
- "checksum": the bits arrived garbled: a plain Exception("checksum error");
- "garbage": a reading with a good checksum and impossible values.

measure() blocks for simboard "dht_block_ms" (a board: ~270 ms, the line held
250 ms high and 18 ms low before the sensor answers; 0 by default so that fast
tests can sample every 0.2 s).
"""
import time
from errno import ETIMEDOUT

import simboard

# The real parts need 2 s / 1 s between reads; the sim allows fast tests.
MIN_INTERVAL_S = {"DHT22": 0.05, "DHT11": 0.05}

reads = 0  # measure() calls, for tests


class DHT22:
    def __init__(self, pin):
        self.pin = pin
        self._t = self._h = None

    def measure(self):
        global reads
        reads += 1
        block = simboard.get("dht_block_ms")
        if block:
            time.sleep(block / 1000)  # blocking, as the driver does: every task waits
        mode = simboard.get("dht")
        if mode == "fail":
            raise OSError(ETIMEDOUT)
        if mode == "checksum":
            raise Exception("checksum error")
        if mode == "garbage":
            self._t, self._h = 255.5, 150.0
        else:
            self._t, self._h = simboard.get("temperature"), simboard.get("humidity")
        if type(self) is DHT11:  # whole degrees and percent
            self._t, self._h = int(self._t), int(self._h)

    def temperature(self):
        return self._t

    def humidity(self):
        return self._h


class DHT11(DHT22):
    pass
