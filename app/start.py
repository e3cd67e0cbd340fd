"""Start-up: the settings read and validated, the node built from them. Needed
once: app/__init__.py drops this module (and config.py) before the tasks run, so
on a board its code and constants leave the heap (ROMFS keeps a module's names,
not its functions or strings, in flash)."""
from . import board
from .node import Node, forget, log
from .publisher import head, topic


def settings(config, secrets):
    """Validated settings, or None after printing what is wrong. The validator is
    then dropped: its RAM (~6 KB on an ESP8266 as ROMFS) goes to the tasks."""
    from .config import OVERRIDES, ConfigError, load, warnings

    try:
        cfg = load(config, secrets, board.min_interval_s(), board.platform(), OVERRIDES)
        for w in warnings(cfg):
            log("config", "WARNING: " + w)
        return cfg
    except ConfigError as e:
        print(e)
        return None
    finally:
        forget("config")


def build(cfg):
    """What app.Firmware holds, made from cfg (the validated settings), in the
    order Firmware.__init__ takes it."""
    from . import client
    from .backlog import Backlog
    from .status import Status

    node = Node(cfg["device"] or "fireant-" + board.unique_id())
    s, q, m, device = cfg["sensor"], cfg["queue"]["size"], cfg["mqtt"], node.device
    node.interval_ms = int(s["interval_s"] * 1000)
    node.first_sync = cfg["ntp"]["resync_s"] > 0
    backlog = Backlog(node, q)
    filt = None
    if cfg["filter"]:  # config.py: None unless a filter.* key is set
        from .filters import Filter

        filt = Filter(cfg["filter"])
    status = Status(node, backlog, topic(m["status_topic"], device), topic(m["stats_topic"], device))
    inbox, cmd_result, discovery = _inbox(cfg, device)
    mqtt = client.make(cfg, device, board.station(), status, inbox and inbox.put)
    forget("client")
    if inbox:
        inbox.client = mqtt
        status.on_connect = inbox.connected
    # All the tasks read from here on; the rest of the settings is garbage now.
    kept = {"wifi": cfg["wifi"], "ntp": cfg["ntp"], "mqtt": {k: m[k] for k in ("server", "tls", "ca")}}
    return (node, backlog, board.Sensor(s["type"], s["pin"]), filt, board.Led(cfg["led"]["pin"], cfg["led"]["active_low"]),
            status, inbox, mqtt, (topic(m["topic"], device), head(device, cfg["location"], node.boot)),
            int(cfg["telemetry"]["interval_s"] * 1000), kept,
            "%s starting: %s every %s s, queue %d" % (device, s["type"], s["interval_s"], q), s["type"],
            cmd_result, discovery)


def _inbox(cfg, device):
    """Commands and Home Assistant discovery: (an Inbox or None when both are
    off, the commands' result topic, discovery's settings or None)."""
    m, ha = cfg["mqtt"], cfg["ha"]
    cmd = m["cmd_topic"].replace("{device}", device)
    discovery = None
    if ha["discovery"]:
        discovery = (ha["prefix"].encode(), device.encode(), board.unique_id().encode(), topic(m["topic"], device),
                     "{device}" not in m["topic"], topic(m["status_topic"], device),
                     topic(m["stats_topic"], device), cmd.encode(), ha["url"].encode(),
                     ("%s on %s" % (cfg["sensor"]["type"], board.platform().upper())).encode())
    inbox = None
    if cmd or ha["discovery"]:
        from .inbox import Inbox

        inbox = Inbox(cmd.encode() if cmd else None, (ha["prefix"] + "/status").encode() if ha["discovery"] else None)
    return inbox, (cmd + "/result").encode(), discovery
