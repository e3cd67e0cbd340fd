"""Issue 12, point 6: battery mode (app/sleep.py). Each wake is a boot: under
CPython one wake in-process (the sim board's deepsleep() is recorded and
returns); on the MicroPython unix port real wakes, each a process on the same
directory that ends in the sim board's deepsleep() (the process killed: nothing
after it runs, as on a board), with the real mqtt_as against Mosquitto.
"""
import json
import re
import time

import pytest

import machine  # the sim board's (sim.firmware, via conftest, put it on the path)
from sim import paths, unixport
from sim.firmware import running, sim_config, until
from sim.mosquitto import Subscriber
from sim.ntpserver import ThreadedNtpServer


INTERVAL_S, AWAKE_S = 7, 2  # the wakes follow each other at once: the host does not sleep them out


def _config(broker, **extra):
    return sim_config(broker, sleep={"interval_s": INTERVAL_S, "awake_s": AWAKE_S}, spool={"size": 1000}, **extra)


async def test_a_wake_publishes_its_reading_says_asleep_and_sleeps_out_the_interval(broker, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the board's flash: the wake file, the spool
    del machine.sleeps[:]
    watcher = Subscriber(broker, topics=("sensors/environmental", "fireant/+/status"))
    try:
        async with running(_config(broker)) as fw:
            await until(lambda: machine.sleeps, 10)
            seq, boot = fw.node.seq, fw.node.boot
        assert seq == 1 and [r["seq"] for r in watcher.readings()] == [1]  # one reading a wake
        assert 1000 <= machine.sleeps[0] <= INTERVAL_S * 1000 - 100  # the rest of the interval, not all of it
        await until(lambda: watcher.on("fireant/sim-node/status")[-1][2] == "asleep", 5)
        assert (tmp_path / "wake").read_text() == "1"  # the seq the next wake carries on
    finally:
        watcher.close()


def _needs_real():
    if not paths.lib_dir():
        pytest.skip("the real mqtt_as is neither in lib/ nor in the cache (./fireant upstream --from DIR)")


def test_wakes_carry_seq_on_and_an_offline_wake_keeps_its_reading_for_the_next(broker, tmp_path, monkeypatch):
    """Four wakes on one directory; the third finds no Wi-Fi: its reading waits on
    flash and goes out first on the fourth, with the time it was taken (the
    real-time clock runs through deep sleep). seq 1..4, each once, in order; each
    wake a boot id of its own (its uptime counts from its own start)."""
    _needs_real()
    with ThreadedNtpServer() as ntp:
        monkeypatch.setenv("FIREANT_SIM_NTP_PORT", str(ntp.port))
        raw = _config(broker, ntp={"server": "127.0.0.1", "resync_s": 3600})
        wakes, started = [], []
        for board in ({}, {}, {"link": False}, {}):
            started.append(time.time())
            r = unixport.run(raw, heapsize="256K", build="mpy", libs="real", broker=broker, seconds=AWAKE_S + 10,
                             workdir=str(tmp_path), board=board)
            assert r.logged("machine: deepsleep") and not r.logged("Traceback"), r.output()
            assert not r.logged("app: Ctrl-C") and not r.logged("app: stopped")  # nothing ran after the sleep
            wakes.append(r)
    got = [(x["boot"], x["seq"]) for r in wakes for x in r.readings()]
    assert [s for _, s in got] == [1, 2, 3, 4], got  # the offline wake's 3 before the fourth's own 4
    assert len({b for b, _ in got}) == 4, got
    late = [x for x in wakes[3].readings() if x["seq"] == 3][0]
    assert started[2] - 1 <= late["ts"] <= started[3], (late, started)  # taken in the third wake, not sent then
    offline = wakes[2]
    assert offline.logged("sleep: awake") and "1 readings kept on flash" in offline.logged("sleep: awake")[0]
    assert not offline.readings()
    for r in wakes:
        awake_ms, slept_ms = map(int, re.search(r"awake (\d+) ms.*sleeping (\d+) ms", r.logged("sleep: awake")[0])
                                 .groups())
        assert awake_ms <= AWAKE_S * 1000 + 1000 and slept_ms == max(0, INTERVAL_S * 1000 - awake_ms)
        assert r.logged("machine: deepsleep %d ms" % slept_ms)
    online = [r for i, r in enumerate(wakes) if i != 2]
    assert all(r.on("fireant/sim-node/status")[-1] == "asleep" for r in online)
    stats = [json.loads(p) for p in wakes[3].on("fireant/sim-node/stats")]
    assert stats and stats[-1]["seq"] == 4 and stats[-1]["dropped"] == 0
