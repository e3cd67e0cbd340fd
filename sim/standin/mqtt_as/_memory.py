"""In-memory broker for the MicroPython unix-port tier: speaks no MQTT.

Messages are kept in memory (the last 200) or, when FIREANT_SIM_BROKER_LOG names
a file, appended to it as "topic<TAB>retain<TAB>payload" lines for the test to read.
simboard "broker": false makes the broker unreachable.
"""
import asyncio
import os
from time import ticks_ms

import simboard

messages = []
retained = {}
_log = os.getenv("FIREANT_SIM_BROKER_LOG")


def _deliver(topic, msg, retain):
    if retain:
        retained[topic] = msg
    if _log:  # another process reads them: keeping them too would skew heap figures
        with open(_log, "a") as f:
            f.write("%s\t%d\t%s\n" % (topic, 1 if retain else 0, msg))
        return
    messages.append((topic, msg, retain))
    if len(messages) > 200:
        messages.pop(0)


class Transport:
    def __init__(self, client):
        self._client = client
        self._up = False
        self._will = None

    async def connect(self, addr, cfg, clean):
        await asyncio.sleep(0)
        if not simboard.get("broker"):
            raise OSError(111, "ECONNREFUSED")
        self._will = cfg["will"]
        self._up = True
        self._client.last_rx = ticks_ms()

    def alive(self):
        return self._up and simboard.get("broker")

    def ping(self):
        if not self.alive():
            raise OSError(-1, "broker gone")
        self._client.last_rx = ticks_ms()

    async def publish(self, topic, msg, retain, qos, response_ms, max_repubs):
        await asyncio.sleep(0)
        if not self.alive():
            raise OSError(-1, "broker gone")
        _deliver(topic, msg, retain)
        self._client.last_rx = ticks_ms()

    def close(self, graceful):
        if self._up and not graceful and self._will:
            _deliver(self._will[0], self._will[1], self._will[2])
        self._up = False
