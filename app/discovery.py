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
import json

from .node import VERSION

# (component, object, name, what it reads, extra JSON). What it reads: a field of
# the readings ("r:") or of the stats ("s:"), or the command a button sends ("c:").
_M = '"state_class": "measurement"'
_DIAG = '"entity_category": "diagnostic"'
_ENTITIES = (
    ("sensor", "temperature", "Temperature", "r:temperature_C",
     '"device_class": "temperature", "unit_of_measurement": "\u00b0C", ' + _M),
    ("sensor", "humidity", "Humidity", "r:humidity", '"device_class": "humidity", "unit_of_measurement": "%", ' + _M),
    ("sensor", "rssi", "Wi-Fi signal", "s:rssi",
     '"device_class": "signal_strength", "unit_of_measurement": "dBm", ' + _M + ", " + _DIAG),
    ("sensor", "uptime", "Uptime", "s:uptime_ms // 1000",
     '"device_class": "duration", "unit_of_measurement": "s", "state_class": "total_increasing", ' + _DIAG),
    ("sensor", "heap_free", "Free heap", "s:heap_free",
     '"device_class": "data_size", "unit_of_measurement": "B", ' + _M + ", " + _DIAG),
    ("sensor", "queued", "Queued readings", "s:queued", _M + ", " + _DIAG),
    ("sensor", "dropped", "Dropped readings", "s:dropped", '"state_class": "total_increasing", ' + _DIAG),
    ("sensor", "sensor_errors", "Sensor errors", "s:sensor_errors", '"state_class": "total_increasing", ' + _DIAG),
    ("button", "restart", "Restart", 'c:{"cmd": "restart"}', '"device_class": "restart", ' + _DIAG),
    ("button", "identify", "Identify", 'c:{"cmd": "identify", "s": 10}', '"device_class": "identify", ' + _DIAG),
)


def topic(prefix, component, device, obj):
    return "%s/%s/%s/%s/config" % (prefix, component, device, obj)


def payload(d, entity):
    """The config message of one entity, as bytes. d: app.Firmware.discovery."""
    prefix, device, chip, readings, status, stats, cmd, url, model = d
    component, obj, name, source, extra = entity
    kind, what = source[0], source[2:]
    if kind == "c":
        if not cmd:
            return None  # commands are off: no buttons
        link = '"command_topic": %s, "payload_press": %s' % (json.dumps(cmd), json.dumps(what))
    else:
        value = "value_json." + what
        if kind == "r" and "{device}" not in readings[1]:  # shared: other nodes' readings rendered "", ignored
            value = "%s if value_json.device == '%s' else ''" % (value, device)
        link = '"state_topic": %s, "value_template": "{{ %s }}"' % (
            json.dumps(readings[0] if kind == "r" else stats), value)
    uid = "fireant_%s_%s" % (chip, obj)
    return (('{"name": "%s", "unique_id": "%s", "object_id": "%s_%s", %s, "availability_topic": %s, %s, '
            '"device": {"identifiers": ["fireant_%s"], "name": "%s", "manufacturer": "fireant", "model": "%s", '
            '"sw_version": "%s"%s}}') % (
        name, uid, device, obj, link, json.dumps(status), extra, chip, device, model, VERSION,
        ', "configuration_url": %s' % json.dumps(url) if url else "")).encode()


async def send(client, d):
    """Publish every entity's config, retained, one at a time; returns how many."""
    n = 0
    for e in _ENTITIES:
        msg = payload(d, e)
        if msg is not None:
            await client.publish(topic(d[0], e[0], d[1], e[1]).encode(), msg, True, 1)
            n += 1
        msg = None
    return n
