"""A tiny DNS server for tests: answers A queries from a dict, on a free loopback UDP port.

The sim board asks it when network.DNS_PORT is set to its port (app/dns.py sends
to board.dns_server()), or network.MDNS_SERVER for .local names. set_mode() makes
it answer ("answer"), say nothing as a DNS outage would ("silent"), answer after
delay_s ("delay"), or send junk first ("stray": a reply with another id, one to
another question, a truncated one, and one from another port, each a packet a
resolver must ignore) and the answer after. A name not in the dict gets
NXDOMAIN. Runs in the asyncio loop of the host process.
"""
import asyncio
import struct

MODES = ("answer", "silent", "delay", "stray")
_NXDOMAIN = 3


def _question(data):
    """(name, qtype, end of the question) of a query."""
    labels, i = [], 12
    while data[i]:
        labels.append(data[i + 1:i + 1 + data[i]].decode())
        i += data[i] + 1
    qtype = struct.unpack_from(">H", data, i + 1)[0]
    return ".".join(labels).lower(), qtype, i + 5


def reply(data, records):
    """The response to query data, from records {name: "a.b.c.d"}."""
    name, qtype, end = _question(data)
    ip = records.get(name)
    flags = 0x8180 | (0 if ip else _NXDOMAIN)  # response, recursion desired and available
    answers = b""
    if ip and qtype == 1:
        answers = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes(int(p) for p in ip.split("."))
    header = data[:2] + struct.pack(">HHHHH", flags, 1, 1 if answers else 0, 0, 0)
    return header + data[12:end] + answers


class DnsServer(asyncio.DatagramProtocol):
    def __init__(self, records=None):
        self.records = {k.lower(): v for k, v in (records or {}).items()}
        self.mode = "answer"
        self.delay_s = 0.0
        self.queries = []  # names asked, in order, for assertions
        self.port = None
        self._transport = None

    async def start(self):
        """Listen; returns the port (also self.port)."""
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        self.port = self._transport.get_extra_info("sockname")[1]
        return self.port

    def set_mode(self, mode, delay_s=0.0):
        if mode not in MODES:
            raise ValueError("mode must be one of %s, got %r" % (", ".join(MODES), mode))
        self.mode, self.delay_s = mode, delay_s

    def datagram_received(self, data, addr):
        try:
            name = _question(data)[0]
            answer = reply(data, self.records)
        except (IndexError, struct.error, UnicodeError):
            return  # not a query we understand: a real server would not answer either
        self.queries.append(name)
        if self.mode == "silent":
            return
        delay = self.delay_s if self.mode == "delay" else 0
        if self.mode == "stray":
            wrong_id = bytes([data[0] ^ 0xFF]) + answer[1:]
            other = reply(data[:12] + b"\x05other\x04test\x00\x00\x01\x00\x01", {"other.test": "10.9.9.9"})
            for junk in (wrong_id, other, answer[:-3]):
                self._send(junk, addr)
            self._from_elsewhere(answer, addr)
            delay = 0.05
        asyncio.get_running_loop().call_later(delay, self._send, answer, addr)

    def _from_elsewhere(self, answer, addr):
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # the right answer, from the wrong place
            s.sendto(answer[:-4] + b"\x0a\x06\x06\x06", addr)

    def _send(self, answer, addr):
        if self._transport is not None:
            self._transport.sendto(answer, addr)

    async def close(self):
        if self._transport is not None:
            self._transport.close()
            self._transport = None
