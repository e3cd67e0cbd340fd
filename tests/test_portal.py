"""Provisioning (issue 12, point 5): without wifi.ssid, or once joining has failed
for wifi.portal_after_s, the node opens an access point fireant-XXXX with one web
page (app/portal.py, on microdot) that sets Wi-Fi and broker settings through the
validator, writes them atomically and reboots into station mode.

In-process (CPython): the decision, the Wi-Fi task's escalation, the page's
checks and writes. On the unix port: the whole of it, driven by a real headless
Chromium (sim/browser.py), then a second run in the same directory (the reboot)
that joins and publishes to Mosquitto."""
import asyncio
import contextlib
import json
import os
import shutil
import socket
import threading

import machine
import network
import pytest
import simboard

from app import board, portal, start, wifi
from app.config import ConfigError
from app.config import validate as _validate
from app.node import Node
from sim import browser, paths, unixport
from sim.firmware import sim_config

GOOD = {"ssid": "simnet", "wifi_password": "wifi-pass", "server": "127.0.0.1", "port": "1883",
        "user": "fireant", "mqtt_password": "sensor-pass", "device": "porch"}


def validate(raw):
    return _validate(raw, board.min_interval_s())


def _unconfigured(broker=None):
    raw = sim_config(broker)
    raw["wifi"]["ssid"] = ""
    del raw["wifi"]["password"], raw["mqtt"]["password"]
    return raw


def _files(tmp_path, raw, secrets=None):
    config, sec = str(tmp_path / "config.json"), str(tmp_path / "secrets.json")
    with open(config, "w") as f:
        json.dump(raw, f)
    if secrets is not None:
        with open(sec, "w") as f:
            json.dump(secrets, f)
    return config, sec


def _read(path):
    with open(path) as f:
        return f.read()


# -- when the portal opens (app/start.py)


def test_no_ssid_opens_the_portal_until_used_and_0_means_sensing_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert start.portal(validate(_unconfigured())) == 0
    raw = _unconfigured()
    raw["wifi"]["portal_after_s"] = 0
    assert start.portal(validate(raw)) is None
    assert start.portal(validate(sim_config())) is None  # an ssid and no flag: the tasks


def test_the_wifi_tasks_flag_opens_it_once_for_portal_after_s(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / start.PORTAL).write_text("")
    cfg = validate(sim_config(wifi={"portal_after_s": 120}))
    assert start.portal(cfg) == 120000
    assert not (tmp_path / start.PORTAL).exists()
    assert start.portal(cfg) is None  # the next boot after that one: the tasks again


@pytest.mark.parametrize("value, ok", [(0, True), (60, True), (30, False), (-1, False)])
def test_portal_after_s_is_validated(value, ok):
    raw = sim_config(wifi={"portal_after_s": value})
    if ok:
        assert validate(raw)["wifi"]["portal_after_s"] == value
    else:
        with pytest.raises(ConfigError, match="wifi.portal_after_s"):
            validate(raw)


def test_an_esp8266_has_not_the_heap_for_the_portal():
    raw = _unconfigured()
    raw["spool"] = {}
    raw["ntp"] = {}
    del raw["queue"]
    cfg = _validate(raw, board.min_interval_s(), "esp8266")
    assert cfg["wifi"]["portal_after_s"] == 0 and start.portal(cfg) is None  # off unless set: sensing only
    raw["wifi"]["portal_after_s"] = 600
    with pytest.raises(ConfigError, match="wifi.portal_after_s: an ESP8266 has not the heap for the provisioning"):
        _validate(raw, board.min_interval_s(), "esp8266")


