"""Fleet operations: deploy.py on several boards at once (several emulated boards driven
by real mpremote, in parallel, one of them failing), and deploy.py monitor's table of
every node against the real Mosquitto."""
import io
import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest

import deploy
from deployer.monitor import Fleet
from sim.emulator import Emulator
from sim.firmware import sim_config
from sim.mosquitto import PASSWORD, USER
# tests/ is on sys.path under pytest; index and settings are its fixtures, shared
from test_deploy import DEPLOY, ROOT, index, packages, settings, snapshot, wait_for  # noqa: F401


def board(tmp_path, name, **kw):
    log = tmp_path / (name + "-broker.log")
    emu = Emulator(tmp_path / name, env={"FIREANT_SIM_BROKER_LOG": str(log)}, **kw)
    emu.broker_log = log
    return emu


def summary_lines(out, ports):
    """{port: its summary line} from after "Summary:"."""
    tail = out.split("\nSummary:\n", 1)[1].splitlines()
    return {port: next(ln for ln in tail if ln.startswith(port + " ")) for port in ports}


def board_lines(out, port):
    return [ln[len(port) + 2:] for ln in out.splitlines() if ln.startswith(port + ": ")]


def test_several_boards_in_parallel_one_failing_stops_only_itself(tmp_path, index, settings, capsys):
    missing = "/dev/fireant-no-such-board"
    with board(tmp_path, "a") as a, board(tmp_path, "b") as b, board(tmp_path, "small", flash_kb=48) as small:
        ports = [a.port, b.port, small.port, missing]
        cfg, sec = settings
        args = ["--index", index.url, "--config", str(cfg), "--secrets", str(sec)]
        for port in ports:
            args += ["--port", port]
        t = time.monotonic()
        p = subprocess.run(DEPLOY + args, capture_output=True, text=True, timeout=180, cwd=ROOT)
        took = time.monotonic() - t
        assert p.returncode == 2, p.stdout + p.stderr
        err = p.stderr.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert err == ("deploy.py: 2 of 4 boards failed (%s, %s): see the summary above; run again for those (only "
                       "what is missing is sent)" % (small.port, missing))
        assert "Deploying to 4 boards in parallel: %s" % ", ".join(ports) in p.stdout
        rows = summary_lines(p.stdout, ports)
        for good in (a, b):
            mine = board_lines(p.stdout, good.port)  # its output, prefixed with its port, whole lines
            uploaded = [ln.split()[1] for ln in mine if ln.startswith("Uploading")]
            assert "app/node.mpy" in uploaded and "main.py" in uploaded and "config.json" in uploaded
            assert mine[0].startswith("Board: MicroPython") and mine[-1] == "Soft reset."
            assert re.fullmatch(r"%s +linux v[\d.]+ +files +%d files written +ok"
                                % (re.escape(good.port), len(uploaded)), rows[good.port]), rows[good.port]
            flash = snapshot(good.flash)
            assert sorted(f for f in flash if not f.startswith("lib/")) == sorted(uploaded)
            assert flash["main.py"][0] == open(os.path.join(ROOT, "main.py"), "rb").read()
            assert "lib/mqtt_as/__init__.py" in flash  # mip, from the index, for each board
        assert re.match(r"%s +linux v[\d.]+ +files +0 files written +error: not enough flash: this deploy needs "
                        r"about \d+ KB, the board has \d+ KB free" % re.escape(small.port), rows[small.port]), \
            rows[small.port]
        assert "deploy.py: not enough flash" in board_lines(p.stdout, small.port)[-1]
        assert snapshot(small.flash) == {}
        assert re.fullmatch(r"%s +- +- +- +error: no such port %s: check --port .*" % (missing, missing),
                            rows[missing]), rows[missing]
        # Both good boards were reset and run the firmware they got: readings at their brokers.
        for good in (a, b):
            assert wait_for(lambda: good.broker_log.exists() and "sensors/environmental" in good.broker_log.read_text())
    with capsys.disabled():
        print("\n4 boards in one deploy (2 written, 2 failing) on the emulator: %.1f s" % took)


