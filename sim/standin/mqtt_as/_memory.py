"""In-memory broker for the MicroPython unix-port tier: speaks no MQTT.

Messages are kept in memory (the last 200) or, when FIREANT_SIM_BROKER_LOG names
a file, appended to it as b"topic<TAB>retain<TAB>payload" lines for the test to
read. simboard "broker": false stops the broker: connections are closed by it
and new ones refused. simboard "mqtt_password", when set, is the only password
it accepts (a CONNECT with another is refused with code 5, as Mosquitto does).
"""
import asyncio
import os
from time import ticks_ms

import simboard

from . import on_wire

messages = []
retained = {}
_log = os.getenv("FIREANT_SIM_BROKER_LOG")


def _text(b):
    return b.decode() if isinstance(b, (bytes, bytearray)) else b


def _deliver(topic, msg, retain):
    if _log:  # another process reads them: keeping them too would skew heap figures
        with open(_log, "ab") as f:
            f.write(b"%s\t%d\t%s\n" % (topic, 1 if retain else 0, msg))
        return
    if retain:
        retained[_text(topic)] = _text(msg)
    messages.append((_text(topic), _text(msg), retain))
    if len(messages) > 200:
        messages.pop(0)


def _ok(*fields):
    return all(f is None or len(on_wire(f)[0]) == on_wire(f)[1] for f in fields)


class Transport:
    def __init__(self, client):
        self._client = client
        self._up = False
        self._closed = False  # by the broker
        self._will = None
        self.inbound = []  # nothing arrives: no one else publishes to this broker

    async def connect(self, addr, cfg, clean):
        await asyncio.sleep(0)
        if not simboard.get("broker"):
            raise OSError(111, "ECONNREFUSED")
        will = cfg["will"] or (None, None)
        if not _ok(cfg["client_id"], cfg["user"], cfg["password"], will[0], will[1]):
            raise OSError(-1, "Connection closed by host")  # a malformed CONNECT is dropped
        wanted = simboard.get("mqtt_password")
        if wanted is not None and on_wire(cfg["password"])[0] != wanted.encode():
            raise OSError(-1, "CONNACK reason code 0x5")
        self._will = cfg["will"]
        self._up, self._closed = True, False
        self._client.last_rx = ticks_ms()

    def closed_by_host(self):
        if self._up and not simboard.get("broker"):
            self._drop()
        return self._closed

    def _drop(self):
        # The broker ends the connection as after a lost client: it sends the will.
        self.close(False)
        self._closed = True

    def _check(self):
        if not self._up or not simboard.get("broker"):
            raise OSError(-1, "Connection closed by host")

    def ping(self):
        self._check()
        self._client.last_rx = ticks_ms()

    def subscribe(self, topic, qos):
        """Returns a callable: the SUBACK's granted QoS, None before it."""
        self._check()
        return lambda: qos

    def publish(self, topic, msg, retain, qos):
        """Returns a callable: has the broker acknowledged it yet."""
        self._check()
        (t, t_len), (m, m_len) = on_wire(topic), on_wire(msg)
        if len(t) != t_len:
            self._drop()  # a topic cut mid-character: the broker drops the connection
            return lambda: False
        if len(m) != m_len:
            _deliver(t, m[:m_len], retain)  # what the broker parsed; the rest is garbage to it
            self._drop()
            return lambda: False
        _deliver(t, m, retain)
        self._client.last_rx = ticks_ms()
        return lambda: True

    def close(self, graceful):
        if self._up and not graceful and self._will:
            _deliver(on_wire(self._will[0])[0], on_wire(self._will[1])[0], self._will[2])
        self._up = False
