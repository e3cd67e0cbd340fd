"""Readings not yet acknowledged by the broker, oldest first: in RAM, in storage fixed
at boot, and past its high-water mark on flash (app/spool.py).

micropython-async's RingbufQueue, over an array, holds the RAM readings' seq numbers;
a reading's fields live in preallocated arrays at slot seq % size (uptime stamp in 32
bits, tenths of a degree and of a percent in 16), so taking a reading allocates
nothing. Once BATCH readings wait in RAM while none of them is on its way to the
broker, they go to the spool as one batch (app/spool.py loaded then, or at boot when
spool/ holds readings from before), and the spool, always older than RAM, is
published first. A reading leaves only after its PUBACK: the publisher takes the
oldest n available (available()), reads them (reading(i)), then calls done(n).

With no spool (spool.size 0) a full queue drops its oldest reading, counted; one
that was on its way is counted too (its PUBACK may still come) and the publisher
starts its window again (gen).
"""
import asyncio
import sys
from array import array

from primitives import RingbufQueue

from .node import log_exception

# primitives' __init__ is a lazy loader (and helpers we do not use): RingbufQueue
# found, it may go (~0.7 KB of an ESP8266's heap); the class keeps its own module.
sys.modules.pop("primitives", None)


class Backlog:
    def __init__(self, node, size, spool_size=0):
        self._node = node
        self._size = size
        # The queue holds the newest readings' seqs, consecutive numbers, so no two
        # share a slot; a ring of n places holds n - 1.
        self._q = RingbufQueue(array("i", bytearray(4 * (size + 1))))
        self._uptime = array("i", bytearray(4 * size))
        self._tenths = array("h", bytearray(4 * size))  # t10, h10 per slot: a sensor's range fits 16 bits
        self._ready = asyncio.Event()
        self.sending = 0  # the oldest RAM readings the publisher has on their way
        self.gen = 0  # changes when readings on their way left RAM without a PUBACK
        self.orphaned = 0  # of them, those dropped (a full queue), not moved to flash
        self._spool_size = spool_size
        self.spool = None
        if spool_size:
            import os

            try:
                if [n for n in os.listdir("spool") if n != "pos"]:
                    self._open_spool()
            except OSError:  # no spool/ yet
                pass

    def _open_spool(self):
        from .spool import Spool

        self.spool = s = Spool(self._node, self._spool_size)
        return s

    def __len__(self):
        return self._q.qsize() + (len(self.spool) if self.spool else 0)

    def put(self, seq, stamp, t10, h10):
        """Never blocks; allocates nothing but when a batch goes to flash."""
        q = self._q
        if q.full():
            q.get_nowait()
            self._node.dropped += 1
            if self.sending:  # counted: its PUBACK may never come (the publisher takes it back if it does)
                self.sending -= 1
                self.gen += 1
                self.orphaned += 1
        i = seq % self._size
        self._uptime[i] = stamp
        self._tenths[2 * i] = t10
        self._tenths[2 * i + 1] = h10
        q.put_nowait(seq)
        n = min(_BATCH, self._size)
        if self._spool_size and q.qsize() >= n and (
                not self.sending or not self._node.broker_up or q.qsize() >= self._size - 1):
            self._spill(n)
        self._ready.set()

    def _spill(self, n):
        """The oldest n RAM readings to the spool, as one batch. A failing flash
        (full, worn) keeps them in RAM: logged, and the queue drops as without a spool."""
        node, q = self._node, self._q
        try:
            spool = self.spool or self._open_spool()
            seq = q.peek()
            synced = node.synced and (node.synced[0] & 0x3FFFFFFF, node.synced[1], node.synced[2])
            spool.write(node.boot.encode(), seq, synced, self._uptime, self._tenths, seq % self._size, n,
                             self._size)
        except Exception as e:  # OSError (flash full), MemoryError (no room to load app/spool.py)
            if not self._spill_failed:
                log_exception("spool", e)
            self._spill_failed = True
            return
        self._spill_failed = False
        for _ in range(n):
            q.get_nowait()
        if self.sending:  # they are on flash now, and go out again from there
            self.sending = 0
            self.gen += 1

    _spill_failed = False

    async def wait(self):
        """Until a reading waits."""
        while not len(self):
            self._ready.clear()
            await self._ready.wait()

    def available(self):
        """How many of the oldest readings can be read now: the spool's loaded batch
        (loaded when none is), else the RAM queue."""
        s = self.spool
        if s is not None and (s.n or (s.count and s.load())):
            return s.n
        return self._q.qsize()

    def reading(self, i):
        """(boot, seq, stamp, synced, t10, h10) of the i-th oldest available reading
        (i < available()). boot: None for this boot's (the publisher knows its clock);
        synced: the clock of a spooled batch, (stamp, utc s, ms) or None."""
        s = self.spool
        if s is not None and s.n:
            seq, stamp, t10, h10 = s.reading(i)
            return s.boot, seq, stamp, s.synced, t10, h10
        seq = self._q.peek() + i
        j = seq % self._size
        return None, seq, self._uptime[j], None, self._tenths[2 * j], self._tenths[2 * j + 1]

    def done(self, n):
        """The n oldest available readings are acknowledged."""
        s = self.spool
        if s is not None and s.n:
            s.done(n)
            return
        for _ in range(n):
            if not self._q.empty():
                self._q.get_nowait()
        self.sending = max(0, self.sending - n)

    def flush(self):
        """Everything in RAM to the spool (a clean stop, a restart): the next boot
        sends it. Returns how many readings went."""
        if not self._spool_size:
            return 0
        moved = 0
        self.sending = 0
        while self._q.qsize():
            n = min(_BATCH, self._q.qsize())
            left = self._q.qsize()
            self._spill(n)
            if self._q.qsize() == left:  # the flash refused it
                break
            moved += n
        return moved


_BATCH = 16  # app/spool.py's BATCH (not imported: the spool module is loaded only when used)
