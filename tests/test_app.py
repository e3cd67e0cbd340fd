"""The whole firmware on the sim board against a real Mosquitto, judged from a
subscriber's side as a user's monitoring would see it."""
import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import simboard

from sim.firmware import running, sim_config, until
from sim.mosquitto import PASSWORD, Subscriber

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTERVAL_MS = 200
SLACK_MS = 100  # event-loop jitter on a loaded 2-core CI machine; bench/ reports the real figure


def max_gap_ms(readings):
    ticks = [r["uptime_ms"] for r in readings]
    return max(b - a for a, b in zip(ticks, ticks[1:]))


def unique_in_order(readings):
    """Drop QoS 1 redeliveries (same seq again) and check what is left is in order."""
    seen, out = set(), []
    for r in readings:
        if r["seq"] not in seen:
            seen.add(r["seq"])
            out.append(r)
    return out


async def test_readings_arrive_with_every_field(broker, observer):
    async with running(sim_config(broker)) as fw:
        await until(lambda: len(observer.readings()) >= 5)
    r = observer.readings()[0]
    # The seed's fields, and boot (with seq, unique across reboots) and ts (null: no clock in sim_config).
    assert set(r) - {"_at"} == {"device", "location", "seq", "uptime_ms", "temperature_C",
                                "temperature_F", "humidity", "boot", "ts"}
    assert (r["device"], r["location"], r["seq"], r["boot"], r["ts"]) == ("sim-node", "test bench", 1, fw.node.boot, None)
    assert (r["temperature_C"], r["temperature_F"], r["humidity"]) == (21.5, 70.7, 45.0)
    assert fw.node.restarts == 0


async def test_wifi_drop_does_not_delay_sampling_and_loses_nothing(broker, observer):
    async with running(sim_config(broker)) as fw:
        await until(lambda: len(observer.readings()) >= 5)
        simboard.set(link=False)
        await until(lambda: not fw.node.broker_up)
        dropped_at = fw.node.seq
        await asyncio.sleep(3)  # 15 intervals without a network
        taken_offline = fw.node.seq - dropped_at
        simboard.set(link=True)
        await until(lambda: fw.node.published >= fw.node.seq > dropped_at + taken_offline, timeout=30)
        await until(lambda: observer.readings() and observer.readings()[-1]["seq"] >= fw.node.published)
    readings = observer.readings()
    unique = unique_in_order(readings)
    seqs = [r["seq"] for r in unique]
    assert taken_offline >= 12  # the sampler kept its cadence while the link was down
    assert seqs == list(range(1, seqs[-1] + 1))  # nothing lost, in order
    assert max_gap_ms(unique) <= INTERVAL_MS + SLACK_MS
    assert fw.node.dropped == 0
    def live():  # not the retained copies delivered on subscribing
        return [m[2] for m in observer.on("fireant/sim-node/status") if not m[3]]

    def changes():  # an "online" whose PUBACK the drop cut off is sent again after it (at least once)
        out = live()
        return [s for i, s in enumerate(out) if not i or s != out[i - 1]]

    # online, the will while gone, online again, and the goodbye at stop
    await until(lambda: len(changes()) >= 4, timeout=5)
    assert changes() == ["online", "offline", "online", "offline"]


async def test_boots_and_senses_with_no_network_at_all(broker, observer):
    simboard.set(link=False)
    async with running(sim_config(broker)) as fw:
        await until(lambda: fw.node.seq >= 10)
        assert fw.node.state() == 2  # NO_WIFI: the heartbeat shows it
        assert not observer.readings()
        simboard.set(link=True)
        await until(lambda: len(observer.readings()) >= fw.node.seq >= 10, timeout=30)
    seqs = [r["seq"] for r in unique_in_order(observer.readings())]
    assert seqs[:10] == list(range(1, 11))


async def test_passwords_never_appear_in_the_log(broker, observer, capsys):
    raw = sim_config(broker)
    raw["mqtt"]["password"] = "not-the-password"  # refused: the log explains, without the secret
    async with running(raw) as fw:
        await until(lambda: fw.node.seq >= 10)
        await asyncio.sleep(1)
    out = capsys.readouterr().out
    assert "cannot connect" in out and "not authorised" in out  # Mosquitto refuses a bad password so
    assert "not-the-password" not in out and "wifi-pass" not in out


def test_run_stops_cleanly_on_ctrl_c(broker, tmp_path):
    """app.run() as main.py calls it: Ctrl-C disconnects, says offline, turns the LED off
    and returns (to the REPL on a board)."""
    raw = sim_config(broker)
    secrets = {"mqtt": {"password": raw["mqtt"].pop("password")}, "wifi": {"password": raw["wifi"].pop("password")}}
    (tmp_path / "config.json").write_text(json.dumps(raw))
    (tmp_path / "secrets.json").write_text(json.dumps(secrets))
    script = ("import sys; sys.path.insert(0, %r)\n"
              "from sim import firmware\n"
              "import app, machine\n"
              "app.run()\n"
              "print('back at the prompt, LED level', machine.Pin.levels[2])\n") % ROOT
    watcher = Subscriber(broker, topics=("fireant/+/status", "sensors/environmental"))
    proc = subprocess.Popen([sys.executable, "-u", "-c", script], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while len(watcher.readings()) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert watcher.readings(), "no readings before Ctrl-C"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        deadline = time.monotonic() + 5
        while watcher.on("fireant/sim-node/status")[-1][2] != "offline" and time.monotonic() < deadline:
            time.sleep(0.05)
        statuses = [m[2] for m in watcher.on("fireant/sim-node/status")]
    finally:
        proc.kill()
        watcher.close()
    assert proc.returncode == 0, out
    assert "app: stopped:" in out and "Traceback" not in out
    assert "back at the prompt, LED level 1" in out  # active-low LED: 1 is off
    assert statuses[-1] == "offline"
    assert PASSWORD not in out
