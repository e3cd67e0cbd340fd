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


def topic(template, device):
    """The topic, {device} filled in, as bytes."""
    return template.replace("{device}", device).encode()


def head(device, location):
    """The start every reading's JSON shares, encoded once."""
    return ('{"device": %s, "location": %s, ' % (json.dumps(device), json.dumps(location))).encode()


def payload(head, reading):
    """The reading as JSON bytes, in one allocation; integer arithmetic only (a
    board's floats are single precision: 22.3 would print as 22.29999)."""
    seq, uptime_ms, t10, h10 = reading  # tenths of a degree C and of a percent
    f100 = t10 * 18 + 3200  # hundredths of a degree F
    f10 = (f100 + 5) // 10 if f100 >= 0 else -((5 - f100) // 10)
    t, f = abs(t10), abs(f10)
    return b'%s"seq": %d, "uptime_ms": %d, "temperature_C": %s%d.%d, "temperature_F": %s%d.%d, "humidity": %d.%d}' % (
        head, seq, uptime_ms, b"-" if t10 < 0 else b"", t // 10, t % 10, b"-" if f10 < 0 else b"", f // 10, f % 10,
        h10 // 10, h10 % 10)


async def run(node, client, backlog, cfg, readings):
    """readings: (the readings' topic, the head of their JSON), as bytes."""
    if not node.client_started:  # a restarted publisher must not connect twice
        from . import connect

        await connect.first_connect(node, client, cfg)
        del connect  # the module dropped itself once connected: let it go
    to, start = readings
    while True:
        reading = await backlog.oldest()
        await client.publish(to, payload(start, reading), False, 1)
        backlog.done(reading[0])
        node.published += 1
