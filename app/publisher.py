"""MQTT publisher on mqtt_as: drains the backlog in order, QoS 1, a window of
publishes in flight.

mqtt_as contracts this module is built around:
- the first connect() raises OSError on failure and is ours to retry; after it
  succeeds, mqtt_as reconnects Wi-Fi and broker itself, forever;
- its publish() sends one message and polls for its PUBACK every 100 ms: one
  reading at a time drains ~10 readings/s. Here up to mqtt.window readings are
  on their way at once (app/client.py's send(): the same PUBLISH under the same
  lock, its PUBACK recorded by mqtt_as's own message task), so a backlog drains
  ~window times faster; they go out in order on one connection, and the broker
  forwards them in that order;
- a reading leaves the backlog only after its PUBACK, and only once every older
  one has had its own: a connection lost midway sends the unacknowledged ones
  again (new packet ids: mqtt_as's connect forgets the old), so the subscriber
  may see a reading twice, never miss one. A late PUBACK is waited for, never
  sent for again on the same connection, as mqtt_as's publish() does with DUP:
  TCP delivers on a live connection, and the second PUBACK that brings makes
  mqtt_as drop the connection ("Invalid pid"). A dead link is left to mqtt_as's
  keepalive; a live one that answers pings but not a PUBLISH is given up after
  as long as mqtt_as's publish() would wait (response time, then max_repubs
  more), and the window goes again on a new connection;
- it sends len() of what it is given as the length: a str with a character
  outside ASCII is longer on the wire, so topics and payloads go out as bytes.
"""
from array import array

from micropython import const

from .node import sleep_ms

_POLL_MS = const(10)  # how often PUBACKs are looked for while readings are on their way
_MASK = const(0x3FFFFFFF)
_HALF = const(0x20000000)
_PUBLISHER = const(3)  # node.alive's index (app/node.py): 1 moved, 2 parked


