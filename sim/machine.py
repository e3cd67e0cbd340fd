"""Simulated machine module: what app/board.py and mqtt_as use."""
import sys


def unique_id():
    return b"\xfa\x17\xa4\x70\x00\x01"


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    levels = {}  # pin id -> last value written, for tests
    writes = 0

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return Pin.levels.get(self.id, 0)
        Pin.levels[self.id] = 1 if v else 0
        Pin.writes += 1

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


def reset():
    sys.exit(0)


def freq():
    return 160000000


def idle():
    pass
