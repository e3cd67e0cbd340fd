import json

import pytest

from app import config
from app.config import ConfigError

MINIMAL = {"wifi": {"ssid": "home"}, "mqtt": {"server": "192.168.1.10"}}


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(p)


def test_defaults_fill_a_minimal_config():
    cfg = config.validate(json.loads(json.dumps(MINIMAL)))
    assert cfg["mqtt"]["topic"] == "sensors/environmental"
    assert cfg["mqtt"]["keepalive_s"] == 20 and cfg["mqtt"]["ping_interval_s"] == 5
    assert cfg["sensor"] == {"type": "DHT22", "pin": 5, "interval_s": 5}
    assert cfg["led"] == {"pin": 2, "active_low": True}


def test_repository_config_json_is_valid():
    cfg = config.load("config.json", "no-secrets-here.json")
    assert cfg["mqtt"]["status_topic"] == "fireant/{device}/status"
    assert cfg["filter"] is None  # config.json shows the filters' defaults: nothing to load


def test_filters_are_none_unless_one_is_set():
    assert config.validate(json.loads(json.dumps(MINIMAL)))["filter"] is None
    raw = dict(MINIMAL, filter={"temperature_offset": -0.5, "heartbeat_s": 60})
    f = config.validate(raw)["filter"]
    assert f["temperature_offset"] == -0.5 and f["heartbeat_s"] == 60 and f["smoothing"] == "none"


