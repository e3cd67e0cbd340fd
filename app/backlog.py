"""Readings not yet acknowledged by the broker, oldest first, in fixed storage.

A reading leaves only after its PUBACK: the publisher peeks at the oldest, publishes
it, then removes it. When the queue is full the oldest reading is dropped and
counted, unless it is the one being published (that one is on its way).
"""
import asyncio

from primitives import RingbufQueue


class Backlog:
    def __init__(self, node, size):
        self._node = node
        self._q = RingbufQueue(size + 1)  # a ring of n slots holds n - 1
        self._ready = asyncio.Event()
        self._inflight = None

    def __len__(self):
        return self._q.qsize()

    def put(self, reading):
        """Never blocks."""
        if self._q.full():
            if self._q.get_nowait() is not self._inflight:
                self._node.dropped += 1
        self._q.put_nowait(reading)
        self._ready.set()

    async def oldest(self):
        while self._q.empty():
            self._ready.clear()
            await self._ready.wait()
        self._inflight = self._q.peek()
        return self._inflight

    def done(self, reading):
        """reading (from oldest()) is acknowledged: remove it if still queued."""
        if not self._q.empty() and self._q.peek() is reading:
            self._q.get_nowait()
        self._inflight = None
