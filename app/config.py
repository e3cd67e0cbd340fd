"""Settings: config.json with secrets.json merged over it, checked against SCHEMA.

The same code validates on the host (deploy.py) and on the board, so a bad key is
reported before anything is uploaded and again if someone edits the file on flash.
Every problem raises ConfigError naming the key and the fix.
"""
import json

REQUIRED = "<required>"

# (key, kind, default, limits). Kinds: str, secret (a str never logged; limits:
# its most bytes, UTF-8), int, num, bool, auto (a bool, or null: the chip decides),
# pin (int or null), choice (limits = allowed values).
SCHEMA = (
    ("device", "str", "", 32),
    ("location", "str", "", 64),
    ("wifi.ssid", "str", "", 32),
    ("wifi.password", "secret", "", 64),
    ("wifi.hostname", "str", "", 32),
    ("wifi.ap_ssid", "str", "", 32),
    ("wifi.ap_password", "secret", "", 64),
    ("wifi.timeout_s", "num", 20, (1, 300)),
    ("wifi.backoff_min_s", "num", 1, (0.1, 3600)),
    ("wifi.backoff_max_s", "num", 60, (0.1, 3600)),
    ("wifi.portal_after_s", "num", 600, (0, 86400)),
    ("mqtt.server", "str", REQUIRED, 253),
    ("mqtt.port", "int", 0, (0, 65535)),
    ("mqtt.user", "str", "", 128),
    ("mqtt.password", "secret", "", 128),
    ("mqtt.tls", "bool", False, None),
    ("mqtt.ca", "str", "", 128),
    ("mqtt.keepalive_s", "int", 20, (4, 65535)),
    ("mqtt.ping_interval_s", "int", 5, (1, 3600)),
    ("mqtt.response_time_s", "int", 10, (1, 120)),
    ("mqtt.topic", "str", "sensors/environmental", 128),
    ("mqtt.status_topic", "str", "fireant/{device}/status", 128),
    ("mqtt.stats_topic", "str", "fireant/{device}/stats", 128),
    ("mqtt.cmd_topic", "str", "fireant/{device}/cmd", 128),
    ("ha.discovery", "auto", None, None),
    ("ha.prefix", "str", "homeassistant", 64),
    ("ha.url", "str", "", 128),
    ("ntp.server", "str", "pool.ntp.org", 253),
    ("ntp.resync_s", "num", 3600, (0, 86400)),
    ("ntp.timeout_s", "num", 3, (0.1, 60)),
    ("telemetry.interval_s", "num", 60, (0, 86400)),
    ("sensor.type", "choice", "DHT22", ("DHT22", "DHT11")),
    ("sensor.pin", "int", 5, (0, 48)),
    ("sensor.interval_s", "num", 5, (0.001, 86400)),
    ("led.pin", "pin", 2, (0, 48)),
    ("led.active_low", "bool", True, None),
    ("queue.size", "int", 64, (1, 2000)),
    ("spool.size", "int", 17280, (0, 1000000)),
    ("mqtt.window", "int", 16, (1, 64)),
    ("mqtt.reconnect_spread_s", "num", 8, (0, 300)),
    # Battery mode (app/sleep.py): deep sleep between samples; 0: always on.
    ("sleep.interval_s", "num", 0, (0, 86400)),
    ("sleep.awake_s", "num", 20, (1, 300)),
    # The watchdog and safe mode (app/watchdog.py, loaded only when timeout_s is set): docs/watchdog.md.
    ("watchdog.timeout_s", "num", 0, (0, 3600)),
    ("watchdog.crashes", "int", 3, (0, 20)),
    ("watchdog.stable_s", "num", 600, (1, 86400)),
    # Calibration and filters (app/filters.py, loaded only when one is set): README "Filters".
    ("filter.temperature_offset", "num", 0, (-50, 50)),
    ("filter.temperature_multiply", "num", 1, (0.1, 10)),
    ("filter.humidity_offset", "num", 0, (-50, 50)),
    ("filter.humidity_multiply", "num", 1, (0.1, 10)),
    ("filter.smoothing", "choice", "none", ("none", "median", "average")),
    ("filter.window", "int", 5, (1, 15)),
    ("filter.alpha", "num", 0.3, (0.01, 1)),
    ("filter.delta_temperature", "num", 0, (0, 100)),
    ("filter.delta_humidity", "num", 0, (0, 100)),
    ("filter.throttle_s", "num", 0, (0, 86400)),
    ("filter.heartbeat_s", "num", 0, (0, 86400)),
)