async def test_the_wifi_task_gives_up_after_portal_after_s_without_a_link(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = validate(sim_config())["wifi"]
    cfg["portal_after_s"] = 1.5  # the validator's floor is 60 s; the task takes what it is given
    simboard.set(link=False)
    resets = machine.resets
    t = asyncio.create_task(wifi.run(Node("n"), cfg))
    try:
        await asyncio.sleep(0.8)
        assert machine.resets == resets and not (tmp_path / start.PORTAL).exists()
        for _ in range(100):
            if machine.resets > resets:
                break
            await asyncio.sleep(0.05)
        assert machine.resets == resets + 1 and (tmp_path / start.PORTAL).exists()
        await asyncio.sleep(0.5)
        assert machine.resets == resets + 1  # once
    finally:
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await t


async def test_a_link_that_comes_back_in_time_keeps_the_tasks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = validate(sim_config())["wifi"]
    cfg["portal_after_s"] = 1.5
    resets = machine.resets
    n = Node("n")
    t = asyncio.create_task(wifi.run(n, cfg))
    try:
        for _ in range(100):
            if n.wifi_up:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(2)
        assert n.wifi_up and machine.resets == resets and not (tmp_path / start.PORTAL).exists()
    finally:
        t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await t


# -- the page's checks and writes (app/portal.py)


@pytest.mark.parametrize("field, value, message", [
    ("port", "99999", "config: mqtt.port: must be between 0 and 65535, got 99999"),
    ("port", "abc", "config: mqtt.port: must be a number, got 'abc'"),
    ("server", "mqtt://broker", "config: mqtt.server: a host name or IPv4 address only"),
    ("device", "my porch", "config: device: may hold only letters"),
    ("ssid", "", "config: wifi.ssid: must not be empty"),
    ("mqtt_password", "x", None),  # with a user: fine
])
def test_bad_input_is_the_validators_message_and_nothing_is_written(tmp_path, field, value, message):
    raw = _unconfigured()
    config, secrets = _files(tmp_path, raw)
    before = _read(config)
    form = dict(GOOD, **{field: value})
    problem = portal.save(form, config, secrets)
    if message is None:
        assert problem is None
        return
    assert problem.startswith(message)
    if field != "ssid":  # the same words the validator says at boot
        bad = dict(raw)
        with pytest.raises(ConfigError) as e:
            validate(dict(bad, **json.loads(json.dumps(_as_config(form)))))
        assert str(e.value) == problem
    assert _read(config) == before and not os.path.exists(secrets)
    page = "".join(portal.page("fireant-0001", config, secrets, form, problem))
    assert 'id="error"' in page and problem.split(":")[1].strip() in page


def _as_config(form):
    port = int(form["port"]) if form["port"].isdigit() else form["port"]
    return {"device": form["device"], "wifi": {"ssid": form["ssid"], "password": form["wifi_password"]},
            "mqtt": {"server": form["server"], "port": port, "user": form["user"],
                     "password": form["mqtt_password"]}, "sensor": {"interval_s": 5}}


def test_good_input_is_written_whole_secrets_apart_and_never_shown(tmp_path):
    raw = _unconfigured()
    config, secrets = _files(tmp_path, raw, {"mqtt": {"password": "old"}})
    assert portal.save(GOOD, config, secrets) is None
    cfg, sec = json.loads(_read(config)), json.loads(_read(secrets))
    assert cfg["wifi"]["ssid"] == "simnet" and cfg["mqtt"]["port"] == 1883 and cfg["device"] == "porch"
    assert cfg["sensor"] == raw["sensor"] and cfg["queue"] == raw["queue"]  # the rest kept
    assert sec == {"wifi": {"password": "wifi-pass"}, "mqtt": {"password": "sensor-pass"}}
    assert "pass" not in json.dumps(cfg["wifi"]) + json.dumps(cfg["mqtt"].get("password", ""))
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    page = "".join(portal.page("fireant-0001", config, secrets))
    assert "wifi-pass" not in page and "sensor-pass" not in page and 'value="simnet"' in page
    assert page.count('placeholder="unchanged"') == 2
    # An empty password field keeps the one set.
    assert portal.save(dict(GOOD, wifi_password="", mqtt_password="", device="shed"), config, secrets) is None
    assert json.loads(_read(secrets)) == sec and json.loads(_read(config))["device"] == "shed"


@pytest.mark.parametrize("change, problem", [
    ({"server": "attacker.example"}, "config: mqtt.password: type it again: mqtt.server changed"),
    ({"port": "8883"}, "config: mqtt.password: type it again: mqtt.port changed"),
    ({"user": "someone"}, "config: mqtt.password: type it again: mqtt.user changed"),
    ({"server": "attacker.example", "user": "x"}, "config: mqtt.password: type it again: mqtt.server and mqtt.user"),
    ({"ssid": "evil-twin"}, "config: wifi.password: type it again: wifi.ssid changed"),
    ({"device": "shed"}, None),  # the secrets' destinations unchanged: kept
    ({"server": "attacker.example", "mqtt_password": "typed-again"}, None),
], ids=["server", "port", "user", "server-and-user", "ssid", "device", "typed-again"])
def test_a_stored_password_is_kept_only_for_where_it_was_set(tmp_path, change, problem):
    """Anyone in range may use an open portal: with an empty field keeping the
    stored password, a new mqtt.server would receive it at the next connect."""
    raw = _unconfigured()
    config, secrets = _files(tmp_path, raw)
    assert portal.save(GOOD, config, secrets) is None
    before = _read(config), _read(secrets)
    form = dict(dict(GOOD, wifi_password="", mqtt_password=""), **change)
    got = portal.save(form, config, secrets)
    if problem is None:
        assert got is None
        assert json.loads(_read(secrets))["mqtt"]["password"] == change.get("mqtt_password", "sensor-pass")
        return
    assert got.startswith(problem), got
    assert (_read(config), _read(secrets)) == before  # nothing written


def test_no_user_takes_the_stored_password_away(tmp_path):
    config, secrets = _files(tmp_path, _unconfigured())
    assert portal.save(GOOD, config, secrets) is None
    assert portal.save(dict(GOOD, user="", mqtt_password=""), config, secrets) is None  # a broker without auth
    assert json.loads(_read(secrets))["mqtt"]["password"] == ""


def test_the_page_escapes_what_it_shows(tmp_path):
    config, secrets = _files(tmp_path, _unconfigured())
    page = "".join(portal.page("fireant-0001", config, secrets, dict(GOOD, ssid='"><script>x</script>'), "bad <b>"))
    assert "<script>x" not in page and "&quot;&gt;&lt;script&gt;" in page and "bad &lt;b&gt;" in page


# -- end to end: the unix port, a real browser, the reboot, Mosquitto

SHOTS = os.getenv("FIREANT_PORTAL_SHOTS")  # a folder: the screenshots go there too (docs/provisioning)
HEAP = "256K"  # the unix port holds microdot's 64-bit bytecode in RAM; a board has it in flash


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port, stop, timeout_s=40):
    for _ in range(int(timeout_s / 0.1)):
        if stop.is_set():
            return False
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        stop.wait(0.1)
    return False


