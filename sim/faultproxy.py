"""A fault-injecting TCP proxy between node and broker, for tests and the benchmark.

It listens on a free loopback port and forwards to the broker; set_mode() picks
what the path does from then on:
- "pass": forward at once;
- "delay": forward each chunk delay_s after it arrived, in each direction (order kept);
- "blackhole": forward nothing and send no RST or FIN; connections stay open and
  new ones are accepted but not carried on. What is sent meanwhile is held, as
  TCP retransmission would hold it, and delivered (closes included) once the path
  heals; by then an end that gave up has closed, and the other end learns it;
- "reset": RST every open connection and every new one.

Runs in the asyncio loop of the host process; call set_mode() from that loop.
Both the in-process firmware and a micropython subprocess can connect through it.
"""
import asyncio
import collections
import socket
import struct
import time

MODES = ("pass", "blackhole", "reset", "delay")
_EOF = b""


def _rst(writer):
    """Close with RST instead of FIN (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class _Pipe:
    """One direction of one connection: reads into a queue, writes out when the mode allows."""

    def __init__(self, proxy, reader):
        self.proxy = proxy
        self.reader = reader
        self.queue = collections.deque()  # (due monotonic s, bytes; b"" = EOF)
        self.arrived = asyncio.Event()

    async def read(self):
        while True:
            try:
                data = await self.reader.read(65536)
            except (ConnectionError, OSError):
                data = _EOF
            p = self.proxy
            delay = p.delay_s if p.mode == "delay" else 0.0
            self.queue.append((time.monotonic() + delay, data))
            self.arrived.set()
            if not data:
                return

    async def write(self, writer):
        """Returns after forwarding EOF; raises ConnectionError if the far end is gone."""
        p = self.proxy
        while True:
            while not self.queue:
                self.arrived.clear()
                await self.arrived.wait()
            while p.mode == "blackhole":
                await p.changed()
            due, data = self.queue[0]
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue  # the mode may have changed meanwhile
            self.queue.popleft()
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()


class FaultProxy:
    """Asyncio TCP proxy between node and broker, on a free loopback port."""

    def __init__(self, target_port, target_host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.port = None
        self.mode = "pass"
        self.delay_s = 0.0
        self.accepted = 0  # connections accepted, for assertions
        self._server = None
        self._changed = asyncio.Event()
        self._conns = set()  # client-side writers of live connections
        self._tasks = set()

    async def start(self):
        """Listen; returns the port (also self.port)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def set_mode(self, mode, delay_s=0.0):
        if mode not in MODES:
            raise ValueError("mode must be one of %s, got %r" % (", ".join(MODES), mode))
        self.mode, self.delay_s = mode, delay_s
        if mode == "reset":
            for w in list(self._conns):
                _rst(w)
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self):
        await self._changed.wait()

    async def _handle(self, c_reader, c_writer):
        self.accepted += 1
        if self.mode == "reset":
            _rst(c_writer)
            return
        self._conns.add(c_writer)
        task = asyncio.current_task()
        self._tasks.add(task)
        up = _Pipe(self, c_reader)
        reading = asyncio.create_task(up.read())
        b_writer = None
        try:
            while self.mode == "blackhole":  # a SYN into a black hole: nothing reaches the broker
                await self.changed()
            if self.mode == "reset" or (up.queue and not up.queue[-1][1]):
                return  # reset meanwhile, or the client gave up before the path healed
            try:
                b_reader, b_writer = await asyncio.open_connection(*self.target)
            except OSError:
                _rst(c_writer)  # broker down: refuse the client as the broker's host would
                return
            self._conns.add(b_writer)
            down = _Pipe(self, b_reader)
            tasks = [reading, asyncio.create_task(down.read()),
                     asyncio.create_task(up.write(b_writer)), asyncio.create_task(down.write(c_writer))]
            try:
                # Done when both directions have carried their EOF, or either end broke.
                writers = asyncio.gather(tasks[2], tasks[3])
                await writers
            except (ConnectionError, OSError):
                pass
            finally:
                for t in tasks:
                    t.cancel()
        finally:
            reading.cancel()
            for w in (c_writer, b_writer):
                if w is not None:
                    self._conns.discard(w)
                    if self.mode == "reset":
                        _rst(w)
                    else:
                        w.close()
            self._tasks.discard(task)

    async def close(self):
        """Stop listening and reset every connection. Handlers end by themselves:
        cancelling a stream handler task makes asyncio log an error."""
        if self._server is not None:
            self._server.close()
        self.set_mode("reset")
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        if self._server is not None:
            await self._server.wait_closed()