# The sensor cannot be read faster than this (datasheets); the sim board may allow less.
MIN_INTERVAL_S = {"DHT22": 2, "DHT11": 1}

_TOPICS = ("mqtt.topic", "mqtt.status_topic", "mqtt.stats_topic", "mqtt.cmd_topic", "ha.prefix")
# What the commands changed (app/commands.py), on flash beside config.json.
OVERRIDES = "overrides.json"
_HOST_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
_ESP8266_QUEUE = 128  # runs in the ESP8266 model's 33K with the firmware as ROMFS
# GPIOs a DHT's data line (in and out, pulled up) and an LED (out) can use, per chip.
# ESP8266: 6-11 hold the flash, 1 and 3 are the REPL's UART, 16 has no pull-up.
# ESP32: 6-11 hold the flash, 34-39 are inputs only, 20, 24 and 28-33 do not exist.
# A DHT's pull-up holds its pin high at reset: not on a pin that must be low to
# boot (ESP8266 GPIO15; ESP32 GPIO12, which high selects 1.8 V flash).
_ESP32 = tuple(p for p in range(34) if p not in (6, 7, 8, 9, 10, 11, 20, 24, 28, 29, 30, 31))
_PINS = {"esp8266": ((0, 2, 4, 5, 12, 13, 14), (0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16)),
         "esp32": (tuple(p for p in _ESP32 if p != 12), _ESP32)}


class ConfigError(ValueError):
    pass


def _fail(key, problem):
    raise ConfigError("config: %s: %s" % (key, problem))


def wpa2(pw):
    """A WPA2 passphrase: 8 to 63 printable ASCII characters, so as many bytes
    (the driver counts bytes; a 64-hex raw key is not a passphrase)."""
    return isinstance(pw, str) and 8 <= len(pw) <= 63 and all(" " <= c <= "~" for c in pw)


def _check(key, kind, value, limits):
    if kind in ("str", "secret"):
        if not isinstance(value, str):
            _fail(key, "must be a string")
        if len(value.encode()) > limits:
            _fail(key, "must be at most %d bytes long, got %d" % (limits, len(value.encode())))
        return value
    if kind == "bool" or kind == "auto" and value is not None:
        if value is not True and value is not False:
            _fail(key, "must be true or false")
        return value
    if kind == "choice":
        if value not in limits:
            _fail(key, "must be one of %s, got %r" % (", ".join(limits), value))
        return value
    if kind in ("pin", "auto") and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(key, "must be a number, got %r" % (value,))
    if kind != "num" and not isinstance(value, int):
        _fail(key, "must be a whole number, got %r" % (value,))
    lo, hi = limits
    if not lo <= value <= hi:
        _fail(key, "must be between %s and %s, got %s" % (lo, hi, value))
    return value


def _split(key):
    # Keys are "name" or "section.name" (ESP8266 builds may lack str.rpartition).
    parts = key.split(".")
    return ("", key) if len(parts) == 1 else parts


def _lookup(raw, key):
    node = raw
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return REQUIRED
        node = node[part]
    return node


def _known(raw, prefix=""):
    # Unknown keys are errors: a typo ("mqtt.sever") must not silently mean "default".
    known = [k for k, _, _, _ in SCHEMA]
    for name, value in raw.items():
        key = prefix + name
        if isinstance(value, dict) and any(k.startswith(key + ".") for k in known):
            _known(value, key + ".")
        elif key not in known:
            _fail(key, "unknown key (known: %s)" % ", ".join(known))


