"""Simulated network module: a station whose link simboard can drop and restore.

Joining takes simboard "join_ms"; while the medium is down the station is not
connected, and like the real driver it re-associates once the medium returns if
connect() was called and disconnect() was not.
"""
import sys

import simboard

STA_IF = 0
AP_IF = 1
# status() codes as the chip's port numbers them (mqtt_as compares with them).
if sys.platform == "esp8266":
    STAT_IDLE, STAT_CONNECTING, STAT_WRONG_PASSWORD, STAT_NO_AP_FOUND, STAT_GOT_IP = 0, 1, 2, 3, 5
else:
    STAT_IDLE, STAT_CONNECTING, STAT_WRONG_PASSWORD, STAT_NO_AP_FOUND, STAT_GOT_IP = 1000, 1001, 202, 201, 1010
DNS_PORT = 53  # tests point the board's DNS at their own server

_hostname = "mpy-sim"
_interfaces = {}
calls = []  # (interface, method) for tests: who touched the radio, in order
# Only CPython tests read it; on the unix port it would grow with every reconnection
# and show up as a leak in the heap figures.
_RECORD = sys.implementation.name != "micropython"


def hostname(name=None):
    global _hostname
    if name is None:
        return _hostname
    _hostname = name


def _called(interface, method):
    if _RECORD:
        calls.append((interface, method))


def WLAN(interface=STA_IF):
    """One object per interface, as on the board."""
    if interface not in _interfaces:
        _interfaces[interface] = _WLAN(interface)
    return _interfaces[interface]


class _WLAN:
    def __init__(self, interface):
        self._if = interface
        self._active = False
        self._want = False  # connect() called, disconnect() not
        self._key = None
        self._since = 0
        self._config = {"essid": "", "dhcp_hostname": _hostname}

    def active(self, on=None):
        if on is None:
            return self._active
        _called(self._if, "active")
        self._active = bool(on)
        if not on:
            self._want = False

    def connect(self, ssid=None, key=None):
        _called(self._if, "connect")
        if not self._active:
            raise OSError("STA must be active")
        if ssid is not None:
            self._config["essid"] = ssid
            self._key = key
        self._want = True
        self._since = simboard.ticks_ms()

    def disconnect(self):
        _called(self._if, "disconnect")
        self._want = False

    def _password_ok(self):
        expected = simboard.get("wifi_password")
        return expected is None or expected == self._key

    def isconnected(self):
        if self._if != STA_IF or not (self._active and self._want and self._password_ok()):
            return False
        up = simboard.link_up_for_ms()
        joined = simboard.ticks_diff(simboard.ticks_ms(), self._since)
        return up >= 0 and min(up, joined) >= simboard.get("join_ms")

    def status(self, param=None):
        if param == "rssi":
            return -60
        if self.isconnected():
            return STAT_GOT_IP
        if not self._want:
            return STAT_IDLE
        if not self._password_ok():
            return STAT_WRONG_PASSWORD
        if simboard.link_up_for_ms() < 0:
            return STAT_NO_AP_FOUND
        return STAT_CONNECTING

    def ifconfig(self, config=None):
        if self.isconnected() or self._if == AP_IF:
            return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def config(self, *args, **kwargs):
        if args:
            return self._config.get(args[0])
        _called(self._if, "config")
        self._config.update(kwargs)
