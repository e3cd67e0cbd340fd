"""RingbufQueue stand-in honouring upstream's contract (v3/primitives):

- RingbufQueue(n) preallocates n slots and holds at most n - 1 items;
- put_nowait() on a full queue overwrites the oldest item, then raises IndexError;
- get_nowait() and peek() raise IndexError when empty;
- get() and put() are coroutines that wait; the queue is an async iterator.
"""
import asyncio


class RingbufQueue:
    def __init__(self, buf):
        self._slots = [None] * buf if isinstance(buf, int) else buf
        self._n = len(self._slots)
        self._head = 0  # next read
        self._tail = 0  # next write
        self._put_evt = asyncio.Event()
        self._get_evt = asyncio.Event()

    def qsize(self):
        return (self._tail - self._head) % self._n

    def empty(self):
        return self._head == self._tail

    def full(self):
        return (self._tail + 1) % self._n == self._head

    def peek(self):
        if self.empty():
            raise IndexError
        return self._slots[self._head]

    def _take(self):
        item = self._slots[self._head]
        self._head = (self._head + 1) % self._n
        self._get_evt.set()
        self._get_evt.clear()
        return item

    def get_nowait(self):
        if self.empty():
            raise IndexError
        return self._take()

    def put_nowait(self, v):
        overwrote = self.full()
        if overwrote:
            self._head = (self._head + 1) % self._n
        self._slots[self._tail] = v
        self._tail = (self._tail + 1) % self._n
        self._put_evt.set()
        self._put_evt.clear()
        if overwrote:
            raise IndexError

    async def get(self):
        while self.empty():
            await self._put_evt.wait()
        return self._take()

    async def put(self, v):
        while self.full():
            await self._get_evt.wait()
        self.put_nowait(v)

    def __aiter__(self):
        return self

    async def __anext__(self):
        return await self.get()