def validate(raw, min_interval_s=None, platform=None):
    """Return the settings as nested dicts with defaults filled in, or raise ConfigError.
    cfg["filter"] is None when no filter key differs from its default (nothing to load),
    and cfg["watchdog"] is None when watchdog.timeout_s is 0.
    platform: the board's sys.platform ("esp8266", "esp32"); what that chip cannot
    do is refused by name. None (the host, no board known): not checked."""
    if not isinstance(raw, dict):
        raise ConfigError("config: the top level must be a JSON object")
    _known(raw)
    cfg = {}
    for key, kind, default, limits in SCHEMA:
        value = _lookup(raw, key)
        if value is REQUIRED:
            if default is REQUIRED:
                _fail(key, "missing; it is required")
            value = default
        else:
            value = _check(key, kind, value, limits)
        section, name = _split(key)
        (cfg.setdefault(section, {}) if section else cfg)[name] = value
    _sensor_floor(cfg["sensor"]["type"], cfg["sensor"]["interval_s"], min_interval_s)
    wifi, mqtt = cfg["wifi"], cfg["mqtt"]
    if wifi["backoff_max_s"] < wifi["backoff_min_s"]:
        _fail("wifi.backoff_max_s", "must not be below wifi.backoff_min_s")
    if 0 < wifi["portal_after_s"] < 60:
        _fail("wifi.portal_after_s", "0 (never: no wifi.ssid means sensing only) or at least 60 s (the provisioning "
                                     "portal stops the readings), got %s" % wifi["portal_after_s"])
    ap_pw = wifi["ap_password"]
    if (wifi["ap_ssid"] or ap_pw) and not wpa2(ap_pw):
        _fail("wifi.ap_password", "must be 8 to 63 printable ASCII characters (WPA2)%s, got %d bytes" % (
            " when wifi.ap_ssid is set" if wifi["ap_ssid"] else " (or none: the setup portal's access point "
                                                                  "is then open)", len(ap_pw.encode())))
    if not mqtt["server"]:
        _fail("mqtt.server", "must not be empty")
    if mqtt["password"] and not mqtt["user"]:
        _fail("mqtt.user", "must be set when mqtt.password is set")
    if mqtt["ping_interval_s"] * 2 > mqtt["keepalive_s"]:
        _fail("mqtt.ping_interval_s", "must be at most half of mqtt.keepalive_s")
    if 0 < cfg["telemetry"]["interval_s"] < 1:
        _fail("telemetry.interval_s", "0 (on connect and on demand only) or at least 1 s, got %s"
              % cfg["telemetry"]["interval_s"])
    if 0 < cfg["ntp"]["resync_s"] < 60:
        _fail("ntp.resync_s", "0 (no clock: readings say \"ts\": null) or at least 60 s (be kind to the pool), got %s"
              % cfg["ntp"]["resync_s"])
    sleep = cfg["sleep"]
    if sleep["interval_s"]:
        if sleep["interval_s"] < sleep["awake_s"] + 5:
            _fail("sleep.interval_s", "must be at least sleep.awake_s (%s s) + 5 s (the goodbye's bounded waits), "
                                      "or 0 (always on), got %s" % (sleep["awake_s"], sleep["interval_s"]))
        if not cfg["spool"]["size"]:
            _fail("sleep.interval_s", "needs spool.size: readings not sent within sleep.awake_s wait on flash "
                                      "for the next wake")
    device = cfg["device"]
    if device and not all(c in _HOST_CHARS or c == "_" for c in device):
        _fail("device", "may hold only letters, digits, - and _ (it is the MQTT client id and a topic "
                        "level), got \"%s\"" % device)
    host = wifi["hostname"] or device
    if host and (not all(c in _HOST_CHARS for c in host) or host[0] == "-" or host[-1] == "-"):
        _fail("wifi.hostname" if wifi["hostname"] else "device",
              "\"%s\" cannot be the DHCP host name: letters, digits and - only, not first or last%s"
              % (host, "" if wifi["hostname"] else " (or set wifi.hostname)"))
    server = mqtt["server"]
    if "://" in server or ":" in server or " " in server:
        _fail("mqtt.server", "a host name or IPv4 address only, got \"%s\" (the port goes in mqtt.port)" % server)
    for key in _TOPICS:
        value = _lookup(cfg, key)
        if key == "mqtt.cmd_topic" and not value:
            continue  # "": no commands
        problem = _topic_problem(value.replace("{device}", device or "fireant-0"))
        if problem:
            _fail(key, problem)
    url = cfg["ha"]["url"]
    if url and not (url.startswith("http://") or url.startswith("https://")) or " " in url or '"' in url \
            or "\\" in url or _control(url):
        _fail("ha.url", "an http:// or https:// address (Home Assistant's configuration_url), or \"\", got \"%s\""
              % url)
    f = cfg["filter"]
    if f["heartbeat_s"] and f["heartbeat_s"] < f["throttle_s"]:
        _fail("filter.heartbeat_s", "must not be below filter.throttle_s (a heartbeat the throttle holds back)")
    if all(f[k[7:]] == d for k, _, d, _ in SCHEMA if k.startswith("filter.")):
        cfg["filter"] = None
    if not cfg["watchdog"]["timeout_s"]:
        cfg["watchdog"] = None  # off: nothing to load, no section held through start-up
    if platform in _PINS:
        for key, pin, usable in (("sensor.pin", cfg["sensor"]["pin"], _PINS[platform][0]),
                                 ("led.pin", cfg["led"]["pin"], _PINS[platform][1])):
            if pin is not None and pin not in usable:
                _fail(key, "GPIO %d cannot be used for that on an %s; these can: %s"
                      % (pin, platform.upper(), ", ".join(str(p) for p in usable)))
    ha = cfg["ha"]
    if ha["discovery"] is None:  # null: where it fits
        ha["discovery"] = platform != "esp8266"
    if platform == "esp8266":
        # Measured on the ESP8266 model (docs/ha.md, docs/esp8266.md): the firmware needs
        # 33 KB, 35 with the clock or discovery, 41 to handle a command; an ESP8266 leaves 30-35 KB.
        if ha["discovery"]:
            _fail("ha.discovery", "an ESP8266 has not the heap for it (35 KB, of the 30-35 KB it leaves free; "
                                  "docs/ha.md): set it to null or false, or use an ESP32")
        if sleep["interval_s"]:
            _fail("sleep.interval_s", "an ESP8266 has not the heap for battery mode: it keeps what a wake could "
                                      "not send in the flash spool (more than 33 KB on the ESP8266 model, of the "
                                      "30-35 KB it leaves free; docs/esp8266.md): set it to 0, or use an ESP32")
        # Off unless set; refused when set on.
        for key, off, why in (
                ("ntp.resync_s", 0, "the clock beside the backlog drain (35 KB on the ESP8266 model, of the 30-35 "
                                    "KB it leaves free; docs/esp8266.md): set it to 0 (readings say \"ts\": null), "
                                    "or use an ESP32"),
                ("spool.size", 0, "the flash spool beside the RAM backlog (more than 33 KB on the ESP8266 model, of "
                                  "the 30-35 KB it leaves free; docs/esp8266.md): set it to 0 (queue.size readings "
                                  "are kept, in RAM), or use an ESP32"),
                ("mqtt.cmd_topic", "", "commands (41 KB to handle one, of the 30-35 KB it leaves free; docs/ha.md): "
                                       "set it to \"\", or use an ESP32"),
                ("wifi.portal_after_s", 0, "the provisioning portal (microdot, then the validator: 34 KB on the "
                                           "ESP8266 model, of the 30-35 KB it leaves free; docs/provisioning.md): "
                                           "set it to 0 (no wifi.ssid: sensing only), or use an ESP32")):
            section, name = _split(key)
            if _lookup(raw, key) is REQUIRED:
                cfg[section][name] = off
            elif cfg[section][name] != off:
                _fail(key, "an ESP8266 has not the heap for " + why)
        if cfg["filter"]:
            key = [k for k, _, d, _ in SCHEMA if k.startswith("filter.") and cfg["filter"][k[7:]] != d][0]
            _fail(key, "an ESP8266 has not the heap for the filters (app/filters.py: 35 KB on the ESP8266 model "
                       "with every stage, a calibration offset alone more than 33 KB, of the 30-35 KB it leaves "
                       "free; docs/esp8266.md): leave filter.* at the defaults, or use an ESP32")
        if cfg["watchdog"]:
            _fail("watchdog.timeout_s", "an ESP8266 has not the heap for the watchdog (app/watchdog.py: 36 KB on "
                                        "the ESP8266 model, of the 30-35 KB it leaves free; docs/watchdog.md): set "
                                        "it to 0, or use an ESP32")
        if mqtt["ca"]:
            _fail("mqtt.ca", "an ESP8266 cannot verify the broker's certificate (its TLS, axTLS, has no CA "
                             "support): remove mqtt.ca, or use an ESP32")
        if mqtt["tls"]:
            _fail("mqtt.tls", "not on an ESP8266: axTLS needs ~12 KB of the heap the firmware has not got, and "
                              "cannot handshake under mqtt_as (docs/esp8266.md); use an ESP32 for TLS")
        if cfg["queue"]["size"] > _ESP8266_QUEUE:
            _fail("queue.size", "an ESP8266 has room for at most %d readings (docs/esp8266.md), got %d: use an "
                                "ESP32 for more" % (_ESP8266_QUEUE, cfg["queue"]["size"]))
    return cfg


