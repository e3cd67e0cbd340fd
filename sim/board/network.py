"""Simulated network module: a station whose link simboard can drop and restore,
with each chip's driver behaviour (simboard "chip", from $FIREANT_SIM_CHIP:
"esp32" or "esp8266"; unset, sys.platform decides, esp32 unless it says esp8266;
read when this module is imported, as a board's is what it is).

Both chips (ports/esp32/network_wlan.c, ports/esp8266/network_wlan.c):
- joining takes simboard "join_ms"; with simboard "wifi_password" set, a join
  with another password never succeeds and status() is STAT_WRONG_PASSWORD;
- after connect() the driver re-joins by itself whenever the medium comes back
  (the IDF and the SDK both retry for ever), until disconnect();
- network.hostname() takes at most 32 characters: ValueError above; DHCP gets
  the name set when connect() is called (config("dhcp_hostname") tells which).
ESP32: connect() while the driver is connecting or connected raises
OSError("Wifi Internal Error") (the IDF's "sta is connecting, return error");
status() says the last failure's reason (STAT_NO_AP_FOUND, STAT_WRONG_PASSWORD)
until the station joins, across disconnect() and connect().
ESP8266: connect(ssid, key) saves the network (to "flash": a file in the working
directory on the unix port), connect() with no arguments joins the saved one, and
at power-on the station joins the saved network by itself. Its status codes are
the SDK's (0..5), the ESP32's the IDF's (1000, 1001, 1010, 201, 202).
"""
import os
import sys

import simboard

STA_IF = 0
AP_IF = 1
ESP8266 = simboard.get("chip") == "esp8266" or (simboard.get("chip") is None and sys.platform == "esp8266")
if ESP8266:
    STAT_IDLE, STAT_CONNECTING, STAT_WRONG_PASSWORD, STAT_NO_AP_FOUND, STAT_GOT_IP = 0, 1, 2, 3, 5
else:
    STAT_IDLE, STAT_CONNECTING, STAT_WRONG_PASSWORD, STAT_NO_AP_FOUND, STAT_GOT_IP = 1000, 1001, 202, 201, 1010
DNS_PORT = 53  # tests point the board's DNS at their own server
NTP_PORT = int(os.getenv("FIREANT_SIM_NTP_PORT") or 123)  # and its NTP at theirs
MDNS_SERVER = ("224.0.0.251", 5353)  # and mDNS (a responder on loopback: tests)
# The access point's web server (app/portal.py) on loopback, where the host's browser reaches it.
PORTAL_PORT = int(os.getenv("FIREANT_SIM_PORTAL_PORT") or 8080)
_SAVED = "sim-wifi.txt"  # the ESP8266's saved network, in its flash

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
    if len(name) > 32:
        raise ValueError  # extmod/modnetwork.c: mp_raise_ValueError(NULL)
    _hostname = name


def _called(interface, method):
    if _RECORD:
        calls.append((interface, method))


def WLAN(interface=STA_IF):
    """One object per interface, as on the board."""
    if interface not in _interfaces:
        _interfaces[interface] = _WLAN(interface)
    return _interfaces[interface]


def _saved():
    try:
        with open(_SAVED) as f:
            ssid, key = f.read().split("\n")[:2]
        return ssid, key
    except (OSError, ValueError):
        return None


class _WLAN:
    def __init__(self, interface):
        self._if = interface
        self._active = False
        self._want = False  # connect() called, disconnect() not: the driver keeps trying
        self._reason = None  # the ESP32's last failure, kept until it joins
        self._key = None
        self._since = 0
        self._config = {"essid": "", "dhcp_hostname": _hostname}
        saved = _saved() if ESP8266 and interface == STA_IF else None
        if saved:  # the SDK's auto-connect at power-on
            self._config["essid"], self._key = saved
            self._active = self._want = True
            self._since = simboard.ticks_ms()

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
            raise OSError("STA must be active" if not ESP8266 else "Cannot connect to AP")
        if self._want and not ESP8266:
            raise OSError("Wifi Internal Error")  # the IDF refuses while it is connecting or connected
        if ssid is not None:
            self._config["essid"] = ssid
            self._key = key
            if ESP8266:
                with open(_SAVED, "w") as f:
                    f.write("%s\n%s" % (ssid, key or ""))
        self._config["dhcp_hostname"] = _hostname
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
            self._reason = None
            return STAT_GOT_IP
        now = None
        if self._want and not self._password_ok():
            now = STAT_WRONG_PASSWORD
        elif self._want and simboard.link_up_for_ms() < 0:
            now = STAT_NO_AP_FOUND
        if not ESP8266:
            self._reason = now or self._reason
            now = self._reason
        if now is not None:
            return now
        return STAT_CONNECTING if self._want else STAT_IDLE

    def ifconfig(self, config=None):
        if self.isconnected() or self._if == AP_IF:
            return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def config(self, *args, **kwargs):
        if args:
            return self._config.get(args[0])
        _called(self._if, "config")
        self._config.update(kwargs)