def _drive(url, port, broker, shots, seen, stop):
    """A user at the page: two mistakes, then the right settings."""
    try:
        if not _wait_listening(port, stop):
            seen["error"] = "the portal never listened"
            return
        with browser.Browser() as b:
            b.open(url)
            seen["title"] = b.wait_for("h1")
            b.screenshot(os.path.join(shots, "form.png"))
            for name, value in dict(GOOD, port="99999", server="127.0.0.1").items():
                b.type("input[name=%s]" % name, value)
            b.click("button")
            seen["port_error"] = b.wait_for("#error")
            seen["kept_after_error"] = b.js("document.querySelector('input[name=ssid]').value")
            b.screenshot(os.path.join(shots, "error.png"))
            b.type("input[name=ssid]", "")
            b.type("input[name=port]", str(broker.port))
            b.click("button")
            seen["ssid_error"] = b.wait_for("#error")
            b.type("input[name=ssid]", "simnet")
            b.type("input[name=wifi_password]", "wifi-pass")
            b.type("input[name=mqtt_password]", "sensor-pass")
            b.click("button")
            seen["saved"] = b.wait_for("#saved")
            seen["saved_html"] = b.js("document.documentElement.outerHTML")
            b.screenshot(os.path.join(shots, "saved.png"))
    except Exception as e:  # the test reports it
        seen["error"] = "%s: %s" % (type(e).__name__, e)


def test_ctrl_c_leaves_the_portal_for_the_repl(broker, tmp_path):
    if not paths.lib_dir():
        pytest.skip("microdot is neither in lib/ nor in the cache (./fireant upstream --from DIR)")
    r = unixport.run(_unconfigured(broker), heapsize=HEAP, libs="real", broker=broker, seconds=1,
                     workdir=str(tmp_path), portal_port=_free_port())
    assert r.logged("starting: provisioning portal") and r.logged("app: Ctrl-C"), r.output()
    assert r.returncode == 0 and not r.logged("Traceback") and not r.logged("machine: reset"), r.output()
    assert json.loads((tmp_path / "config.json").read_text())["wifi"]["ssid"] == ""  # nothing written


