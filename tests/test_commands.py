"""Commands and Home Assistant discovery, the whole firmware on the sim board
against the real Mosquitto (CPython tier), judged from a client's side: what a
subscriber sees on <cmd>/result and under homeassistant/, the node's counters,
the LED's levels, the sim board's resets, the overrides file on "flash" (cwd)."""
import asyncio
import json
import time

import machine
import paho.mqtt.publish as mqtt_publish
import pytest

from sim import firmware
from sim.firmware import running, sim_config
from sim.mosquitto import PASSWORD, USER

CMD = "fireant/sim-node/cmd"
RESULT = CMD + "/result"
LED = 2  # active low in sim_config


def until(predicate, timeout=20.0, step=0.05):
    return firmware.until(predicate, timeout, step)


def send(broker, payload, topic=CMD, retain=False):
    mqtt_publish.single(topic, payload, qos=1, retain=retain, hostname="127.0.0.1", port=broker.port,
                        auth={"username": USER, "password": PASSWORD})


def results(observer):
    return [json.loads(p) for _, _, p, _ in observer.on(RESULT)]


@pytest.fixture
def flash(tmp_path, monkeypatch, broker):
    """The board's filesystem: cwd with config.json, as the commands validate against it."""
    monkeypatch.chdir(tmp_path)

    def write(raw):
        (tmp_path / "config.json").write_text(json.dumps(raw))
        return raw
    return write


async def command(broker, observer, payload, **kw):
    """Send one command and return its answer."""
    n = len(results(observer))
    send(broker, payload if isinstance(payload, (bytes, str)) else json.dumps(payload), **kw)
    await until(lambda: len(results(observer)) > n)
    return results(observer)[n]


async def connected(fw, observer):
    await until(lambda: fw.node.broker_up and len(observer.readings()) >= 2)
    await until(lambda: len(discovery(observer)) >= 10)  # subscribed by then: discovery follows the subscriptions


def discovery(observer):
    """The discovery messages sent while the observer listened (not the retained
    copies of earlier tests' that the broker hands it on subscribing)."""
    return [m for m in observer.messages if m[1].startswith("homeassistant/") and m[1].endswith("/config")
            and not m[3]]


async def test_interval_command_changes_the_cadence_at_once_and_survives_a_reboot(broker, observer, flash):
    from app.start import settings

    raw = flash(sim_config(broker))
    async with running(raw) as fw:
        await connected(fw, observer)
        r = await command(broker, observer, {"cmd": "interval", "interval_s": 0.6, "id": 7})
        assert r == {"cmd": "interval", "id": 7, "ok": True, "interval_s": 0.6}
        seq = fw.node.seq
        await until(lambda: fw.node.seq >= seq + 5)
        n = len(observer.readings())
        await until(lambda: len(observer.readings()) >= n + 4)
    ticks = [x["uptime_ms"] for x in observer.readings()[n:]]
    steps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert all(550 <= s <= 700 for s in steps), steps  # was 200 ms; the sampler never restarted
    assert fw.node.restarts == 0
    with open("overrides.json") as f:
        assert json.load(f) == {"sensor": {"interval_s": 0.6}}
    assert settings("config.json", "secrets.json")["sensor"]["interval_s"] == 0.6  # what the next boot reads


async def test_a_bad_interval_is_refused_by_the_config_validator_and_nothing_is_kept(broker, observer, flash):
    raw = flash(sim_config(broker))
    async with running(raw) as fw:
        await connected(fw, observer)
        r = await command(broker, observer, {"cmd": "interval", "interval_s": 0.0001})
        assert r["ok"] is False and r["error"].startswith("config: sensor.interval_s: must be between 0.001")
        r = await command(broker, observer, {"cmd": "interval", "interval_s": "fast"})
        assert r == {"cmd": "interval", "ok": False, "error": 'interval_s: a number from 0 to 86400, got "fast"'}
        assert fw.node.interval_ms == 200
    import os

    assert not os.path.exists("overrides.json")


