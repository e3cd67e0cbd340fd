"""True time for the readings: the clock set by NTP once the broker is first reached, then every
ntp.resync_s, never blocking the loop (app/ntp.py: one polled UDP request, a
bounded wait). The node keeps the uptime <-> UTC pair of the latest answer
(node.synced); a reading's ts is worked out from it when it is published, so a
reading taken before the first answer (offline from power-on) is back-filled
with the instant it was measured. app/ntp.py and app/dns.py are loaded for each
sync and dropped after it.
"""
import gc

from micropython import const

from .node import forget, log, sleep_ms

_RETRY_MS = const(30000)  # after a failed sync (no answer, no name)


async def _sync(node, ntp, timeout):
    # A function of its own: once it returns nothing of ours holds app/ntp.py any more.
    from .ntp import sync

    s, ms, rtt = await sync(ntp["server"], timeout)
    # The server's transmit instant: about half the round trip before its answer arrived.
    node.synced = (node.uptime() - rtt // 2, s, ms)


async def run(node, ntp):
    """ntp: the settings' ntp section (ntp.resync_s > 0: app/__init__.py starts this task only then)."""
    resync = int(ntp["resync_s"] * 1000)
    timeout = int(ntp["timeout_s"] * 1000)
    while True:
        # After the first broker connect: ts matters only once a reading can be published (the
        # backlog is back-filled), and app/connect.py's heap is free by then (an ESP8266 cannot
        # hold both). With mqtt.ca, connect.py sets the clock itself first.
        while not (node.wifi_up and node.client_started):
            await sleep_ms(250)
        first = node.synced is None
        try:
            gc.collect()  # ntp and dns arrive on a heap in pieces (an ESP8266's): room for them first
            await _sync(node, ntp, timeout)
            if first:
                log("ntp", "clock set from %s: %d.%03d UTC" % ((ntp["server"],) + node.synced[1:]))
            wait = resync
        except Exception as e:  # no answer (OSError), no room for ntp (MemoryError): "ts": null meanwhile
            log("ntp", "cannot set the clock from %s: %r" % (ntp["server"], e))
            wait = min(resync, _RETRY_MS)
        finally:
            node.first_sync = False  # the publisher waits no longer, whatever happened
            forget("ntp")
            forget("dns")  # app/connect.py has dropped it already
        await sleep_ms(wait)
