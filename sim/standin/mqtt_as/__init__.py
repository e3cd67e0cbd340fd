"""Host stand-in for Peter Hinch's mqtt_as, written for fireant from its documented
contract and checked against the pinned release's behaviour (the board runs the
real library, installed by deploy.py). It may not be kinder than the real thing
anywhere the firmware could tell:

- MQTTClient(config) with the upstream config keys and defaults; ValueError
  without a server or with an empty will topic; the event interface (up/down
  Events) when queue_len > 0;
- connect(quick=False): the first call joins Wi-Fi through self._sta_if as
  upstream's wifi_connect() does (the ESP8266 branch where sys.platform says so:
  no join when already connected, connect() with saved credentials; elsewhere
  connect(ssid, pw) unconditionally, up to 60 s), checks the link for 5 s unless
  quick, resolves the server with a blocking getaddrinfo, connects, raises on
  any failure. After it succeeds the client reconnects on its own, for ever,
  calling self._sta_if.disconnect() and wifi_connect() before each attempt;
- isconnected() looks at the station only, as upstream's does;
- a broker that closes the connection makes the message task die with
  AssertionError("Empty response"), as the pinned wait_msg does (upstream
  #172): nothing reconnects until a ping or a publish fails on the dead link;
- keepalive: a broker that has sent nothing for four ping intervals is dead;
- publish(topic, msg, retain=False, qos=0) waits until connected and returns
  once the broker has the message (PUBACK for QoS 1, polled every 100 ms); with
  no PUBACK within response_time it republishes (the subscriber sees the message
  twice) up to max_repubs times, then reconnects and publishes again;
- lengths on the wire are len() of what it is given: a str with a character
  outside ASCII is longer than it says, and the broker sees a truncated packet
  and garbage after it, then drops the connection (a CONNECT is refused);
- disconnect() is a clean goodbye that leaves isconnected() true, as upstream's
  does; close() also switches the station off;
- subscribe(topic, qos=0) waits until connected and returns at the SUBACK; a
  failure (a refused SUBACK, a lost link) reconnects and tries again, at once on
  the next connection; MQTT_base.subscribe(client, topic, qos) is one try on the
  current connection, raising OSError on such a failure. Nothing
  resubscribes after a reconnect (clean session): that is the application's, in
  connect_coro. Each message arrives through subs_cb(topic, msg, retained),
  topic and msg bytes, retained a bool (set for what the broker kept, not for a
  live message that was published retained), called from the message task: an
  exception in subs_cb ends that task as it does upstream's (nothing reconnects
  until a ping or a publish fails).

The wire is a transport: under CPython real MQTT via paho-mqtt (_paho.py), under
the MicroPython unix port an in-memory broker (_memory.py). MQTT_TRANSPORT
chooses explicitly ("paho" or "memory").
"""
import asyncio
import socket
import sys
from binascii import hexlify
from time import ticks_diff, ticks_ms

import network
from machine import unique_id

VERSION = (0, 8, 3)  # the upstream release whose contract this follows
MQTT_TRANSPORT = None
ESP8266 = sys.platform == "esp8266"


async def _nothing(*_):
    await asyncio.sleep(0)


def _pids():
    pid = 0
    while True:
        pid = pid + 1 if pid < 65535 else 1
        yield pid


config = {
    "client_id": hexlify(unique_id()),
    "server": None,
    "port": 0,
    "user": "",
    "password": "",
    "keepalive": 60,
    "ping_interval": 0,
    "ssl": False,
    "ssl_params": {},
    "response_time": 10,
    "clean_init": True,
    "clean": True,
    "max_repubs": 4,
    "will": None,
    "subs_cb": lambda *_: None,
    "wifi_coro": _nothing,
    "connect_coro": _nothing,
    "ssid": None,
    "wifi_pw": None,
    "queue_len": 0,
    "gateway": False,
    "mqttv5": False,
    "mqttv5_con_props": None,
}


class MQTTException(Exception):
    pass


def on_wire(s):
    """(the bytes mqtt_as writes for s, the length it declares for them): it
    sends len(s) as the length and s after it, a str encoded."""
    data = s.encode() if isinstance(s, str) else bytes(s)
    return data, len(s)


def _transport(name):
    if name is None:
        name = "memory" if sys.implementation.name == "micropython" else "paho"
    if name == "memory":
        from . import _memory as t
    else:
        from . import _paho as t
    return t.Transport


def _sleep_ms(ms):
    return asyncio.sleep(ms / 1000)