def test_a_browser_provisions_an_unconfigured_node_which_then_publishes(broker, tmp_path):
    if browser.chromium() is None:
        pytest.skip("no chromium: apt-get install chromium (the end-to-end portal test needs a real browser)")
    if not paths.lib_dir():
        pytest.skip("microdot, mqtt_as and primitives are neither in lib/ nor in the cache "
                    "(./fireant upstream --from DIR)")
    work, shots = tmp_path / "board", tmp_path / "shots"
    work.mkdir()
    port = _free_port()
    seen, stop = {}, threading.Event()
    user = threading.Thread(target=_drive, args=("http://127.0.0.1:%d/" % port, port, broker, str(shots), seen,
                                                 stop), daemon=True)
    user.start()
    try:
        first = unixport.run(_unconfigured(broker), heapsize=HEAP, libs="real", broker=broker, seconds=0,
                             until=lambda r: False, max_seconds=45, workdir=str(work), portal_port=port)
    finally:
        stop.set()
        user.join(30)
    out = first.output()
    assert "error" not in seen, seen.get("error", "") + "\n" + out
    assert seen["title"] == "fireant-0001"  # the chip id's last four hex digits (sim machine.unique_id)
    assert seen["port_error"] == "config: mqtt.port: must be between 0 and 65535, got 99999"
    assert seen["kept_after_error"] == "simnet"
    assert seen["ssid_error"].startswith("config: wifi.ssid: must not be empty")
    assert "simnet" in seen["saved"] and "sensor-pass" not in seen["saved_html"] and "wifi-pass" not in seen[
        "saved_html"]
    assert first.logged("machine: reset") and first.returncode == 0, out
    assert first.logged("refused: config: mqtt.port") and not first.logged("Traceback"), out
    cfg = json.loads((work / "config.json").read_text())
    sec = json.loads((work / "secrets.json").read_text())
    assert cfg["wifi"]["ssid"] == "simnet" and cfg["mqtt"]["port"] == broker.port and cfg["device"] == "porch"
    assert sec == {"wifi": {"password": "wifi-pass"}, "mqtt": {"password": "sensor-pass"}}
    ap = [line for line in first.lines if "starting: provisioning portal" in line]
    assert ap and "fireant-0001" in ap[0], out
    # The reboot: the same directory, a second run, now a station publishing to Mosquitto.
    second = unixport.run(None, heapsize=HEAP, libs="real", broker=broker, seconds=0, workdir=str(work),
                          until=lambda r: len(r.readings()) >= 3, max_seconds=30)
    assert second.logged("wifi: up") and not second.logged("provisioning portal"), second.output()
    readings = second.readings()
    assert len(readings) >= 3 and all(r["device"] == "porch" for r in readings), second.output()
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        for name in ("form.png", "error.png", "saved.png"):
            shutil.copyfile(shots / name, os.path.join(SHOTS, name))
    assert all((shots / n).stat().st_size > 2000 for n in ("form.png", "error.png", "saved.png"))


def test_settings_missing_or_refused_are_the_problem_the_portal_shows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert start.settings("config.json", "secrets.json").startswith("config.json: not found")
    (tmp_path / "config.json").write_text('{"mqtt": {"server": "h", "port": 99999}')
    assert "not valid JSON" in start.settings("config.json", "secrets.json")
    (tmp_path / "config.json").write_text('{"mqtt": {"server": "h", "port": 99999}}')
    assert start.settings("config.json", "secrets.json") == "config: mqtt.port: must be between 0 and 65535, got 99999"


REFUSED = '"mqtt": {"server": "h", "port": 99999}'
HEX_PSK = "0123456789abcdef" * 4


