"""Broker name lookup that cannot freeze the loop, and the first connection.

mqtt_as resolves its server with socket.getaddrinfo(), which blocks every task
for as long as the DNS server takes to answer or time out. Resolving the name
here first (one UDP A query, polled without blocking) and handing mqtt_as the
address makes its getaddrinfo() a no-op: an IP literal needs no lookup.

Both are needed until the first connection only: mqtt_as keeps the address for
its own reconnections, so this module is dropped then and its RAM goes to the tasks.
"""
import socket
from time import ticks_diff, ticks_ms

from micropython import const

from . import board
from .node import backoff_ms, forget, log, sleep_ms

_QTYPE_A = const(1)


def is_ip(name):
    parts = name.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def _query(name, qid):
    q = bytearray(b"\x00\x00\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00")  # RD, one question
    q[0], q[1] = qid >> 8, qid & 0xFF
    for label in name.split("."):
        q.append(len(label))
        q.extend(label.encode())
    q.extend(b"\x00\x00\x01\x00\x01")  # root, type A, class IN
    return q


def _skip_name(buf, i):
    while buf[i]:
        if buf[i] & 0xC0 == 0xC0:  # compression pointer ends the name
            return i + 2
        i += buf[i] + 1
    return i + 1


def _answer(buf, qid):
    if len(buf) < 12 or (buf[0] << 8 | buf[1]) != qid:
        return None  # not ours
    rcode = buf[3] & 0x0F
    if rcode:
        raise OSError("DNS answered rcode %d" % rcode)
    count = buf[6] << 8 | buf[7]
    i = _skip_name(buf, 12) + 4
    for _ in range(count):
        i = _skip_name(buf, i)
        rtype = buf[i] << 8 | buf[i + 1]
        size = buf[i + 8] << 8 | buf[i + 9]
        i += 10
        if rtype == _QTYPE_A and size == 4:
            return "%d.%d.%d.%d" % (buf[i], buf[i + 1], buf[i + 2], buf[i + 3])
        i += size
    raise OSError("DNS has no address for the name")


async def resolve(name, server, timeout_ms=3000):
    """Return name's IPv4 address as a string; raises OSError on failure or timeout.
    server is (ip, port) of the DNS server."""
    if is_ip(name):
        return name
    qid = ticks_ms() & 0xFFFF
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        s.sendto(_query(name, qid), socket.getaddrinfo(server[0], server[1])[0][-1])
        t0 = ticks_ms()
        while ticks_diff(ticks_ms(), t0) < timeout_ms:
            try:
                data = s.recv(512)
            except OSError:  # EAGAIN: nothing yet
                data = None
            if data:
                try:
                    ip = _answer(data, qid)
                except IndexError:
                    raise OSError("DNS answer malformed")
                if ip:
                    return ip
            await sleep_ms(20)
        raise OSError("DNS server %s did not answer in %d ms" % (server[0], timeout_ms))
    finally:
        s.close()


async def first_connect(node, client, cfg):
    """The only caller of client.connect(): retried with backoff until it succeeds,
    the server's name resolved here and mqtt_as given the address."""
    from .publisher import _reason

    wifi, server = cfg["wifi"], cfg["mqtt"]["server"]
    lo, hi = int(wifi["backoff_min_s"] * 1000), int(wifi["backoff_max_s"] * 1000)
    attempt = 0
    while True:
        while not node.wifi_up:
            await sleep_ms(250)
        try:
            client.server = await resolve(server, board.dns_server())
            async with node.radio:
                await client.connect(quick=True)  # the link is already up: skip the 5 s check
            node.mqtt_owns_radio = True
            forget("dns")
            return
        except (OSError, ValueError) as e:  # ValueError: ssl refused the CA certificate
            delay = backoff_ms(attempt, lo, hi)
            attempt += 1
            log("mqtt", "cannot connect to %s: %s; retry in %d ms" % (server, _reason(e), delay))
        await sleep_ms(delay)
