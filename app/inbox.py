"""Inbound MQTT: commands on mqtt.cmd_topic and Home Assistant's birth message.

mqtt_as calls put() (its subs_cb) from inside its message loop with its lock
held, so put() only files the message; run(), our task, acts on it. On every
connection (status.online calls connected()) it subscribes again (clean
session: the broker forgets subscriptions) and sends the discovery messages.
The work is done by modules loaded for the moment and dropped after:
app/commands.py for a command, app/discovery.py for discovery.

A message over _MAX bytes is never held whole: app/client.py has mqtt_as read
it in pieces and drop it (put() gets b"" and the client's dropped_len); it is
answered "too long". The broker's max_packet_size (docs/ha.md) keeps such
messages from reaching the node at all.

A subscription that gets no SUBACK (the connection lost first, or refused) is
tried again only after a wait, not at once on the next connection as mqtt_as's
subscribe() would; all of them then, as a new connection has none: see subscribe().
"""
import asyncio
from time import ticks_diff, ticks_ms

from micropython import const

from .node import backoff_ms, forget, log, sleep_ms

_MAX = 256  # the longest command taken; the rest is answered "too long" (app/client.py's _READ_MAX)
_WAIT_MS = const(30000)  # after a failed subscription: 15-30 s (backoff_ms's jitter), doubling
_WAIT_MAX_MS = const(600000)  # up to 5-10 min


class Inbox:
    def __init__(self, cmd, ha_status):
        self.cmd = cmd  # the command topic as bytes, or None: no commands
        self.ha_status = ha_status  # Home Assistant's status topic as bytes, or None: no discovery
        self.client = None
        self.msg = None  # the command waiting: bytes, or its length when it was too long
        self.retained = False
        self.busy = 0  # commands that came while one was waiting: answered together
        self.connect = False
        self.discover = False
        self.event = asyncio.Event()
        self.fails = 0  # subscriptions in a row that got no SUBACK
        self.wait = 0  # ms from the last of them to the next try
        self.failed = ticks_ms()  # when the last of them failed (read only while fails > 0)
        self.waking = False  # a wake-up is set for the end of the wait
        self.rounds = 0  # passes of run() done: battery mode (app/sleep.py) waits for one

    def connected(self):
        self.connect = True
        self.event.set()

    def put(self, topic, msg, retained):
        """mqtt_as's subs_cb(topic, msg, retained): never awaits, never raises."""
        c = self.client
        big = 0
        if c and c.dropped_len:
            big, c.dropped_len = c.dropped_len, 0
        if topic == self.ha_status:
            # Home Assistant (re)started. A retained "online" comes with every
            # subscription: discovery already goes out on every connect.
            if msg == b"online" and not retained:
                self.discover = True
                self.event.set()
            return
        if topic != self.cmd:
            return
        if big or len(msg) > _MAX:
            msg = big or len(msg)
        if self.msg is not None:
            self.busy += 1
        else:
            self.msg, self.retained = msg, retained
        self.event.set()


async def subscribe(inbox, topic):
    """One try at a QoS 1 subscription on this connection; True at its SUBACK.
    mqtt_as's subscribe() tries again at once on every new connection until one
    takes it: a broker that closes the connection at a SUBSCRIBE (RabbitMQ 3.10
    when the subscription's queue was on a node that died, or the topic may not
    be read: docs/fleet.md) would then take every connection before a reading got
    out, for ever. Here a failure (no SUBACK: refused, or the connection lost) is
    followed by a wait, doubling up to 10 min, during which nothing is subscribed
    and the readings go out; then a wake-up makes run() subscribe everything again.
    False: failed, or still waiting."""
    from mqtt_as import MQTT_base

    c = inbox.client
    if inbox.fails:
        left = inbox.wait - ticks_diff(ticks_ms(), inbox.failed)
        if left > 0:
            if not inbox.waking:
                inbox.waking = True
                asyncio.create_task(_wake(inbox, left))
            return False
    try:
        await MQTT_base.subscribe(c, topic, 1)  # OSError: no SUBACK on this connection
        inbox.fails = 0
        return True
    except OSError:
        inbox.wait = backoff_ms(inbox.fails, _WAIT_MS, _WAIT_MAX_MS)
        inbox.fails += 1
        inbox.failed = ticks_ms()
        log("mqtt", "subscribing to %s failed (%d in a row): next try in %d s, readings go on" % (
            topic.decode(), inbox.fails, inbox.wait // 1000))
        c._reconnect()  # as mqtt_as's own subscribe(): the connection is in doubt
        return False


async def _wake(inbox, ms):
    await sleep_ms(ms)
    inbox.waking = False
    inbox.connected()  # subscribe again (once connected: run() waits for that)


async def run(node, inbox, fw):
    """fw: the app.start.Firmware the commands act on."""
    client = inbox.client
    while True:
        # Work left by a crash (a MemoryError in subscribe or discovery) is done first.
        if not (inbox.connect and client.up() or inbox.discover or inbox.msg is not None):
            await inbox.event.wait()
        inbox.event.clear()
        # Each flag is cleared as its step starts (a request arriving meanwhile sets
        # it again) and set back if the step fails.
        # Subscriptions only on a connection that is made: status.online calls
        # connected() again once it is.
        if inbox.connect and client.up():
            inbox.connect = False
            try:
                if (not inbox.cmd or await subscribe(inbox, inbox.cmd)) and inbox.ha_status \
                        and await subscribe(inbox, inbox.ha_status):
                    inbox.discover = True
            except Exception:
                inbox.connect = True
                raise
        if inbox.discover:
            inbox.discover = False
            from . import discovery

            try:  # a failure (MemoryError) crashes this task, but never keeps the module
                log("ha", "discovery: %d entities announced" % await discovery.send(client, fw.discovery))
            except Exception:
                inbox.discover = True
                raise
            finally:
                del discovery
                forget("discovery")
        msg = inbox.msg
        if msg is not None:  # the slot is free again: one more may wait while this one is handled
            inbox.msg = None
            from . import commands

            try:
                await commands.run(fw, client, msg, inbox.retained)
            finally:
                del commands
                forget("commands")
        if inbox.busy:
            n, inbox.busy = inbox.busy, 0
            log("cmd", "%d commands came while one was handled: ignored" % n)
            await client.publish(fw.cmd_result, b'{"ok": false, "error": "busy: %d commands ignored, '
                                                 b'send one at a time"}' % n, False, 1)
        inbox.rounds += 1