class MQTT_base:
    """Upstream's base class, as far as the firmware calls it: subscribe() on the
    current connection only, no retry; OSError when no SUBACK comes within
    response_time, the link goes, or the SUBACK refuses (upstream's message task
    raises then and reconnects; the waiting subscribe sees the connection gone)."""

    async def subscribe(self, topic, qos, properties=None):
        granted = self._wire.subscribe(topic, qos)  # raises OSError on a dead link
        t = ticks_ms()
        while granted() is None:
            if ticks_diff(ticks_ms(), t) > self._response_time or not self.isconnected():
                raise OSError(-1)
            await _sleep_ms(100)
        if granted() >= 0x80:
            raise OSError(-1, "SUBACK reason code 0x%x" % granted())

    async def publish(self, topic, msg, retain, qos, properties=None):
        # Upstream's: one try on this connection, republished (DUP) when no PUBACK
        # comes within response_time, up to max_repubs times; then OSError.
        pid = next(self.newpid)
        if qos:
            self.rcv_pids.add(pid)
        async with self.lock:
            await self._publish(topic, msg, retain, qos, 0, pid)
        if qos == 0:
            return
        count = 0
        while True:
            t = ticks_ms()
            while pid in self.rcv_pids:
                if ticks_diff(ticks_ms(), t) > self._response_time or not self.isconnected():
                    break
                await _sleep_ms(100)
            else:
                return
            if count >= self._max_repubs or not self.isconnected():
                raise OSError(-1)
            async with self.lock:
                await self._publish(topic, msg, retain, qos, 1, pid)
            count += 1
            self.REPUB_COUNT += 1

    async def _publish(self, topic, msg, retain, qos, dup, pid, properties=None):
        # One PUBLISH on the wire (a republish is a new message to paho: the
        # subscriber sees it twice, as after upstream's DUP). OSError on a dead link.
        acked = self._wire.publish(topic, msg, retain, qos)
        if qos:
            self._acks[pid] = acked
        await _sleep_ms(0)


