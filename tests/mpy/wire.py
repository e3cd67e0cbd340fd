# What goes on the wire, byte for byte, under the board's json and bytearray:
# the DNS query and the checks on its answer, the reading as bytes, connect
# refusals as the board renders them, and the retry backoff's bounds.
import json

from app import connect, dns, publisher, start
from app.node import backoff_ms

print(dns.is_ip("192.168.1.10"), dns.is_ip("broker.test"), dns.is_ip("1.2.3.256"))
q = dns._query("broker.test", 0x1234)
print(len(q), bytes(q[:12]), bytes(q[12:]))
NAME = b"broker.test"
A_RECORD = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0a\x00\x00\x07"  # behind a pointer to the question


def reply(records=A_RECORD, count=1, rcode=0, query=q):
    a = bytearray(query)
    a[2], a[3], a[7] = 0x81, 0x80 | rcode, count
    a.extend(records)
    return a


print("answer", dns._answer(reply(), 0x1234, NAME))
print("another id", dns._answer(reply(), 0x4321, NAME))
print("our own query", dns._answer(q, 0x1234, NAME))
print("another question", dns._answer(reply(query=dns._query("other.test", 0x1234)), 0x1234, NAME))
print("truncated", dns._answer(reply()[:-3], 0x1234, NAME))
print("pointer loop", dns._answer(reply(b"\xc0\x1d\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0a\x00\x00\x07"),
                                  0x1234, NAME))
cname = (b"\x06broker\x04test\x00\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x0b\x04real\x04test\x00"
         b"\x04real\x04test\x00\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0a\x00\x00\x08")
print("cname", dns._answer(reply(cname, 2), 0x1234, NAME))
for records, rcode in ((b"\x05other\x04test\x00\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0a\x00\x00\x09", 0),
                       (b"", 3)):
    try:
        dns._answer(reply(records, 1 if records else 0, rcode), 0x1234, NAME)
    except OSError as e:
        print("OSError", e.args[0])

# A refusal as mqtt_as raises it; MicroPython's str() of it is "(-1, '...')".
for e in (OSError(-1, "CONNACK reason code 0x5"), OSError(-1, "CONNACK reason code 0x4"),
          OSError(-1, "Timeout on socket read"), OSError("Wi-Fi connect timed out"), ValueError("invalid cert")):
    print(connect.reason(e))

# A reading is bytes; its head (device, location) is JSON-encoded once. CPython's
# json escapes "\u00fc" where MicroPython's writes UTF-8: the head is compared parsed.
head = start.head("node-1", "K\u00fcche")
print(sorted(json.loads(head[:-2] + b"}").items()) == [("device", "node-1"), ("location", "K\u00fcche")])
for reading, utc in (((7, 123456, -55, 415), None), ((8, 123556, -400, 1000), (1764000000, 5)),
                     ((9, 123656, -395, 0), (1764000000, 0)), ((10, 123756, 223, 5), (1764000001, 999))):
    p = publisher.payload(head, b"0badf00d", reading, reading[1] + (1 << 30), utc)
    print(type(p).__name__, p.startswith(head), p[len(head):])
    json.loads(p)
print(start.topic("fireant/{device}/status", "node-1"))

for attempt in (0, 1, 5, 30):
    d = [backoff_ms(attempt, 1000, 60000) for _ in range(50)]
    cap = min(1000 << min(attempt, 16), 60000)
    print(attempt, cap, min(d) >= cap // 2, max(d) <= cap)

# NTP: only a synchronised server's reply to our own request sets the clock.
from app import ntp

sent = b"\x01\x02\x03\x04\x05\x06\x07\x08"


def ntp_reply(first=0x24, stratum=1, originate=sent, t=3973000000):
    r = bytearray(48)
    r[0], r[1] = first, stratum
    r[24:32] = originate
    r[40:44] = bytes((t >> 24 & 255, t >> 16 & 255, t >> 8 & 255, t & 255))
    return r


print("ntp", ntp._seconds(ntp_reply(), sent))
print("ntp kiss-o'-death", ntp._seconds(ntp_reply(stratum=0), sent))
print("ntp unsynchronised", ntp._seconds(ntp_reply(first=0xE4), sent))
print("ntp another request's", ntp._seconds(ntp_reply(originate=b"\x00" * 8), sent))
print("ntp after 2036", ntp._seconds(ntp_reply(t=1000), sent))
print("mdns error ignored", dns._answer(reply(rcode=3), 0x1234, NAME, True))

# Time: a reading's UTC from the uptime<->UTC pair of the latest NTP answer, ms
# borrowed from the seconds; uptime past ticks_ms's wrap (the port's period: 2^30
# on a board and under CPython's sim, 2^62 on the 64-bit unix port); the backlog's
# 30-bit stamps back to uptime across a wrap of theirs.
from time import ticks_add

from app.node import Node

P = ticks_add(0, -1) + 1
n = Node("node-1")
print("no clock", n.utc(5))
n.synced = (5000, 1764000000, 500)
for up in (5000, 4500, 3400, 5500, 5000 + 5 * 86400 * 1000):
    print("utc", up, n.utc(up))
n._last = P - 1  # the last look was just before ticks_ms's wrap: the next one is past it
up = n.uptime()
print("uptime past the wrap", n._wraps, up == P + n._last)


class At(Node):  # uptime() fixed, to see the 30-bit stamps across their wrap
    def uptime(self):
        return self.now


a = At("node-1")
for now, taken in ((5000, 4000), ((1 << 30) + 20, (1 << 30) - 10), (3 * (1 << 30) + 7, 3 * (1 << 30) - 86400000)):
    a.now = taken
    s = a.stamp()
    a.now = now
    print("stamp", 0 <= s < 1 << 30, a.taken(s) == taken)
print("boot id", len(n.boot), Node("x").boot != n.boot)
