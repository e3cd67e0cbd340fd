"""The Mosquitto ACL docs/ha.md gives (docs/mosquitto/fireant.acl), on a real
Mosquitto: a node, logged in as its device name, writes only its own topics
and reads only its own commands; under it the firmware still has all it needs.
And the broker's max_packet_size keeps an oversized command from any node."""
import asyncio
import json
import time

import paho.mqtt.client as paho
import pytest

from sim.firmware import running, sim_config
from sim.mosquitto import Mosquitto, Subscriber

USERS = {"homeassistant": "ha-pass", "node-a": "a-pass", "node-b": "b-pass"}


@pytest.fixture(scope="module")
def acl_broker():
    with Mosquitto(users=USERS, acl=True, max_packet_size=2048) as b:
        yield b


@pytest.fixture
def admin(acl_broker):
    sub = Subscriber(acl_broker, user="homeassistant", password=USERS["homeassistant"])
    yield sub
    sub.close()


def client(broker, user):
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="%s-test-%x" % (user, id(broker)))
    c.username_pw_set(user, USERS[user])
    got = []
    c.on_message = lambda _c, _u, m: got.append((m.topic, m.payload))
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    c.got = got
    for _ in range(100):
        if c.is_connected():
            break
        time.sleep(0.05)
    return c


def settle(sub, t=1.0):
    time.sleep(t)
    return [(m[1], m[2]) for m in sub.messages if not m[3]]


def test_a_node_writes_only_its_own_topics(acl_broker, admin):
    a = client(acl_broker, "node-a")
    try:
        for topic in ("fireant/node-a/status", "fireant/node-a/cmd/result", "sensors/environmental",
                      "homeassistant/sensor/node-a/temperature/config",
                      "fireant/node-b/status", "fireant/node-b/cmd", "fireant/node-a/cmd", "fireant/node-b/stats",
                      "homeassistant/sensor/node-b/temperature/config", "homeassistant/status", "other/topic"):
            a.publish(topic, b"from a", qos=1).wait_for_publish(5)
        seen = {t for t, p in settle(admin) if p == "from a"}
    finally:
        a.loop_stop()
        a.disconnect()
    assert seen == {"fireant/node-a/status", "fireant/node-a/cmd/result", "sensors/environmental",
                    "homeassistant/sensor/node-a/temperature/config"}


def test_a_node_reads_only_its_own_commands(acl_broker, admin):
    a = client(acl_broker, "node-a")
    try:
        for t in ("fireant/node-a/cmd", "fireant/node-b/cmd", "sensors/environmental", "homeassistant/status"):
            a.subscribe(t, 1)
        time.sleep(0.5)
        admin._c.publish("fireant/node-b/cmd", b'{"cmd": "restart"}', qos=1).wait_for_publish(5)
        admin._c.publish("fireant/node-a/cmd", b'{"cmd": "status"}', qos=1).wait_for_publish(5)
        admin._c.publish("sensors/environmental", b"{}", qos=1).wait_for_publish(5)
        admin._c.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
        time.sleep(1)
        got = sorted(t for t, _ in a.got)
    finally:
        a.loop_stop()
        a.disconnect()
    assert got == ["fireant/node-a/cmd", "homeassistant/status"]


def test_an_oversized_packet_is_refused_by_the_broker(acl_broker, admin):
    """max_packet_size: the sender is disconnected; the node never receives it."""
    b = client(acl_broker, "node-b")
    a = client(acl_broker, "node-a")
    try:
        a.subscribe("fireant/node-a/cmd", 1)
        time.sleep(0.3)
        admin._c.publish("fireant/node-a/cmd", b"x" * 5000, qos=1)
        admin._c.publish("fireant/node-a/cmd", b'{"cmd": "status"}', qos=1)
        time.sleep(1.5)
        assert [len(p) for _, p in a.got] in ([], [17])  # the small one only, if the sender got it out first
        assert all(len(p) < 2048 for _, p in a.got)
    finally:
        for c in (a, b):
            c.loop_stop()
            c.disconnect()


async def test_the_firmware_has_all_it_needs_under_the_acl(acl_broker, admin, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = sim_config(acl_broker, device="node-a", mqtt={"user": "node-a", "password": USERS["node-a"]})
    (tmp_path / "config.json").write_text(json.dumps(raw))
    async with running(raw) as fw:
        for _ in range(400):
            if len([m for m in admin.messages if m[1].endswith("/config") and not m[3]]) >= 10:
                break
            await asyncio.sleep(0.05)
        admin._c.publish("fireant/node-a/cmd", json.dumps({"cmd": "identify", "s": 1}), qos=1)
        for _ in range(200):
            if admin.on("fireant/node-a/cmd/result"):
                break
            await asyncio.sleep(0.05)
        assert fw.node.restarts == 0
    topics = {m[1] for m in admin.messages if not m[3]}
    assert {"fireant/node-a/status", "fireant/node-a/stats", "sensors/environmental",
            "fireant/node-a/cmd/result"} <= topics
    assert len([t for t in topics if t.startswith("homeassistant/")]) == 10
    assert json.loads(admin.on("fireant/node-a/cmd/result")[0][2]) == {"cmd": "identify", "ok": True, "s": 1}
