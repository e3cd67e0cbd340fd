"""Wi-Fi supervisor: the one owner of the station link, on both chips.

Only this task calls WLAN.connect() and disconnect(). mqtt_as gets the station
through Link, which lets it look but not touch: upstream's first connect() calls
connect() on a station that is already up (on an ESP32 the IDF refuses with
"Wifi Internal Error" while it is joining: upstream #59, #64), and after every
broker outage it drops the station and joins again, though Wi-Fi was fine.

At boot the station is asked to join whatever it is doing: only connect() hands
DHCP the host name (an ESP8266 joins its saved network by itself at power-on,
with the SDK's name). Both chips' drivers re-join by themselves once the access
point is back (the ESP32's IDF and the ESP8266's SDK retry for ever), so after a
drop the driver is left to it for wifi.timeout_s; then, or once it has reported a
wrong password for a while (an ESP32's status keeps the last failure's reason
until it joins), this task backs off, capped and jittered, with the driver still
trying, and asks again (disconnect first: an ESP32 refuses connect() while it joins).
No link for wifi.portal_after_s (from boot or the drop; 0: never) and it gives up:
a flag on flash and a reset, and the next boot opens the provisioning portal
(app/start.py, app/portal.py) instead of the tasks: the network may be gone for good.
"""
from time import ticks_diff, ticks_ms

from micropython import const

from . import board
from .node import backoff_ms, log, sleep_ms

_POLL_MS = const(250)
_WIFI = const(2)  # node.alive's indexes (app/node.py)
_MQTT = const(5)
_WRONG_PASSWORD_MS = const(5000)  # an ESP32's status says the last failure's reason until it joins


class Link:
    """The station as mqtt_as sees it: it may look, never join or leave. Its
    reconnect loop looks at least once a cycle: each look is its progress mark."""

    def __init__(self, sta, alive):
        self._sta = sta
        self._alive = alive  # node.alive

    def isconnected(self):
        self._alive[_MQTT] = 1
        return self._sta.isconnected()

    def status(self, *args):
        self._alive[_MQTT] = 1
        return self._sta.status(*args)

    def config(self, *args, **kwargs):
        return self._sta.config(*args, **kwargs)

    def active(self, *args):  # mqtt_as's active(True), and close()'s active(False), are the supervisor's to decide
        return self._sta.active()

    def connect(self, *args):  # mqtt_as then waits for the link, as it does after asking
        pass

    def disconnect(self):
        pass


def _ask(sta, ssid, password):
    sta.active(True)
    try:
        sta.disconnect()  # whatever the driver was doing: an ESP32 refuses connect() while it joins
    except OSError:
        pass
    try:
        sta.connect(ssid, password)
    except OSError as e:  # the driver refused; the next attempt comes after the timeout
        log("wifi", "the driver refused to join: %r" % e)


async def run(node, wifi):
    """wifi: the settings' wifi section."""
    ssid, password = wifi["ssid"], wifi["password"]
    board.set_hostname(wifi["hostname"] or node.device)
    board.access_point(wifi["ap_ssid"], wifi["ap_password"])
    sta = board.station()
    if not ssid:
        log("wifi", "no wifi.ssid configured: sensing only")
    timeout = int(wifi["timeout_s"] * 1000)
    lo, hi = int(wifi["backoff_min_s"] * 1000), int(wifi["backoff_max_s"] * 1000)
    attempt = 0
    give_up = int(wifi["portal_after_s"] * 1000) if ssid else 0
    if ssid:
        _ask(sta, ssid, password)
    since = down = ticks_ms()  # since: the driver was last asked to join, or lost the link; down: no link since
    while True:
        node.alive[_WIFI] = 1
        up = sta.isconnected()
        if up != node.wifi_up:
            node.wifi_up = up
            if up:
                attempt = 0
                log("wifi", "up, address %s" % sta.ifconfig()[0])
            else:
                node.wifi_drops += 1
                since = down = ticks_ms()
                log("wifi", "link lost; the driver re-joins")
        if give_up and not up and ticks_diff(ticks_ms(), down) >= give_up:
            log("wifi", "no link to %r for %d s: rebooting into the provisioning portal" % (ssid, give_up // 1000))
            with open("portal", "w"):  # app/start.py's PORTAL
                pass
            board.reset()
            give_up = 0  # the sim board in CPython tests returns from reset()
        waited = ticks_diff(ticks_ms(), since)
        if ssid and not up and (waited >= timeout or (
                waited >= min(timeout, _WRONG_PASSWORD_MS) and sta.status() == board.STAT_WRONG_PASSWORD)):
            delay = backoff_ms(attempt, lo, hi)
            attempt += 1
            log("wifi", "could not join %r (%s); retry in %d ms" % (ssid, board.status_name(sta.status()), delay))
            t0 = ticks_ms()
            while ticks_diff(ticks_ms(), t0) < delay and not sta.isconnected():
                node.alive[_WIFI] = 1
                await sleep_ms(_POLL_MS)  # the driver keeps trying meanwhile: a link back ends the wait
            if not sta.isconnected():
                _ask(sta, ssid, password)
            since = ticks_ms()
        await sleep_ms(_POLL_MS)
