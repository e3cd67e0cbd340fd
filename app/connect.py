"""The first broker connection: the broker's name resolved without blocking
(app/dns.py), the clock set first where TLS will check certificate dates
(app/ntp.py), then mqtt_as's connect(), retried with backoff until it succeeds.
Needed until then only: publisher.py drops this module and dns.py afterwards,
since mqtt_as keeps the address and reconnects on its own.

mqtt.ca may hold several certificates (PEM or DER: a chain, a bundle). A PEM file
is first given whole, every certificate trusted (an ESP32's mbedtls parses PEM);
where ssl refuses it, or for DER, one certificate at a time (ssl takes one DER
certificate as cadata), and a failed verification moves on to the next: the
first that verifies the broker stays for every later reconnection."""
import gc
import time

from . import board
from .dns import resolve
from .node import backoff_ms, forget, log, sleep_ms

# CONNACK return codes (MQTT 3.1.1, 3.2.2.3): what a refusal means to a person.
# Mosquitto answers a wrong password with 5, not 4.
_REFUSALS = {1: "the broker does not speak MQTT 3.1.1", 2: "client id rejected (check device)",
             3: "broker unavailable", 4: "bad user name or password",
             5: "not authorised: wrong mqtt.user or mqtt.password, or the broker's ACL refuses this client"}
_CONNACK = "CONNACK reason code 0x"


def reason(e):
    """A failed connect in words. mqtt_as raises OSError(-1, "CONNACK reason code
    0x5"), which MicroPython prints as "(-1, 'CONNACK reason code 0x5')": its text
    is read from args. A real errno keeps str()'s "[Errno 111] ECONNREFUSED"."""
    args = e.args
    real_errno = args and isinstance(args[0], int) and args[0] > 0
    text = args[-1] if args and isinstance(args[-1], str) and not real_errno else str(e)
    if text.startswith(_CONNACK):
        meaning = _REFUSALS.get(int(text[len(_CONNACK):], 16))
        if meaning:
            return "%s (%s)" % (meaning, text)
    text = " ".join(text.split())  # mbedtls words its verification flags on lines of their own
    if "validity starts in the future" in text:
        text += " (the board's clock is behind: ntp.server sets it)"
    return text if isinstance(e, OSError) else "%s: %s" % (type(e).__name__, text)


def certificate(path, index):
    """What to give ssl as cadata on the index-th try: for PEM, first the whole file,
    then each certificate as DER; for DER, each certificate. None past the last.
    Raises OSError when the file cannot be read."""
    with open(path, "rb") as f:
        data = f.read()
    if b"-----BEGIN" in data:
        from binascii import a2b_base64

        if not index:
            return data
        end = 0
        for _ in range(index):
            begin = data.find(b"-----BEGIN CERTIFICATE-----", end)
            if begin < 0:
                return None
            end = data.find(b"-----END", begin)
        body = data[data.find(b"\n", begin) + 1:end]
        return a2b_base64(body.replace(b"\r", b"").replace(b"\n", b""))
    at = 0
    for i in range(index + 1):  # DER: a SEQUENCE with a two-byte length, 30 82 hi lo
        if at + 4 > len(data) or data[at] != 0x30 or data[at + 1] != 0x82:
            return None
        size = 4 + (data[at + 2] << 8 | data[at + 3])
        if i == index:
            return data[at:at + size]
        at += size


async def first_connect(node, client, cfg):
    """The only caller of client.connect(): retried with backoff until it succeeds,
    the server's name resolved here and mqtt_as given the address."""
    wifi, server, ca = cfg["wifi"], cfg["mqtt"]["server"], cfg["mqtt"]["tls"] and cfg["mqtt"]["ca"]
    lo, hi = int(wifi["backoff_min_s"] * 1000), int(wifi["backoff_max_s"] * 1000)
    attempt = which = 0  # which: the certificate of mqtt.ca given to ssl
    while True:
        while not node.wifi_up:
            await sleep_ms(250)
        try:
            if ca:
                if board.utc() is None:
                    await _set_clock(cfg["ntp"])
                client.tls["cadata"] = certificate(ca, which) or certificate(ca, 0)
            client.server = await resolve(server, board.dns_server())
            await client.connect(quick=True)  # the link is already up: skip the 5 s check
            node.client_started = True
            for name in ("dns", "ntp", "connect"):
                forget(name)
            return
        except Exception as e:  # OSError, ssl's ValueError: every failure is retried, and said
            delay = backoff_ms(attempt, lo, hi)
            attempt += 1
            log("mqtt", "cannot connect to %s: %s; retry in %d ms" % (server, reason(e), delay))
            if ca and isinstance(e, ValueError):  # not verified with this one: the next, round and round
                which = which + 1 if certificate(ca, which + 1) else 0
                gc.collect()  # mbedtls drops the socket it failed on without closing it
        await sleep_ms(delay)


async def _set_clock(ntp):
    from .ntp import sync

    server = ntp["server"]
    try:
        await sync(server, int(ntp["timeout_s"] * 1000))
        log("ntp", "clock set from %s: %d-%02d-%02d %02d:%02d:%02d UTC" % ((server,) + time.gmtime(time.time())[:6]))
    except OSError as e:
        log("ntp", "cannot set the clock from %s: %s" % (server, reason(e)))
