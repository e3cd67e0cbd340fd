"""Simulated esp module: what mqtt_as (ESP8266 branch) and boot.py call."""
SLEEP_NONE = 0
SLEEP_LIGHT = 1
SLEEP_MODEM = 2
_sleep_type = SLEEP_MODEM


def sleep_type(t=None):
    global _sleep_type
    if t is None:
        return _sleep_type
    _sleep_type = t


def osdebug(level):
    pass