async def test_factory_reset_forgets_what_commands_changed(broker, observer, flash):
    raw = flash(sim_config(broker))
    async with running(raw) as fw:
        await connected(fw, observer)
        await command(broker, observer, {"cmd": "interval", "interval_s": 1})
        assert fw.node.interval_ms == 1000
        r = await command(broker, observer, {"cmd": "factory_reset"})
        assert r == {"cmd": "factory_reset", "ok": True, "interval_s": 0.2}
        assert fw.node.interval_ms == 200
    import os

    assert not os.path.exists("overrides.json")


async def test_malformed_oversized_and_unknown_commands_get_an_error_and_harm_nothing(
        broker, observer, flash):
    raw = flash(sim_config(broker))
    async with running(raw) as fw:
        await connected(fw, observer)
        answers = [await command(broker, observer, p) for p in (
            b"{not json", b"[1, 2]", json.dumps({"cmd": "selfdestruct"}), json.dumps({"nocmd": 1}),
            b"x" * 5000, json.dumps({"cmd": "identify", "s": -1}), json.dumps({"cmd": "status", "id": [1]}))]
        seq = fw.node.seq
        await until(lambda: fw.node.seq >= seq + 5)  # still sampling
        assert fw.node.restarts == 0
    errors = [a["error"] for a in answers]
    assert errors == ["not JSON", "not a JSON object",
                      'unknown command "selfdestruct" (known: interval, status, identify, restart, factory_reset, safe_mode)',
                      "unknown command null (known: interval, status, identify, restart, factory_reset, safe_mode)",
                      "too long: 5000 bytes, at most 256", "s: a number from 1 to 3600, got -1",
                      "id: a string or number of at most 64 characters"]
    assert all(a["ok"] is False for a in answers)


async def test_a_retained_restart_cannot_boot_loop_the_node(broker, observer, flash):
    """The broker keeps a restart published with the retain flag and hands it to
    the node on every subscription, flagged retained: after the one restart it
    asked for, the node answers it with an error on each connection and runs on."""
    send(broker, json.dumps({"cmd": "restart"}), retain=True)
    try:
        raw = flash(sim_config(broker))
        for boot in range(2):
            async with running(raw) as fw:
                await connected(fw, observer)
                await until(lambda: len(results(observer)) > boot)
                await asyncio.sleep(0.5)
                assert fw.node.broker_connects == 1
        assert results(observer) == [
            {"cmd": None, "ok": False, "error": "retained command ignored: publish commands without the retain flag"}] * 2
        assert machine.resets == 0
    finally:
        send(broker, b"", retain=True)


async def test_restart_is_answered_then_the_board_resets(broker, observer, flash):
    raw = flash(sim_config(broker))
    async with running(raw) as fw:
        await connected(fw, observer)
        r = await command(broker, observer, {"cmd": "restart", "id": "r1"})
        await until(lambda: machine.resets == 1)
    assert r == {"cmd": "restart", "id": "r1", "ok": True}


async def test_status_now_publishes_the_counters_and_diagnostics(broker, observer, flash):
    raw = flash(sim_config(broker))
    async with running(raw) as fw:
        await connected(fw, observer)
        before = len(observer.on("fireant/sim-node/stats"))
        r = await command(broker, observer, {"cmd": "status"})
        await until(lambda: len(observer.on("fireant/sim-node/stats")) > before)
    assert r == {"cmd": "status", "ok": True}
    stats = json.loads(observer.on("fireant/sim-node/stats")[-1][2])
    assert stats["rssi"] == -60 and stats["seq"] >= 2 and stats["queued"] >= 0 and "heap_free" in stats


