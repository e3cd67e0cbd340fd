"""The only module that touches machine, network and dht; sim/board mirrors what it uses.

It stays loaded while the tasks run: on an ESP8266 each name it defines costs heap,
and past 29 names its dict doubles, so related calls share a function."""
import sys
import time

import dht
import machine
import network

# Plausible readings per sensor: (t_min, t_max, rh_min, rh_max). A DHT11's datasheet
# range is 20-90 %RH, yet real ones report beyond it: only impossible humidity is refused.
_RANGE = {"DHT22": (-40, 80, 0, 100), "DHT11": (0, 50, 0, 100)}
# The station's status codes; each port numbers them its own way.
STAT_CONNECTING = network.STAT_CONNECTING
STAT_WRONG_PASSWORD = network.STAT_WRONG_PASSWORD


def platform():
    """The chip, as the config validator names it: "esp8266", "esp32", ..."""
    return sys.platform


def utc():
    """The real-time clock in UTC seconds since 1970 (the boards count from 2000),
    or None while it is not plausibly the real time (an ESP32 counts from 2000 at
    power-up)."""
    t = time.time()
    if time.gmtime(t)[0] < 2025:
        return None
    return int(t) + (946684800 if time.gmtime(0)[0] == 2000 else 0)


def set_clock(utc):
    """Set the real-time clock to utc, seconds since 1970 (the boards count from 2000)."""
    tm = time.gmtime(utc - (946684800 if time.gmtime(0)[0] == 2000 else 0))
    machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6] + 1, tm[3], tm[4], tm[5], 0))


def min_interval_s():
    """Per-type read floors, where the board's dht differs from the datasheet (the sim)."""
    return getattr(dht, "MIN_INTERVAL_S", None)


def unique_id():
    from binascii import hexlify

    return hexlify(machine.unique_id()).decode()


class Sensor:
    def __init__(self, kind, pin):
        cls = dht.DHT22 if kind == "DHT22" else dht.DHT11
        self._dev = cls(machine.Pin(pin, machine.Pin.IN, machine.Pin.PULL_UP))
        self._range = _RANGE[kind]

    def read(self):
        """Return (temperature_C, humidity_%). Raises what the driver raises, OSError
        (no answer) or a plain Exception("checksum error"), and ValueError for a
        reading outside the sensor's range. Blocks ~270 ms: the driver holds the
        line 250 ms + 18 ms before the sensor answers."""
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


def rssi():
    """The station's signal in dBm, or None while it has no link (0 dBm would read
    as a perfect signal)."""
    sta = station()
    try:
        return sta.status("rssi") if sta.isconnected() else None
    except (OSError, ValueError):
        return None


def reset():
    """Restart the board now (the restart command); never returns on a board."""
    machine.reset()


def deepsleep(ms):
    """Power down for ms, then boot again (battery mode). Never returns on a board.
    An ESP32 keeps its real-time clock running; an ESP8266 wakes only with GPIO16
    wired to RST, after at most ~71 min (its timer counts microseconds in 32 bits)."""
    machine.deepsleep(ms)


def boot_record(data=None):
    """(machine.reset_cause(), RTC memory: it survives a reset, not a power cut,
    the chip's causes for app/watchdog.py to name: power-on, WDT, soft, reset
    pin, deep sleep); with data, RTC memory written instead."""
    m = machine
    if data is not None:
        return m.RTC().memory(data)
    return m.reset_cause(), bytes(m.RTC().memory()), (
        m.PWRON_RESET, m.WDT_RESET, m.SOFT_RESET, m.HARD_RESET, m.DEEPSLEEP_RESET)


def watchdog(timeout_ms):
    """The hardware WDT, started: an ESP8266's timeout is fixed (~3 s, its SDK's)."""
    if sys.platform == "esp8266":
        return machine.WDT()
    return machine.WDT(timeout=timeout_ms)


def status_name(code):
    """A station status in words, for the log."""
    for name in ("WRONG_PASSWORD", "NO_AP_FOUND", "CONNECTING", "IDLE", "GOT_IP", "CONNECT_FAIL"):
        if getattr(network, "STAT_" + name, None) == code:
            return name.lower().replace("_", " ")
    return "status %s" % code


def set_hostname(name):
    try:
        network.hostname(name)  # MicroPython >= 1.20
    except AttributeError:
        station().config(dhcp_hostname=name)


def access_point(ssid, password):
    """Serve an access point when ssid is set, WPA2 with password, else open (the
    setup portal's may be: wifi.ap_password); returns (address, port) a web server
    on it listens on (the sim board names its port). Without ssid make sure it is
    off (an ESP8266 starts its AP on every boot). The station is not touched."""
    ap = network.WLAN(network.AP_IF)
    if ssid:
        ap.active(True)
        if password:
            ap.config(essid=ssid, password=password, authmode=3)  # WPA2-PSK
        else:
            ap.config(essid=ssid, authmode=0)
        return ap.ifconfig()[0], getattr(network, "PORTAL_PORT", 80)
    if ap.active():
        ap.active(False)


def dns_server(mdns=False):
    """(ip, port) of the DNS server the network gave us, or with mdns where a
    one-shot mDNS query goes: the mDNS group (the sim board names its own)."""
    if mdns:
        return getattr(network, "MDNS_SERVER", ("224.0.0.251", 5353))
    return station().ifconfig()[3], getattr(network, "DNS_PORT", 53)


def ntp_port():
    return getattr(network, "NTP_PORT", 123)  # the sim board names its own
