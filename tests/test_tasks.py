"""Each task alone on the sim board, with its failure paths. No broker needed:
where MQTT is involved the stand-in's in-memory broker is used."""
import asyncio
import contextlib
import inspect
import json
from time import ticks_diff, ticks_ms

import machine
import mqtt_as
import network
import pytest
import simboard
from mqtt_as import _memory

from app import board, connect, heartbeat, node as node_mod, publisher, sampler, start, wifi
from app.backlog import Backlog
from app.config import validate
from app.node import Node, backoff_ms, supervise
from sim import firmware
from sim.firmware import running, sim_config


@pytest.fixture
def memory_broker(monkeypatch):
    monkeypatch.setattr(mqtt_as, "MQTT_TRANSPORT", "memory")
    del _memory.messages[:]
    _memory.retained.clear()
    return _memory


@contextlib.asynccontextmanager
async def task(coro):
    t = asyncio.create_task(coro)
    try:
        yield t
    finally:
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await t


def until(predicate, timeout=15.0, step=0.05):
    return firmware.until(predicate, timeout, step)


def gaps(readings):
    return [ticks_diff(b[1], a[1]) for a, b in zip(readings, readings[1:])]


class Recorder:
    """Backlog stand-in that keeps everything put into it."""

    def __init__(self):
        self.readings = []

    def put(self, *reading):
        self.readings.append(reading)


# -- sampler

def every(node, interval_ms):
    node.interval_ms = interval_ms
    return node


async def test_sampler_keeps_cadence_without_drift():
    n, sink = Node("t"), Recorder()
    async with task(sampler.run(every(n, 100), board.Sensor("DHT22", 5), sink)):
        await until(lambda: len(sink.readings) >= 15)
    seqs = [r[0] for r in sink.readings]
    assert seqs == list(range(1, len(seqs) + 1))
    g = gaps(sink.readings)
    assert max(g) <= 100 + 60  # one late tick on a busy machine, not a pattern
    mean = (sink.readings[-1][1] - sink.readings[0][1]) / (len(sink.readings) - 1)
    assert 97 <= mean <= 103  # a fixed schedule: lateness is not carried forward
    assert sink.readings[0][2:] == (215, 450)  # tenths of °C and %


@pytest.mark.parametrize("fault", ["fail", "checksum", "garbage"])
async def test_failed_read_is_counted_and_never_published_as_stale(fault):
    n, sink = Node("t"), Recorder()
    async with task(sampler.run(every(n, 50), board.Sensor("DHT22", 5), sink)):
        await until(lambda: len(sink.readings) >= 3)
        simboard.set(dht=fault)
        taken = len(sink.readings)
        await until(lambda: n.sensor_errors >= 5)
        assert len(sink.readings) == taken  # nothing new while the sensor fails
        assert not n.sensor_ok
        simboard.set(dht="ok", temperature=30.0)
        await until(lambda: len(sink.readings) >= taken + 3)
    assert n.sensor_ok
    assert [r[0] for r in sink.readings] == list(range(1, len(sink.readings) + 1))  # seq counts readings only
    assert sink.readings[-1][2] == 300


async def test_a_blocking_read_is_stamped_when_in_and_keeps_the_schedule():
    """A board's DHT read blocks the loop ~270 ms (start pulse 250 + 18 ms): the
    reading is what the sensor measured at the end of it, and the next is due one
    interval after the last was due, not after the read."""
    simboard.set(dht_block_ms=270)
    n, sink = Node("t"), Recorder()
    t0 = ticks_ms()
    async with task(sampler.run(every(n, 1000), board.Sensor("DHT22", 5), sink)):
        await until(lambda: len(sink.readings) >= 4, timeout=10)
    assert ticks_diff(sink.readings[0][1], t0) >= 260
    assert all(950 <= g <= 1060 for g in gaps(sink.readings)), gaps(sink.readings)


