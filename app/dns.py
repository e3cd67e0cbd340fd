"""Name lookup that cannot freeze the loop: one UDP A query, polled without blocking.

mqtt_as resolves its server with socket.getaddrinfo(), which blocks every task
for as long as the DNS server takes to answer or time out; handed an address
instead, it has nothing to look up. Names ending in .local are asked of mDNS
(224.0.0.251:5353) as a one-shot query, which responders answer by unicast to
our port (RFC 6762 6.7): what an ESP32's getaddrinfo does, without blocking.

A reply counts only when it comes from the server asked (any host, for mDNS),
carries our random id and our question, and holds an A record for the name
asked or for a CNAME of it. Anything else is ignored and the wait goes on.
"""
import select
import socket
from random import getrandbits
from time import ticks_diff, ticks_ms

from micropython import const

from . import board
from .node import sleep_ms

_TYPE_A = const(1)
_TYPE_CNAME = const(5)


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


def _name(buf, i):
    """(the name at i, lower case, labels joined by dots; the index after it).
    Follows compression pointers; raises IndexError on a malformed name."""
    out = bytearray()
    end = None
    for _ in range(64):  # a pointer loop is malformed, not endless
        n = buf[i]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = i + 2
            i = (n & 0x3F) << 8 | buf[i + 1]
            continue
        if n == 0:
            return bytes(out).lower(), i + 1 if end is None else end
        if out:
            out.append(46)  # "."
        if i + 1 + n > len(buf):
            raise IndexError
        out.extend(buf[i + 1:i + 1 + n])
        i += n + 1
    raise IndexError


def _answer(buf, qid, qname, mdns=False):
    """Our answer's address (str); None for a packet that is not our answer; raises
    OSError when the server says the name does not exist (a DNS server: an mDNS
    message with an error code is ignored, RFC 6762 18.11). qname: bytes, lower case."""
    if len(buf) < 12 or (buf[0] << 8 | buf[1]) != qid or not buf[2] & 0x80:
        return None  # not a response to our query
    try:
        if (buf[4] << 8 | buf[5]) != 1:
            return None
        name, i = _name(buf, 12)
        if name != qname or buf[i:i + 4] != b"\x00\x01\x00\x01":
            return None  # another question
        rcode = buf[3] & 0x0F
        if rcode and mdns:
            return None
        if rcode:
            raise OSError("DNS answered rcode %d (%s)" % (rcode, "no such name" if rcode == 3 else "failure"))
        i += 4
        wanted = [qname]
        for _ in range(buf[6] << 8 | buf[7]):
            owner, i = _name(buf, i)
            rtype = buf[i] << 8 | buf[i + 1]
            size = buf[i + 8] << 8 | buf[i + 9]
            i += 10
            if i + size > len(buf):
                raise IndexError  # truncated
            if owner in wanted:
                if rtype == _TYPE_A and size == 4:
                    return "%d.%d.%d.%d" % (buf[i], buf[i + 1], buf[i + 2], buf[i + 3])
                if rtype == _TYPE_CNAME:
                    wanted.append(_name(buf, i)[0])
            i += size
    except IndexError:
        return None  # malformed: not an answer we can use
    raise OSError("DNS has no address for the name")


async def ask(what, server, request, answer, timeout_ms, anyone=False, size=512):
    """Send one UDP request to server (ip, port), again at half the timeout (one
    lost datagram must not cost a whole attempt), and wait for the reply without
    blocking: answer(data) returns the result, or None for a packet to ignore.
    Replies from another address are ignored unless anyone. Raises OSError on
    timeout, naming what was asked (and whatever answer raises). size: the
    largest reply wanted (a buffer of that size per packet)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        ready = select.poll()  # recvfrom() on lwIP allocates its buffer even when nothing came
        ready.register(s, select.POLLIN)
        to = socket.getaddrinfo(server[0], server[1])[0][-1]
        s.sendto(request, to)
        t0, resent = ticks_ms(), False
        while ticks_diff(ticks_ms(), t0) < timeout_ms:
            if not ready.poll(0):
                if not resent and ticks_diff(ticks_ms(), t0) >= timeout_ms // 2:
                    s.sendto(request, to)
                    resent = True
                await sleep_ms(20)
                continue
            data, sender = s.recvfrom(size)
            if anyone or sender == to:
                result = answer(data)
                if result is not None:
                    return result
            await sleep_ms(0)  # junk: let the other tasks run before the next packet
        raise OSError("%s %s did not answer in %d ms" % (what, server[0], timeout_ms))
    finally:
        s.close()


async def resolve(name, server, timeout_ms=3000):
    """Return name's IPv4 address as a string; raises OSError on failure or timeout.
    server: (ip, port) of the DNS server; names ending in .local go to mDNS."""
    if is_ip(name):
        return name
    name = name.rstrip(".")
    mdns = name.lower().endswith(".local")
    qid = getrandbits(16)
    qname = name.lower().encode()
    return await ask("mDNS" if mdns else "DNS server", board.dns_server(True) if mdns else server,
                     _query(name, qid), lambda data: _answer(data, qid, qname, mdns), timeout_ms, mdns)
