"""Calibration and filters, as ESPHome users know them, in one fixed pipeline:

    calibrate (multiply, then offset, per quantity)
    -> smooth (sliding median over `window` readings, or exponential average `alpha`)
    -> publish only on delta (and/or every heartbeat_s), at most every throttle_s.

Loaded only when a filter.* key is set (config.py leaves cfg["filter"] None otherwise).
It works in the backlog's tenths, in integer arithmetic on storage made here, so a
reading allocates nothing. Times are ticks since the last *published* reading, not
counts of readings, so throttle and heartbeat keep their meaning when the sampling
interval changes at run time; their granularity is the interval (a heartbeat is the
first reading at or after heartbeat_s).
"""
from array import array
from time import ticks_diff

from micropython import const

_Q = const(12)  # multiply in fixed point: 1/4096
_EMA = const(8)  # the exponential average in 1/256 of a tenth
_SLACK_MS = const(500)  # readings are stamped after a read of ~270 ms: its jitter must not skip a heartbeat


def _tenths(x):
    # A delta set must stay a delta: 0.04 C is 1 tenth, not 0 (off).
    return max(1, round(x * 10)) if x > 0 else 0


class Filter:
    def __init__(self, f):
        self._mul_t = round(f["temperature_multiply"] * (1 << _Q))
        self._mul_h = round(f["humidity_multiply"] * (1 << _Q))
        self._off_t = round(f["temperature_offset"] * 10)
        self._off_h = round(f["humidity_offset"] * 10)
        self._median = f["smoothing"] == "median"
        self._alpha = round(f["alpha"] * (1 << _EMA)) if f["smoothing"] == "average" else 0
        n = f["window"] if self._median else 1
        self._n = n
        self._win = array("h", bytearray(4 * n))  # t10, h10 per slot
        self._sorted = array("h", bytearray(2 * n))  # scratch for the median
        self._i = self._filled = 0
        self._ema_t = self._ema_h = 0
        self._dt, self._dh = _tenths(f["delta_temperature"]), _tenths(f["delta_humidity"])
        self._throttle = int(f["throttle_s"] * 1000)
        self._heartbeat = int(f["heartbeat_s"] * 1000)
        self._sent = False  # a reading has been published
        self._sent_ms = self._sent_t = self._sent_h = 0
        self.t10 = self.h10 = 0  # the filtered reading, valid when feed() returned True

    def feed(self, t10, h10, now_ms):
        """Take a plausible reading (tenths). True: publish self.t10, self.h10; False:
        held back (the smoothing still saw it)."""
        t10 = ((t10 * self._mul_t + (1 << (_Q - 1))) >> _Q) + self._off_t
        h10 = ((h10 * self._mul_h + (1 << (_Q - 1))) >> _Q) + self._off_h
        h10 = 0 if h10 < 0 else 1000 if h10 > 1000 else h10  # calibrated past 0..100 % is calibration's error
        if self._median:
            w, i = self._win, self._i
            w[2 * i] = t10
            w[2 * i + 1] = h10
            self._i = (i + 1) % self._n
            if self._filled < self._n:
                self._filled += 1
            t10, h10 = self._mid(0), self._mid(1)
        elif self._alpha:
            a = self._alpha
            if self._filled:
                self._ema_t += ((t10 << _EMA) - self._ema_t) * a >> _EMA
                self._ema_h += ((h10 << _EMA) - self._ema_h) * a >> _EMA
            else:  # the first reading starts the average
                self._filled = 1
                self._ema_t, self._ema_h = t10 << _EMA, h10 << _EMA
            t10 = (self._ema_t + (1 << (_EMA - 1))) >> _EMA
            h10 = (self._ema_h + (1 << (_EMA - 1))) >> _EMA
        self.t10, self.h10 = t10, h10
        if self._sent:
            since = ticks_diff(now_ms, self._sent_ms) + _SLACK_MS
            if since < 0:  # over ~6 days without one: ticks wrapped, it is long enough
                since = 1 << 29
            if since < self._throttle:
                return False
            if self._dt or self._dh or self._heartbeat:
                moved = (self._dt and abs(t10 - self._sent_t) >= self._dt) or (
                    self._dh and abs(h10 - self._sent_h) >= self._dh)
                if not moved and not (self._heartbeat and since >= self._heartbeat):
                    return False
        self._sent = True
        self._sent_ms, self._sent_t, self._sent_h = now_ms, t10, h10
        return True

    def _mid(self, k):
        # Insertion sort of the window's k-th quantity into scratch: n <= 15, no allocation.
        s, w = self._sorted, self._win
        n = 0
        for j in range(self._filled):
            v = w[2 * j + k]
            i = n
            while i and s[i - 1] > v:
                s[i] = s[i - 1]
                i -= 1
            s[i] = v
            n += 1
        return s[n // 2]
