"""Plausibility, calibration and filters (issue 11, point 5) and the sim sensor
(point 6): the sampler on the sim board, the whole firmware against Mosquitto
judged from a subscriber's side. The filters' arithmetic under MicroPython is
tests/mpy/filters.py (test_golden.py)."""
import asyncio
import contextlib
import json
import math
import sys

import dht
import pytest
import simboard
import simweather

from app import board, sampler
from app.config import validate
from app.filters import Filter
from app.node import Node
from sim import firmware
from sim.firmware import running, sim_config


def until(predicate, timeout=20.0, step=0.05):
    return firmware.until(predicate, timeout, step)


class Recorder:
    def __init__(self):
        self.readings = []

    def put(self, *reading):
        self.readings.append(reading)


@contextlib.asynccontextmanager
async def sampling(node, sink, kind="DHT22", interval_ms=50, filt=None):
    node.interval_ms = interval_ms
    t = asyncio.create_task(sampler.run(node, board.Sensor(kind, 5), sink, filt))
    try:
        yield t
    finally:
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await t


def filter_cfg(**keys):
    return validate({"mqtt": {"server": "b"}, "filter": keys})["filter"]


# -- plausibility: always on, counted as sensor errors, never published

@pytest.mark.parametrize("kind, t, h", [
    ("DHT22", float("nan"), 45.0), ("DHT22", 21.5, float("nan")), ("DHT22", -40.1, 45.0), ("DHT22", 80.1, 45.0),
    ("DHT22", 21.5, 100.1), ("DHT11", 51, 45), ("DHT11", -1, 45), ("DHT11", 21, 101), ("DHT11", 21, -1)])
async def test_a_reading_outside_the_sensors_range_is_a_sensor_error(kind, t, h, capsys):
    n, sink = Node("t"), Recorder()
    simboard.set(temperature=t, humidity=h)
    async with sampling(n, sink, kind):
        await until(lambda: n.sensor_errors >= 3)
    assert sink.readings == [] and n.seq == 0 and not n.sensor_ok
    assert capsys.readouterr().out.count("read failed") == 1  # once per run of failures


@pytest.mark.parametrize("h", [15, 95])
async def test_a_dht11_beyond_its_datasheets_humidity_range_is_still_read(h):
    # Its datasheet says 20-90 %RH; real ones in a heated room or a bathroom say more.
    n, sink = Node("t"), Recorder()
    simboard.set(temperature=21, humidity=h)
    async with sampling(n, sink, "DHT11"):
        await until(lambda: len(sink.readings) >= 2)
    assert n.sensor_errors == 0 and {r[3] for r in sink.readings} == {h * 10}


async def test_a_20_degree_jump_is_refused_and_the_reading_after_it_kept(capsys):
    n, sink = Node("t"), Recorder()
    simboard.set(dht="spike")  # every fourth read 25.6 C too warm, checksum fine
    async with sampling(n, sink):
        await until(lambda: dht.reads >= 16)
    spikes = dht.reads // 4
    assert n.sensor_errors in (spikes, spikes + 1)  # a read may be in flight when counted
    assert {r[2] for r in sink.readings} == {215}  # nothing but the true value published
    assert [r[0] for r in sink.readings] == list(range(1, len(sink.readings) + 1))
    assert "implausible jump" in capsys.readouterr().out


async def test_a_lasting_jump_is_believed_after_three_refusals():
    n, sink = Node("t"), Recorder()
    async with sampling(n, sink):
        await until(lambda: len(sink.readings) >= 2)
        simboard.set(temperature=45.0)  # the sensor moved into the sun: real, if unlikely
        await until(lambda: sink.readings[-1][2] == 450)
    assert n.sensor_errors == 3 and n.sensor_ok


async def test_a_jump_after_a_long_silence_is_believed(monkeypatch):
    monkeypatch.setattr(sampler, "_JUMP_MS", 300)  # CPython: const() is a plain global
    n, sink = Node("t"), Recorder()
    async with sampling(n, sink):
        await until(lambda: len(sink.readings) >= 1)
        simboard.set(dht="fail")  # unplugged for longer than the window...
        await asyncio.sleep(0.6)
        simboard.set(dht="ok", temperature=2.0)  # ...and back in a cold room
        await until(lambda: sink.readings[-1][2] == 20)
        errors = n.sensor_errors
        await asyncio.sleep(0.2)
    assert n.sensor_errors == errors  # only the unplugged reads: the jump itself was believed


# -- filters in the sampler: seq numbers what is published, the rest is counted

async def test_held_back_readings_take_no_seq_and_are_counted():
    n, sink = Node("t"), Recorder()
    f = Filter(filter_cfg(delta_temperature=0.5))
    async with sampling(n, sink, filt=f):
        await until(lambda: n.filtered >= 5)
        simboard.set(temperature=22.5)
        await until(lambda: len(sink.readings) >= 2)
    assert [r[0] for r in sink.readings] == [1, 2]  # no gap: a subscriber sees no loss
    assert [r[2] for r in sink.readings] == [215, 225]
    assert n.seq == 2 and n.sensor_errors == 0 and n.sensor_ok


async def test_calibration_and_median_apply_before_the_backlog():
    class OneOdd(Recorder):
        def put(self, *reading):  # runs in the sampler right after its read: the next read is 21.5 again
            super().put(*reading)
            if len(self.readings) == 3:
                simboard.set(temperature=30.0)  # exactly one odd reading: the median of three ignores it
            elif len(self.readings) == 4:
                simboard.set(temperature=21.5)

    n, sink = Node("t"), OneOdd()
    f = Filter(filter_cfg(temperature_offset=-1.5, humidity_multiply=1.1, smoothing="median", window=3))
    async with sampling(n, sink, filt=f):
        await until(lambda: len(sink.readings) >= 8)
    assert {r[2:] for r in sink.readings} == {(200, 495)}


