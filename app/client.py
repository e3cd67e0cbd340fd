"""Builds the mqtt_as client from our settings. Needed only at start-up: run()
Firmware drops this module afterwards so its RAM goes to the tasks."""
from random import getrandbits

from .node import sleep_ms
from .wifi import Link

_READ_MAX = 256  # the longest read mqtt_as is let make at once: a command's most (app/inbox.py)


def make(cfg, device, station, status, subs_cb=None, alive=None):
    """The mqtt_as client for our settings, on station (board.station()), calling
    status (app.status.Status) back on every change of the connection, and
    subs_cb(topic, msg, retained) with each message of a subscription; alive:
    node.alive, where the reconnect loop's progress is marked (app/wifi.py's Link)."""
    from mqtt_as import MQTTClient, config as defaults

    class Client(MQTTClient):
        dropped_len = 0  # the length of the last message too long to read (app/inbox.py)

        async def _as_read(self, n, sock=None):
            # mqtt_as reads a message whole, into a buffer that keeps its largest
            # size: one larger than the free heap would end its message task with a
            # MemoryError. Longer reads are taken in pieces and dropped; subs_cb
            # then gets an empty message and dropped_len says how long it was.
            if n <= _READ_MAX:
                return await MQTTClient._as_read(self, n, sock)
            left = n
            while left > 0:
                await MQTTClient._as_read(self, min(left, _READ_MAX), sock)
                left -= _READ_MAX
            self.dropped_len = n
            return memoryview(b"")

        # The publisher's window (app/publisher.py): mqtt_as's own PUBLISH, packet
        # ids and PUBACK bookkeeping (its message task discards an acknowledged id
        # from rcv_pids), without waiting for each PUBACK before the next.
        conns = 0  # connections made: packet ids from before the latest mean nothing

        def up(self):
            # Not isconnected(): that is True all through a connect(), whose CONNECT,
            # TLS handshake and clearing of rcv_pids a PUBLISH must not cut into.
            return self._isconnected and not self._in_connect

        async def send(self, topic, msg):
            """One QoS 1 PUBLISH on this connection; returns its packet id.
            OSError: the connection is gone or being made."""
            if not self.up():
                raise OSError(-1)
            pid = next(self.newpid)
            self.rcv_pids.add(pid)
            async with self.lock:
                await self._publish(topic, msg, False, 1, 0, pid)
            return pid

        async def connect(self, *, quick=False):
            if self._has_connected:
                # mqtt_as's reconnect loop has fixed delays (1 s, 1 s link poll, 5 s
                # Wi-Fi check): every node that lost a router or a broker node
                # together would come back in the same second (docs/fleet.md).
                await sleep_ms(getrandbits(8) * (self.spread_ms >> 8))  # small ints on a board
            # mqtt_as's own reconnect loop retries on OSError only: any other
            # failure there (ssl's ValueError for a certificate, a MemoryError)
            # would end it for good, and the node would never reach the broker again.
            try:
                await MQTTClient.connect(self, quick=quick)
                self.conns += 1
            except OSError:
                raise
            except Exception as e:
                if not self._has_connected:  # the first connect's: app/connect.py reads them
                    raise
                raise OSError(-1, "%s: %s" % (type(e).__name__, e))

    m = cfg["mqtt"]
    c = dict(defaults)
    c["client_id"] = device.encode()
    c["server"] = m["server"]
    c["port"] = m["port"]
    c["user"] = m["user"].encode()  # bytes, as everything mqtt_as measures with len()
    c["password"] = m["password"].encode()
    c["keepalive"] = m["keepalive_s"]
    c["ping_interval"] = m["ping_interval_s"]
    c["response_time"] = m["response_time_s"]
    c["will"] = (status.topic, b"offline", True, 1)
    c["ssid"] = cfg["wifi"]["ssid"]
    c["wifi_pw"] = cfg["wifi"]["password"]
    c["wifi_coro"] = status.link  # the callback interface: no events, no task waiting on them
    c["connect_coro"] = status.online
    if subs_cb:
        c["subs_cb"] = subs_cb
    c["ssl"] = m["tls"]
    if m["tls"]:
        # do_handshake=False: the handshake then runs inside mqtt_as's non-blocking
        # reads and writes instead of blocking the loop in wrap_socket().
        # Verified only with mqtt.ca: app/connect.py loads it (certificate by certificate).
        params = {"server_hostname": m["server"], "do_handshake": False}
        if m["ca"]:
            import ssl

            params["cert_reqs"] = ssl.CERT_REQUIRED
        c["ssl_params"] = params
    client = Client(c)
    client.spread_ms = int(m["reconnect_spread_s"] * 1000)  # each reconnect waits a random part of it
    client.tls = c["ssl_params"]  # the dict mqtt_as wraps each connection with
    # mqtt_as reaches the radio only through _sta_if (pinned commit): it gets a
    # view that can look but not join or leave, so the Wi-Fi task stays its one owner.
    client._sta_if = Link(station, bytearray(7) if alive is None else alive)
    return client

