"""Connection status and telemetry: availability and the counters on every broker
(re)connect, every telemetry.interval_s, and on demand (report()).

mqtt_as calls back on every change of the connection (its callback interface:
no events, no task of ours waiting on them): link(up) marks the node's broker
state, online() publishes, retained, "online" to the status topic and the
telemetry to the stats topic. online() runs as a task of mqtt_as's for each
connection; a failure in it (a MemoryError inside a publish) is logged, counted
in restarts, and tried again while that connection lasts: no connection goes
unannounced. run() republishes the telemetry every interval, and as soon as the
backlog has drained when readings were dropped since the last report: every
count a subscriber sees is the node's, not the one of the last connect.
"""
from time import ticks_diff, ticks_ms

from micropython import const
from mqtt_as import MQTT_base

from . import board
from .node import STATE_NAMES, VERSION, log, log_exception, sleep_ms

_POLL_MS = const(1000)
_STATUS = const(4)  # node.alive's index (app/node.py): 1 moved, 2 parked


class Status:
    # Class attributes, set on the instance only where they change (app/watchdog.py):
    # each instance attribute costs an ESP8266's heap for good.
    reset = b"null"  # why this boot happened, as JSON: app/watchdog.py knows it
    presence = b"online"  # what the status topic says while connected (app/watchdog.py: safe_mode)
    on_connect = None  # called once a connection is announced (app/inbox.py: subscribe, discovery)

    def __init__(self, node, backlog, topic, stats_topic):
        self._node, self._backlog = node, backlog
        self.topic, self._stats = topic, stats_topic  # as bytes; the will says "offline" to topic
        self._told = 0  # node.dropped in the last report
        self._at = ticks_ms()  # when the last report went out

    async def link(self, up):
        node = self._node
        node.broker_up = up
        if up:
            node.broker_connects += 1
            log("mqtt", "connected; %d readings queued, %d dropped so far" % (len(self._backlog), node.dropped))
        else:
            log("mqtt", "connection lost; readings wait in the queue")

    def telemetry(self):
        """The telemetry as JSON bytes, formatted as bytes: no second copy to encode
        (the device name is ASCII: config.py sees to it)."""
        n, sta = self._node, board.station()
        t, rssi = n.utc(n.uptime()), board.rssi()
        return (b'{"device": "%s", "boot": "%s", "version": "%s", "uptime_ms": %d, "ts": %s, "heap_free": %d, '
                b'"heap_min_free": %d, "rssi": %s, "ip": "%s", "seq": %d, "queued": %d, "published": %d, '
                b'"dropped": %d, "sensor_errors": %d, "filtered": %d, "wifi_drops": %d, "broker_connects": %d, '
                b'"restarts": %d, "state": "%s", "reset": %s}') % (
            n.device.encode(), n.boot.encode(), VERSION, n.uptime(), b"null" if t is None else b"%d.%03d" % t,
            n.free(), n.min_free, b"null" if rssi is None else b"%d" % rssi, sta.ifconfig()[0].encode(), n.seq,
            len(self._backlog), n.published, n.dropped, n.sensor_errors, n.filtered, n.wifi_drops,
            n.broker_connects, n.restarts, STATE_NAMES[n.state()], self.reset)

    async def report(self, client):
        """Publish the telemetry now, retained, QoS 1; waits out an outage, and is
        made again with the counts of then on the next connection (the bytes of
        before, sent late, would overwrite a newer report). Raises MemoryError."""
        while True:
            await client._connection()  # mqtt_as's wait for a connection
            self._told, self._at = self._node.dropped, ticks_ms()
            try:
                # One try on this connection: mqtt_as's publish() would resend these bytes on the next.
                return await MQTT_base.publish(client, self._stats, self.telemetry(), True, 1)
            except OSError:  # no PUBACK on this connection: mqtt_as makes the next
                client._reconnect()

    async def online(self, client):
        node = self._node
        while node.broker_up:
            try:
                await client.publish(self.topic, self.presence, True, 1)
                await self.report(client)
                if self.on_connect:
                    self.on_connect()
                return
            except Exception as e:  # MemoryError, say; CancelledError is not an Exception
                node.restarts += 1
                log_exception("status", e)
                await sleep_ms(node.restart_ms)

    async def run(self, client, every_ms):
        """The telemetry every every_ms (0: on connect and on demand only), and once
        the backlog has drained after readings were dropped. Also keeps uptime's wrap
        count and the least free heap current."""
        node = self._node
        while True:
            node.alive[_STATUS] = 1
            await sleep_ms(_POLL_MS)
            node.uptime()
            node.free()
            if node.broker_up and ((every_ms and ticks_diff(ticks_ms(), self._at) >= every_ms) or (
                    node.dropped != self._told and len(self._backlog) <= 1)):
                node.alive[_STATUS] = 2  # an outage's wait: on mqtt_as's reconnect loop
                await self.report(client)
