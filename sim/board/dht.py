"""Simulated DHT22/DHT11 driven by simboard: scripted values and failures."""
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
        mode = simboard.get("dht")
        if mode == "fail":
            raise OSError(110)  # ETIMEDOUT, what the driver raises with no sensor
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
