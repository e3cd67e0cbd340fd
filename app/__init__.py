"""fireant: a DHT22/DHT11 node that keeps sensing whatever the network does.

    import app; app.run()      # from the REPL; Ctrl-C stops it cleanly

Supervised tasks share one loop: wifi (the link's one owner), sampler
(sensor -> backlog), publisher (backlog -> broker), heartbeat (LED), status
(telemetry every telemetry.interval_s), clock (NTP, unless ntp.resync_s is 0),
inbox (commands, Home Assistant discovery; when configured); on every broker
connection mqtt_as calls status (availability and telemetry). Importing
this package costs little; the tasks and the MQTT library are loaded by run().
"""
import asyncio

from .node import log


class Firmware:

    def __init__(self, cfg):
        from . import board, client
        from .backlog import Backlog
        from .node import Node, forget
        from .publisher import head, topic
        from .status import Status

        self.node = Node(cfg["device"] or "fireant-" + board.unique_id())
        s, q, m, device = cfg["sensor"], cfg["queue"]["size"], cfg["mqtt"], self.node.device
        self.started = "%s starting: %s every %s s, queue %d" % (device, s["type"], s["interval_s"], q)
        self.node.interval_ms = int(s["interval_s"] * 1000)
        self.sensor_type = s["type"]
        self.files = "config.json", "secrets.json"  # what factory_reset reads (run() names them)
        self.backlog = Backlog(self.node, q, cfg["spool"]["size"])
        self.sensor = board.Sensor(s["type"], s["pin"])
        self.filter = None
        if cfg["filter"]:  # config.py: None unless a filter.* key is set
            from .filters import Filter

            self.filter = Filter(cfg["filter"])
        self.led = board.Led(cfg["led"]["pin"], cfg["led"]["active_low"])
        self.status = Status(self.node, self.backlog, topic(m["status_topic"], device), topic(m["stats_topic"], device))
        self.inbox = self._inbox(cfg, device)
        self.client = client.make(cfg, device, board.station(), self.status, self.inbox and self.inbox.put)
        forget("client")
        if self.inbox:
            self.inbox.client = self.client
            self.status.on_connect = self.inbox.connected
        self.readings = topic(m["topic"], device), head(device, cfg["location"])
        self.telemetry_ms = int(cfg["telemetry"]["interval_s"] * 1000)
        self.window = m["window"]
        self.node.first_sync = cfg["ntp"]["resync_s"] > 0
        # All the tasks read from here on; the rest of the settings is garbage now.
        self.cfg = {"wifi": cfg["wifi"], "ntp": cfg["ntp"], "mqtt": {k: m[k] for k in ("server", "tls", "ca")}}

    def _inbox(self, cfg, device):
        """Commands and Home Assistant discovery: an Inbox, or None when both are off."""
        from . import board
        from .publisher import topic

        m, ha = cfg["mqtt"], cfg["ha"]
        cmd = m["cmd_topic"].replace("{device}", device)
        self.cmd_result = (cmd + "/result").encode()
        self.discovery = None
        if ha["discovery"]:
            self.discovery = (ha["prefix"].encode(), device.encode(), board.unique_id().encode(), topic(m["topic"], device),
                              "{device}" not in m["topic"], topic(m["status_topic"], device),
                              topic(m["stats_topic"], device), cmd.encode(), ha["url"].encode(),
                              ("%s on %s" % (cfg["sensor"]["type"], board.platform().upper())).encode())
        if not cmd and not ha["discovery"]:
            return None
        from .inbox import Inbox

        return Inbox(cmd.encode() if cmd else None, (ha["prefix"] + "/status").encode() if ha["discovery"] else None)

    async def main(self):
        from . import heartbeat, publisher, sampler, wifi
        from .node import supervise

        node, cfg = self.node, self.cfg
        log("app", self.started)
        jobs = [("heartbeat", heartbeat.run, (node, self.led)),
                ("sampler", sampler.run, (node, self.sensor, self.backlog, self.filter)),
                ("wifi", wifi.run, (node, cfg["wifi"])),
                ("publisher", publisher.run, (node, self.client, self.backlog, cfg, self.readings, self.window)),
                ("status", self.status.run, (self.client, self.telemetry_ms))]
        if self.inbox:
            from . import inbox

            jobs.append(("inbox", inbox.run, (node, self.inbox, self)))
        if node.first_sync:  # ntp.resync_s 0: no clock task, readings say "ts": null
            from . import clock

            jobs.append(("clock", clock.run, (node, cfg["ntp"])))
        await supervise(node, jobs)  # never returns: main() ends only when cancelled

    async def stop(self):
        """Say goodbye to the broker and switch the LED off. Bounded in time: a
        publish abandoned mid-flight may hold mqtt_as's lock for ever. Survives
        any failure, MemoryError included: every step is tried, the LED first."""
        import gc

        self.led.set(False)
        gc.collect()  # the cancelled tasks' frames are garbage now: the goodbye needs their room
        try:
            moved = self.backlog.flush()  # RAM's readings to flash: the next boot sends them
            if moved:
                log("app", "%d readings kept on flash for the next start" % moved)
        except Exception as e:  # MemoryError: the goodbye still goes
            log("app", "could not keep the queued readings on flash (%r)" % e)
        said = True
        if self.node.broker_up:
            try:
                # QoS 0: after Ctrl-C mqtt_as's reader task is gone, so a PUBACK would
                # never be seen; TCP still delivers this ahead of the DISCONNECT.
                await asyncio.wait_for(self.client.publish(self.status.topic, b"offline", True, 0), 2)
            except Exception as e:  # TimeoutError, OSError, MemoryError
                said = False
                log("app", "could not publish offline (%r): the will says it" % e)
        try:
            if not said:
                raise OSError  # a clean DISCONNECT would make the broker discard the will
            await asyncio.wait_for(self.client.disconnect(), 2)
        except Exception:
            # mqtt_as's documented way out: it closes the socket, the broker then
            # publishes the will. (Its station calls reach wifi.Link: Wi-Fi stays up.)
            self.client.close()
        try:
            log("app", "stopped: %s" % self.status.telemetry().decode())
        except MemoryError:
            log("app", "stopped")


