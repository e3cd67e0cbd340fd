"""Connection status: availability and counters on every broker (re)connect.

mqtt_as calls back on every change of the connection (its callback interface:
no events, no task of ours waiting on them): link(up) marks the node's broker
state, online() publishes, retained, "online" to the status topic and the
counters to the stats topic. online() runs as a task of mqtt_as's for each
connection; a failure in it (a MemoryError inside a publish) is logged, counted
in restarts, and tried again while that connection lasts: no connection goes
unannounced. Then on_connect(), when set (app/inbox.py: subscriptions, discovery).
"""
import gc

from .board import rssi
from .node import log, log_exception, sleep_ms


class Status:
    def __init__(self, node, backlog, topic, stats_topic):
        self._node, self._backlog = node, backlog
        self.topic, self._stats = topic, stats_topic  # as bytes; the will says "offline" to topic
        self.on_connect = None

    async def link(self, up):
        node = self._node
        node.broker_up = up
        if up:
            node.broker_connects += 1
            log("mqtt", "connected; %d readings queued, %d dropped so far" % (len(self._backlog), node.dropped))
        else:
            log("mqtt", "connection lost; readings wait in the queue")

    async def online(self, client):
        node = self._node
        while node.broker_up:
            try:
                await client.publish(self.topic, b"online", True, 1)
                await self.report(client)
                if self.on_connect:
                    self.on_connect()
                return
            except Exception as e:  # MemoryError, say; CancelledError is not an Exception
                node.restarts += 1
                log_exception("status", e)
                await sleep_ms(node.restart_ms)

    async def report(self, client):
        """The counters now, retained, to the stats topic: node.stats() and what Home
        Assistant's diagnostics read besides (discovery.py)."""
        r = rssi()
        s = self._node.stats(', "rssi": %s, "heap_free": %d, "queued": %d' % (
            "null" if r is None else r, gc.mem_free(), len(self._backlog)))
        await client.publish(self._stats, s.encode(), True, 1)