@pytest.mark.parametrize("raw, key, words", [
    ({"wifi": {"ssid": "x"}}, "mqtt.server", "required"),
    ({"mqtt": {"server": ""}}, "mqtt.server", "empty"),
    ({"mqtt": {"server": "b", "port": "1883"}}, "mqtt.port", "number"),
    ({"mqtt": {"server": "b", "port": 70000}}, "mqtt.port", "between 0 and 65535"),
    ({"mqtt": {"server": "b", "tls": "yes"}}, "mqtt.tls", "true or false"),
    ({"mqtt": {"server": "b"}, "sensor": {"pin": 4.5}}, "sensor.pin", "whole number"),
    ({"mqtt": {"server": "b"}, "sensor": {"type": "DHT21"}}, "sensor.type", "DHT22, DHT11"),
    ({"mqtt": {"server": "b"}, "sensor": {"interval_s": 1}}, "sensor.interval_s", "every 2 s"),
    ({"mqtt": {"server": "b"}, "sensor": {"type": "DHT11", "interval_s": 0.5}}, "sensor.interval_s", "every 1 s"),
    ({"mqtt": {"server": "b", "sever": "x"}}, "mqtt.sever", "unknown key"),
    ({"mqtt": {"server": "b"}, "queue": {"size": 0}}, "queue.size", "between"),
    ({"mqtt": {"server": "b", "topic": "sensors/#"}}, "mqtt.topic", "wildcards"),
    ({"mqtt": {"server": "b", "password": "p"}}, "mqtt.user", "must be set"),
    ({"mqtt": {"server": "b", "keepalive_s": 10, "ping_interval_s": 8}}, "mqtt.ping_interval_s", "half"),
    ({"mqtt": {"server": "b"}, "wifi": {"ap_ssid": "fireant", "ap_password": "short"}}, "wifi.ap_password", "8"),
    ({"mqtt": {"server": "b"}, "wifi": {"backoff_min_s": 10, "backoff_max_s": 5}}, "wifi.backoff_max_s", "below"),
    ({"mqtt": {"server": "b"}, "led": {"pin": True}}, "led.pin", "number"),
    ([1, 2], "top level", "JSON object"),
    # Text is bytes on the wire: what becomes the client id, a topic level and the
    # DHCP host name is ASCII, and the host name fits network.hostname()'s 32.
    ({"mqtt": {"server": "b"}, "device": "K\u00fcche-1"}, "device", "letters, digits, - and _"),
    ({"mqtt": {"server": "b"}, "device": "node/1"}, "device", "letters, digits, - and _"),
    ({"mqtt": {"server": "b"}, "device": "n" * 33}, "device", "at most 32"),
    ({"mqtt": {"server": "b"}, "device": "my_node"}, "device", "DHCP host name"),
    ({"mqtt": {"server": "b"}, "device": "ok_name", "wifi": {"hostname": "-bad"}}, "wifi.hostname", "DHCP"),
    ({"mqtt": {"server": "b"}, "location": "x" * 65}, "location", "at most 64"),
    ({"mqtt": {"server": "mqtt://b:1883"}}, "mqtt.server", "mqtt.port"),
    ({"mqtt": {"server": "b", "topic": "/home/temp"}}, "mqtt.topic", "empty level"),
    ({"mqtt": {"server": "b", "status_topic": "fireant/{devcie}/status"}}, "mqtt.status_topic", "{device}"),
    ({"mqtt": {"server": "b", "stats_topic": "$SYS/x"}}, "mqtt.stats_topic", "broker"),
    ({"mqtt": {"server": "b"}, "wifi": {"ssid": "s" * 33}}, "wifi.ssid", "at most 32"),
    # A control character is raw in the discovery JSON: Home Assistant's parser refuses it.
    ({"mqtt": {"server": "b", "topic": "home/t\temp"}}, "mqtt.topic", "control characters"),
    ({"mqtt": {"server": "b"}, "ha": {"prefix": "ha\n"}}, "ha.prefix", "control characters"),
    ({"mqtt": {"server": "b"}, "ha": {"url": "http://node\x01/"}}, "ha.url", "http://"),
    ({"mqtt": {"server": "b", "cmd_topic": "fireant/{device}/cmd\x7f"}}, "mqtt.cmd_topic", "control characters"),
    ({"mqtt": {"server": "b", "reconnect_spread_s": -1}}, "mqtt.reconnect_spread_s", "between"),
    ({"mqtt": {"server": "b"}, "filter": {"smoothing": "mean"}}, "filter.smoothing", "none, median, average"),
    ({"mqtt": {"server": "b"}, "filter": {"window": 16}}, "filter.window", "between 1 and 15"),
    ({"mqtt": {"server": "b"}, "filter": {"alpha": 0}}, "filter.alpha", "between"),
    ({"mqtt": {"server": "b"}, "filter": {"temperature_multiply": "1.1"}}, "filter.temperature_multiply", "number"),
    ({"mqtt": {"server": "b"}, "filter": {"delta_humidity": -1}}, "filter.delta_humidity", "between"),
    ({"mqtt": {"server": "b"}, "filter": {"heartbeat_s": 10, "throttle_s": 60}}, "filter.heartbeat_s", "throttle"),
    ({"mqtt": {"server": "b"}, "filter": {"median": 5}}, "filter.median", "unknown key"),
    ({"mqtt": {"server": "b"}, "telemetry": {"interval_s": 0.5}}, "telemetry.interval_s", "at least 1 s"),
    ({"mqtt": {"server": "b"}, "telemetry": {"interval_s": -1}}, "telemetry.interval_s", "between"),
    ({"mqtt": {"server": "b"}, "ntp": {"resync_s": 10}}, "ntp.resync_s", "at least 60 s"),
    # asyncio's sleep_ms adds its delay to ticks_ms: past 2^29 ms it raises OverflowError
    ({"mqtt": {"server": "b"}, "ntp": {"resync_s": 604800}}, "ntp.resync_s", "between"),
    ({"mqtt": {"server": "b"}, "ntp": {"timeout_s": 0}}, "ntp.timeout_s", "between"),
])
def test_bad_config_names_the_key_and_the_problem(raw, key, words):
    with pytest.raises(ConfigError) as e:
        config.validate(raw)
    message = str(e.value)
    assert key in message and words in message
    assert "\n" not in message  # one clear line


def test_text_that_is_fine_on_the_wire_is_accepted():
    cfg = config.validate({"mqtt": {"server": "broker.local", "topic": "K\u00fcche/temperatur"},
                           "device": "node_1", "wifi": {"hostname": "node-1"}, "location": "K\u00fcche"})
    assert cfg["device"] == "node_1" and cfg["location"] == "K\u00fcche"


def test_what_an_esp8266_cannot_do_is_refused_by_name():
    raw = {"mqtt": {"server": "b", "tls": True, "ca": "ca.pem"}}
    with pytest.raises(ConfigError, match="mqtt.ca: an ESP8266 cannot verify"):
        config.validate(raw, platform="esp8266")
    assert config.validate(raw, platform="esp32")["mqtt"]["ca"] == "ca.pem"
    with pytest.raises(ConfigError, match="mqtt.tls: not on an ESP8266"):
        config.validate({"mqtt": {"server": "b", "tls": True}}, platform="esp8266")


@pytest.mark.parametrize("platform, section, pin", [
    ("esp8266", "sensor", 7), ("esp8266", "sensor", 16), ("esp8266", "sensor", 1), ("esp8266", "led", 9),
    ("esp32", "sensor", 35), ("esp32", "led", 6), ("esp32", "led", 20),
    ("esp8266", "sensor", 15), ("esp32", "sensor", 12)])  # a pull-up there and the chip does not boot
