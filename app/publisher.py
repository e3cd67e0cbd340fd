"""MQTT publisher on mqtt_as: drains the backlog in order, QoS 1.

mqtt_as contracts this module is built around:
- the first connect() raises OSError on failure and is ours to retry; after it
  succeeds, mqtt_as reconnects Wi-Fi and broker itself, forever;
- publish() waits out an outage and returns only once the broker has the message
  (PUBACK for QoS 1), so a reading leaves the backlog only after it returns;
- cancelling a publish mid-flight can corrupt the session, so nothing here is
  ever cancelled while publishing except at shutdown;
- it sends len() of what it is given as the length: a str with a character
  outside ASCII is longer on the wire, so topics and payloads go out as bytes.
"""
import json

from .node import sleep_ms


def topic(template, device):
    """The topic, {device} filled in, as bytes."""
    return template.replace("{device}", device).encode()


def head(device, location, boot):
    """The start every reading's JSON shares, encoded once."""
    return ('{"device": %s, "location": %s, "boot": "%s", ' % (json.dumps(device), json.dumps(location), boot)).encode()


def payload(head, reading, uptime_ms, utc):
    """The reading as JSON bytes, in one allocation; integer arithmetic only (a
    board's floats are single precision: 22.3 would print as 22.29999).
    utc: (s, ms) when it was taken, or None (no clock yet: "ts": null)."""
    seq, _, t10, h10 = reading  # tenths of a degree C and of a percent
    f100 = t10 * 18 + 3200  # hundredths of a degree F
    f10 = (f100 + 5) // 10 if f100 >= 0 else -((5 - f100) // 10)
    t, f = abs(t10), abs(f10)
    return (b'%s"seq": %d, "uptime_ms": %d, "ts": %s, "temperature_C": %s%d.%d, "temperature_F": %s%d.%d, '
            b'"humidity": %d.%d}') % (
        head, seq, uptime_ms, b"null" if utc is None else b"%d.%03d" % utc, b"-" if t10 < 0 else b"", t // 10,
        t % 10, b"-" if f10 < 0 else b"", f // 10, f % 10, h10 // 10, h10 % 10)


async def run(node, client, backlog, cfg, readings):
    """readings: (the readings' topic, the head of their JSON), as bytes."""
    if not node.client_started:  # a restarted publisher must not connect twice
        from . import connect

        await connect.first_connect(node, client, cfg)
        del connect  # the module dropped itself once connected: let it go
    to, start = readings
    while True:
        reading = await backlog.oldest()
        while node.first_sync:  # bounded by ntp.timeout_s: then the backlog goes out with its time
            await sleep_ms(100)
        taken = node.taken(reading[1])  # uptime_ms and ts worked out now: past a wrap, back-filled
        await client.publish(to, payload(start, reading, taken, node.utc(taken)), False, 1)
        backlog.done(reading[0])
        node.published += 1
