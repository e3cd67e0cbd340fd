"""The only module that touches machine, network and dht; sim/ mirrors what it uses."""
from binascii import hexlify

import dht
import machine
import network

# Plausible readings per sensor: (t_min, t_max, rh_min, rh_max), datasheet ranges.
_RANGE = {"DHT22": (-40, 80, 0, 100), "DHT11": (0, 50, 0, 100)}


def min_interval_s():
    """Per-type read floors, where the board's dht differs from the datasheet (the sim)."""
    return getattr(dht, "MIN_INTERVAL_S", None)


def unique_id():
    return hexlify(machine.unique_id()).decode()


class Sensor:
    def __init__(self, kind, pin):
        cls = dht.DHT22 if kind == "DHT22" else dht.DHT11
        self._dev = cls(machine.Pin(pin, machine.Pin.IN, machine.Pin.PULL_UP))
        self._range = _RANGE[kind]

    def read(self):
        """Return (temperature_C, humidity_%). Raises OSError when the sensor does not
        answer or fails its checksum, ValueError when it answers with garbage."""
        self._dev.measure()
        t = self._dev.temperature()
        h = self._dev.humidity()
        t_lo, t_hi, h_lo, h_hi = self._range
        if not (t_lo <= t <= t_hi and h_lo <= h <= h_hi):  # also rejects NaN
            raise ValueError("out of range: %s C, %s %%" % (t, h))
        return t, h


class Led:
    def __init__(self, pin, active_low):
        self._pin = None if pin is None else machine.Pin(pin, machine.Pin.OUT)
        self._on = 0 if active_low else 1
        self.set(False)

    def set(self, on):
        if self._pin is not None:
            self._pin.value(self._on if on else 1 - self._on)


def station():
    return network.WLAN(network.STA_IF)


def set_hostname(name):
    try:
        network.hostname(name)  # MicroPython >= 1.20
    except AttributeError:
        station().config(dhcp_hostname=name)


def access_point(ssid, password):
    """Serve an access point when ssid is set; otherwise make sure it is off
    (an ESP8266 starts its AP on every boot)."""
    ap = network.WLAN(network.AP_IF)
    if ssid:
        ap.active(True)
        ap.config(essid=ssid, password=password, authmode=3)  # WPA2-PSK
    elif ap.active():
        ap.active(False)


def dns_server():
    """(ip, port) of the DNS server the network gave us; the sim board names its port."""
    return station().ifconfig()[3], getattr(network, "DNS_PORT", 53)
