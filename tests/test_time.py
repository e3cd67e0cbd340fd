"""True time on every reading, and the telemetry (issue 11, points 3 and 4).

Readings carry ts (UTC seconds, ms) worked out from the NTP answer when they are
published, so a reading taken offline lands with the instant it was measured;
a per-boot id makes (boot, seq) unique across restarts; uptime_ms counts on past
ticks_ms's wrap. Asserted from what a subscriber on the real Mosquitto (CPython)
or the broker log (unix port) sees, against the host's UTC.
"""
import asyncio
import json
import os
import time

import hostpy
import network
import pytest
import simboard

from sim import unixport
from sim.firmware import running, sim_config, until
from sim.ntpserver import NtpServer, ThreadedNtpServer

INTERVAL_S = 0.2
TOLERANCE_S = 1.0  # a loaded 2-core host: loop latency, NTP's half round trip


def readings(sub, device):
    return [(at, json.loads(p)) for at, t, p, _ in list(sub.messages) if t == "sensors/environmental"
            and json.loads(p)["device"] == device]


def stats(sub, device):
    return [(at, json.loads(p)) for at, t, p, _ in list(sub.messages) if t == "fireant/%s/stats" % device]


def wall(at):
    """A Subscriber's arrival time (monotonic) as UTC seconds."""
    return at + time.time() - time.monotonic()


@pytest.fixture
async def ntp(monkeypatch):
    server = NtpServer()
    await server.start()
    monkeypatch.setattr(network, "NTP_PORT", server.port)
    yield server
    await server.close()


def clocked(broker, device, ntp=None, **sections):
    return sim_config(broker, device=device, sensor={"interval_s": INTERVAL_S},
                      ntp=dict({"server": "127.0.0.1", "resync_s": 60, "timeout_s": 2}, **(ntp or {})), **sections)


def assert_measured_instants(got):
    """Consecutive readings' ts step as their uptime_ms does (the same clock, to the ms)."""
    for (_, a), (_, b) in zip(got, got[1:]):
        assert abs((b["ts"] - a["ts"]) * 1000 - (b["uptime_ms"] - a["uptime_ms"])) <= 2, (a, b)


async def test_every_reading_carries_utc_and_the_boot_id(broker, observer, ntp):
    dev = "time-live"
    powered = time.time()
    async with running(clocked(broker, dev)) as fw:
        await until(lambda: len(readings(observer, dev)) >= 20)
    got = readings(observer, dev)
    assert ntp.queries >= 1
    assert abs(got[0][1]["ts"] - powered) <= TOLERANCE_S  # the first taken at once, sent after the connect
    for at, r in got:
        assert r["boot"] == fw.node.boot and len(r["boot"]) == 8
        assert wall(at) - r["ts"] >= -0.05, (wall(at), r)  # never after it arrived
    for at, r in got[-5:]:  # the backlog drained: published within moments of being taken
        assert wall(at) - r["ts"] <= TOLERANCE_S, (wall(at), r)
    assert_measured_instants(got)


async def test_a_slow_name_lookup_does_not_skew_the_clock(broker, ntp, monkeypatch):
    """The NTP answer is placed half its own round trip back, not half of the
    name lookup's too: a DNS reply 1.5 s late skewed every ts by ~0.75 s."""
    from sim.dnsserver import DnsServer

    dns = DnsServer({"ntp.test": "127.0.0.1"})
    monkeypatch.setattr(network, "DNS_PORT", await dns.start())
    dns.set_mode("delay", 1.5)
    try:
        async with running(clocked(broker, "time-dns", ntp={"server": "ntp.test", "timeout_s": 3})) as fw:
            await until(lambda: fw.node.synced is not None)
            s, ms = fw.node.utc(fw.node.uptime())
            skew = s + ms / 1000 - time.time()
    finally:
        await dns.close()
    assert abs(skew) < 0.3, skew


