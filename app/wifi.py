"""Wi-Fi supervisor: brings the station link up and reports it to the other tasks.

Who owns the radio: this task joins the network (with capped exponential backoff
and jitter) until mqtt_as has made its first broker connection. mqtt_as's first
connect() calls WLAN.connect() itself, so both take node.radio around every
connect attempt and never overlap. After that first connection mqtt_as
reconnects Wi-Fi and broker on its own (that is its contract), so from then on
this task only watches the link and never calls connect() again.
"""
from time import ticks_diff, ticks_ms

from micropython import const

from . import board
from .node import backoff_ms, log, sleep_ms

_POLL_MS = const(250)


async def _join(sta, ssid, password, timeout_ms):
    sta.active(True)
    sta.connect(ssid, password)
    t0 = ticks_ms()
    while ticks_diff(ticks_ms(), t0) < timeout_ms:
        await sleep_ms(_POLL_MS)
        if sta.isconnected():
            return True
    sta.disconnect()  # stop the driver retrying behind our back
    return False


async def run(node, cfg):
    wifi = cfg["wifi"]
    board.set_hostname(wifi["hostname"] or node.device)
    board.access_point(wifi["ap_ssid"], wifi["ap_password"])
    sta = board.station()
    if not wifi["ssid"]:
        log("wifi", "no wifi.ssid configured: sensing only")
    lo, hi = int(wifi["backoff_min_s"] * 1000), int(wifi["backoff_max_s"] * 1000)
    attempt = 0
    while True:
        if node.radio.locked():  # a connect() in progress owns the link state
            await sleep_ms(_POLL_MS)
            continue
        up = sta.isconnected()
        if up != node.wifi_up:
            node.wifi_up = up
            if up:
                log("wifi", "up, address %s" % sta.ifconfig()[0])
            else:
                node.wifi_drops += 1
                log("wifi", "link lost")
        if up or node.mqtt_owns_radio or not wifi["ssid"]:
            attempt = 0
            await sleep_ms(_POLL_MS)
            continue
        async with node.radio:
            joined = node.mqtt_owns_radio or await _join(
                sta, wifi["ssid"], wifi["password"], int(wifi["timeout_s"] * 1000))
        if not joined:
            delay = backoff_ms(attempt, lo, hi)
            attempt += 1
            log("wifi", "could not join %r (status %s); retry in %d ms" % (wifi["ssid"], sta.status(), delay))
            await sleep_ms(delay)