def _settings(config, secrets):
    """Validated settings, or None after printing what is wrong. The validator is
    then dropped: its RAM (~6 KB on an ESP8266 as ROMFS) goes to the tasks. A
    function of its own, so that no local of run() keeps config.py alive."""
    from . import board
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
        from .node import forget

        forget("config")


def run(config="config.json", secrets="secrets.json"):
    """Power-on autorun and REPL entry point. Returns to the REPL on Ctrl-C."""
    import gc

    cfg = _settings(config, secrets)
    if cfg is None:
        return
    gc.collect()
    fw = Firmware(cfg)
    fw.files = config, secrets
    del cfg  # Firmware keeps what the tasks read: the rest goes
    # Collect every quarter of the free heap allocated, not only when it is full:
    # long-lived objects made at run time (tasks, strings) then land low, among
    # little garbage, and the heap stays in pieces large enough to use.
    if hasattr(gc, "threshold"):  # MicroPython (CPython runs this in tests)
        gc.threshold(gc.mem_free() // 4)
    try:
        asyncio.run(fw.main())
    except KeyboardInterrupt:
        log("app", "Ctrl-C")
    finally:
        # On MicroPython the interrupted tasks stay queued: drop them so they do not
        # resume during the goodbye, and again so the REPL gets a clean loop. mqtt_as's
        # disconnect() would cancel its per-connection tasks, which belong to the dead
        # loop: cancelled, they would be queued in the new one and run again, with what
        # was queued behind them (heartbeat, sampler). Forget them instead.
        asyncio.new_event_loop().set_exception_handler(None)  # supervise()'s, which holds the dead tasks
        fw.client._tasks.clear()
        asyncio.run(fw.stop())
        asyncio.new_event_loop()