async def test_readings_taken_offline_from_power_on_are_back_filled(broker, observer, ntp):
    """No Wi-Fi at power-on for 3 s: the backlog drained once NTP has answered lands
    with the instants the readings were measured, not those they were sent."""
    dev = "time-offline"
    simboard.set(link=False)
    powered = time.time()
    async with running(clocked(broker, dev)) as fw:
        await asyncio.sleep(3)
        assert fw.node.synced is None and fw.node.seq >= 10
        taken_offline = fw.node.seq
        simboard.set(link=True)
        await until(lambda: any(r["seq"] > taken_offline + 5 for _, r in readings(observer, dev)))
    got = readings(observer, dev)
    assert [r["seq"] for _, r in got][:taken_offline] == list(range(1, taken_offline + 1))  # all of them, in order
    first = got[0][1]
    assert abs(first["ts"] - powered) <= TOLERANCE_S, (first, powered)
    for at, r in got[:taken_offline]:
        assert wall(at) - r["ts"] >= 3 - 3 * INTERVAL_S - TOLERANCE_S * (r["seq"] / taken_offline), (wall(at), r)
    assert_measured_instants(got)


@pytest.fixture
def near_the_wrap():
    """ticks_ms 1.5 s before its 2^30 wrap (12.4 days on a board), for one test."""
    t0 = hostpy._t0
    hostpy.start_at((1 << 30) - 1500)
    simboard.set(link=False)
    simboard.set(link=True)  # the medium's "up since" on the new clock
    yield
    hostpy._t0 = t0  # the clock the rest of the session runs on
    simboard.set(link=False)
    simboard.set(link=True)


async def test_uptime_and_ts_run_on_across_the_ticks_wrap(broker, observer, ntp, near_the_wrap):
    dev = "time-wrap"
    async with running(clocked(broker, dev)) as fw:
        await until(lambda: any(r["uptime_ms"] >= (1 << 30) + 2000 for _, r in readings(observer, dev)))
        assert time.ticks_ms() < 1 << 29  # ticks_ms itself wrapped
    got = readings(observer, dev)
    ups = [r["uptime_ms"] for _, r in got]
    assert ups[0] < 1 << 30 < ups[-1] and ups == sorted(ups)
    assert max(b - a for a, b in zip(ups, ups[1:])) <= 3 * INTERVAL_S * 1000
    for at, r in got:
        assert -0.05 <= wall(at) - r["ts"] <= 3 + TOLERANCE_S, (wall(at), r)  # queued at most for the connect
    assert_measured_instants(got)
    assert json.loads(fw.status.telemetry())["uptime_ms"] > 1 << 30


@pytest.fixture
def a_week_up():
    """ticks_ms past 2^29 (6.2 days on a board): a soft reset (deploy.py's) keeps it running."""
    t0 = hostpy._t0
    hostpy.start_at((1 << 29) + 7 * 3600 * 1000)
    yield
    hostpy._t0 = t0


def test_the_firmware_imports_after_a_soft_reset_a_week_into_uptime(a_week_up):
    # app/node.py works out the ticks period at import: a ticks_add() by more than
    # half the period raises OverflowError on a board, and import app would fail.
    import importlib

    import app.node

    node = importlib.reload(app.node).Node("week")
    assert node.uptime() >= 1 << 29 and node.taken(node.stamp()) == node.uptime()


async def test_telemetry_is_complete_periodic_and_on_demand(broker, observer, ntp):
    dev = "time-telemetry"
    async with running(clocked(broker, dev, telemetry={"interval_s": 1})) as fw:
        await until(lambda: len(stats(observer, dev)) >= 3, 10)
        n = len(stats(observer, dev))
        await fw.status.report(fw.client)  # on demand (the commands' "status")
        await until(lambda: len(stats(observer, dev)) > n, 3)
        node = fw.node
    at, s = stats(observer, dev)[-1]
    assert set(s) >= {"device", "boot", "version", "uptime_ms", "ts", "heap_free", "heap_min_free", "rssi", "ip",
                      "seq", "queued", "published", "dropped", "sensor_errors", "wifi_drops", "broker_connects",
                      "restarts", "state", "reset"}
    assert s["boot"] == node.boot and s["rssi"] == -60 and s["ip"] == "127.0.0.1" and s["state"] == "ok"
    assert s["wifi_drops"] == 0 and s["broker_connects"] == 1 and s["dropped"] == 0
    assert -0.05 <= wall(at) - s["ts"] <= TOLERANCE_S
    ats = [a for a, _ in stats(observer, dev)[:3]]
    assert all(0.5 <= b - a <= 2.5 for a, b in zip(ats, ats[1:])), ats  # every interval_s


# -- the unix port: MicroPython's own ticks, ints and str formatting

