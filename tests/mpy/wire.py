# What goes on the wire, byte for byte and key for key, under the board's
# json and bytearray: the DNS query and answer parser, the reading payload,
# and the retry backoff's bounds.
import json

from app import dns, publisher
from app.node import backoff_ms

print(dns.is_ip("192.168.1.10"), dns.is_ip("broker.test"), dns.is_ip("1.2.3.256"))
q = dns._query("broker.test", 0x1234)
print(len(q), bytes(q[:12]), bytes(q[12:]))
# The answer: our question echoed, then one A record behind a compression pointer.
answer = bytearray(q)
answer[2], answer[3], answer[7] = 0x81, 0x80, 1
answer.extend(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0a\x00\x00\x07")
print(dns._answer(answer, 0x1234), dns._answer(answer, 0x4321))
answer[3] = 0x83  # NXDOMAIN
try:
    dns._answer(answer, 0x1234)
except OSError as e:
    print("OSError", e.args[0])

p = json.loads(publisher.payload("node-1", "attic", (7, 123456, -55, 415)))
print(sorted(p.items()))
print(publisher.topic("fireant/{device}/status", "node-1"))

for attempt in (0, 1, 5, 30):
    d = [backoff_ms(attempt, 1000, 60000) for _ in range(50)]
    cap = min(1000 << min(attempt, 16), 60000)
    print(attempt, cap, min(d) >= cap // 2, max(d) <= cap)
