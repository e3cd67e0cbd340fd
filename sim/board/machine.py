"""Simulated machine module: only what app/board.py and mqtt_as use (on a board
machine is in ROM; here every name costs the unix port's heap)."""
import sys


def unique_id():
    return b"\xfa\x17\xa4\x70\x00\x01"


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1
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


def reset():
    sys.exit(0)
