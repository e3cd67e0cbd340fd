"""deploy.py end to end: the real mpremote against the board emulator (sim/emulator.py),
libraries from a mip index on loopback holding our stand-ins (sim/mipindex.py)."""
import io
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

import deploy
from deployer import Fail
from deployer.board import find_port
from deployer.deps import DEPS_MARKER, pins
from deployer.files import check_mpy, host_libs, mpy_cross_version
from deployer.monitor import Entities
from sim import paths
from sim.emulator import Emulator
from sim.firmware import sim_config
from sim.mipindex import PackageIndex, standin_packages
from sim.mosquitto import PASSWORD, USER

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY = [sys.executable, os.path.join(ROOT, "deploy.py")]


def run(*args, timeout=120):
    return subprocess.run(DEPLOY + list(args), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def run_until(args, marker, timeout=60):
    """Run deploy.py until marker appears in its output, then Ctrl-C it; returns the output."""
    p = subprocess.Popen(DEPLOY + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    out = b""
    end = time.monotonic() + timeout
    try:
        while marker.encode() not in out and time.monotonic() < end and p.poll() is None:
            if select.select([p.stdout], [], [], 0.5)[0]:
                out += os.read(p.stdout.fileno(), 65536)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        rest, _ = p.communicate(timeout=30)
        out += rest
    return out.decode(errors="replace"), p.returncode


BOARD_OWN = {"sim-wifi.txt"}  # what the board writes itself: an ESP8266 saves the network it joins


def snapshot(flash):
    """{path: (content, mtime_ns)} of everything in the emulated flash but BOARD_OWN."""
    out = {}
    for d, _, files in os.walk(flash):
        for f in files:
            path = os.path.join(d, f)
            if os.path.relpath(path, flash) in BOARD_OWN:
                continue
            with open(path, "rb") as fh:
                out[os.path.relpath(path, flash)] = (fh.read(), os.stat(path).st_mtime_ns)
    return out


def packages():
    """What the test index serves: our stand-ins, and microdot (no stand-in: the
    real module where the host has it; elsewhere a module that says so when
    imported, which only the provisioning portal does, never these tests)."""
    out = standin_packages()
    lib = paths.lib_dir()
    data = b'raise ImportError("microdot is not on this test host: ./fireant upstream --from DIR")\n'
    if lib:
        with open(os.path.join(lib, "microdot.py"), "rb") as f:
            data = f.read()
    out["microdot"] = {"microdot.py": data}
    return out


@pytest.fixture(scope="module")
def index():
    with PackageIndex(packages(), [version for _, version in pins()]) as idx:
        yield idx


@pytest.fixture
def settings(tmp_path):
    """A config for the emulated board (the sim radio accepts any network) and its secrets."""
    raw = sim_config(None, sensor={"interval_s": 2})
    secrets = {"wifi": {"password": raw["wifi"].pop("password")}, "mqtt": {"password": raw["mqtt"].pop("password")}}
    cfg, sec = tmp_path / "config.json", tmp_path / "secrets.json"
    cfg.write_text(json.dumps(raw))
    sec.write_text(json.dumps(secrets))
    return cfg, sec


@pytest.fixture
def board(tmp_path):
    broker_log = tmp_path / "broker.log"
    with Emulator(tmp_path / "flash", env={"FIREANT_SIM_BROKER_LOG": str(broker_log)}) as emu:
        emu.broker_log = broker_log
        yield emu


def deploy_args(board, index, settings, *extra):
    cfg, sec = settings
    return ["--port", board.port, "--index", index.url, "--config", str(cfg), "--secrets", str(sec)] + list(extra)


def wait_for(cond, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_package_json_lists_every_firmware_file():
    with open(os.path.join(ROOT, "package.json")) as f:
        pkg = json.load(f)
    targets = [t for t, _ in pkg["urls"]]
    needed = ["app/" + n for n in os.listdir(os.path.join(ROOT, "app")) if n.endswith(".py")]
    needed += ["main.py", "boot.py", "config.json"]
    assert sorted(targets) == sorted(needed)
    for target, source in pkg["urls"]:
        assert os.path.isfile(os.path.join(ROOT, source)), source  # relative: resolved against the package
    with open(os.path.join(ROOT, "app", "node.py")) as f:
        version = re.search(r'^VERSION = b"([^"]+)"', f.read(), re.M).group(1)
    assert pkg["version"] == version  # mip's package and the telemetry name one release
    deps = dict(pkg["deps"])
    assert set(deps) == {"github:peterhinch/micropython-mqtt", "github:peterhinch/micropython-async/v3/primitives",
                         "github:miguelgrinberg/microdot/src/microdot/microdot.py"}
    for version in deps.values():
        assert len(version) == 40 and int(version, 16) >= 0  # a commit, not a moving branch
    assert pins() == [tuple(d) for d in pkg["deps"]]


def test_lib_is_in_every_clone_with_a_readme_naming_the_pins():
    """lib/ exists in a fresh clone (its README is tracked, the rest ignored), and the
    README says which commits go there: package.json's, never out of step."""
    tracked = subprocess.run(["git", "ls-files", "lib"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert tracked == ["lib/README.md"]
    ignored = subprocess.run(["git", "check-ignore", "lib/mqtt_as/__init__.py", "lib/README.md"], cwd=ROOT,
                             capture_output=True, text=True).stdout.split()
    assert ignored == ["lib/mqtt_as/__init__.py"]
    with open(os.path.join(ROOT, "lib", "README.md")) as f:
        readme = f.read()
    for url, commit in pins():
        assert commit in readme and url.split(":", 1)[1].split("/")[1] in readme


def test_help_lists_the_commands():
    p = run("--help")
    assert p.returncode == 0
    for word in ("--dry-run", "--port", "--layout", "sim", "monitor", "deps", "config", "logs"):
        assert word in p.stdout


def test_invalid_config_names_the_key(settings):
    cfg, sec = settings
    raw = json.loads(cfg.read_text())
    raw["mqtt"]["sever"] = raw["mqtt"].pop("server")
    cfg.write_text(json.dumps(raw))
    p = run("--port", "/dev/null", "--config", str(cfg), "--secrets", str(sec))
    assert p.returncode == 2
    assert "mqtt.sever" in p.stderr and "unknown key" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_dry_run_writes_nothing(board, index, settings):
    os.makedirs(os.path.join(board.flash, "app"))
    with open(os.path.join(board.flash, "app", "stale.py"), "w") as f:
        f.write("print('left from an older version')\n")
    before = snapshot(board.flash)
    requests = len(index.requests)
    p = run(*deploy_args(board, index, settings, "--dry-run"))
    assert p.returncode == 0, p.stderr
    assert "Install with mip" in p.stdout and "micropython-mqtt@" in p.stdout
    assert "app/node.mpy" in p.stdout and "main.py" in p.stdout
    assert "Delete (1): app/stale.py" in p.stdout
    assert snapshot(board.flash) == before
    assert len(index.requests) == requests  # nothing downloaded either


def test_deploy_boots_firmware_then_sends_only_changes(board, index, settings, tmp_path):
    out, rc = run_until(deploy_args(board, index, settings), "sim-node starting")
    assert rc == 0, out
    assert "app: sim-node starting" in out
    flash = snapshot(board.flash)
    for path in ("app/__init__.mpy", "app/node.mpy", "main.py", "boot.py", "config.json", "secrets.json",
                 "lib/mqtt_as/__init__.py", "lib/primitives/ringbuf_queue.py"):
        assert path in flash, path
    assert flash["main.py"][0] == open(os.path.join(ROOT, "main.py"), "rb").read()
    assert flash["config.json"][0] == settings[0].read_bytes()
    # The firmware runs on the emulated board: readings reach the (stand-in) broker.
    assert wait_for(lambda: board.broker_log.exists() and "sensors/environmental" in board.broker_log.read_text())

    requests = len(index.requests)
    p = run(*deploy_args(board, index, settings, "--seconds", "0"))
    assert p.returncode == 0, p.stderr
    assert "Upload (0): nothing" in p.stdout and "Libraries: up to date" in p.stdout
    assert "Uploading" not in p.stdout
    assert len(index.requests) == requests
    assert snapshot(board.flash) == flash

    raw = json.loads(settings[0].read_text())
    raw["location"] = "attic"
    settings[0].write_text(json.dumps(raw))
    with open(os.path.join(board.flash, "app", "stale.py"), "w") as f:
        f.write("print('left from an older version')\n")
    out, rc = run_until(deploy_args(board, index, settings), "sim-node starting")
    assert rc == 0, out
    assert [ln for ln in out.splitlines() if ln.startswith("Uploading")] == ["Uploading config.json (%d bytes)"
                                                                              % len(settings[0].read_bytes())]
    assert "Deleting app/stale.py" in out and not os.path.exists(os.path.join(board.flash, "app", "stale.py"))
    after = snapshot(board.flash)
    changed = sorted(k for k in after if k in flash and after[k] != flash[k])
    assert changed == ["config.json"]


def test_busy_port_is_named(board, index, settings):
    import serial

    holder = serial.Serial(board.port, 115200, exclusive=True)
    try:
        p = run(*deploy_args(board, index, settings))
    finally:
        holder.close()
    assert p.returncode == 2
    assert "board busy: %s" % board.port in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_not_enough_flash_stops_before_writing(tmp_path, index, settings):
    with Emulator(tmp_path / "small", flash_kb=48) as small:
        p = run(*deploy_args(small, index, settings))
        assert p.returncode == 2
        assert "not enough flash" in p.stderr and "KB free" in p.stderr
        assert snapshot(small.flash) == {}


def test_mip_failure_is_one_line(board, settings):
    p = run("--port", board.port, "--index", "http://127.0.0.1:9", "--config", str(settings[0]),
            "--secrets", str(settings[1]))
    assert p.returncode == 2
    assert "mip could not install micropython-mqtt@" in p.stderr and "--index" in p.stderr
    assert "Traceback" not in p.stderr


def test_device_without_micropython_is_named(settings):
    master, slave = os.openpty()  # a serial device that never answers
    try:
        p = run("--port", os.ttyname(slave), "--config", str(settings[0]), "--secrets", str(settings[1]))
    finally:
        os.close(master)
        os.close(slave)
    assert p.returncode == 2
    assert "no MicroPython REPL answered" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_port_choice(monkeypatch):
    from serial.tools import list_ports

    class Port:
        def __init__(self, device, vid):
            self.device, self.vid = device, vid

    ports = []
    monkeypatch.setattr(list_ports, "comports", lambda: ports)
    with pytest.raises(Fail, match="no board found"):
        find_port()
    ports[:] = [Port("/dev/ttyS0", None), Port("/dev/ttyUSB0", 0x10C4)]
    assert find_port() == "/dev/ttyUSB0"
    ports.append(Port("/dev/ttyACM0", 0x2E8A))
    with pytest.raises(Fail, match="several serial ports.*--port"):
        find_port()
    assert find_port("/dev/ttyACM0") == "/dev/ttyACM0"


def test_wrong_mpy_version_is_refused():
    check_mpy(0xB06, (6, 3))  # the unix port's 6.3: accepted
    check_mpy(0x106, (6, 3))  # bytecode loads across 6.x sub-versions
    with pytest.raises(Fail, match=r"wrong \.mpy version: the board loads \.mpy v5\.0, mpy-cross writes v6\.3"):
        check_mpy(0x5, (6, 3))
    with pytest.raises(Fail, match="does not report"):
        check_mpy(None, (6, 3))
    assert mpy_cross_version()[0] == 6


def test_host_deps_from_an_index(index, tmp_path):
    target = tmp_path / "lib"
    p = run("deps", "--host", "--index", index.url, "--target", str(target))
    assert p.returncode == 0, p.stderr
    standin = os.path.join(ROOT, "sim", "standin")
    for rel in ("mqtt_as/__init__.py", "primitives/ringbuf_queue.py"):
        assert (target / rel).read_bytes() == open(os.path.join(standin, rel), "rb").read()


def test_host_deps_without_network_is_one_line_and_leaves_lib(tmp_path):
    target = tmp_path / "lib"
    (target / "mqtt_as").mkdir(parents=True)
    (target / "mqtt_as" / "__init__.py").write_text("# what was there\n")
    p = run("deps", "--host", "--index", "http://127.0.0.1:9", "--target", str(target))
    assert p.returncode == 2
    assert "mip (unix port) could not install" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert (target / "mqtt_as" / "__init__.py").read_text() == "# what was there\n"


def test_sim_shows_home_assistant_style_entities_from_mosquitto():
    before = set(os.listdir(ROOT))
    p = run("sim", "--seconds", "4", "--interval", "0.5", "--day-s", "4", timeout=60)
    assert p.returncode == 0, p.stderr
    # The sim board's flash (a spool of readings queued at Ctrl-C, a command's
    # overrides.json) is a scratch directory: a leftover spool/ here would be
    # published first by the next run.
    assert set(os.listdir(ROOT)) <= before, set(os.listdir(ROOT)) - before
    rows = [re.match(r"fireant-\S+ +Temperature (-?\d+\.\d) \u00b0C  Humidity (\d+\.\d) %  \(seq (\d+)\)", ln)
            for ln in p.stdout.splitlines()]
    rows = [m.groups() for m in rows if m]
    seqs = [int(seq) for _, _, seq in rows]
    assert len(seqs) >= 3 and seqs == sorted(seqs)
    assert len({t for t, _, _ in rows}) >= 2  # the sim sensor's day goes by
    assert re.search(r"fireant-\S+ +Status online", p.stdout)  # the birth message came through the real broker
    assert re.search(r"fireant-\S+ +Diagnostics: sensor errors 0, filtered 0, dropped 0", p.stdout)
    assert "Steer the sensor" in p.stdout


def test_sim_view_on_a_terminal_redraws_one_card():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    view = Entities("fireant/{device}/status", "fireant/{device}/stats", out)
    view.status("fireant/n-1/status", "online")
    for seq, t in enumerate((20.0, 21.0, 22.0), 1):
        view.reading({"device": "n-1", "location": "attic", "seq": seq, "temperature_C": t, "humidity": 50.0}, 0)
    view.note("[  100] sensor: read failed")
    view.reading({"device": "n-1", "location": "attic", "seq": 5, "temperature_C": 23.0, "humidity": 49.0}, 0)
    screen = out.getvalue().split("\x1b[J")[-1]  # what the last redraw left on screen
    assert screen.splitlines()[0] == "n-1 \u00b7 attic \u00b7 online"
    assert "Temperature      23.0 \u00b0C" in screen
    assert "\u2581\u2583\u2586\u2588  20.0..23.0" in screen  # the trend, lowest to highest
    assert "seq 5 gap: 1 missing" in screen
    assert "sensor: read failed" in out.getvalue() and out.getvalue().count("\x1b[5A") >= 3


def test_monitor_shows_readings_and_gaps(broker, tmp_path):
    import paho.mqtt.client as paho

    raw = sim_config(broker, sensor={"interval_s": 2})
    cfg, sec = tmp_path / "config.json", tmp_path / "secrets.json"
    cfg.write_text(json.dumps(raw))
    sec.write_text("{}")
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="monitor-test")
    pub.username_pw_set(USER, PASSWORD)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    pub.publish("fireant/node-7/status", "online", qos=1, retain=True).wait_for_publish(10)
    p = subprocess.Popen(DEPLOY + ["monitor", "--config", str(cfg), "--secrets", str(sec), "--seconds", "30"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    out = b""
    try:
        # The retained birth shows the monitor is subscribed; then the readings.
        end = time.monotonic() + 20
        while b"online" not in out and time.monotonic() < end:
            if select.select([p.stdout], [], [], 0.5)[0]:
                out += os.read(p.stdout.fileno(), 65536)
        assert b"online" in out, p.stderr.read1().decode() if p.poll() is not None else out
        for seq in (1, 2, 5, 6):
            r = {"device": "node-7", "seq": seq, "uptime_ms": seq * 1000, "temperature_C": 20 + seq / 10,
                 "humidity": 50.0}
            pub.publish("sensors/environmental", json.dumps(r), qos=1).wait_for_publish(10)
        end = time.monotonic() + 20
        while b"20.6" not in out and time.monotonic() < end:
            if select.select([p.stdout], [], [], 0.5)[0]:
                out += os.read(p.stdout.fileno(), 65536)
    finally:
        p.send_signal(signal.SIGINT)
        rest, err = p.communicate(timeout=20)
        out += rest
        pub.publish("fireant/node-7/status", b"", retain=True).wait_for_publish(10)
        pub.loop_stop()
        pub.disconnect()
    text = out.decode()
    rows = {ln.split()[1]: ln for ln in text.splitlines() if ln.startswith("node-7")}
    assert sorted(rows) == ["1", "2", "5", "6"]
    assert "gap: 2 missing (3-4)" in rows["5"]
    assert "gap" not in rows["6"] and "20.6" in rows["6"] and "50.0" in rows["6"]


def test_dry_run_without_a_board_prints_the_plan(monkeypatch, capsys, settings):
    from serial.tools import list_ports

    monkeypatch.setattr(list_ports, "comports", lambda: [])
    assert deploy.main(["--dry-run", "--config", str(settings[0]), "--secrets", str(settings[1])]) == 0
    out = capsys.readouterr().out
    assert "without a board (no board found)" in out
    assert "github:peterhinch/micropython-mqtt@7b6a11dd" in out
    assert "app/node.mpy" in out and "config.json" in out
    # The sim config sends a password without TLS: said before anything is uploaded, as at boot.
    assert "deploy.py: warning: mqtt.password travels in clear text" in out


def test_precompiled_libs_replace_their_sources(board, index, settings, tmp_path):
    """The ESP8266 path: the libraries compiled on the host; their .py sources, which
    would shadow the .mpy, are deleted from the board."""
    out, rc = run_until(deploy_args(board, index, settings), "sim-node starting")
    assert rc == 0, out
    assert os.path.exists(os.path.join(board.flash, "lib", "mqtt_as", "__init__.py"))
    libs = tmp_path / "libs"
    for files in packages().values():
        for rel, data in files.items():
            (libs / rel).parent.mkdir(parents=True, exist_ok=True)
            (libs / rel).write_bytes(data)
    out, rc = run_until(deploy_args(board, index, settings, "--precompiled-libs", "--libs", str(libs)),
                        "sim-node starting")
    assert rc == 0, out
    uploaded = sorted(ln.split()[1] for ln in out.splitlines() if ln.startswith("Uploading"))
    assert uploaded == ["lib/microdot.mpy", "lib/mqtt_as/__init__.mpy", "lib/primitives/__init__.mpy",
                        "lib/primitives/ringbuf_queue.mpy"]
    lib = sorted(os.path.relpath(os.path.join(d, f), board.flash)
                 for d, _, fs in os.walk(os.path.join(board.flash, "lib")) for f in fs)
    assert "lib/mqtt_as/__init__.py" not in lib and "lib/primitives/__init__.py" not in lib
    assert "lib/mqtt_as/_memory.py" in lib  # not compiled, so kept
    assert "app: sim-node starting" in out  # the firmware boots on the compiled libraries


def test_config_pushes_only_the_settings_and_logs_follow(board, index, settings):
    out, rc = run_until(deploy_args(board, index, settings), "sim-node starting")
    assert rc == 0, out
    before = snapshot(board.flash)
    secrets = json.loads(settings[1].read_text())
    secrets["wifi"]["password"] = "another-pass"
    settings[1].write_text(json.dumps(secrets))
    cfg, sec = settings
    out, rc = run_until(["config", "--port", board.port, "--config", str(cfg), "--secrets", str(sec)],
                        "sim-node starting")
    assert rc == 0, out
    assert [ln for ln in out.splitlines() if ln.startswith("Uploading")] == ["Uploading secrets.json"]
    after = snapshot(board.flash)
    assert sorted(k for k in after if after[k] != before.get(k)) == ["secrets.json"]
    assert json.loads(after["secrets.json"][0])["wifi"]["password"] == "another-pass"

    out, rc = run_until(["logs", "--port", board.port, "--reset"], "sim-node starting")
    assert rc == 0, out
    assert "MPY: soft reboot" in out and "app: sim-node starting" in out


def test_emulator_serves_the_mpremote_cli(board, tmp_path):
    """The emulated board as mpremote's own commands see it: copy, run, list, reset."""
    src = tmp_path / "hello.py"
    src.write_text("print('hello from', __name__)\n")
    mpremote = [sys.executable, "-m", "mpremote", "connect", board.port]
    p = subprocess.run(mpremote + ["fs", "cp", str(src), ":hello.py", "+", "exec", "import hello", "+",
                                   "fs", "ls"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "hello from hello" in p.stdout and "hello.py" in p.stdout
    assert open(os.path.join(board.flash, "hello.py")).read() == src.read_text()
    p = subprocess.run(mpremote + ["exec", "import sys; print(sys.implementation._mpy & 0xff)"],
                       capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "6"
    p = subprocess.run(mpremote + ["exec", "1/0"], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "ZeroDivisionError" in p.stdout + p.stderr


def test_the_ca_certificate_goes_with_the_config(monkeypatch, capsys, settings):
    from serial.tools import list_ports

    monkeypatch.setattr(list_ports, "comports", lambda: [])
    cfg, sec = settings
    raw = json.loads(cfg.read_text())
    raw["mqtt"].update({"tls": True, "ca": "broker-ca.pem"})
    cfg.write_text(json.dumps(raw))
    assert deploy.main(["--dry-run", "--config", str(cfg), "--secrets", str(sec)]) == 2
    err = capsys.readouterr().err
    assert "mqtt.ca names broker-ca.pem, which is not next to config.json" in err
    (cfg.parent / "broker-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    assert deploy.main(["--dry-run", "--config", str(cfg), "--secrets", str(sec)]) == 0
    assert "broker-ca.pem" in capsys.readouterr().out


# -- layouts: ROMFS, frozen, files (docs/boards.md) ------------------------------------
#
# The emulator's ROMFS partition is served by boardvm as the ESP8266's vfs.rom_ioctl and
# kept in FLASH.romfs; platform="esp8266" makes its sys.platform say so (the interpreter
# stays the host's unix port). The tests marked "model" run on the ESP8266 model itself
# (sim/upstream.py: 32-bit, its own C rom_ioctl) and are skipped, saying why, where it
# cannot be had.

ROMFS_HEADER = b"\xd2\xcd\x31"


@pytest.fixture
def standin_libs(tmp_path):
    """The stand-in mqtt_as and primitives as a --libs folder (hermetic: no upstream code)."""
    libs = tmp_path / "libs"
    for files in packages().values():
        for rel, data in files.items():
            (libs / rel).parent.mkdir(parents=True, exist_ok=True)
            (libs / rel).write_bytes(data)
    return libs


@pytest.fixture
def esp8266_romfs(tmp_path):
    """An ESP8266 with the FLASH_2M_ROMFS firmware's 320 KB partition."""
    broker_log = tmp_path / "broker.log"
    with Emulator(tmp_path / "flash", romfs_kb=320, platform="esp8266",
                  env={"FIREANT_SIM_BROKER_LOG": str(broker_log)}) as emu:
        emu.broker_log = broker_log
        yield emu


def partition(board):
    with open(board.romfs, "rb") as f:
        return f.read(), os.stat(board.romfs).st_mtime_ns


def on_board(board, code):
    """What code prints on the board, run by the mpremote CLI (its soft reset boots the board first)."""
    p = subprocess.run([sys.executable, "-m", "mpremote", "connect", board.port, "exec", code],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def timed_until(args, marker, timeout=60):
    t = time.monotonic()
    out, rc = run_until(args, marker, timeout)
    return out, rc, time.monotonic() - t


def test_romfs_deploy_boots_from_rom_then_writes_nothing(esp8266_romfs, index, settings, standin_libs, capsys):
    board = esp8266_romfs
    # What an earlier files deploy leaves: app/ and the libraries on the filesystem.
    p = run(*deploy_args(board, index, settings, "--layout", "files", "--libs", str(standin_libs), "--seconds", "0"))
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "Layout: .mpy files on the filesystem (--layout files on an ESP8266" in out
    tmp_lib = os.path.join(board.flash, "lib")
    with open(os.path.join(tmp_lib, DEPS_MARKER), "w") as f:  # as a mip install leaves it
        f.write("[]")
    assert os.path.exists(os.path.join(board.flash, "app", "node.mpy"))
    assert os.path.exists(os.path.join(tmp_lib, "mqtt_as", "__init__.mpy"))
    assert partition(board)[0].count(b"\xff") == 320 * 1024  # erased
    # That firmware never reached the broker: the files layout compiles only the modules fireant
    # imports, and the stand-in mqtt_as needs its _memory.py too (the ROMFS image packs the rest).
    assert not board.broker_log.exists()

    requests = len(index.requests)
    out, rc, first_s = timed_until(deploy_args(board, index, settings, "--libs", str(standin_libs)),
                                   "sim-node starting")
    assert rc == 0, out
    assert "Layout: ROMFS (a 320 KB partition)" in out and "ROMFS image: to write" in out
    assert "Writing the ROMFS image" in out
    first_out = out
    assert "Deleting app/node.mpy" in out and "Deleting app/" in out
    assert "Install with mip" not in out and len(index.requests) == requests  # nothing from the index
    assert "Uploading" not in out and "Unchanged: 4 files" in out  # the files deploy put them there
    assert "Deleting %s/%s" % (tmp_lib, DEPS_MARKER) in out
    assert "Deleting %s/microdot.mpy" % tmp_lib in out  # a one-file library, on /rom now
    assert "app: sim-node starting" in out
    flash = snapshot(board.flash)
    assert sorted(flash) == ["boot.py", "config.json", "main.py", "secrets.json"]  # no app/, no libraries, no marker
    assert not os.path.exists(os.path.join(board.flash, "app"))
    image, _ = partition(board)
    assert image.startswith(ROMFS_HEADER)
    # The firmware runs from /rom: its readings reach the (stand-in) broker.
    assert wait_for(lambda: board.broker_log.exists() and "sensors/environmental" in board.broker_log.read_text())
    listing = on_board(board, "import os, sys; print(sorted(os.listdir('/rom')), sorted(os.listdir('/rom/lib')), "
                              "'node.mpy' in os.listdir('/rom/app'), sys.path[sys.path.index('.frozen') + 1:][:2])")
    assert listing == "['app', 'lib'] ['microdot.mpy', 'mqtt_as', 'primitives'] True ['/rom', '/rom/lib']"

    before = partition(board)
    out, rc, second_s = timed_until(deploy_args(board, index, settings, "--libs", str(standin_libs)),
                                    "sim-node starting")
    assert rc == 0, out
    assert "ROMFS image: up to date" in out and "Upload (0): nothing" in out
    assert "Writing" not in out and "Uploading" not in out and "Deleting" not in out
    assert "app: sim-node starting" in out
    assert partition(board) == before  # not even rewritten with the same bytes
    assert snapshot(board.flash) == flash
    size = int(re.search(r"Writing the ROMFS image \((\d+) bytes\)", first_out).group(1))
    with capsys.disabled():
        print("\nROMFS deploy on the emulator, to the firmware's first log line: %.1f s writing the %d-byte image, "
              "%.1f s with nothing to write" % (first_s, size, second_s))


def test_romfs_changed_app_file_rewrites_the_image(tmp_path, index, settings, standin_libs):
    """A clone whose app/ differs by one line: only the image is written again."""
    clone = tmp_path / "clone"
    shutil.copytree(ROOT, clone, ignore=shutil.ignore_patterns(".git", ".venv", "lib", "__pycache__", ".pytest_cache",
                                                              "tests", "bench", "docs", "build"))
    cmd = [sys.executable, str(clone / "deploy.py")]
    with Emulator(tmp_path / "flash", romfs_kb=320, platform="esp8266") as board:
        args = deploy_args(board, index, settings, "--libs", str(standin_libs), "--seconds", "0")
        p = subprocess.run(cmd + args, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert "Writing the ROMFS image" in p.stdout
        first = partition(board)[0]
        flash = snapshot(board.flash)
        with open(clone / "app" / "heartbeat.py", "a") as f:
            f.write("\n_redeployed_marker = 1\n")
        p = subprocess.run(cmd + args, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert "ROMFS image: to write" in p.stdout and "Writing the ROMFS image" in p.stdout
        assert "Uploading" not in p.stdout and "Deleting" not in p.stdout
        second = partition(board)[0]
        assert b"_redeployed_marker" in second and b"_redeployed_marker" not in first
        assert snapshot(board.flash) == flash
        out = on_board(board, "import sys; sys.path.remove(''); import app.heartbeat as h; print(h._redeployed_marker)")
        assert out == "1"  # the board imports the new module from /rom


def test_romfs_image_too_big_is_one_line(tmp_path, index, settings, standin_libs):
    with Emulator(tmp_path / "flash", romfs_kb=8, platform="esp8266") as board:
        p = run(*deploy_args(board, index, settings, "--libs", str(standin_libs)))
        assert p.returncode == 2
        assert "the ROMFS image (" in p.stderr and "does not fit the board's ROMFS partition (8 KB)" in p.stderr
        assert "manifest.py" in p.stderr and len(p.stderr.strip().splitlines()) == 1
        assert snapshot(board.flash) == {}
        assert partition(board)[0] == b"\xff" * 8192


def test_esp8266_without_romfs_is_told_what_to_flash(tmp_path, index, settings):
    requests = len(index.requests)
    with Emulator(tmp_path / "flash", platform="esp8266") as board:
        for extra in ((), ("--dry-run",)):
            p = run(*deploy_args(board, index, settings, *extra))
            assert p.returncode == 2
            err = p.stderr.strip()
            assert len(err.splitlines()) == 1 and "Traceback" not in err
            assert "no ROMFS partition" in err and "FLASH_2M_ROMFS" in err
            assert "https://micropython.org/download/ESP8266_GENERIC/" in err and "docs/boards.md" in err
            assert "manifest.py" in err and "--layout files" in err
        assert snapshot(board.flash) == {}
        assert len(index.requests) == requests


def test_romfs_dry_run_touches_nothing(esp8266_romfs, index, settings, standin_libs):
    board = esp8266_romfs
    os.makedirs(os.path.join(board.flash, "app"))
    with open(os.path.join(board.flash, "app", "stale.py"), "w") as f:
        f.write("print('left from an older version')\n")
    before, part = snapshot(board.flash), partition(board)
    p = run(*deploy_args(board, index, settings, "--libs", str(standin_libs), "--dry-run"))
    assert p.returncode == 0, p.stderr
    assert "Layout: ROMFS (a 320 KB partition)" in p.stdout and "ROMFS image: to write" in p.stdout
    assert "Upload (4): config.json, secrets.json, boot.py, main.py" in p.stdout
    assert "Delete (2): app/stale.py, app/" in p.stdout
    assert snapshot(board.flash) == before and partition(board) == part


def test_esp32_without_romfs_keeps_the_files_layout_and_says_why(tmp_path, index, settings):
    with Emulator(tmp_path / "flash", platform="esp32") as board:
        p = run(*deploy_args(board, index, settings, "--dry-run"))
    assert p.returncode == 0, p.stderr
    assert "Layout: .mpy files on the filesystem (no ROMFS partition; an ESP32 has the RAM to load them)" in p.stdout
    assert "app/node.mpy" in p.stdout and "Install with mip" in p.stdout


def test_romfs_without_libraries_is_one_line(esp8266_romfs, index, settings, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    p = run(*deploy_args(esp8266_romfs, index, settings, "--libs", str(empty)))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "has no mqtt_as/__init__.py" in p.stderr and "go into the ROMFS image" in p.stderr
    assert "python deploy.py deps --host" in p.stderr and "./fireant upstream --from DIR" in p.stderr
    assert snapshot(esp8266_romfs.flash) == {}
    # Without --libs: neither lib/ nor the cache (both pointed at empty folders here).
    from sim import paths

    monkeypatch.setattr(paths, "LIB", str(empty))
    monkeypatch.setenv("FIREANT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(Fail, match=r"neither lib/ nor the cache .* has mqtt_as and primitives, which go into "
                                          r"the ROMFS image: run python deploy.py deps --host .* or ./fireant upstream"):
        host_libs(None, "go into the ROMFS image")


def test_layout_frozen_needs_a_firmware_with_app_frozen_in(board, index, settings):
    p = run(*deploy_args(board, index, settings, "--layout", "frozen"))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "--layout frozen: the board's firmware has no app frozen in" in p.stderr
    assert snapshot(board.flash) == {}


def test_the_board_platform_reaches_the_validator(tmp_path, index, settings):
    cfg, sec = settings
    raw = json.loads(cfg.read_text())
    raw["mqtt"].update({"tls": True, "ca": "broker-ca.pem"})
    cfg.write_text(json.dumps(raw))
    (cfg.parent / "broker-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    with Emulator(tmp_path / "flash", romfs_kb=320, platform="esp8266") as board:
        p = run(*deploy_args(board, index, settings))
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
        assert "invalid configuration" in p.stderr and "for an esp8266" in p.stderr and "mqtt.ca" in p.stderr
        p = run("config", "--port", board.port, "--config", str(cfg), "--secrets", str(sec))
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
        assert "for an esp8266" in p.stderr and "mqtt.ca" in p.stderr
        assert snapshot(board.flash) == {} and partition(board)[0] == b"\xff" * 320 * 1024


# -- on the ESP8266 model ---------------------------------------------------------------

def _model_why(frozen=False):
    from sim import paths, upstream

    if paths.lib_dir() is None:
        return "the real mqtt_as and primitives are neither in lib/ nor in the cache (./fireant upstream --from DIR)"
    why = upstream.model_unavailable(frozen)
    return why and "the ESP8266 model is unavailable: " + why


# The ESP8266 has 38 KB; boardvm holds ~5 KB of the model's heap itself and a copy of each
# request, and mpremote's romfs deploy fails now and then below 64 KB here (sim/emulator.py).
MODEL_HEAP_KB = 64


@pytest.mark.skipif(_model_why() is not None, reason=str(_model_why()))
def test_romfs_deploy_on_the_esp8266_model(tmp_path, index, broker, observer, capsys):
    """The real thing but the chip: sys.platform esp8266 from the interpreter, its C
    vfs.rom_ioctl, the real libraries from /rom, readings at Mosquitto."""
    from sim import paths

    raw = sim_config(broker, sensor={"interval_s": 2})
    cfg, sec = tmp_path / "config.json", tmp_path / "secrets.json"
    cfg.write_text(json.dumps(raw))
    sec.write_text("{}")
    with Emulator(tmp_path / "flash", romfs_kb=320, model=True, heap_kb=MODEL_HEAP_KB) as board:
        assert on_board(board, "import sys, vfs; print(sys.platform, vfs.rom_ioctl(1))") == "esp8266 1"
        args = ["--port", board.port, "--config", str(cfg), "--secrets", str(sec)]
        out, rc, first_s = timed_until(args, "sim-node starting", timeout=90)
        assert rc == 0, out
        assert "on esp8266 (esp8266" in out and "Writing the ROMFS image" in out
        assert "libraries from %s" % paths.lib_dir() in out
        assert "app: sim-node starting" in out
        assert wait_for(lambda: observer.readings(), timeout=30), out
        assert sorted(snapshot(board.flash)) == ["boot.py", "config.json", "main.py", "secrets.json"]
        before = partition(board)
        out, rc, second_s = timed_until(args, "sim-node starting", timeout=90)
        assert rc == 0, out
        assert "ROMFS image: up to date" in out and "Upload (0): nothing" in out and "Writing" not in out
        assert partition(board) == before
    with capsys.disabled():
        print("\nROMFS deploy on the ESP8266 model (-X heapsize=%dK), to the first log line: %.1f s writing the "
              "image, %.1f s with nothing to write" % (MODEL_HEAP_KB, first_s, second_s))


@pytest.mark.skipif(_model_why(frozen=True) is not None, reason=str(_model_why(frozen=True)))
def test_frozen_firmware_gets_only_main_boot_and_settings(tmp_path, index, settings):
    with Emulator(tmp_path / "flash", model="frozen") as board:
        for d in ("app", os.path.join("lib", "mqtt_as")):  # left from a files deploy: they would shadow the frozen copy
            os.makedirs(os.path.join(board.flash, d))
            with open(os.path.join(board.flash, d, "__init__.py"), "w") as f:
                f.write("print('stale copy')\n")
        out, rc = run_until(deploy_args(board, index, settings), "sim-node starting", timeout=90)
    assert rc == 0, out
    assert "Layout: frozen" in out and "Install with mip" not in out
    uploaded = sorted(ln.split()[1] for ln in out.splitlines() if ln.startswith("Uploading"))
    assert uploaded == ["boot.py", "config.json", "main.py", "secrets.json"]
    assert "Deleting app/__init__.py" in out and "stale copy" not in out
    assert "app: sim-node starting" in out
    assert sorted(snapshot(board.flash)) == ["boot.py", "config.json", "main.py", "secrets.json"]