async def test_identify_shows_its_pattern_for_the_time_asked_then_the_state_again(broker, observer, flash):
    raw = flash(sim_config(broker))
    async with running(raw) as fw:
        await connected(fw, observer)
        await command(broker, observer, {"cmd": "identify", "s": 3})
        # The LED's level every 20 ms for 7 s (the step under way, up to 2 s, then 3 s of
        # IDENTIFY), timed by the host's clock: a loaded machine stretches every sleep.
        on_runs, on_since, level = [], None, None
        end = time.monotonic() + 7
        while time.monotonic() < end:
            level = machine.Pin.levels.get(LED)
            if level == 0 and on_since is None:  # on (active low)
                on_since = time.monotonic()
            elif level != 0 and on_since is not None:
                on_runs.append(time.monotonic() - on_since)
                on_since = None
            await asyncio.sleep(0.02)
    long_on = [r for r in on_runs if r >= 0.7]
    assert 2 <= len(long_on) <= 4, on_runs  # 1 s on / 0.2 s off for 3 s, counted from when it shows
    assert on_runs[-1] < 0.3, on_runs  # then the 50 ms "ok" flash again
    assert level is not None


async def test_commands_sent_faster_than_handled_are_counted_and_answered_busy(broker, observer, flash):
    raw = flash(sim_config(broker))
    async with running(raw) as fw:
        await connected(fw, observer)
        for i in range(8):
            send(broker, json.dumps({"cmd": "status", "id": i}))
        await until(lambda: sum(1 for r in results(observer) if r["ok"]) >= 1, timeout=10)
        await asyncio.sleep(2)
        seq = fw.node.seq
        await until(lambda: fw.node.seq >= seq + 3)
    rs = results(observer)
    answered = {r["id"] for r in rs if r.get("ok")}
    busy = sum(int(r["error"].split()[1]) for r in rs if "busy" in r.get("error", ""))
    assert len(answered) + busy == 8  # every command answered or counted
    assert fw.node.restarts == 0


async def test_discovery_on_every_connect_and_when_home_assistant_comes_back(broker, observer, flash):
    import simboard

    raw = flash(sim_config(broker))
    async with running(raw) as fw:
        await connected(fw, observer)
        assert len(discovery(observer)) == 10
        send(broker, "online", topic="homeassistant/status")
        await until(lambda: len(discovery(observer)) >= 20)
        simboard.set(link=False)
        await until(lambda: not fw.node.broker_up)
        simboard.set(link=True)
        await until(lambda: len(discovery(observer)) >= 30, timeout=30)
    topics = sorted({m[1] for m in discovery(observer)})
    assert topics == sorted("homeassistant/%s/sim-node/%s/config" % t for t in (
        ("sensor", "temperature"), ("sensor", "humidity"), ("sensor", "rssi"), ("sensor", "uptime"),
        ("sensor", "heap_free"), ("sensor", "queued"), ("sensor", "dropped"), ("sensor", "sensor_errors"),
        ("button", "restart"), ("button", "identify")))
    for topic in topics:  # retained: Home Assistant finds them whenever it starts
        assert any(m[3] for m in _retained(broker, topic))
    readings = observer.readings()
    assert set(readings[-1]) - {"_at"} == {"device", "location", "boot", "seq", "uptime_ms", "ts", "temperature_C",
                                           "temperature_F", "humidity"}  # readings unchanged


def _retained(broker, topic):
    from sim.mosquitto import Subscriber
    import time

    sub = Subscriber(broker, topics=(topic,))
    try:
        end = time.monotonic() + 3
        while not sub.on(topic) and time.monotonic() < end:
            time.sleep(0.05)
        return sub.on(topic)
    finally:
        sub.close()


async def test_discovery_and_commands_switched_off(broker, observer, flash):
    raw = flash(sim_config(broker, ha={"discovery": False}, mqtt={"cmd_topic": ""}))
    async with running(raw) as fw:
        await until(lambda: len(observer.readings()) >= 5)
        send(broker, json.dumps({"cmd": "restart"}))
        await asyncio.sleep(1.5)
        assert fw.inbox is None
    assert not discovery(observer) and not results(observer) and machine.resets == 0