def test_a_pin_the_chip_cannot_use_is_refused_by_name(platform, section, pin):
    raw = {"mqtt": {"server": "b"}, section: {"pin": pin}}
    with pytest.raises(ConfigError, match="%s.pin: GPIO %d cannot be used for that on an %s"
                       % (section, pin, platform.upper())):
        config.validate(raw, platform=platform)
    config.validate(raw)  # the host without a board knows no chip


def test_an_esp8266_runs_without_the_clock_and_the_spool_unless_asked_and_is_refused_them():
    cfg = config.validate({"mqtt": {"server": "b"}}, platform="esp8266")
    assert cfg["ntp"]["resync_s"] == 0 and cfg["spool"]["size"] == 0 and cfg["mqtt"]["cmd_topic"] == ""
    cfg = config.validate({"mqtt": {"server": "b"}}, platform="esp32")
    assert cfg["ntp"]["resync_s"] == 3600 and cfg["spool"]["size"] == 17280
    for raw, key in (({"ntp": {"resync_s": 3600}}, "ntp.resync_s"), ({"spool": {"size": 100}}, "spool.size")):
        raw["mqtt"] = {"server": "b"}
        with pytest.raises(ConfigError, match="%s: an ESP8266 has not the heap" % key):
            config.validate(raw, platform="esp8266")
    assert config.validate({"mqtt": {"server": "b"}, "ntp": {"resync_s": 0}, "spool": {"size": 0}},
                           platform="esp8266")["ntp"]["resync_s"] == 0


def test_a_boot_strapping_pin_still_drives_an_led():
    assert config.validate({"mqtt": {"server": "b"}, "led": {"pin": 15}}, platform="esp8266")["led"]["pin"] == 15
    assert config.validate({"mqtt": {"server": "b"}, "led": {"pin": 12}}, platform="esp32")["led"]["pin"] == 12


def test_the_defaults_suit_both_chips():
    for platform in ("esp8266", "esp32"):
        cfg = config.validate({"mqtt": {"server": "b"}}, platform=platform)
        assert (cfg["sensor"]["pin"], cfg["led"]["pin"]) == (5, 2)
    big = {"mqtt": {"server": "b"}, "queue": {"size": 500}}
    with pytest.raises(ConfigError, match="queue.size: an ESP8266 has room for at most 128 readings"):
        config.validate(big, platform="esp8266")
    assert config.validate(big, platform="esp32")["queue"]["size"] == 500


def test_led_pin_may_be_null_to_disable_the_led():
    assert config.validate({"mqtt": {"server": "b"}, "led": {"pin": None}})["led"]["pin"] is None


def test_the_board_may_lower_the_sensor_floor():
    raw = {"mqtt": {"server": "b"}, "sensor": {"interval_s": 0.1}}
    assert config.validate(raw, {"DHT22": 0.05, "DHT11": 0.05})["sensor"]["interval_s"] == 0.1


def test_malformed_json_is_one_clear_error(tmp_path):
    path = write(tmp_path, "config.json", '{"mqtt": {"server": "b",}}')
    with pytest.raises(ConfigError, match=r"config.json: not valid JSON"):
        config.load(path, str(tmp_path / "none.json"))


def test_missing_config_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load(str(tmp_path / "config.json"), str(tmp_path / "secrets.json"))


def test_secrets_merge_over_config_and_are_validated_too(tmp_path):
    path = write(tmp_path, "config.json", {"mqtt": {"server": "b", "user": "u"}, "wifi": {"ssid": "home"}})
    secrets = write(tmp_path, "secrets.json", {"mqtt": {"password": "s3cret"}, "wifi": {"password": "w1fi"}})
    cfg = config.load(path, secrets)
    assert cfg["mqtt"]["password"] == "s3cret" and cfg["mqtt"]["server"] == "b"
    assert cfg["wifi"]["password"] == "w1fi"
    bad = write(tmp_path, "bad.json", {"mqtt": {"passwrd": "x"}})
    with pytest.raises(ConfigError, match="mqtt.passwrd: unknown key"):
        config.load(path, bad)


def test_redacted_hides_every_secret_and_nothing_else():
    cfg = config.validate({"mqtt": {"server": "b", "user": "u", "password": "s3cret"},
                           "wifi": {"ssid": "home", "password": "w1fi"}})
    shown = json.dumps(config.redacted(cfg))
    assert "s3cret" not in shown and "w1fi" not in shown
    assert '"user": "u"' in shown and '"ssid": "home"' in shown
    assert cfg["mqtt"]["password"] == "s3cret"  # the original is untouched


