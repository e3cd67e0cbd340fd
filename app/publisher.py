"""MQTT publisher on mqtt_as: drains the backlog in order, QoS 1.

mqtt_as contracts this module is built around:
- the first connect() raises OSError on failure and is ours to retry; after it
  succeeds, mqtt_as reconnects Wi-Fi and broker itself, forever;
- publish() waits out an outage and returns only once the broker has the message
  (PUBACK for QoS 1), so a reading leaves the backlog only after it returns;
- cancelling a publish mid-flight can corrupt the session, so nothing here is
  ever cancelled while publishing except at shutdown.
"""
import asyncio
import json

from .node import log

# CONNACK return codes (MQTT 3.1.1, 3.2.2.3): what a refusal means to a person.
_REFUSALS = {1: "protocol version refused", 2: "client id rejected", 3: "broker unavailable",
             4: "bad user name or password", 5: "not authorised"}


def topic(template, device):
    return template.replace("{device}", device)


def payload(device, location, reading):
    seq, uptime_ms, t10, h10 = reading  # tenths of a degree C and of a percent
    return json.dumps({
        "device": device,
        "location": location,
        "seq": seq,
        "uptime_ms": uptime_ms,
        "temperature_C": t10 / 10,
        "temperature_F": round(t10 * 0.18 + 32, 1),
        "humidity": h10 / 10,
    })


def _reason(e):
    text = str(e)
    for code, meaning in _REFUSALS.items():
        if text.endswith("0x%x" % code):
            return "%s (%s)" % (meaning, text)
    return text


async def _follow(node, client, backlog, status, stats):
    while True:
        await client.up.wait()
        client.up.clear()
        node.broker_up = True
        node.broker_connects += 1
        log("mqtt", "connected; %d readings queued, %d dropped so far" % (len(backlog), node.dropped))
        await client.publish(status, "online", True, 1)
        await client.publish(stats, json.dumps(node.stats()), True, 1)
        await client.down.wait()
        client.down.clear()
        node.broker_up = False
        log("mqtt", "connection lost; readings wait in the queue")


async def run(node, client, backlog, cfg):
    m = cfg["mqtt"]
    if not node.mqtt_owns_radio:  # a restarted publisher must not connect twice
        from . import dns

        await dns.first_connect(node, client, cfg)
        del dns  # the module dropped itself once connected: let it go
    follow = asyncio.create_task(_follow(
        node, client, backlog, topic(m["status_topic"], node.device), topic(m["stats_topic"], node.device)))
    try:
        while True:
            reading = await backlog.oldest()
            await client.publish(m["topic"], payload(node.device, cfg["location"], reading), False, 1)
            backlog.done(reading[0])
            node.published += 1
    finally:
        follow.cancel()
