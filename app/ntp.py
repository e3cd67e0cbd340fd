"""The clock from NTP, without blocking: one SNTP request (RFC 4330), polled.

An ESP32 checks a TLS certificate's dates against its clock, which reads
2000-01-01 after power-up: with mqtt.ca set, every connect fails until the clock
is set (app/connect.py). app/clock.py loads it for the readings' time stamps.
"""
import struct
from random import getrandbits
from time import ticks_diff, ticks_ms

from . import board
from .dns import ask, resolve

_NTP_TO_UNIX = 2208988800  # seconds from 1900 to 1970


def _seconds(data, sent):
    # A synchronised server's reply (mode 4, leap indicator not 3, stratum not 0: a
    # kiss-o'-death) to our request (its originate time is our transmit time, sent),
    # with a transmit time; anything else is ignored.
    if len(data) < 48 or data[0] & 7 != 4 or data[0] >> 6 == 3 or not data[1] or data[24:32] != sent:
        return None
    t = struct.unpack("!I", data[40:44])[0]
    if not t:
        return None
    if t < 0x80000000:  # after 2036 the 32-bit count has wrapped
        t += 0x100000000
    return t - _NTP_TO_UNIX


def _stamp(data, sent):
    s = _seconds(data, sent)
    # The transmit time's fraction, in ms: its top 16 bits are enough (no bigint on a board).
    return None if s is None else (s, (data[44] << 8 | data[45]) * 1000 >> 16)


async def sync(server, timeout_ms=3000):
    """Set the clock from server (a name or an address); returns (UTC seconds since
    1970, ms, the request's round trip in ms: the name lookup left out). Raises
    OSError when no answer comes within timeout_ms."""
    request = bytearray(48)
    request[0] = 0x23  # version 4, client
    struct.pack_into("!II", request, 40, getrandbits(32), getrandbits(32))  # a nonce, echoed back
    sent = bytes(request[40:48])
    address = await resolve(server, board.dns_server(), timeout_ms)
    t = ticks_ms()
    s, ms = await ask("NTP server", (address, board.ntp_port()), request, lambda data: _stamp(data, sent),
                      timeout_ms, size=96)  # 48 bytes, and room for a MAC: a small buffer on a fragmented heap
    board.set_clock(s)
    return s, ms, ticks_diff(ticks_ms(), t)
