"""A tiny SNTP server for tests: answers with this host's clock, on a free
loopback UDP port (the sim board asks it when $FIREANT_SIM_NTP_PORT names it).
set_mode("silent") makes it say nothing, as an unreachable pool would."""
import asyncio
import struct
import time

_NTP_TO_UNIX = 2208988800


class NtpServer(asyncio.DatagramProtocol):
    def __init__(self):
        self.mode = "answer"
        self.queries = 0
        self.port = None
        self._transport = None

    async def start(self):
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        self.port = self._transport.get_extra_info("sockname")[1]
        return self.port

    def set_mode(self, mode):
        if mode not in ("answer", "silent"):
            raise ValueError("mode must be answer or silent, got %r" % mode)
        self.mode = mode

    def datagram_received(self, data, addr):
        if len(data) < 48 or data[0] & 7 != 3:  # not a client request
            return
        self.queries += 1
        if self.mode == "silent":
            return
        now = time.time() + _NTP_TO_UNIX
        secs, frac = int(now), int((now % 1) * 2 ** 32)
        reply = bytearray(48)
        reply[0] = 0x24  # version 4, server
        reply[1] = 1  # stratum: a primary reference
        reply[24:32] = data[40:48]  # originate = the client's transmit time
        struct.pack_into("!IIII", reply, 32, secs, frac, secs, frac)  # receive, transmit
        self._transport.sendto(bytes(reply), addr)

    async def close(self):
        if self._transport is not None:
            self._transport.close()
            self._transport = None


class ThreadedNtpServer:
    """The same server on its own loop in a thread, for tests that are not async
    (unix-port and ESP8266-model runs): with ThreadedNtpServer() as ntp: ntp.port."""

    def __enter__(self):
        import threading

        self.server = NtpServer()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve():
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self.server.start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(5)
        self.port = self.server.port
        return self

    def set_mode(self, mode):
        self._loop.call_soon_threadsafe(self.server.set_mode, mode)

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.server.close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