# -- the whole firmware against Mosquitto

async def test_delta_and_heartbeat_as_a_subscriber_sees_them(broker, observer):
    raw = sim_config(broker, sensor={"interval_s": 0.2}, filter={"delta_temperature": 1, "heartbeat_s": 1.0})
    async with running(raw) as fw:
        await until(lambda: len(observer.readings()) >= 3)
        simboard.set(temperature=23.0)
        await until(lambda: any(r["temperature_C"] == 23.0 for r in observer.readings()))
        await until(lambda: len(observer.readings()) >= 6)
        stats_at = fw.node.filtered
    readings = observer.readings()
    seqs = [r["seq"] for r in readings]
    assert sorted(set(seqs)) == list(range(1, max(seqs) + 1))  # no gap in seq
    changed = [r for r in readings if r["temperature_C"] == 23.0]
    steady = [r for r in readings if r["temperature_C"] == 21.5]
    assert len(steady) >= 2 and changed  # published on the change, and the heartbeat in between
    ticks = [r["uptime_ms"] for r in steady]
    assert all(b - a >= 500 for a, b in zip(ticks, ticks[1:]))  # ~1 s heartbeats, never every 0.2 s
    assert stats_at >= 5
    assert set(readings[0]) - {"_at"} == {"device", "location", "boot", "seq", "uptime_ms", "ts", "temperature_C",
                                          "temperature_F", "humidity"}  # the format is unchanged


async def test_stats_count_filtered_readings(broker, observer):
    raw = sim_config(broker, filter={"throttle_s": 60})
    async with running(raw) as fw:
        await until(lambda: fw.node.filtered >= 3 and observer.readings())
        stats = json.loads(fw.status.telemetry())
    assert stats["seq"] == 1 and stats["filtered"] >= 3 and stats["sensor_errors"] == 0
    assert [r["seq"] for r in observer.readings()] == [1]


async def test_without_filter_keys_the_module_is_not_loaded(broker):
    sys.modules.pop("app.filters", None)
    async with running(sim_config(broker)) as fw:
        await until(lambda: fw.node.seq >= 2)
    assert fw.filter is None and "app.filters" not in sys.modules


# -- the sim sensor is a sensor

def test_the_sim_day_cycles_and_is_reproducible_from_its_seed():
    simboard.set(day_s=100, noise=0.1, seed=7)
    day = [simweather.weather(ms) for ms in range(0, 100000, 5000)]
    simboard.set(seed=7)
    assert [simweather.weather(ms) for ms in range(0, 100000, 5000)] == day
    simboard.set(seed=8)
    assert [simweather.weather(ms) for ms in range(0, 100000, 5000)] != day
    temps = [t for t, _ in day]
    coolest, warmest = temps.index(min(temps)), temps.index(max(temps))
    assert 1 <= coolest <= 4 and 11 <= warmest <= 14  # ~03:00 and ~15:00 of a 20-step day
    assert 21.5 - 3.3 < min(temps) < 21.5 - 2.5 and 21.5 + 2.5 < max(temps) < 21.5 + 3.3
    hums = [h for _, h in day]
    assert abs(hums.index(max(hums)) - coolest) <= 1  # damp at night, dry in the afternoon
    assert abs(hums.index(min(hums)) - warmest) <= 1


def test_the_sim_sensor_reads_in_the_drivers_resolution():
    simboard.set(day_s=60, noise=0.2)
    d22, d11 = dht.DHT22(None), dht.DHT11(None)
    for _ in range(20):
        d22.measure()
        d11.measure()
        assert round(d22.temperature() * 10) == d22.temperature() * 10
        assert isinstance(d11.temperature(), int) and isinstance(d11.humidity(), int)


def test_the_sim_sensor_is_constant_unless_asked():
    d = dht.DHT22(None)
    for _ in range(5):
        d.measure()
        assert (d.temperature(), d.humidity()) == (21.5, 45.0)


def test_a_flaky_sensor_fails_both_ways_about_one_read_in_four():
    simboard.set(dht="flaky", seed=3)
    d, outcomes = dht.DHT22(None), []
    for _ in range(400):
        try:
            d.measure()
            outcomes.append("ok")
        except OSError:
            outcomes.append("timeout")
        except Exception as e:
            assert str(e) == "checksum error"
            outcomes.append("checksum")
    assert 60 <= outcomes.count("timeout") + outcomes.count("checksum") <= 140
    assert outcomes.count("timeout") >= 20 and outcomes.count("checksum") >= 20


async def test_values_set_through_the_control_file_reach_the_firmware(tmp_path, broker, observer, monkeypatch):
    control = tmp_path / "control.json"
    monkeypatch.setattr(simboard, "_path", str(control))
    monkeypatch.setattr(simboard, "_mtime", None)
    async with running(sim_config(broker)):
        await until(lambda: observer.readings())
        control.write_text(json.dumps({"temperature": 18.2, "humidity": 61.0}))
        await until(lambda: any(r["temperature_C"] == 18.2 for r in observer.readings()))
    last = observer.readings()[-1]
    assert (last["temperature_C"], last["humidity"]) == (18.2, 61.0)


async def test_a_drifting_sim_sensor_publishes_changing_plausible_values(broker, observer):
    simboard.set(day_s=4, noise=0.1, seed=11)
    async with running(sim_config(broker)):
        await until(lambda: len(observer.readings()) >= 20)
    temps = [r["temperature_C"] for r in observer.readings()]
    assert len(set(temps)) >= 5 and max(temps) - min(temps) >= 2  # a compressed day went by
    assert all(15 < t < 28 and not math.isnan(t) for t in temps)
