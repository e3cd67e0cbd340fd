"""Issue 12, points 3 and 4: the watchdog (app/watchdog.py) and the boot-loop safe mode.

CPython, in-process on the sim board against Mosquitto: a hung task (mqtt_as's
lock held for ever) and a dead reconnect loop stop the WDT's feeding and reset
the board with the reason in RTC memory; a broker outage and a Wi-Fi outage many
times the bounds long do not; three MemoryError crashes within one timeout reset
with "memory"; the boot record's rules; safe mode (no sampling, "safe_mode" on the
status topic) left by command. Unix port, across real restarts of the process on
one directory: a loop blocked past the WDT's timeout kills the process, the next
boot publishes why; crash after crash early in boot ends in safe mode, which a
stable run clears.
"""
import asyncio
import json
import time

import machine
import paho.mqtt.publish as mqtt_publish
import pytest
import simboard

from sim import unixport
from sim.faultproxy import FaultProxy
from sim.firmware import running, sim_config, until
from sim.mosquitto import PASSWORD, USER, Subscriber

from app import watchdog  # noqa: E402  (sim.firmware put the sim board on the path)
from app.node import Node, supervise  # noqa: E402


@pytest.fixture
def flash(tmp_path, monkeypatch):
    """The board's directory: RTC memory and the reset cause are files in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def record(flash):
    """What RTC memory holds: (crashes in a row, safe mode, reason)."""
    magic, n, safe, reason = (flash / "rtc_memory").read_bytes().split(b" ", 3)
    assert magic == b"fireant"
    return int(n), int(safe), reason


def rebooted(flash, cause):
    """The chip's own record of why it reset (sim/board/machine.py reads it once)."""
    (flash / "reset_cause").write_text(str(cause))


def watched(broker, timeout_s=1, **sections):
    sections.setdefault("mqtt", {})
    return sim_config(broker, watchdog={"timeout_s": timeout_s}, **sections)


def test_boot_record_counts_only_early_crashes_in_a_row(flash):
    assert watchdog.boot(3) == (False, b"power-on")
    assert record(flash) == (0, 0, b"")
    for n in (1, 2):  # the chip's WDT reset, no reason of ours: the chip's
        rebooted(flash, machine.WDT_RESET)
        assert watchdog.boot(3) == (False, b"watchdog")
        assert record(flash)[:2] == (n, 0)
    node = Node("t")
    watchdog.reset(node, b"hung: sampler")  # the third, with our reason
    rebooted(flash, machine.SOFT_RESET)
    assert watchdog.boot(3) == (True, b"hung: sampler")
    assert record(flash) == (3, 1, b"")
    node.safe_mode = True
    watchdog.reset(node, b"memory")  # a crash in safe mode: still safe mode
    rebooted(flash, machine.SOFT_RESET)
    assert watchdog.boot(3) == (True, b"memory")
    watchdog.reset(node, b"safe mode off")  # asked for: no crash, safe mode over
    rebooted(flash, machine.SOFT_RESET)
    assert watchdog.boot(3) == (False, b"safe mode off")
    assert record(flash) == (0, 0, b"")
    for _ in range(3):
        rebooted(flash, machine.SOFT_RESET)  # machine.reset() with no reason of ours: the restart command
        assert watchdog.boot(1) == (False, b"reset")
    rebooted(flash, machine.WDT_RESET)
    assert watchdog.boot(0) == (False, b"watchdog")  # crashes 0: never safe mode
    for _ in range(5):
        rebooted(flash, machine.PWRON_RESET)
        assert watchdog.boot(1) == (False, b"power-on")  # a power cut forgets it all


async def test_a_hung_publisher_stops_the_feeding_and_resets_with_its_reason(broker, observer, flash):
    """mqtt_as's lock held for ever (a publish abandoned mid-flight): the publisher
    stops moving; after its bound the WDT goes unfed and the board resets."""
    async with running(watched(broker, device="wd-hung")) as fw:
        await until(lambda: len(observer.readings()) >= 3 and fw.node.broker_up)
        assert machine.resets == 0
        await fw.client.lock.acquire()  # never released
        taken = time.monotonic()
        await until(lambda: machine.resets >= 1, 20)
        waited = time.monotonic() - taken
    assert 5 <= waited <= 15, waited  # timeout_s 1 + the 5 s restart pause, then the 1 s check
    n, safe, reason = record(flash)
    assert reason in (b"hung: publisher", b"hung: status"), reason
    await asyncio.sleep(0)