def payload(head, boot, reading, uptime_ms, utc):
    """The reading as JSON bytes, in one allocation; integer arithmetic only (a
    board's floats are single precision: 22.3 would print as 22.29999).
    reading: (seq, stamp, t10, h10); boot: the boot id as bytes; utc: (s, ms)
    when it was taken, or None (no clock yet: "ts": null)."""
    seq, _, t10, h10 = reading  # tenths of a degree C and of a percent
    f100 = t10 * 18 + 3200  # hundredths of a degree F
    f10 = (f100 + 5) // 10 if f100 >= 0 else -((5 - f100) // 10)
    t, f = abs(t10), abs(f10)
    return (b'%s"boot": "%s", "seq": %d, "uptime_ms": %d, "ts": %s, "temperature_C": %s%d.%d, '
            b'"temperature_F": %s%d.%d, "humidity": %d.%d}') % (
        head, boot, seq, uptime_ms, b"null" if utc is None else b"%d.%03d" % utc, b"-" if t10 < 0 else b"",
        t // 10, t % 10, b"-" if f10 < 0 else b"", f // 10, f % 10, h10 // 10, h10 % 10)


def _message(node, head, boot, r):
    """The payload of backlog.reading() r: this boot's readings get uptime past the
    ticks wrap and ts back-filled from the node's clock; a spooled one from an
    earlier boot its own stamp and the clock its batch was written with."""
    rboot, seq, stamp, synced, t10, h10 = r
    reading = seq, stamp, t10, h10
    if rboot is None or rboot == boot:
        up = node.taken(stamp)
        return payload(head, boot, reading, up, node.utc(up))
    utc = None
    if synced is not None:
        d = (stamp - synced[0]) & _MASK  # ms since the clock's answer, within 2^30
        ms = synced[2] + (d - (_MASK + 1) if d >= _HALF else d)
        utc = synced[1] + ms // 1000, ms % 1000
    return payload(head, rboot, reading, stamp, utc)


async def run(node, client, backlog, cfg, readings, window=16):
    """readings: (the readings' topic, the head of their JSON), as bytes."""
    from time import ticks_diff, ticks_ms  # locals: the module's dict stays as small (an ESP8266's heap)

    alive = node.alive
    if not node.client_started:  # a restarted publisher must not connect twice
        from . import connect

        alive[_PUBLISHER] = 2  # connect's own retries: bounded by its backoff
        await connect.first_connect(node, client, cfg)
        del connect  # the module dropped itself once connected: let it go
        from gc import collect

        collect()  # with app/connect.py and app/dns.py: the drain starts in one clean heap (an ESP8266's)
    to, start = readings
    boot = node.boot.encode()
    pids = array("H", bytearray(2 * window))  # in flight: the oldest `sent` available readings
    patience = client._response_time * (client._max_repubs + 1)  # mqtt_as's publish(): its try, its repubs
    since = ticks_ms()  # the oldest of them was sent, or a PUBACK came
    sent = 0
    gen = backlog.gen
    spooled = False  # the window holds spooled readings (else RAM ones)
    # Packet ids of readings a full backlog dropped while they were on their way:
    # counted in node.dropped, and taken back from it if their PUBACK comes.
    orphans = []
    orphaned = backlog.orphaned
    conn = client.conns  # the connection the window and the orphans were sent on
    while True:
        alive[_PUBLISHER] = 1
        if not sent:
            alive[_PUBLISHER] = 2  # on the sampler
            await backlog.wait()
            while node.first_sync:  # bounded by ntp.timeout_s: then the backlog goes out with its time
                await sleep_ms(100)
            alive[_PUBLISHER] = 1
        up = client.up()
        if orphans:
            if not up or client.conns != conn:
                orphans.clear()  # no PUBACK will come for them: lost, as counted
            for i in range(len(orphans) - 1, -1, -1):
                if orphans[i] not in client.rcv_pids:  # acknowledged: mqtt_as's message task discarded it
                    orphans.pop(i)
                    node.dropped -= 1
                    node.published += 1
        if not up or client.conns != conn or gen != backlog.gen:
            if up and client.conns == conn:  # the oldest of them were dropped
                for i in range(min(sent, backlog.orphaned - orphaned)):
                    orphans.append(pids[i])
            orphaned = backlog.orphaned
            sent = 0  # none of them counts any more: sent again from the oldest
            gen = backlog.gen
            backlog.sending = 0
            alive[_PUBLISHER] = 2  # on mqtt_as's reconnect loop (watched: MQTT)
            await client._connection()  # mqtt_as's wait for a connection
            conn = client.conns  # packet ids of another connection mean nothing on this one
            continue
        # Acknowledged, oldest first: they leave the backlog.
        n = 0
        while n < sent and pids[n] not in client.rcv_pids:
            n += 1
        if n:
            since = ticks_ms()
            backlog.done(n)
            node.published += n
            sent -= n
            for i in range(sent):
                pids[i] = pids[i + n]
            if not spooled:
                backlog.sending = sent
        try:
            if sent and ticks_diff(ticks_ms(), since) > patience:
                from .node import log

                log("mqtt", "no PUBACK in %d ms on a live connection: connecting again" % patience)
                raise OSError(-1)
            avail = backlog.available()
            if not sent:
                spooled = backlog.spool is not None and backlog.spool.n > 0
            while sent < window and sent < avail:
                if not sent:
                    since = ticks_ms()
                pids[sent] = await client.send(to, _message(node, start, boot, backlog.reading(sent)))
                sent += 1
                if not spooled:
                    backlog.sending = sent
                if gen != backlog.gen:  # the sampler moved RAM readings to flash meanwhile
                    break
        except OSError:  # the connection went: mqtt_as reconnects, all of them go again
            client._reconnect()  # as mqtt_as's own publish(): the connection is in doubt
        await sleep_ms(_POLL_MS)
