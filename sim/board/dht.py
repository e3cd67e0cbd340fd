"""Simulated DHT22/DHT11 driven by simboard, failing as the real driver does
(micropython-lib's dht.py over the port's dht_readinto):

- "fail": no answer on the line: OSError(ETIMEDOUT);
- "checksum": the bits arrived garbled: a plain Exception("checksum error");
- "garbage": a reading with a good checksum and impossible values;
- "flaky" and "spike": see simweather.py.

Readings come in the driver's resolution (DHT22: tenths; DHT11: whole units):
simboard's temperature and humidity, or with its day_s / noise set the air of
simweather.py, a day/night cycle with noise.

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
            t, h = simboard.get("temperature"), simboard.get("humidity")
            state = simboard.STATE
            if mode != "ok" or state.get("day_s") or state.get("noise"):
                import simweather

                t, h = simweather.read(mode, reads)
            if t != t or h != h:  # NaN set by a test: no driver makes one, the firmware must refuse it
                self._t, self._h = t, h
            elif type(self) is DHT11:  # whole degrees and percent
                self._t, self._h = int(t), int(h)
            else:  # the sensor's raw value is tenths
                self._t, self._h = round(t * 10) / 10, round(h * 10) / 10

    def temperature(self):
        return self._t

    def humidity(self):
        return self._h


class DHT11(DHT22):
    pass
