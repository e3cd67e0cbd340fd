"""Start-up: the settings validated, then the firmware's parts built from them and
the tasks named. app.run() drops this module (and config.py) once that is done:
on an ESP8266 every function a module defines costs RAM for as long as the module
is held, so the code that runs once at boot must not stay (docs/esp8266.md)."""
import json
import os

from . import board
from .node import log


def topic(template, device):
    """The topic, {device} filled in, as bytes."""
    return template.replace("{device}", device).encode()


def head(device, location):
    """The start every reading's JSON shares, encoded once."""
    return ('{"device": %s, "location": %s, ' % (json.dumps(device), json.dumps(location))).encode()


def settings(config, secrets):
    """Validated settings, or what is wrong with them (a str: the ConfigError's
    message, printed). The validator is then dropped: its RAM (~6 KB on an ESP8266
    as ROMFS) goes to the tasks."""
    from .config import OVERRIDES, ConfigError, load, warnings
    from .node import forget

    for path in (config, secrets):  # the portal's rename cut by a reset: on FAT it unlinks, then renames
        try:
            os.stat(path)
        except OSError:
            try:
                os.rename(path + ".tmp", path)
            except OSError:
                pass

    try:
        cfg = load(config, secrets, board.min_interval_s(), board.platform(), OVERRIDES)
        for w in warnings(cfg):
            log("config", "WARNING: " + w)
        return cfg
    except ConfigError as e:
        print(e)
        return str(e)
    finally:
        forget("config")


PORTAL = "portal"  # on flash: the Wi-Fi task gave up joining (app/wifi.py); the next boot opens the portal


def portal(cfg):
    """The provisioning portal (app/portal.py) instead of the tasks? How long it
    stays open, ms (0: until settings are saved), or None: the tasks run. Open
    for ever without wifi.ssid; for wifi.portal_after_s after the Wi-Fi task gave
    up, since the network may only have been down. wifi.portal_after_s 0: never."""
    w = cfg["wifi"]
    if not w["portal_after_s"]:
        return None
    if not w["ssid"]:
        return 0
    try:
        os.remove(PORTAL)
    except OSError:
        return None
    return int(w["portal_after_s"] * 1000)


def build(cfg, files=("config.json", "secrets.json")):
    """The firmware for cfg (validated settings): every part made, nothing started."""
    from . import client, heartbeat, publisher, sampler, wifi
    from .backlog import Backlog
    from .node import Node, forget
    from .status import Status

    class Firmware:
        """What the tasks, the commands and the goodbye (app/stop.py) use. No
        methods: holding one keeps no start-up code alive. Made here, once the
        settings are read, as are the modules it names (the validator peaks with
        the least loaded). Bare annotations: MicroPython compiles them to nothing."""
        node: Node
        backlog: Backlog
        status: Status
        sensor: board.Sensor
        led: board.Led
        filter: object  # app.filters.Filter, or None: no filter.* set
        inbox: object  # app.inbox.Inbox, or None: no commands, no discovery
        client: object  # app/client.py's mqtt_as client
        readings: tuple  # (topic, the head of the JSON), bytes
        window: int
        discovery: object  # what app/discovery.py sends, or None
        cmd_result: bytes
        sensor_type: str
        files: tuple  # (config, secrets): what factory_reset reads
        cfg: dict  # the settings the tasks read
        jobs: list  # supervise()'s

    fw = Firmware()
    fw.node = node = Node(cfg["device"] or "fireant-" + board.unique_id())
    s, q, m, device = cfg["sensor"], cfg["queue"]["size"], cfg["mqtt"], node.device
    node.interval_ms = int(s["interval_s"] * 1000)
    fw.sensor_type = s["type"]
    sleep_ms = int(cfg["sleep"]["interval_s"] * 1000)
    if sleep_ms:  # battery mode: one reading per wake, the wake's own seq carried on
        from . import sleep

        if sleep.resume(node, cfg["ntp"]["resync_s"] > 0):
            cfg["ha"]["discovery"] = False  # announced at power-on, retained
        node.interval_ms = sleep_ms
    fw.files = files
    fw.backlog = Backlog(node, q, cfg["spool"]["size"])
    fw.sensor = board.Sensor(s["type"], s["pin"])
    fw.filter = None
    if cfg["filter"]:  # config.py: None unless a filter.* key is set
        from .filters import Filter

        fw.filter = Filter(cfg["filter"])
    fw.led = board.Led(cfg["led"]["pin"], cfg["led"]["active_low"])
    fw.status = Status(node, fw.backlog, topic(m["status_topic"], device), topic(m["stats_topic"], device))
    fw.inbox = inbox = _inbox(fw, cfg, device)
    fw.client = client.make(cfg, device, board.station(), fw.status, inbox and inbox.put, node.alive)
    forget("client")
    if inbox:
        inbox.client = fw.client
        fw.status.on_connect = inbox.connected
    fw.readings = topic(m["topic"], device), head(device, cfg["location"])
    fw.window = m["window"]
    node.first_sync = cfg["ntp"]["resync_s"] > 0 and node.synced is None  # battery mode: the RTC may know
    # All the tasks read from here on; the rest of the settings is garbage now.
    fw.cfg = c = {"wifi": cfg["wifi"], "ntp": cfg["ntp"], "mqtt": {k: m[k] for k in ("server", "tls", "ca")}}
    fw.jobs = [("heartbeat", heartbeat.run, (node, fw.led)),
               ("sampler", sampler.run, (node, fw.sensor, fw.backlog, fw.filter)),
               ("wifi", wifi.run, (node, c["wifi"])),
               ("publisher", publisher.run, (node, fw.client, fw.backlog, c, fw.readings, fw.window)),
               ("status", fw.status.run, (fw.client, int(cfg["telemetry"]["interval_s"] * 1000)))]
    w = cfg["watchdog"]
    if w:  # None: watchdog.timeout_s 0
        from . import watchdog

        watchdog.setup(fw, w, m)
    if inbox:
        from .inbox import run

        fw.jobs.append(("inbox", run, (node, inbox, fw)))
    if sleep_ms and not node.safe_mode:  # safe mode stays awake for its commands
        fw.jobs.append(("sleep", sleep.run, (fw, sleep_ms, int(cfg["sleep"]["awake_s"] * 1000))))
    if cfg["ntp"]["resync_s"] > 0 and not node.safe_mode:  # 0: no clock task, readings say "ts": null
        from . import clock

        fw.jobs.append(("clock", clock.run, (node, c["ntp"])))
    log("app", "%s starting: %s every %s s%s, queue %d" % (
        device, s["type"], cfg["sleep"]["interval_s"] or s["interval_s"], " asleep between" if sleep_ms else "", q))
    return fw


def _inbox(fw, cfg, device):
    """Commands and Home Assistant discovery: an Inbox, or None when both are off."""
    m, ha = cfg["mqtt"], cfg["ha"]
    cmd = m["cmd_topic"].replace("{device}", device)
    fw.cmd_result = (cmd + "/result").encode()
    fw.discovery = None
    if ha["discovery"]:
        fw.discovery = (ha["prefix"].encode(), device.encode(), board.unique_id().encode(), topic(m["topic"], device),
                        "{device}" not in m["topic"], topic(m["status_topic"], device),
                        topic(m["stats_topic"], device), cmd.encode(), ha["url"].encode(),
                        ("%s on %s" % (cfg["sensor"]["type"], board.platform().upper())).encode())
    if not cmd and not ha["discovery"]:
        return None
    from .inbox import Inbox

    return Inbox(cmd.encode() if cmd else None, (ha["prefix"] + "/status").encode() if ha["discovery"] else None)