async def test_a_shorter_interval_set_while_waiting_never_reads_back_to_back():
    """A command shortens the interval in the middle of a long wait: the next read
    comes at once, the one after it a new interval later (a DHT22 read again
    within 2 s answers with a timeout or stale data)."""
    n, sink = Node("t"), Recorder()
    async with task(sampler.run(every(n, 4000), board.Sensor("DHT22", 5), sink)):
        await until(lambda: len(sink.readings) >= 1)
        await asyncio.sleep(2.2)  # two of the 1 s steps slept
        n.interval_ms = 500
        await until(lambda: len(sink.readings) >= 4, timeout=10)
    g = gaps(sink.readings)
    assert g[0] < 4000 and min(g[1:]) >= 400, g


async def test_dht11_readings_are_whole_numbers_and_checked_against_its_range():
    sensor = board.Sensor("DHT11", 4)
    assert sensor.read() == (21, 45)
    simboard.set(temperature=55.0)  # above the DHT11's 50 °C: garbage
    with pytest.raises(ValueError, match="out of range"):
        sensor.read()


# -- backlog

def test_full_backlog_drops_the_oldest_and_counts_it():
    n = Node("t")
    q = Backlog(n, 3)
    for seq in range(1, 6):
        q.put(seq, seq * 100, 200 + seq, 400)
    assert n.dropped == 2 and len(q) == 3


async def test_backlog_keeps_each_readings_fields_in_order():
    q = Backlog(Node("t"), 4)
    for seq in range(1, 7):  # wraps the slots once
        q.put(seq, seq * 100, -50 + seq, 900 + seq)
    assert q.available() == 4
    assert [q.reading(i) for i in range(4)] == [(None, s, s * 100, None, -50 + s, 900 + s) for s in range(3, 7)]
    q.done(1)
    assert q.reading(0)[1] == 4
    q.done(3)
    assert len(q) == 0


def test_a_reading_on_its_way_pushed_out_is_counted_and_restarts_the_window():
    n = Node("t")
    q = Backlog(n, 2)
    q.put(1, 100, 0, 0)
    q.put(2, 200, 0, 0)
    q.sending, gen = 1, q.gen  # the publisher has seq 1 on its way
    q.put(3, 300, 0, 0)  # pushes seq 1 out: counted (its PUBACK may never come)
    assert n.dropped == 1 and q.gen != gen and q.sending == 0
    assert [q.reading(i)[1] for i in range(q.available())] == [2, 3]


async def test_wait_waits_for_a_reading():
    q = Backlog(Node("t"), 4)
    waiter = asyncio.create_task(q.wait())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    q.put(7, 700, 215, 450)
    await asyncio.wait_for(waiter, 1)
    assert q.reading(0) == (None, 7, 700, None, 215, 450)


# -- wifi supervisor