def _wall_of(run, uptime_ms):
    """The host's UTC at the node's uptime_ms, from when the run logged "starting"."""
    host_mono, node_ticks = run.started
    return host_mono + time.time() - time.monotonic() + (uptime_ms - node_ticks) / 1000


def test_unix_port_readings_have_true_time_back_filled_and_unique_ids_across_restarts(tmp_path, monkeypatch):
    raw = sim_config(None, device="unix-time", sensor={"interval_s": INTERVAL_S},
                     ntp={"server": "127.0.0.1", "resync_s": 60, "timeout_s": 2})
    runs = []
    with ThreadedNtpServer() as ntp:
        monkeypatch.setenv("FIREANT_SIM_NTP_PORT", str(ntp.port))
        # Offline from power-on for 2 s, then up; run again in the same flash (a reboot).
        for _ in range(2):
            if os.path.exists(tmp_path / "broker.log"):
                os.remove(tmp_path / "broker.log")  # the in-memory broker's log, not the board's flash
            runs.append(unixport.run(raw, [(2, {"link": True})], board={"link": False}, libs="standin",
                                     heapsize="256K", heap_every_ms=0, seconds=5, workdir=str(tmp_path)))
    ids = set()
    for run in runs:
        assert run.returncode == 0 and not run.logged("Traceback"), run.output()
        got = run.readings()
        assert len(got) >= 15 and {r["ts"] is not None for r in got} == {True}, run.output()
        offline = [r for r in got if r["uptime_ms"] < _ticks_of(run, "wifi: up")]
        assert len(offline) >= 5, run.output()
        for r in got:  # each stamped with when it was measured, offline or not
            assert abs(r["ts"] - _wall_of(run, r["uptime_ms"])) <= TOLERANCE_S, r
        for a, b in zip(got, got[1:]):
            assert abs(round((b["ts"] - a["ts"]) * 1000) - (b["uptime_ms"] - a["uptime_ms"])) <= 2, (a, b)
        ids |= {(r["boot"], r["seq"]) for r in got}
    assert runs[0].readings()[0]["boot"] != runs[1].readings()[0]["boot"]
    assert len(ids) == sum(len(r.readings()) for r in runs)  # seq restarts at 1; (boot, seq) does not repeat


def _ticks_of(run, text):
    line = run.logged(text)[0]
    return int(line[1:line.index("]")])


async def test_a_silent_ntp_server_delays_publishing_by_at_most_its_timeout(broker, observer, ntp, capsys):
    dev = "time-silent"
    ntp.set_mode("silent")
    async with running(clocked(broker, dev, ntp={"timeout_s": 1})) as fw:
        await until(lambda: fw.node.broker_up, 10)
        connected = time.monotonic()
        await until(lambda: len(readings(observer, dev)) >= 5, 10)
        first_at = readings(observer, dev)[0][0]
        assert fw.node.restarts == 0
    assert first_at - connected <= 1 + TOLERANCE_S  # the publisher waited for the first answer, no longer
    assert {r["ts"] for _, r in readings(observer, dev)} == {None}
    assert ntp.queries >= 1 and "ntp: cannot set the clock from 127.0.0.1" in capsys.readouterr().out


def test_unix_port_telemetry_tells_the_final_dropped_count_once_drained():
    """An outage longer than the queue on MicroPython: the last telemetry the broker
    holds says what the node dropped, not what it had dropped when it reconnected."""
    raw = sim_config(None, device="unix-dropped", sensor={"interval_s": INTERVAL_S}, queue={"size": 10})
    run = unixport.run(raw, [(2, {"link": False}), (6, {"link": True})], libs="standin", heapsize="256K",
                       heap_every_ms=0, seconds=16)
    assert run.returncode == 0 and not run.logged("Traceback"), run.output()
    final = json.loads(run.logged("app: stopped: ")[-1].split("app: stopped: ", 1)[1])
    told = [json.loads(p) for p in run.on("fireant/unix-dropped/stats")]
    assert final["dropped"] >= 5, final
    assert len(told) >= 2 and told[-1]["dropped"] == final["dropped"], (told, final)
    assert {"heap_free", "heap_min_free", "rssi", "ip", "queued", "version", "boot"} <= set(told[-1])
    assert 0 < told[-1]["heap_min_free"] <= told[-1]["heap_free"] and told[-1]["rssi"] == -60
