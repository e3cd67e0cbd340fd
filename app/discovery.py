"""Home Assistant MQTT discovery, sent on every connection and whenever Home
Assistant says it is back; app/inbox.py loads this module for that and drops it.

One retained config message per entity, built and published one at a time
(each ~0.6 KB: never all in RAM at once), under <ha.prefix>/<component>/<device>/
<object>/config. Entities read the JSON the node publishes anyway: temperature
and humidity its readings (filtered by "device" where the readings' topic is
shared), the diagnostics its stats message; restart and identify are buttons
that publish commands. Full key names, no abbreviations: HA's own schema checks
them as sent (tests/test_ha.py).
"""
from .node import VERSION

# (component, object, name, reads, field or command, extra JSON), all bytes. reads:
# b"r" a field of the readings, b"s" of the stats, b"c" a button's command.
# Written out whole: literals stay in flash (ROMFS, frozen), joined ones would not.
_ENTITIES = (
    (b"sensor", b"temperature", b"Temperature", b"r", b"temperature_C",
     b'"device_class": "temperature", "unit_of_measurement": "\xc2\xb0C", "state_class": "measurement"'),
    (b"sensor", b"humidity", b"Humidity", b"r", b"humidity",
     b'"device_class": "humidity", "unit_of_measurement": "%", "state_class": "measurement"'),
    (b"sensor", b"rssi", b"Wi-Fi signal", b"s", b"rssi", b'"device_class": "signal_strength", '
     b'"unit_of_measurement": "dBm", "state_class": "measurement", "entity_category": "diagnostic"'),
    (b"sensor", b"uptime", b"Uptime", b"s", b"uptime_ms // 1000", b'"device_class": "duration", '
     b'"unit_of_measurement": "s", "state_class": "total_increasing", "entity_category": "diagnostic"'),
    (b"sensor", b"heap_free", b"Free heap", b"s", b"heap_free", b'"device_class": "data_size", '
     b'"unit_of_measurement": "B", "state_class": "measurement", "entity_category": "diagnostic"'),
    (b"sensor", b"queued", b"Queued readings", b"s", b"queued",
     b'"state_class": "measurement", "entity_category": "diagnostic"'),
    (b"sensor", b"dropped", b"Dropped readings", b"s", b"dropped",
     b'"state_class": "total_increasing", "entity_category": "diagnostic"'),
    (b"sensor", b"sensor_errors", b"Sensor errors", b"s", b"sensor_errors",
     b'"state_class": "total_increasing", "entity_category": "diagnostic"'),
    (b"button", b"restart", b"Restart", b"c", b'{\\"cmd\\": \\"restart\\"}',
     b'"device_class": "restart", "entity_category": "diagnostic"'),
    (b"button", b"identify", b"Identify", b"c", b'{\\"cmd\\": \\"identify\\", \\"s\\": 10}',
     b'"device_class": "identify", "entity_category": "diagnostic"'),
)


def topic(d, entity):
    return b"%s/%s/%s/%s/config" % (d[0], entity[0], d[1], entity[1])


def payload(d, entity):
    """The config message of one entity, as bytes (None: not offered). d:
    app.start.Firmware.discovery, bytes without " or \\ (config.py sees to it)."""
    prefix, device, chip, readings, shared, status, stats, cmd, url, model = d
    component, obj, name, reads, what, extra = entity
    if reads == b"c":
        if not cmd:
            return None  # commands are off: no buttons
        link = b'"command_topic": "%s", "payload_press": "%s"' % (cmd, what)
    else:
        # A shared readings topic: other nodes' readings render "", which Home Assistant ignores.
        link = b'"state_topic": "%s", "value_template": "{{ value_json.%s%s }}"' % (
            readings if reads == b"r" else stats, what,
            b" if value_json.device == '%s' else ''" % device if reads == b"r" and shared else b"")
    return (b'{"name": "%s", "unique_id": "fireant_%s_%s", "object_id": "%s_%s", %s, "availability_topic": "%s", '
            b'%s, "device": {"identifiers": ["fireant_%s"], "name": "%s", "manufacturer": "fireant", "model": "%s", '
            b'"sw_version": "%s"%s}}') % (name, chip, obj, device, obj, link, status, extra, chip, device, model,
                                           VERSION, b', "configuration_url": "%s"' % url if url else b"")


async def send(client, d):
    """Publish every entity's config, retained, one at a time; returns how many."""
    n = 0
    for e in _ENTITIES:
        msg = payload(d, e)
        if msg is not None:
            await client.publish(topic(d, e), msg, True, 1)
            n += 1
        msg = None
    return n