def test_backoff_is_capped_exponential_with_jitter():
    for attempt in range(12):
        full = min(500 << attempt, 8000)
        samples = [backoff_ms(attempt, 500, 8000) for _ in range(200)]
        assert all(full // 2 <= s <= full for s in samples)
        assert len(set(samples)) > 20  # jittered, not one value


def wifi_cfg(**wifi_keys):
    raw = sim_config()
    raw["wifi"].update(wifi_keys)
    return validate(raw, board.min_interval_s())["wifi"]


async def test_wifi_joins_sets_hostname_and_turns_the_ap_off():
    ap = network.WLAN(network.AP_IF)
    ap.active(True)  # an ESP8266 boots with its AP on
    n = Node("node-7")
    async with task(wifi.run(n, wifi_cfg())):
        await until(lambda: n.wifi_up)
    assert network.hostname() == "node-7"
    assert not ap.active()
    assert network.WLAN(network.STA_IF).config("essid") == "simnet"


async def test_wifi_serves_an_access_point_when_configured():
    n = Node("t")
    async with task(wifi.run(n, wifi_cfg(ap_ssid="fireant-setup", ap_password="12345678"))):
        await until(lambda: n.wifi_up)
    ap = network.WLAN(network.AP_IF)
    assert ap.active() and ap.config("essid") == "fireant-setup"


async def test_wifi_reports_a_drop_and_rejoins():
    n = Node("t")
    async with task(wifi.run(n, wifi_cfg())):
        await until(lambda: n.wifi_up)
        simboard.set(link=False)
        await until(lambda: not n.wifi_up)
        simboard.set(link=True)
        await until(lambda: n.wifi_up)
    assert n.wifi_drops == 1


async def test_wrong_wifi_password_backs_off_instead_of_hammering(capsys):
    simboard.set(wifi_password="the-right-one")
    n = Node("t")
    cfg = wifi_cfg(timeout_s=1, backoff_min_s=0.2, backoff_max_s=1.6)
    async with task(wifi.run(n, cfg)):
        await asyncio.sleep(7)
    joins = [c for c in network.calls if c == (network.STA_IF, "connect")]
    # Each attempt gets its 1 s, then backoff: 0.1-0.2, 0.2-0.4, 0.4-0.8, 0.8-1.6 s: 4 to 6 in 7 s.
    assert 4 <= len(joins) <= 6
    assert not n.wifi_up
    assert "could not join 'simnet' (wrong password)" in capsys.readouterr().out


async def test_a_join_is_not_cut_short_by_an_old_wrong_password():
    """An ESP32's status keeps saying "wrong password" after the reason has gone,
    until the station joins: a join is given time before that is believed."""
    simboard.set(wifi_password="the-right-one", join_ms=1500)  # a join takes a real chip 1-3 s
    n = Node("t")
    async with task(wifi.run(n, wifi_cfg(timeout_s=20, backoff_min_s=0.2, backoff_max_s=0.4))):
        await until(lambda: network.WLAN(network.STA_IF).status() == network.STAT_WRONG_PASSWORD)
        simboard.set(wifi_password="wifi-pass")  # the access point takes our password now
        await until(lambda: n.wifi_up, timeout=12)


async def test_the_host_name_reaches_dhcp_even_when_the_station_was_up_at_boot():
    """boot.py (or an ESP8266's power-on join) may have joined already, with
    another name: only connect() hands DHCP the host name, so the supervisor asks."""
    network.hostname("mpy-esp32")
    sta = network.WLAN(network.STA_IF)
    sta.active(True)
    sta.connect("simnet", "wifi-pass")
    await until(sta.isconnected)
    n = Node("node-9")
    async with task(wifi.run(n, wifi_cfg())):
        await until(lambda: n.wifi_up)
    assert sta.config("dhcp_hostname") == "node-9"


async def test_a_drop_is_left_to_the_driver_before_asking_again():
    n = Node("t")
    async with task(wifi.run(n, wifi_cfg(timeout_s=3))):
        await until(lambda: n.wifi_up)
        joins = network.calls.count((network.STA_IF, "connect"))
        simboard.set(link=False)
        await until(lambda: not n.wifi_up)
        await asyncio.sleep(1)
        simboard.set(link=True)  # back within wifi.timeout_s: the driver re-joins by itself
        await until(lambda: n.wifi_up)
        assert network.calls.count((network.STA_IF, "connect")) == joins
        simboard.set(link=False)
        await until(lambda: not n.wifi_up)
        await asyncio.sleep(4)  # past the timeout: disconnect, back off, ask again
        simboard.set(link=True)
        await until(lambda: n.wifi_up)
    assert network.calls.count((network.STA_IF, "connect")) > joins
    assert n.wifi_drops == 2


async def test_an_esp32_refuses_connect_while_it_joins_and_the_supervisor_never_asks_so():
    sta = network.WLAN(network.STA_IF)
    sta.active(True)
    sta.connect("simnet", "x")  # say boot.py started a join: the IDF is at it now
    with pytest.raises(OSError, match="Wifi Internal Error"):
        sta.connect("simnet", "x")
    n = Node("t")
    async with task(wifi.run(n, wifi_cfg())):
        await until(lambda: n.wifi_up)
    assert n.restarts == 0


async def test_no_ssid_means_sensing_only_and_no_join_attempts():
    n = Node("t")
    async with task(wifi.run(n, wifi_cfg(ssid=""))):
        await asyncio.sleep(0.5)
    assert (network.STA_IF, "connect") not in network.calls
    assert not n.wifi_up


async def test_only_the_wifi_task_ever_joins_or_leaves(memory_broker, monkeypatch):
    """mqtt_as sees the station through wifi.Link: neither its first connect() nor
    its reconnect loop (which drops and re-joins the station after every broker
    outage) reaches the driver. Through refusals, a Wi-Fi drop and a broker outage
    every connect() and disconnect() comes from the Wi-Fi task, and only the real
    drop counts as one."""
    callers = []
    for name in ("connect", "disconnect"):
        real = getattr(network._WLAN, name)

        def spy(self, *args, _real=real, _name=name):
            if self._if == network.STA_IF:
                callers.append((_name, any(f.filename.endswith("app/wifi.py") for f in inspect.stack())))
            return _real(self, *args)

        monkeypatch.setattr(network._WLAN, name, spy)
    simboard.set(link=False, broker=False)  # boot with no network and no broker
    async with running(sim_config()) as fw:
        await asyncio.sleep(1.5)
        simboard.set(link=True)  # the supervisor joins; the broker still refuses
        await until(lambda: fw.node.wifi_up)
        await asyncio.sleep(2.5)
        simboard.set(broker=True)
        await until(lambda: fw.node.broker_up)
        simboard.set(link=False)
        await until(lambda: not fw.node.wifi_up)
        simboard.set(link=True)
        await until(lambda: fw.node.broker_up and fw.node.broker_connects == 2, timeout=20)
        simboard.set(broker=False)  # the broker goes; Wi-Fi stays
        await until(lambda: not fw.node.broker_up)
        simboard.set(broker=True)
        await until(lambda: fw.node.broker_up and fw.node.broker_connects == 3, timeout=20)
        drops = fw.node.wifi_drops
    assert ("connect", True) in callers
    assert all(from_wifi for _, from_wifi in callers), callers
    assert drops == 1


# -- publisher

async def test_publisher_drains_in_order_and_a_reading_leaves_only_when_published(memory_broker):
    async with running(sim_config(queue={"size": 100})) as fw:
        await until(lambda: fw.node.broker_up)
        simboard.set(broker=False)  # broker gone: publish() waits, readings stay queued
        await until(lambda: not fw.node.broker_up)
        published = fw.node.published
        await asyncio.sleep(1.5)
        assert fw.node.published == published
        assert len(fw.backlog) >= 5
        simboard.set(broker=True)
        await until(lambda: fw.node.broker_up and len(fw.backlog) <= 1, timeout=20)
    readings = [json.loads(m[1]) for m in memory_broker.messages if m[0] == "sensors/environmental"]
    seqs = [r["seq"] for r in readings]
    # Readings on their way when the broker went are sent again (at least once):
    # the first copies are every seq, in order; the repeats at most a window's worth.
    first = sorted(set(seqs), key=seqs.index)
    assert first == list(range(1, len(first) + 1))
    assert len(seqs) - len(first) <= fw.window
    assert readings[0] == {"device": "sim-node", "location": "test bench", "seq": 1, "boot": fw.node.boot,
                           "uptime_ms": readings[0]["uptime_ms"], "ts": None, "temperature_C": 21.5,
                           "temperature_F": 70.7, "humidity": 45.0}


async def test_online_is_retained_on_every_connect_and_the_will_says_offline(memory_broker):
    async with running(sim_config()) as fw:
        await until(lambda: fw.node.broker_up)
        await until(lambda: memory_broker.retained.get("fireant/sim-node/status") == "online")
        simboard.set(link=False)
        await until(lambda: memory_broker.retained.get("fireant/sim-node/status") == "offline")
        simboard.set(link=True)
        await until(lambda: memory_broker.retained.get("fireant/sim-node/status") == "online", timeout=20)
        # The telemetry follows online's PUBACK (polled, as upstream's publish polls it).
        await until(lambda: '"broker_connects": 2' in memory_broker.retained.get("fireant/sim-node/stats", ""))
        stats = json.loads(memory_broker.retained["fireant/sim-node/stats"])
    # mqtt_as drops the station itself before re-joining, which may count as a second drop
    assert stats["broker_connects"] == 2 and stats["wifi_drops"] >= 1
    assert memory_broker.retained["fireant/sim-node/status"] == "offline"  # said on the way out


async def test_a_failed_announcement_is_counted_and_made_again(memory_broker, monkeypatch):
    """A crash while announcing the connection (MemoryError inside mqtt_as, as at
    80K with TLS on the unix port) is logged and counted, and the announcement
    made again: on this connection, and on the next."""
    async with running(sim_config()) as fw:
        fw.node.restart_ms = 200
        real_publish, failed = fw.client.publish, []

        async def publish(topic, msg, *args):
            if topic.endswith(b"/status") and msg == b"online" and not failed:
                failed.append(topic)
                raise MemoryError("memory allocation failed, allocating 464 bytes")
            return await real_publish(topic, msg, *args)

        monkeypatch.setattr(fw.client, "publish", publish)
        await until(lambda: memory_broker.retained.get("fireant/sim-node/status") == "online")
        assert failed and fw.node.restarts == 1
        simboard.set(broker=False)
        await until(lambda: memory_broker.retained.get("fireant/sim-node/status") == "offline")
        simboard.set(broker=True)
        await until(lambda: fw.node.broker_connects == 2, timeout=20)
        await until(lambda: memory_broker.retained.get("fireant/sim-node/status") == "online")


async def test_a_reconnect_that_fails_otherwise_than_by_oserror_is_tried_again(memory_broker, monkeypatch):
    """mqtt_as's reconnect loop catches OSError only: a certificate the broker's TLS
    no longer verifies (ssl's ValueError) or a MemoryError would end it, and the node
    would never reach the broker again."""
    real, calls = memory_broker.Transport.connect, []

    async def connect(self, *args):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("The certificate validity has expired")
        return await real(self, *args)

    monkeypatch.setattr(memory_broker.Transport, "connect", connect)
    async with running(sim_config()) as fw:
        await until(lambda: fw.node.broker_up)
        simboard.set(broker=False)
        await until(lambda: not fw.node.broker_up)
        simboard.set(broker=True)
        await until(lambda: fw.node.broker_connects == 2, timeout=30)
    assert len(calls) >= 3


async def test_ctrl_c_survives_a_memory_error(memory_broker, monkeypatch, capsys):
    async with running(sim_config()) as fw:
        await until(lambda: fw.node.broker_up)

        def no_memory(*_):
            raise MemoryError("memory allocation failed")

        monkeypatch.setattr(fw.client, "publish", no_memory)
        monkeypatch.setattr(fw.status, "telemetry", no_memory)
    # running() ended with fw.stop(): it must not raise, and it must finish its work
    out = capsys.readouterr().out
    assert "could not publish offline (MemoryError" in out and "app: stopped" in out
    assert machine.Pin.levels[2] == 1  # LED off (active low)
    assert memory_broker.retained["fireant/sim-node/status"] == "offline"  # the will, after disconnect


def test_connect_refusals_are_explained():
    assert "bad user name or password" in connect.reason(OSError(-1, "CONNACK reason code 0x4"))
    assert "not authorised" in connect.reason(OSError(-1, "CONNACK reason code 0x5"))
    assert connect.reason(OSError(111, "ECONNREFUSED")) == "[Errno 111] ECONNREFUSED"


def test_payload_has_the_seed_fields_plus_seq_uptime_boot_and_ts():
    p = publisher.payload(start.head("n1", "attic"), b"0badf00d", (42, 123456, -105, 999), 123456,
                          (1764000000, 42))
    assert isinstance(p, bytes)  # mqtt_as sends len() of it as the length
    assert json.loads(p) == {"device": "n1", "location": "attic", "boot": "0badf00d", "seq": 42,
                             "uptime_ms": 123456, "ts": 1764000000.042,
                             "temperature_C": -10.5, "temperature_F": 13.1, "humidity": 99.9}
    assert json.loads(publisher.payload(start.head("n1", ""), b"0badf00d", (1, 5, 0, 0), 5, None))["ts"] is None


# -- heartbeat

class LedLog:
    def __init__(self):
        self.events = []

    def set(self, on):
        self.events.append((asyncio.get_running_loop().time(), bool(on)))


def on_durations_ms(events):
    out = []
    for (t0, on), (t1, _) in zip(events, events[1:]):
        if on:
            out.append(round((t1 - t0) * 1000, -1))
    return out


@pytest.mark.parametrize("state", sorted(heartbeat.PATTERNS))
async def test_heartbeat_blinks_the_pattern_of_the_state(state, monkeypatch):
    n = Node("t")
    monkeypatch.setattr(n, "state", lambda: state)
    led = LedLog()
    pattern = heartbeat.PATTERNS[state]
    async with task(heartbeat.run(n, led)):
        await asyncio.sleep(sum(pattern) * 2 / 1000 + 0.05)
    on = on_durations_ms(led.events)
    expected = list(pattern[0::2]) * 2
    assert len(on) >= len(expected)
    assert all(abs(a - b) <= 40 for a, b in zip(on, expected))


def test_every_state_has_its_own_pattern():
    assert len(set(heartbeat.PATTERNS.values())) == len(node_mod.STATE_NAMES)


def test_node_state_priority():
    n = Node("t")
    assert n.state() == node_mod.BOOTING
    n.booted = True
    assert n.state() == node_mod.NO_WIFI
    n.wifi_up = True
    assert n.state() == node_mod.NO_BROKER
    n.broker_up = True
    assert n.state() == node_mod.OK
    n.sensor_ok = False
    assert n.state() == node_mod.SENSOR_FAILING


@pytest.mark.parametrize("active_low, lit, dark", [(True, 0, 1), (False, 1, 0)])
def test_led_polarity_is_configurable(active_low, lit, dark):
    led = board.Led(2, active_low)
    assert machine.Pin.levels[2] == dark  # off at start
    led.set(True)
    assert machine.Pin.levels[2] == lit


# -- supervision

async def test_a_crashed_task_is_logged_and_restarted(capsys):
    n = Node("t")
    n.restart_ms = 100
    runs = []

    async def flaky():
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("boom %d" % len(runs))
        await asyncio.sleep(10)

    async def steady():
        while True:
            runs_steady.append(1)
            await asyncio.sleep(0.05)

    runs_steady = []
    async with task(supervise(n, [("flaky", flaky, ()), ("steady", steady, ())])):
        await until(lambda: len(runs) == 3)
        before = len(runs_steady)
        await until(lambda: len(runs_steady) > before + 2)  # the others ran on meanwhile
    assert n.restarts == 2
    out = capsys.readouterr().out
    assert "flaky: RuntimeError: boom 1" in out and "restarting in 100 ms" in out
    assert "never retrieved" not in out and "wasn't retrieved" not in out


async def test_a_task_that_returns_is_started_again_and_not_counted_as_a_crash(capsys):
    n = Node("t")
    n.restart_ms = 50
    runs = []

    async def brief():
        runs.append(1)

    async with task(supervise(n, [("brief", brief, ())])):
        await until(lambda: len(runs) >= 2)
    assert n.restarts == 0 and "brief: returned; restarting" in capsys.readouterr().out


async def test_cancelling_a_supervised_task_stops_it():
    n = Node("t")
    ended = []

    async def idle():
        try:
            await asyncio.sleep(10)
        finally:
            ended.append(1)

    t = asyncio.create_task(supervise(n, [("idle", idle, ()), ("idle2", idle, ())]))
    await asyncio.sleep(0.05)
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t
    assert n.restarts == 0 and ended == [1, 1]  # every task ended before supervise() returned