def test_all_dry_run_plans_every_attached_board_and_writes_nothing(tmp_path, index, settings, monkeypatch, capsys):
    from serial.tools import list_ports

    class Port:
        def __init__(self, device, vid):
            self.device, self.vid = device, vid

    with board(tmp_path, "a") as a, board(tmp_path, "b", romfs_kb=320, platform="esp8266") as b:
        os.makedirs(os.path.join(a.flash, "app"))
        with open(os.path.join(a.flash, "app", "stale.py"), "w") as f:
            f.write("print('left from an older version')\n")
        before = {a.port: snapshot(a.flash), b.port: snapshot(b.flash)}
        monkeypatch.setattr(list_ports, "comports", lambda: [Port("/dev/ttyS0", None), Port(b.port, 0x10C4),
                                                             Port(a.port, 0x10C4)])
        requests = len(index.requests)
        cfg, sec = settings
        rc = deploy.main(["--all", "--dry-run", "--index", index.url, "--config", str(cfg), "--secrets", str(sec),
                          "--libs", str(standin_libs(tmp_path))])
        out = capsys.readouterr().out
        assert rc == 0, out
        ports = sorted([a.port, b.port])
        assert "Dry run on 2 boards in parallel: %s" % ", ".join(ports) in out  # /dev/ttyS0 has no USB: not a board
        assert "/dev/ttyS0" not in out
        rows = summary_lines(out, ports)
        assert "%s: Delete (1): app/stale.py" % a.port in out
        assert "%s: Install with mip from %s" % (a.port, index.url) in out
        upload = re.search(r"^%s: Upload \((\d+)\)" % re.escape(a.port), out, re.M).group(1)
        assert re.fullmatch(r"%s +linux v[\d.]+ +files +would write %s files +ok" % (re.escape(a.port), upload),
                            rows[a.port]), rows[a.port]
        assert "%s: Layout: ROMFS (a 320 KB partition)" % b.port in out
        assert re.fullmatch(r"%s +esp8266 v[\d.]+ +romfs +would write 4 files and the ROMFS image +ok"
                            % re.escape(b.port), rows[b.port]), rows[b.port]
        assert {a.port: snapshot(a.flash), b.port: snapshot(b.flash)} == before
        with open(b.romfs, "rb") as f:
            assert f.read() == b"\xff" * 320 * 1024
        assert len(index.requests) == requests
    assert sys.stdout is not None and "PerThread" not in type(sys.stdout).__name__  # stdout given back


def standin_libs(tmp_path):
    libs = tmp_path / "libs"
    for files in packages().values():
        for rel, data in files.items():
            (libs / rel).parent.mkdir(parents=True, exist_ok=True)
            (libs / rel).write_bytes(data)
    return libs


