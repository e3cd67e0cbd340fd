# The validator as the board runs it: every bad setting is refused with a
# message naming the key; good settings come back with defaults filled in.
from app.config import ConfigError, validate

BAD = (
    {"mqtt": {"server": "b"}, "telemetry": {"interval_s": 0.5}},
    {"mqtt": {"server": "b"}, "ntp": {"resync_s": 10}},
    {"wifi": {"ssid": "x"}},
    {"mqtt": {"server": ""}},
    {"mqtt": {"server": "b", "port": "1883"}},
    {"mqtt": {"server": "b", "port": 70000}},
    {"mqtt": {"server": "b", "tls": "yes"}},
    {"mqtt": {"server": "b"}, "sensor": {"pin": 4.5}},
    {"mqtt": {"server": "b"}, "sensor": {"type": "DHT21"}},
    {"mqtt": {"server": "b"}, "sensor": {"interval_s": 1}},
    {"mqtt": {"server": "b"}, "sensor": {"type": "DHT11", "interval_s": 0.5}},
    {"mqtt": {"server": "b"}, "queue": {"size": 0}},
    {"mqtt": {"server": "b", "topic": "sensors/#"}},
    {"mqtt": {"server": "b", "password": "p"}},
    {"mqtt": {"server": "b", "keepalive_s": 10, "ping_interval_s": 8}},
    {"mqtt": {"server": "b"}, "wifi": {"ap_ssid": "fireant", "ap_password": "short"}},
    {"mqtt": {"server": "b"}, "wifi": {"ap_password": "short"}},
    {"mqtt": {"server": "b"}, "wifi": {"ap_password": "K\u00fcche-pw"}},  # 8 characters, 9 bytes
    {"mqtt": {"server": "b"}, "wifi": {"backoff_min_s": 10, "backoff_max_s": 5}},
    {"mqtt": {"server": "b"}, "led": {"pin": True}},
    [1, 2],
    {"mqtt": {"server": "b"}, "device": "K\u00fcche-1"},
    {"mqtt": {"server": "b"}, "device": "n" * 33},
    {"mqtt": {"server": "b"}, "device": "my_node"},
    {"mqtt": {"server": "b"}, "location": "\u00e4" * 33},
    {"mqtt": {"server": "mqtt://b:1883"}},
    {"mqtt": {"server": "b", "topic": "/home/temp"}},
    {"mqtt": {"server": "b", "status_topic": "fireant/{devcie}/status"}},
    {"mqtt": {"server": "b", "cmd_topic": "fireant/+/cmd"}},
    {"mqtt": {"server": "b"}, "ha": {"prefix": "homeassistant/"}},
    {"mqtt": {"server": "b"}, "ha": {"url": "node.local"}},
    {"mqtt": {"server": "b"}, "ha": {"discovery": "on"}},
    {"mqtt": {"server": "b"}, "filter": {"smoothing": "mean"}},
    {"mqtt": {"server": "b"}, "filter": {"window": 16}},
    {"mqtt": {"server": "b"}, "filter": {"temperature_multiply": 0}},
    {"mqtt": {"server": "b"}, "filter": {"heartbeat_s": 10, "throttle_s": 60}},
    {"mqtt": {"server": "b"}, "sleep": {"interval_s": 20}},
    {"mqtt": {"server": "b"}, "sleep": {"interval_s": 300}, "spool": {"size": 0}},
    {"mqtt": {"server": "b"}, "sleep": {"interval_s": -1}},
)

for raw in BAD:
    try:
        validate(raw)
        print("accepted", raw)
    except ConfigError as e:
        print(e)

for raw in ({"mqtt": {"server": "b", "tls": True, "ca": "ca.pem"}}, {"mqtt": {"server": "b", "tls": True}},
            {"mqtt": {"server": "b"}, "queue": {"size": 500}}, {"mqtt": {"server": "b"}, "sensor": {"pin": 7}},
            {"mqtt": {"server": "b"}, "sleep": {"interval_s": 300}}):
    try:
        validate(raw, platform="esp8266")
    except ConfigError as e:
        print(e)

cfg = validate({"wifi": {"ssid": "home"}, "mqtt": {"server": "192.168.1.10"}, "led": {"pin": None}})
print("filter", sorted(validate({"mqtt": {"server": "b"}, "filter": {"smoothing": "median"}})["filter"].items()))
for section in sorted(cfg):
    value = cfg[section]
    print(section, sorted(value.items()) if isinstance(value, dict) else repr(value))