def test_discovery_and_commands_are_on_where_they_fit_and_off_on_an_esp8266():
    for platform in ("esp32", None):
        cfg = config.validate({"mqtt": {"server": "b"}}, platform=platform)
        assert cfg["ha"] == {"discovery": True, "prefix": "homeassistant", "url": ""}
        assert cfg["mqtt"]["cmd_topic"] == "fireant/{device}/cmd"
    cfg = config.validate({"mqtt": {"server": "b"}}, platform="esp8266")
    assert cfg["ha"]["discovery"] is False and cfg["mqtt"]["cmd_topic"] == ""
    with pytest.raises(ConfigError, match="ha.discovery: an ESP8266 has not the heap for it"):
        config.validate({"mqtt": {"server": "b"}, "ha": {"discovery": True}}, platform="esp8266")
    with pytest.raises(ConfigError, match="mqtt.cmd_topic: an ESP8266 has not the heap for commands"):
        config.validate({"mqtt": {"server": "b", "cmd_topic": "n/{device}/cmd"}}, platform="esp8266")
    assert config.validate({"mqtt": {"server": "b", "cmd_topic": ""}}, platform="esp8266")["mqtt"]["cmd_topic"] == ""
    off = config.validate({"mqtt": {"server": "b", "cmd_topic": ""}, "ha": {"discovery": False}}, platform="esp32")
    assert off["mqtt"]["cmd_topic"] == "" and off["ha"]["discovery"] is False


@pytest.mark.parametrize("raw, key, words", [
    ({"mqtt": {"server": "b", "cmd_topic": "a/#"}}, "mqtt.cmd_topic", "wildcards"),
    ({"mqtt": {"server": "b", "topic": 'a/"b'}}, "mqtt.topic", "must not hold"),
    ({"mqtt": {"server": "b"}, "ha": {"prefix": ""}}, "ha.prefix", "empty"),
    ({"mqtt": {"server": "b"}, "ha": {"url": "ftp://x"}}, "ha.url", "http://"),
    ({"mqtt": {"server": "b"}, "ha": {"discovery": "auto"}}, "ha.discovery", "true or false"),
])
def test_bad_ha_and_command_settings_name_the_key(raw, key, words):
    with pytest.raises(ConfigError, match="config: %s: .*%s" % (key.replace(".", r"\."), words)):
        config.validate(raw)


def test_overrides_merge_over_both_files_and_a_bad_one_never_stops_a_boot(tmp_path, capsys):
    path = write(tmp_path, "config.json", {"mqtt": {"server": "b"}, "sensor": {"interval_s": 5}})
    none = str(tmp_path / "none.json")
    over = write(tmp_path, "overrides.json", {"sensor": {"interval_s": 30}})
    assert config.load(path, none, overrides=over)["sensor"]["interval_s"] == 30
    for bad in ({"sensor": {"interval_s": 0.5}}, "{broken", [1]):
        write(tmp_path, "overrides.json", bad)
        assert config.load(path, none, overrides=over)["sensor"]["interval_s"] == 5
        assert "WARNING: %s ignored" % over in capsys.readouterr().out
    with pytest.raises(ConfigError, match="sensor.interval_s: a DHT22 cannot be read more often"):
        config.load(path, none, overrides={"sensor": {"interval_s": 0.5}})  # a command's: refused


def test_the_watchdog_is_off_unless_set_refused_on_an_esp8266_and_needs_no_minimum():
    assert config.validate({"mqtt": {"server": "b"}})["watchdog"] is None  # off: nothing to load
    cfg = config.validate({"mqtt": {"server": "b"}, "watchdog": {"timeout_s": 30}}, platform="esp32")
    assert cfg["watchdog"] == {"timeout_s": 30, "crashes": 3, "stable_s": 600}
    with pytest.raises(ConfigError, match="watchdog.timeout_s: an ESP8266 has not the heap for the watchdog"):
        config.validate({"mqtt": {"server": "b"}, "watchdog": {"timeout_s": 30}}, platform="esp8266")
    assert config.validate({"mqtt": {"server": "b"}, "watchdog": {"timeout_s": 0}}, platform="esp8266")["watchdog"] \
        is None
    for bad, key in (({"timeout_s": -1}, "watchdog.timeout_s"), ({"crashes": 21}, "watchdog.crashes"),
                     ({"stable_s": 0}, "watchdog.stable_s")):
        with pytest.raises(ConfigError, match=key):
            config.validate({"mqtt": {"server": "b"}, "watchdog": bad})