def test_one_board_commands_refuse_several_ports(settings):
    cfg, sec = settings
    for cmd in ("config", "logs", "deps"):
        p = subprocess.run(DEPLOY + [cmd, "--port", "/dev/x1", "--port", "/dev/x2", "--config", str(cfg),
                                     "--secrets", str(sec)], capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert p.returncode == 2
        assert p.stderr.strip() == ("deploy.py: this command works on one board, and --port names 2 (/dev/x1, "
                                    "/dev/x2): name one")


def test_all_without_boards_is_one_line(settings, monkeypatch, capsys):
    from serial.tools import list_ports

    monkeypatch.setattr(list_ports, "comports", lambda: [])
    assert deploy.main(["--all", "--config", str(settings[0]), "--secrets", str(settings[1])]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("deploy.py: --all: no board found: plug them in with USB data cables (some cables only "
                           "charge), or name their ports with --port")


# -- the fleet's table --------------------------------------------------------------------

def table_rows(text):
    """{device: [cells]} of the last table printed."""
    last = text.rsplit("\nFleet: ", 1)[1].splitlines()
    head = [c.strip() for c in last[1].strip("|").split("|")]
    rows = {}
    for ln in last[2:]:
        if not ln.startswith("| "):
            break
        cells = [c.strip() for c in ln.strip("|").split("|")]
        rows[cells[0]] = dict(zip(head, cells))
    return "Fleet: " + last[0], rows


def test_monitor_shows_every_node_in_one_table(broker, tmp_path):
    import paho.mqtt.client as paho

    raw = sim_config(broker, sensor={"interval_s": 2})
    cfg, sec = tmp_path / "config.json", tmp_path / "secrets.json"
    cfg.write_text(json.dumps(raw))
    sec.write_text("{}")
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="fleet-monitor-test")
    pub.username_pw_set(USER, PASSWORD)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    nodes = ("fleet-a", "fleet-b", "fleet-c")
    stats = {"fleet-a": {"published": 41, "queued": 0, "dropped": 0, "sensor_errors": 1, "wifi_drops": 0,
                         "broker_connects": 1, "restarts": 0},
             "fleet-b": {"published": 7, "queued": 3, "dropped": 2, "sensor_errors": 0, "wifi_drops": 4,
                         "broker_connects": 5, "restarts": 1}}

    def send(topic, payload, retain=False):
        pub.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    # Retained, as the nodes leave them: seen by a monitor started later.
    send("fireant/fleet-a/status", "online", retain=True)
    send("fireant/fleet-c/status", "offline", retain=True)  # the broker's last will for a node gone
    send("fireant/fleet-a/stats", json.dumps(dict(stats["fleet-a"], device="fleet-a")), retain=True)
    p = subprocess.Popen(DEPLOY + ["monitor", "--config", str(cfg), "--secrets", str(sec), "--seconds", "40",
                                   "--every", "0.5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    out = b""

    def read_until(marker, timeout=20):
        nonlocal out
        end = time.monotonic() + timeout
        while marker not in out and time.monotonic() < end and p.poll() is None:
            if select.select([p.stdout], [], [], 0.5)[0]:
                out += os.read(p.stdout.fileno(), 65536)
        return marker in out

    try:
        assert read_until(b"fireant/fleet-c/status offline"), p.stderr.read1().decode() if p.poll() else out
        # The table so far: the retained ones.
        assert read_until(b"| fleet-c ")
        send("fireant/fleet-b/status", "online", retain=True)
        send("fireant/fleet-b/stats", json.dumps(dict(stats["fleet-b"], device="fleet-b")), retain=True)
        for device, seq, t in (("fleet-a", 41, 21.5), ("fleet-b", 6, 18.0), ("fleet-b", 7, 18.25),
                               ("fleet-a", 42, 21.75)):
            send("sensors/environmental", json.dumps({"device": device, "seq": seq, "uptime_ms": seq * 2000,
                                                      "temperature_C": t, "humidity": 40 + seq % 10}))
        assert read_until(b"21.8")  # fleet-a's last reading in a line (the log) and in a table
        time.sleep(1.5)  # a table printed after the last message
    finally:
        p.send_signal(signal.SIGINT)
        rest, err = p.communicate(timeout=20)
        out += rest
        for device in nodes:
            for kind in ("status", "stats"):
                send("fireant/%s/%s" % (device, kind), b"", retain=True)
        pub.loop_stop()
        pub.disconnect()
    text = out.decode()
    assert p.returncode == 0, err.decode()
    title, rows = table_rows(text)  # the table at the end
    assert re.match(r"Fleet: \d+ devices, \d+ online, \d+ not \(\d\d:\d\d:\d\d\)$", title)
    a, b, c = (rows[n] for n in nodes)
    assert (a["status"], a["seq"], a["temp C"], a["humid %"]) == ("online", "42", "21.8", "42.0")
    assert (b["status"], b["seq"], b["temp C"], b["humid %"]) == ("online", "7", "18.2", "47.0")
    assert (c["status"], c["seq"], c["temp C"], c["last s"]) == ("offline", "-", "-", "-")  # no reading seen
    for row, s in ((a, stats["fleet-a"]), (b, stats["fleet-b"])):
        got = {k: row[h] for k, h in Fleet.COUNTERS}
        assert got == {k: str(v) for k, v in s.items()}
        assert 0 <= int(row["last s"]) < 30
    assert all(c[h] == "-" for _, h in Fleet.COUNTERS)
    # Piped, every message is a line as well (the readings table of before, gaps marked).
    assert re.search(r"^fleet-a +42 +21\.8 +42\.0 ", text, re.M)
    assert text.count("\nFleet: ") >= 2  # printed while it changed, and at the end


def test_fleet_table_on_a_terminal_is_redrawn_in_place():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    fleet = Fleet("fireant/{device}/status", "fireant/{device}/stats", out)
    fleet.status("fireant/n-2/status", "online")
    fleet.status("fireant/n-1/status", "offline")
    fleet.reading({"device": "n-2", "seq": 9, "temperature_C": 22.0, "humidity": 51.0}, time.monotonic())
    fleet.status("fireant/n-2/stats", json.dumps({"published": 9, "dropped": 0}))
    fleet.status("other/topic", "ignored")  # not a node's: no row, no line on a terminal
    screen = out.getvalue().split("\x1b[J")[-1]
    lines = screen.splitlines()
    assert lines[0].startswith("Fleet: 2 devices, 1 online, 1 not") and lines[1] == Fleet.HEAD
    assert [ln.split("|")[1].strip() for ln in lines[2:]] == ["n-1", "n-2"]  # one row each, by name
    assert "| online  |      9 |   22.0 |    51.0 |" in lines[3] and "other/topic" not in out.getvalue()
    assert out.getvalue().count("\x1b[3A") == 1 and out.getvalue().count("\x1b[4A") == 3  # up over the last drawing