def _sensor_floor(kind, interval_s, min_interval_s):
    mins = min_interval_s or MIN_INTERVAL_S
    if interval_s < mins[kind]:
        _fail("sensor.interval_s", "a %s cannot be read more often than every %s s, got %s"
              % (kind, mins[kind], interval_s))


def check_interval(value, kind, min_interval_s=None):
    """sensor.interval_s by itself, by validate()'s rules for it: a command's new
    value, checked without reading and checking the whole files again."""
    for key, k, _, limits in SCHEMA:
        if key == "sensor.interval_s":
            _check(key, k, value, limits)
    _sensor_floor(kind, value, min_interval_s)
    return value


def interval(path, secrets):
    """sensor.interval_s as config.json and secrets.json set it (factory_reset)."""
    value = _lookup(merge(read_json(path), read_json(secrets, required=False)), "sensor.interval_s")
    return 5 if value is REQUIRED else value


def _control(text):
    return any(c < " " or c == "\x7f" for c in text)


def _topic_problem(topic):
    if not topic:
        return "must not be empty"
    if "+" in topic or "#" in topic:
        return "must not hold wildcards (+ #): the node publishes to one topic"
    if "{" in topic or "}" in topic:
        return "only {device} may be filled in"
    if topic[0] == "$":
        return "topics starting with $ belong to the broker"
    if "" in topic.split("/"):
        return "has an empty level (a / at the start or the end, or //)"
    if _control(topic):
        return "must not hold control characters (it goes into JSON as it is)"
    if '"' in topic or "\\" in topic:
        return "must not hold \" or \\ (it goes into JSON as it is)"
    return None