@pytest.mark.parametrize("config, secrets, password", [
    (None, None, ""),  # nothing to keep: open, as a new node's
    ('{%s}' % REFUSED, None, ""),
    ('{"wifi": {"ssid": "x"}, %s' % REFUSED, None, ""),  # not JSON, and asks for no password
    ('{"wifi": {"ap_password": ""}, %s}' % REFUSED, None, ""),  # open, as asked
    ('{%s}' % REFUSED, '{"wifi": {"ap_password": "kept-from-before"}}', "kept-from-before"),
    ('{"wifi": {"ap_password": "in-config-too"}, %s}' % REFUSED, '{"wifi": {"ap_password": "kept-from-before"}}',
     "kept-from-before"),  # secrets.json wins, as in the validator
    ('{"wifi": {"ap_password": "in-config-only", "portal_after_s": 600}, %s}' % REFUSED, None, "in-config-only"),
    # A password asked for that cannot be used: no portal rather than an open one.
    ('{"wifi": {"ap_password": "short"}, %s}' % REFUSED, None, None),
    ('{"wifi": {"ap_password": "%s"}, %s}' % (HEX_PSK, REFUSED), None, None),  # a raw key, not a passphrase
    ('{"wifi": {"ap_password": "K\u00fcche-pw"}, %s}' % REFUSED, None, None),  # 8 characters, 9 bytes
    ('{"wifi": {"ap_password": 12345678}, %s}' % REFUSED, None, None),
    ('{"wifi": {"ap_password": "kept-from-before"}, %s' % REFUSED, None, None),  # not JSON, names it
    ('{%s}' % REFUSED, '{"wifi": {"ap_password": "kept-from-before"', None),
    ('{%s}' % REFUSED, '{"wifi": "ap_password"}', None),
    ('{%s}' % REFUSED, '{"mqtt": {"password": "x"', ""),  # not JSON, but asks for no password
    # wifi.portal_after_s 0 means never, refused settings or not.
    ('{"wifi": {"portal_after_s": 0}, %s}' % REFUSED, None, None),
    ('{"wifi": {"portal_after_s": 0}, %s}' % REFUSED, '{"wifi": {"ap_password": "kept-from-before"}}', None),
    ('{"wifi": {"portal_after_s": 0} %s' % REFUSED, None, None),
    ('{"wifi": {"portal_after_s": 0}, %s}' % REFUSED, '{"wifi": {"portal_after_s": 600}}', ""),  # merge()'s order
    ('{"wifi": {"portal_after_s": 600}, %s}' % REFUSED, None, ""),
    # Asked for, but not where it can be read: misspelt, misplaced.
    ('{"wifi": {"ap_pasword": "kept-from-before"}, %s}' % REFUSED, None, None),
    ('{"ap_password": "kept-from-before", %s}' % REFUSED, None, None),
    ('{%s}' % REFUSED, '{"mqtt": {"AP_PASSWORD": "kept-from-before"}}', None),
], ids=["none", "refused", "not-json", "empty", "secrets", "secrets-win", "config", "short", "hex-psk", "non-ascii",
        "not-a-str", "config-unreadable", "secrets-unreadable", "wifi-not-a-dict", "secrets-unreadable-no-pw",
        "portal-never", "portal-never-with-pw", "portal-never-unreadable", "portal-secrets-win", "portal-600",
        "misspelt", "top-level", "misplaced"])
def test_refused_settings_open_the_portal_only_with_the_password_asked_for(tmp_path, monkeypatch, capsys,
                                                                          config, secrets, password):
    monkeypatch.chdir(tmp_path)
    for name, text in (("config.json", config), ("secrets.json", secrets)):
        if text is not None:
            (tmp_path / name).write_text(text, encoding="utf-8")
    assert isinstance(start.settings("config.json", "secrets.json"), str)
    capsys.readouterr()
    assert portal.password("config.json", "secrets.json") == password
    assert ("app: no setup portal: " in capsys.readouterr().out) == (password is None)


def test_a_file_that_is_not_utf8_is_the_problem_and_opens_no_portal(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.json").write_text('{%s}' % REFUSED)
    (tmp_path / "secrets.json").write_bytes(b'{"wifi": {"ap_password": "K\xfcche-password"}}')  # Latin-1
    assert start.settings("config.json", "secrets.json").startswith("secrets.json: not UTF-8 text")
    capsys.readouterr()
    assert portal.password("config.json", "secrets.json") is None
    assert "app: no setup portal: secrets.json is not UTF-8 text" in capsys.readouterr().out


@pytest.mark.parametrize("password, ok", [("12345678", True), ("x" * 63, True), ("1234567", False), ("x" * 64, False),
                                          (HEX_PSK, False), ("Küche-pw", False), ("tab\there!", False)])
def test_the_ap_password_is_a_wpa2_passphrase_counted_in_bytes(password, ok):
    raw = _unconfigured()
    raw["wifi"]["ap_password"] = password
    if ok:
        validate(raw)
    else:
        with pytest.raises(ConfigError, match="wifi.ap_password: must be 8 to 63 printable ASCII characters"):
            validate(raw)


def test_app_run_hands_the_portal_the_problem_and_the_kept_password(tmp_path, monkeypatch, capsys):
    import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.json").write_text('{"mqtt": {"server": "h", "port": 99999}}')
    (tmp_path / "secrets.json").write_text('{"wifi": {"ap_password": "kept-from-before"}}')
    got = []

    async def serve(*args):
        got.append(args)

    monkeypatch.setattr(portal, "run", serve)
    app.run("config.json", "secrets.json")
    assert got == [("config.json", "secrets.json", "kept-from-before", 0,
                    "config: mqtt.port: must be between 0 and 65535, got 99999")]
    (tmp_path / "secrets.json").write_text('{"wifi": {"ap_password": "short"}}')
    app.run("config.json", "secrets.json")
    assert len(got) == 1  # no password to open it with: said, nothing served
    monkeypatch.setattr(board, "platform", lambda: "esp8266")
    (tmp_path / "secrets.json").write_text('{"wifi": {"ap_password": "kept-from-before"}}')
    capsys.readouterr()
    app.run("config.json", "secrets.json")
    assert len(got) == 1  # an ESP8266 has not the heap: the message printed, nothing served
    assert "app: no setup portal: an ESP8266 has not the heap for it" in capsys.readouterr().out


def _page_when_served(port, seen, stop):
    import urllib.request

    if _wait_listening(port, stop):
        with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=10) as r:
            seen["page"] = r.read().decode()