# -- the unix port: the firmware itself under MicroPython, the real mqtt_as, Mosquitto

def _unix_or_skip():
    from sim import paths

    if not paths.lib_dir():
        pytest.skip("the real mqtt_as is neither in lib/ nor in the cache (./fireant upstream --from DIR)")


def _at(run, s):
    """The node's ticks s seconds after its "starting" line."""
    return run.started[1] + int(s * 1000)


def test_commands_on_the_unix_port_with_the_real_mqtt_as(broker, tmp_path):
    """One boot: a retained restart waiting (ignored), an oversized command (read
    in pieces and dropped: the live heap never holds it), the others answered, then
    a restart that ends the process; a second boot from the same flash keeps the
    interval set by command."""
    from sim import unixport

    _unix_or_skip()
    send(broker, json.dumps({"cmd": "restart"}), retain=True)
    try:
        raw = sim_config(broker, sensor={"interval_s": 0.2})
        big = 6000
        script = [(3, lambda: send(broker, b"x" * big)),
                  (6, lambda: send(broker, json.dumps({"cmd": "interval", "interval_s": 0.5, "id": "i"}))),
                  (7, lambda: send(broker, b"{oops")),
                  (8, lambda: send(broker, json.dumps({"cmd": "identify", "s": 2}))),
                  (9, lambda: send(broker, json.dumps({"cmd": "status"}))),
                  (10, lambda: send(broker, "online", topic="homeassistant/status")),
                  (12, lambda: send(broker, json.dumps({"cmd": "restart", "id": "bye"})))]
        heap = unixport.COMMANDS_HEAP
        r1 = unixport.run(raw, script, heapsize=heap, build="mpy", libs="real", broker=broker, seconds=25,
                          heap_every_ms=250, workdir=str(tmp_path))
        r2 = unixport.run(raw, heapsize=heap, build="mpy", libs="real", broker=broker, seconds=4,
                          workdir=str(tmp_path))
    finally:
        send(broker, b"", retain=True)
    out = r1.output()
    assert r1.returncode == 0 and "machine: reset" in out and not r1.logged("MemoryError"), out[-3000:]
    answers = [json.loads(p) for t, _, p in r1.messages if t == RESULT]
    assert answers == [
        {"cmd": None, "ok": False, "error": "retained command ignored: publish commands without the retain flag"},
        {"cmd": None, "ok": False, "error": "too long: %d bytes, at most 256" % big},
        {"cmd": "interval", "id": "i", "ok": True, "interval_s": 0.5},
        {"cmd": None, "ok": False, "error": "not JSON"},
        {"cmd": "identify", "ok": True, "s": 2},
        {"cmd": "status", "ok": True},
        {"cmd": "restart", "id": "bye", "ok": True}]
    configs = [t for t, ret, _ in r1.messages if t.startswith("homeassistant/") and t.endswith("/config") and not ret]
    assert len(configs) >= 20 and len(set(configs)) == 10  # on connecting, and when Home Assistant said
    # online (QoS 1: mqtt_as may send one again)
    # The oversized command was never held: live heap after it as before it.
    before = [h for t, h in r1.heap if _at(r1, 1.5) <= t < _at(r1, 3)]
    after = [h for t, h in r1.heap if _at(r1, 4) <= t < _at(r1, 5.9)]
    assert before and after and max(after) < max(before) + big // 2, (before, after)
    # The readings' cadence: 200 ms, then 500 ms from the command on, and after the reboot.
    steps = [b["uptime_ms"] - a["uptime_ms"] for a, b in zip(r1.readings(), r1.readings()[1:])]
    assert steps[-1] == pytest.approx(500, abs=100) and steps[0] == pytest.approx(200, abs=100)
    assert r2.logged("every 0.5 s") and r2.returncode == 0 and r2.stopped(), r2.output()[-2000:]
    with open(tmp_path / "overrides.json") as f:
        assert json.load(f) == {"sensor": {"interval_s": 0.5}}