class MQTTClient(MQTT_base):
    def __init__(self, config):
        if config["server"] is None:
            raise ValueError("no server specified.")
        if config["keepalive"] >= 65536:
            raise ValueError("invalid keepalive time")
        if config["will"] is not None and not config["will"][0]:
            raise ValueError("Empty topic.")
        self._c = config
        self.server = config["server"]
        self.port = config["port"] or (8883 if config["ssl"] else 1883)
        self._events = config["queue_len"] > 0
        if self._events:
            self.up = asyncio.Event()
            self.down = asyncio.Event()
        keepalive_ms = 1000 * config["keepalive"]
        self._ping_interval = keepalive_ms // 4 if keepalive_ms else 20000
        p = config["ping_interval"] * 1000
        if p and p < self._ping_interval:
            self._ping_interval = p
        self._response_time = config["response_time"] * 1000  # upstream's names: app/publisher.py reads them
        self._max_repubs = config["max_repubs"]
        self._sta_if = network.WLAN(network.STA_IF)
        self._sta_if.active(True)
        self._wire = _transport(MQTT_TRANSPORT)(self)
        self._addr = None
        self._isconnected = False
        self._in_connect = False
        self._has_connected = False
        self._tasks = []
        self.last_rx = ticks_ms()
        self.REPUB_COUNT = 0
        # Upstream's packet-id bookkeeping: publish() and _publish() take ids from
        # newpid; a PUBACK discards its id from rcv_pids (here the message task
        # looks at the transport's acks); connect() forgets them all.
        self.newpid = _pids()
        self.rcv_pids = set()
        self._acks = {}  # pid -> the transport's "acknowledged yet" for its last PUBLISH
        self.lock = asyncio.Lock()

    # -- Wi-Fi, as upstream's wifi_connect()
    async def wifi_connect(self, quick=False):
        s = self._sta_if
        if ESP8266:
            if s.isconnected():  # first attempt, already connected: no check either
                return
            s.active(True)
            s.connect()  # the ESP8266 remembers the network
            for _ in range(60):
                if s.status() != network.STAT_CONNECTING:
                    break
                await asyncio.sleep(1)
            if s.status() == network.STAT_CONNECTING:
                s.disconnect()
                await asyncio.sleep(1)
            if not s.isconnected() and self._c["ssid"] is not None and self._c["wifi_pw"] is not None:
                s.connect(self._c["ssid"], self._c["wifi_pw"])
                while s.status() == network.STAT_CONNECTING:
                    await asyncio.sleep(1)
        else:
            s.active(True)
            s.connect(self._c["ssid"], self._c["wifi_pw"])
            for _ in range(60):
                await asyncio.sleep(1)
                if s.isconnected():
                    break
            else:
                s.disconnect()
                await asyncio.sleep(1)
        if not s.isconnected():
            raise OSError("Wi-Fi connect timed out")
        if not quick:
            for _ in range(5):
                if not s.isconnected():
                    raise OSError("Connection Unstable")
                await asyncio.sleep(1)

    async def connect(self, *, quick=False):
        if not self._has_connected:
            await self.wifi_connect(quick)
            self._addr = socket.getaddrinfo(self.server, self.port)[0][-1]  # blocks, as upstream
        self._in_connect = True
        try:
            await self._wire.connect(self._addr, self._c, self._c["clean"] or not self._has_connected)
        except Exception:
            self._wire.close(False)
            self._in_connect = False
            raise
        self.last_rx = ticks_ms()
        self.rcv_pids.clear()
        self._acks.clear()
        self._isconnected = True
        self._in_connect = False
        if not self._events:
            asyncio.create_task(self._c["wifi_coro"](True))
        if not self._has_connected:
            self._has_connected = True
            asyncio.create_task(self._keep_connected())
        asyncio.create_task(self._handle_msg())
        self._tasks.append(asyncio.create_task(self._keep_alive()))
        if self._events:
            self.up.set()
        else:
            asyncio.create_task(self._c["connect_coro"](self))

    def isconnected(self):
        if self._in_connect:
            return True
        if self._isconnected and not self._sta_if.isconnected():
            self._reconnect()
        return self._isconnected

    def _reconnect(self):
        if self._isconnected:
            self._isconnected = False
            me = asyncio.current_task()
            for t in self._tasks:
                if t is not me:  # MicroPython cannot cancel the running task; it ends by itself
                    t.cancel()
            self._tasks.clear()
            self._wire.close(False)  # as a lost link: the broker sends the will
            if self._events:
                self.down.set()
            else:
                asyncio.create_task(self._c["wifi_coro"](False))

    async def _handle_msg(self):
        # Upstream's message loop: reads until the link fails. A read of b""
        # (the broker closed the connection) is an AssertionError in the pinned
        # release, which this task does not catch: it dies without reconnecting.
        try:
            while self.isconnected():
                if self._wire.closed_by_host():
                    raise AssertionError("Empty response")
                inbound = self._wire.inbound
                while inbound and self.isconnected():
                    self._c["subs_cb"](*inbound.pop(0))  # upstream lets its exceptions through
                for pid in [p for p, acked in self._acks.items() if acked()]:
                    del self._acks[pid]
                    self.rcv_pids.discard(pid)
                await _sleep_ms(5)  # upstream reads one packet, then sleeps 5 ms
        except OSError:
            pass
        self._reconnect()

    async def _keep_alive(self):
        while self.isconnected():
            if ticks_diff(ticks_ms(), self.last_rx) // self._ping_interval >= 4:
                break  # broker silent for four ping intervals: half-open link
            await _sleep_ms(self._ping_interval)
            try:
                self._wire.ping()
            except OSError:
                break
        self._reconnect()

    async def _keep_connected(self):
        while self._has_connected:
            if self.isconnected():
                await asyncio.sleep(1)
                continue
            try:
                self._sta_if.disconnect()
            except OSError:
                pass
            await asyncio.sleep(1)
            try:
                await self.wifi_connect()
            except OSError:
                continue
            if not self._has_connected:
                break
            try:
                await self.connect()
            except OSError:
                self._wire.close(False)
                self._in_connect = False
                self._isconnected = False

    async def _connection(self):
        while not self._isconnected:
            await asyncio.sleep(1)

    async def subscribe(self, topic, qos=0, properties=None):
        if qos not in (0, 1):
            raise ValueError("Only qos 0 and 1 are supported.")
        while True:
            await self._connection()
            try:
                return await MQTT_base.subscribe(self, topic, qos, properties)
            except OSError:
                pass
            self._reconnect()

    async def publish(self, topic, msg, retain=False, qos=0, properties=None):
        if qos not in (0, 1):
            raise ValueError("Only qos 0 and 1 are supported.")
        while True:
            await self._connection()
            try:
                return await MQTT_base.publish(self, topic, msg, retain, qos, properties)
            except OSError:
                pass
            self._reconnect()

    async def broker_up(self):
        if not self.isconnected():
            return False
        t = self.last_rx
        if ticks_diff(ticks_ms(), t) < 1000:
            return True
        try:
            self._wire.ping()
        except OSError:
            return False
        t0 = ticks_ms()
        while ticks_diff(ticks_ms(), t0) < self._response_time:
            await _sleep_ms(100)
            if ticks_diff(self.last_rx, t) > 0:
                return True
        return False

    async def disconnect(self):
        for t in self._tasks:
            t.cancel()
        self._tasks.clear()
        await asyncio.sleep(0)
        self._wire.close(True)
        self._has_connected = False  # upstream leaves _isconnected as it was

    def close(self):
        self._wire.close(False)
        try:
            self._sta_if.disconnect()
        except OSError:
            pass
        self._sta_if.active(False)