async def test_long_broker_and_wifi_outages_never_reset(broker, observer, flash):
    """Outages several times every bound long (timeout 6 s, the reconnect loop's 12 s):
    the publisher waits on mqtt_as's reconnect loop, which keeps trying: fed all along."""
    proxy = FaultProxy(broker.port)
    await proxy.start()
    dev = "wd-outage"
    # One reading a second: the 64-reading queue holds each outage whole.
    async with running(watched(broker, device=dev, mqtt={"port": proxy.port}, sensor={"interval_s": 1})) as fw:
        await until(lambda: fw.node.broker_up and len(observer.readings()) >= 2)
        proxy.set_mode("blackhole")  # a half-open path: packets vanish, the worst wait
        await until(lambda: not fw.node.broker_up, 30)
        await asyncio.sleep(30)
        assert fw.node.broker_up is False and machine.resets == 0 and machine.wdt_resets == 0
        proxy.set_mode("pass")
        await until(lambda: fw.node.broker_up, 30)
        await until(lambda: not len(fw.backlog), 30)  # drained: the next outage starts with the queue empty
        simboard.set(link=False)  # and the Wi-Fi
        await until(lambda: not fw.node.wifi_up, 10)
        await asyncio.sleep(25)
        simboard.set(link=True)
        await until(lambda: fw.node.broker_up, 40)
        target = fw.node.seq
        await until(lambda: any(r["seq"] >= target for r in observer.readings() if r["device"] == dev), 30)
        assert machine.resets == 0 and machine.wdt_resets == 0
        assert fw.node.restarts == 0
    seqs = sorted({r["seq"] for r in observer.readings() if r["device"] == dev})
    assert seqs == list(range(1, seqs[-1] + 1)) and fw.node.dropped == 0  # and nothing lost meanwhile


async def test_a_dead_reconnect_loop_resets(broker, observer, flash):
    """mqtt_as's _keep_connected ended (a MemoryError in it, issue 12): it no longer
    looks at the station, and once the connection goes nothing would reconnect."""
    proxy = FaultProxy(broker.port)
    await proxy.start()
    async with running(watched(broker, device="wd-loop", mqtt={"port": proxy.port})) as fw:
        await until(lambda: fw.node.broker_up and len(observer.readings()) >= 3)
        loop = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__.endswith("_keep_connected")]
        assert len(loop) == 1
        loop[0].cancel()
        proxy.set_mode("reset")  # the connection goes
        await until(lambda: machine.resets >= 1, 40)
        assert not fw.node.broker_up
    assert record(flash)[2] == b"mqtt reconnect loop dead"