@pytest.mark.parametrize("files, problem", [
    ({}, "config.json: not found"),
    ({"config.json": {"wifi": {"ssid": "simnet"}, "mqtt": {"server": "127.0.0.1", "port": 99999}},
      "secrets.json": {"wifi": {"ap_password": "kept-from-before"}}},
     "config: mqtt.port: must be between 0 and 65535, got 99999")], ids=["missing", "refused"])
def test_a_node_that_cannot_start_serves_the_portal_with_the_problem(broker, tmp_path, files, problem):
    """Not dark: the message is printed, and the portal shows it until settings that pass are saved."""
    if not paths.lib_dir():
        pytest.skip("microdot is neither in lib/ nor in the cache (./fireant upstream --from DIR)")
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
    port, seen, stop = _free_port(), {}, threading.Event()
    user = threading.Thread(target=_page_when_served, args=(port, seen, stop), daemon=True)
    user.start()
    try:
        r = unixport.run(None, heapsize=HEAP, libs="real", broker=broker, seconds=0, until=lambda r: "page" in seen,
                         max_seconds=40, workdir=str(tmp_path), portal_port=port)
    finally:
        stop.set()
        user.join(15)
    out = r.output()
    assert r.logged(problem) and r.logged("fireant-0001 starting: provisioning portal"), out
    assert r.returncode == 0 and not r.logged("Traceback") and not r.logged("machine: reset"), out
    assert '<p class="err" id="error">%s' % problem in seen.get("page", ""), seen.get("page", out)


def test_a_node_whose_ap_password_cannot_be_used_says_so_and_serves_nothing(broker, tmp_path):
    """On MicroPython: a refused config whose wifi.ap_password fails the WPA2 rule
    must not open the portal without it (it keeps the stored broker password)."""
    (tmp_path / "config.json").write_text(json.dumps({"mqtt": {"server": "127.0.0.1", "port": 99999}}))
    (tmp_path / "secrets.json").write_text(json.dumps({"wifi": {"ap_password": "Küche-pw"},
                                                       "mqtt": {"user": "u", "password": "stored"}}))
    port = _free_port()
    r = unixport.run(None, heapsize=HEAP, broker=broker, seconds=0,
                     max_seconds=30, workdir=str(tmp_path), portal_port=port)
    out = r.output()
    assert r.logged("config: mqtt.port: must be between 0 and 65535, got 99999"), out
    assert r.logged("app: no setup portal: wifi.ap_password is not a WPA2 passphrase"), out
    assert r.returncode == 0 and not r.logged("provisioning portal") and not r.logged("Traceback"), out


def test_a_hostile_post_is_refused_and_the_page_still_served(broker, tmp_path):
    """16 KB of form fields (microdot's default limit): parsed, one object per
    field, more than an ESP32's heap. The portal takes 2 KB and answers 413."""
    if not paths.lib_dir():
        pytest.skip("microdot is neither in lib/ nor in the cache (./fireant upstream --from DIR)")
    import http.client

    port, seen = _free_port(), {}

    def attack():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("POST", "/", body="a=b&" * 4096, headers={"Content-Type": "application/x-www-form-urlencoded"})
        seen["post"] = c.getresponse().status
        c.close()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/")
        r = c.getresponse()
        seen["get"] = r.status, b'name="ssid"' in r.read()
        c.close()

    r = unixport.run(_unconfigured(broker), [(1, attack)], heapsize=HEAP, libs="real", broker=broker, seconds=2,
                     workdir=str(tmp_path), portal_port=port)
    assert seen == {"post": 413, "get": (200, True)}, (seen, r.output())
    assert not r.logged("MemoryError") and not r.logged("Traceback") and not r.logged("machine: reset"), r.output()
    assert json.loads((tmp_path / "config.json").read_text())["wifi"]["ssid"] == ""  # nothing written
