"""fireant: a DHT22/DHT11 node that keeps sensing whatever the network does.

    import app; app.run()      # from the REPL; Ctrl-C stops it cleanly

Supervised tasks share one loop: wifi (the link's one owner), sampler
(sensor -> backlog), publisher (backlog -> broker), heartbeat (LED), status
(telemetry every telemetry.interval_s), clock (NTP, unless ntp.resync_s is 0),
inbox (commands, Home Assistant discovery; when configured); on every broker
connection mqtt_as calls status (availability and telemetry). Without
wifi.ssid, once the Wi-Fi task gave up joining, or with settings missing or
refused, the provisioning portal (app/portal.py) runs instead of the tasks. Importing
this package costs little; the tasks and the MQTT library are loaded by run().
"""


def run(config="config.json", secrets="secrets.json"):
    """Power-on autorun and REPL entry point. Returns to the REPL on Ctrl-C."""
    import asyncio
    import gc

    from .node import forget, log, supervise

    from . import start

    cfg = start.settings(config, secrets)
    gc.collect()  # the validator's garbage: the parts are built in one clean heap
    if isinstance(cfg, str):  # missing or refused, and said: the portal shows it, until settings that pass
        if start.board.platform() == "esp8266":
            log("app", "no setup portal: an ESP8266 has not the heap for it; fix the files over USB (deploy.py)")
            return
        from .portal import password

        problem, portal, ap_password = cfg, 0, password(config, secrets)
        if ap_password is None:  # there must be none (password() says why): the message printed is all
            return
    else:
        problem, portal, ap_password = None, start.portal(cfg), cfg["wifi"]["ap_password"]
    if portal is not None:  # instead of the tasks, with the heap to itself
        del start, cfg
        forget("start")
        gc.collect()
        from .portal import run as serve

        try:
            asyncio.run(serve(config, secrets, ap_password, portal, problem))  # ends in a reset
        except KeyboardInterrupt:
            log("app", "Ctrl-C")
        except Exception as e:  # the flash full, no heap: a node no one can reach otherwise
            from time import sleep

            from .board import reset
            from .node import log_exception

            log_exception("portal", e)
            sleep(5)  # nothing else runs: a crash at start does not reset at full speed
            reset()
        return
    fw = start.build(cfg, (config, secrets))
    del start, cfg  # fw keeps what the tasks read: the rest of the settings goes, and the start-up code
    forget("start")
    gc.collect()
    # Collect every quarter of the free heap allocated, not only when it is full:
    # long-lived objects made at run time (tasks, strings) then land low, among
    # little garbage, and the heap stays in pieces large enough to use.
    if hasattr(gc, "threshold"):  # MicroPython (CPython runs this in tests)
        gc.threshold(gc.mem_free() // 4)
    try:
        asyncio.run(supervise(fw.node, fw.jobs))  # never returns: ends only when interrupted
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
        from .stop import stop

        asyncio.run(stop(fw))
        asyncio.new_event_loop()