async def test_memory_errors_in_a_row_reset(flash):
    """A heap too broken up to allocate: MemoryError crash after crash (three within one timeout)."""
    node = Node("t")
    node.restart_ms = 100

    async def short_of_memory():
        raise MemoryError("memory allocation failed, allocating 1024 bytes")

    jobs = [("greedy", short_of_memory, ()), ("watchdog", watchdog.run, (node, b"", 5000, 5000, 60000))]
    task = asyncio.create_task(supervise(node, jobs))
    try:
        await until(lambda: machine.resets >= 1, 20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert node.alive[6] >= 3  # the MemoryError crashes supervise() counted
    assert record(flash)[2] == b"memory"


async def test_safe_mode_after_a_boot_loop_and_left_by_command(broker, observer, flash):
    """Three crashes in a row early in their boots: no sampling, no publishing,
    the status topic says safe_mode, the commands work; {"cmd": "safe_mode", "on": false} ends it."""
    dev = "wd-safe"
    (flash / "config.json").write_text("{}")
    (flash / "rtc_memory").write_bytes(b"fireant 2 0 hung: sampler")
    rebooted(flash, machine.SOFT_RESET)
    async with running(watched(broker, device=dev)) as fw:
        assert fw.node.safe_mode and fw.status.reset == b'"hung: sampler"'
        assert {j[0] for j in fw.jobs} == {"heartbeat", "connect", "wifi", "status", "inbox", "watchdog"}
        await until(lambda: any(p == "safe_mode" for _, _, p, r in observer.on("fireant/%s/status" % dev)))
        await until(lambda: [json.loads(p) for _, _, p, _ in observer.on("fireant/%s/stats" % dev)])
        stats = [json.loads(p) for _, _, p, _ in observer.on("fireant/%s/stats" % dev)]
        assert stats[0]["reset"] == "hung: sampler" and stats[0]["seq"] == 0
        await asyncio.sleep(2)  # subscribed by now
        before = machine.Pin.writes
        await asyncio.sleep(1)
        assert machine.Pin.writes > before  # the LED blinks its pattern
        assert fw.node.seq == 0 and not observer.readings()  # no sampling
        result = "fireant/%s/cmd/result" % dev
        mqtt_publish.single("fireant/%s/cmd" % dev, json.dumps({"cmd": "safe_mode", "on": False}), qos=1,
                            hostname="127.0.0.1", port=broker.port, auth={"username": USER, "password": PASSWORD})
        await until(lambda: observer.on(result))
        assert json.loads(observer.on(result)[0][2]) == {"cmd": "safe_mode", "ok": True}
        await until(lambda: machine.resets >= 1)
    assert record(flash) == (3, 0, b"safe mode off")
    rebooted(flash, machine.SOFT_RESET)
    assert watchdog.boot(3) == (False, b"safe mode off")  # the next boot: its tasks again


async def test_the_safe_mode_command_outside_safe_mode_is_refused(broker, observer, flash):
    dev = "wd-nosafe"
    async with running(watched(broker, device=dev)) as fw:
        await until(lambda: fw.node.broker_up and len(observer.readings()) >= 3)
        await asyncio.sleep(1)
        result = "fireant/%s/cmd/result" % dev
        mqtt_publish.single("fireant/%s/cmd" % dev, json.dumps({"cmd": "safe_mode", "on": False}), qos=1,
                            hostname="127.0.0.1", port=broker.port, auth={"username": USER, "password": PASSWORD})
        await until(lambda: observer.on(result))
    assert json.loads(observer.on(result)[0][2]) == {"cmd": "safe_mode", "ok": False, "error": "not in safe mode"}
    assert machine.resets == 0


# The unix port: the real interpreter, a reboot is a second run in the same directory.

HEAP = "160K"


def _run(tmp_path, raw, **kw):
    """One boot on the board's directory; the stand-in broker's log starts afresh (it
    is in the directory too): run.messages are this boot's only."""
    (tmp_path / "broker.log").unlink(missing_ok=True)
    return unixport.run(raw, heapsize=HEAP, libs="standin", workdir=str(tmp_path), **kw)


def _stats(run, dev):
    return [json.loads(p) for p in run.on("fireant/%s/stats" % dev)]


def _raw(dev, **watch):
    raw = sim_config(None, device=dev, sensor={"interval_s": 0.5}, watchdog=dict({"timeout_s": 2}, **watch))
    raw["mqtt"]["cmd_topic"] = ""
    return raw


def test_unix_a_blocked_loop_resets_and_the_next_boot_says_why(tmp_path):
    raw = _raw("wd-unix")
    first = _run(tmp_path, raw, seconds=30,
                         board={"dht_block_ms": 10000})  # the loop held 10 s: past the WDT's 8 s
    assert first.returncode == -9 and first.logged("machine: watchdog reset"), first.output()
    assert first.seconds < 28, first.seconds
    second = _run(tmp_path, raw, seconds=3,
                          board={"dht_block_ms": 0}, until=lambda r: _stats(r, "wd-unix"), max_seconds=20)
    assert second.returncode == 0 and not second.logged("Traceback"), second.output()
    stats = _stats(second, "wd-unix")
    assert stats[0]["reset"] == "watchdog" and "safe_mode" not in second.on("fireant/wd-unix/status")
    assert second.readings()
    third = _run(tmp_path, raw, seconds=3,
                         until=lambda r: _stats(r, "wd-unix"), max_seconds=20)
    assert _stats(third, "wd-unix")[0]["reset"] == "power-on"  # Ctrl-C, then a new process: the sim's power cycle


def test_unix_boot_loop_ends_in_safe_mode_which_a_stable_run_clears(tmp_path):
    dev = "wd-loop-unix"
    raw = _raw(dev, stable_s=4)
    for n in range(3):  # each boot hangs 9 s into it: three crashes within a minute of boot
        r = _run(tmp_path, raw, seconds=30,
                         board={"dht_block_ms": 9000})
        assert r.returncode == -9 and r.logged("machine: watchdog reset"), r.output()
        assert not r.logged("SAFE MODE")
    safe = _run(tmp_path, raw, seconds=30)
    assert safe.logged("SAFE MODE"), safe.output()
    assert safe.logged("watchdog: reset: safe mode: stable") and safe.logged("machine: reset"), safe.output()
    assert ("fireant/%s/status" % dev, True, "safe_mode") in safe.messages  # retained, on connecting
    assert not safe.readings() and not safe.logged(" sensor:")  # tasks down: the sensor left alone
    assert _stats(safe, dev)[0]["reset"] == "watchdog"
    normal = _run(tmp_path, raw, seconds=3,
                          board={"dht_block_ms": 0}, until=lambda r: r.readings() and _stats(r, dev), max_seconds=20)
    assert not normal.logged("SAFE MODE") and normal.readings(), normal.output()
    assert _stats(normal, dev)[0]["reset"] == "safe mode: stable"
    assert "online" in normal.on("fireant/%s/status" % dev)