def warnings(cfg):
    """What works but gives the password away, one line each: said at boot and by deploy.py."""
    m = cfg["mqtt"]
    if m["password"] and not m["tls"]:
        return ["mqtt.password travels in clear text: set mqtt.tls and mqtt.ca"]
    if m["tls"] and not m["ca"]:
        return ["mqtt.tls without mqtt.ca: the broker is not verified, so anyone on the path can pose as it"
                + (" and read mqtt.password" if m["password"] else "")]
    return []


def merge(base, over):
    """Deep-merge dict over into base (secrets over config); returns base."""
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def read_json(path, required=True):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        if required:
            raise ConfigError("%s: not found (copy config.json from the repository and edit it)" % path)
        return {}
    except ValueError:  # UnicodeError
        raise ConfigError("%s: not UTF-8 text" % path)
    try:
        return json.loads(text)
    except ValueError as e:
        raise ConfigError("%s: not valid JSON (%s)" % (path, e))


def load(path="config.json", secrets="secrets.json", min_interval_s=None, platform=None, overrides=None):
    """overrides: what commands changed, merged over both and validated with them:
    a file name (OVERRIDES on the board), ignored with a warning when it is bad, so
    that it never keeps a node from starting; or a dict to try, whose ConfigError
    is raised (app/commands.py, before it writes the file)."""
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise ConfigError("%s: the top level must be a JSON object" % path)
    extra = read_json(secrets, required=False)
    if not isinstance(extra, dict):
        raise ConfigError("%s: the top level must be a JSON object" % secrets)
    cfg = validate(merge(raw, extra), min_interval_s, platform)
    if isinstance(overrides, dict):
        cfg = validate(merge(raw, overrides), min_interval_s, platform)
    elif overrides:
        try:
            over = read_json(overrides, required=False)
            if not isinstance(over, dict):
                raise ConfigError("%s: the top level must be a JSON object" % overrides)
            if over:
                cfg = validate(merge(raw, over), min_interval_s, platform)
        except ConfigError as e:
            print("config: WARNING: %s ignored: %s" % (overrides, e))
    return _compact(cfg)


def _compact(value):
    # The settings live for ever; parsing and checking left them among garbage.
    # Made again here, the dicts and each str's header (on MicroPython a str
    # made from bytes shares their data: the text stays where it was) land where
    # the tasks' later blocks fit better. Measured, not reasoned: at the ESP8266
    # model's 33K the tier failed 8 runs of 8 without this, 5 of 8 with the dicts
    # alone, 0 of 8 as it is (docs/esp8266.md).
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items()}
    if isinstance(value, str):
        return value.encode().decode()
    return value


def redacted(cfg):
    """A copy safe to print: secrets replaced."""
    out = {}
    for section, value in cfg.items():
        out[section] = dict(value) if isinstance(value, dict) else value
    for key, kind, _, _ in SCHEMA:
        section, name = _split(key)
        if kind == "secret" and out.get(section, {}).get(name):
            out[section][name] = "***"
    return out
