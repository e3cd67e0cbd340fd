"""What the node sends Home Assistant, checked by Home Assistant's own code.

The discovery messages are captured from Mosquitto as the node sent them (the
CPython tier, and the unix port running the real mqtt_as), then handed to Home
Assistant's MQTT discovery in its own venv (sim/hacheck.py): its topic matcher,
JSON reader, abbreviation tables and each component's DISCOVERY_SCHEMA; each
value_template is rendered by its template engine against the readings and
stats the same node published. Skipped, saying the command that fills the
cache, where Home Assistant is not installed.
"""
import asyncio
import json
import time

import pytest

from sim import hacheck, paths, unixport
from sim.firmware import running, sim_config
from sim.mosquitto import Subscriber

PREFIX = "homeassistant"
ENTITIES = 10  # 8 sensors, 2 buttons


@pytest.fixture(autouse=True)
def needs_ha(request):
    why = hacheck.unavailable()
    if why:
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print("\nHome Assistant check skipped: %s" % why, flush=True)
        pytest.skip(why)


def captured(messages):
    """(discovery messages, {topic: payloads}) from (topic, payload, retained) triples:
    the newest config per topic, and every reading and stats message to render."""
    configs, samples = {}, {}
    for topic, payload, _ in messages:
        if topic.startswith(PREFIX + "/") and topic.endswith("/config"):
            configs[topic] = payload
        else:
            samples.setdefault(topic, []).append(payload)
    return configs, samples


def check_all(configs, samples, device="sim-node"):
    results = hacheck.check(PREFIX, sorted(configs.items()), samples)
    assert [(r["topic"], r["error"]) for r in results] == [(t, None) for t in sorted(configs)]
    by_object = {r["topic"].split("/")[3]: r for r in results}
    assert len(by_object) == ENTITIES
    readings = [json.loads(p) for p in samples["sensors/environmental"]]
    stats = json.loads(samples["fireant/%s/stats" % device][-1])
    for obj, field in (("temperature", "temperature_C"), ("humidity", "humidity")):
        r = by_object[obj]
        mine = ["" if x["device"] != device else str(x[field]) for x in readings]
        assert r["rendered"] == mine  # other nodes' readings on the shared topic render "": ignored
        assert r["config"]["state_class"] == "measurement"
    assert by_object["temperature"]["config"]["unit_of_measurement"] == "\u00b0C"
    assert by_object["rssi"]["rendered"][-1] == str(stats["rssi"])
    assert by_object["uptime"]["rendered"][-1] == str(stats["uptime_ms"] // 1000)
    for obj in ("rssi", "uptime", "heap_free", "queued", "dropped", "sensor_errors", "restart", "identify"):
        assert by_object[obj]["config"]["entity_category"] == "diagnostic", obj
    for obj in ("queued", "dropped", "sensor_errors", "heap_free"):
        assert by_object[obj]["rendered"][-1] == str(stats[obj])
    assert by_object["restart"]["config"]["payload_press"] == '{"cmd": "restart"}'
    ids = {r["config"]["unique_id"] for r in results}
    assert len(ids) == ENTITIES and all(i.startswith("fireant_fa17a4700001_") for i in ids)  # the chip id
    return by_object


def test_the_check_refuses_what_home_assistant_refuses():
    bad = {"homeassistant/sensor/n/t/config": '{"state_topic": "a", "device_class": "temprature"}',
           "homeassistant/sensor/n/h/config": '{"state_topic": "a", "entity_category": "diag"}',
           "homeassistant/sensor/n/x/config": "{not json",
           "homeassistant/sensr/n/y/config": "{}",
           "homeassistant/sensor/n/ok/config": '{"state_topic": "a", "dev_cla": "temperature", "unit_of_meas": "K"}'}
    errors = {r["topic"].split("/")[3]: r["error"] for r in hacheck.check(PREFIX, sorted(bad.items()))}
    assert all(errors[k] for k in ("t", "h", "x", "y")), errors
    assert errors["ok"] is None  # abbreviations expanded as Home Assistant does


async def test_discovery_sent_by_the_node_passes_home_assistants_schema(broker, observer):
    other = json.dumps({"device": "other-node", "location": "x", "seq": 1, "uptime_ms": 1, "temperature_C": 99.0,
                        "temperature_F": 210.2, "humidity": 1.0})
    async with running(sim_config(broker, ha={"url": "http://192.168.1.50/"})) as fw:
        for _ in range(400):
            if len([m for m in observer.messages if m[1].endswith("/config") and not m[3]]) >= ENTITIES:
                break
            await asyncio.sleep(0.05)
        import paho.mqtt.publish as pub
        from sim.mosquitto import PASSWORD, USER

        pub.single("sensors/environmental", other, hostname="127.0.0.1", port=broker.port,
                   auth={"username": USER, "password": PASSWORD})
        await asyncio.sleep(1)
        assert fw.node.restarts == 0
    live = [(t, p, r) for _, t, p, r in observer.messages if not r]
    configs, samples = captured(live)
    by_object = check_all(configs, samples)
    assert json.loads(configs["homeassistant/sensor/sim-node/temperature/config"])["device"] == {
        "identifiers": ["fireant_fa17a4700001"], "name": "sim-node", "manufacturer": "fireant",
        "model": "DHT22 on " + __import__("sys").platform.upper(), "sw_version": "0.11.0",
        "configuration_url": "http://192.168.1.50/"}
    assert by_object["temperature"]["rendered"].count("") == 1  # the other node's reading


def test_discovery_sent_by_the_real_mqtt_as_on_the_unix_port_passes_too(broker):
    if not paths.lib_dir():
        pytest.skip("the real mqtt_as is neither in lib/ nor in the cache (./fireant upstream --from DIR)")
    raw = sim_config(broker, sensor={"interval_s": 0.5}, location="K\u00fcche")
    r = unixport.run(raw, heapsize=unixport.DISCOVERY_HEAP, build="mpy", libs="real", broker=broker,
                     seconds=4, until=lambda r: len([m for m in r.messages if m[0].endswith("/config") and not m[1]])
                     >= ENTITIES, max_seconds=30)
    assert r.returncode == 0 and r.stopped(), r.output()[-2000:]
    configs, samples = captured([(t, p, ret) for t, ret, p in r.messages if not ret])
    check_all(configs, samples)
