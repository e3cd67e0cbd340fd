"""Readings not yet acknowledged by the broker, oldest first, in storage fixed at boot.

micropython-async's RingbufQueue, over an array, holds the readings' seq numbers; a
reading's fields live in preallocated arrays at slot seq % size (uptime_ms in 32 bits,
tenths of a degree and of a percent in 16), so taking a reading allocates nothing. A reading leaves only after its PUBACK: the publisher takes the
oldest, publishes it, then calls done(). When the queue is full the oldest reading is
dropped and counted, unless it is the one being published (that one is on its way).
"""
import asyncio
from array import array

from primitives import RingbufQueue


class Backlog:
    def __init__(self, node, size):
        self._node = node
        self._size = size
        # The queue holds the newest readings' seqs, consecutive numbers, so no two
        # share a slot; a ring of n places holds n - 1.
        self._q = RingbufQueue(array("i", bytearray(4 * (size + 1))))
        self._uptime = array("i", bytearray(4 * size))
        self._tenths = array("h", bytearray(4 * size))  # t10, h10 per slot: a sensor's range fits 16 bits
        self._ready = asyncio.Event()
        self._inflight = 0  # seq being published (seqs start at 1)

    def __len__(self):
        return self._q.qsize()

    def put(self, seq, uptime_ms, t10, h10):
        """Never blocks, allocates nothing."""
        if self._q.full() and self._q.get_nowait() != self._inflight:
            self._node.dropped += 1
        i = seq % self._size
        self._uptime[i] = uptime_ms
        self._tenths[2 * i] = t10
        self._tenths[2 * i + 1] = h10
        self._q.put_nowait(seq)
        self._ready.set()

    async def oldest(self):
        """(seq, uptime_ms, t10, h10) of the oldest reading; waits for one."""
        while self._q.empty():
            self._ready.clear()
            await self._ready.wait()
        seq = self._inflight = self._q.peek()
        i = seq % self._size
        return seq, self._uptime[i], self._tenths[2 * i], self._tenths[2 * i + 1]

    def done(self, seq):
        """The reading is acknowledged: remove it if it is still queued."""
        if not self._q.empty() and self._q.peek() == seq:
            self._q.get_nowait()
        self._inflight = 0
