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
    """The node once built (app/start.py fills it from the settings): what the
    tasks share, their start and the goodbye."""

    def __init__(self, cfg):
        from . import start
        from .node import forget

        (self.node, self.backlog, self.sensor, self.filter, self.led, self.status, self.inbox, self.client,
         self.readings, self.telemetry_ms, self.cfg, self.started, self.sensor_type, self.cmd_result,
         self.discovery) = start.build(cfg)
        self.files = "config.json", "secrets.json"  # what factory_reset reads (run() names them)
        del start
        forget("start")

    async def main(self):
        from . import heartbeat, publisher, sampler, wifi
        from .node import supervise

        node, cfg = self.node, self.cfg
        log("app", self.started)
        jobs = [("heartbeat", heartbeat.run, (node, self.led)),
                ("sampler", sampler.run, (node, self.sensor, self.backlog, self.filter)),
                ("wifi", wifi.run, (node, cfg["wifi"])),
                ("publisher", publisher.run, (node, self.client, self.backlog, cfg, self.readings)),
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


def run(config="config.json", secrets="secrets.json"):
    """Power-on autorun and REPL entry point. Returns to the REPL on Ctrl-C."""
    import gc

    from . import start

    cfg = start.settings(config, secrets)
    del start
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
