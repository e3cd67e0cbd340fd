"""Run app/ in-process under CPython on the sim board (tests, benchmark, deploy.py sim)."""
import asyncio
import contextlib

from sim import paths

paths.use_sim_cpython()

import dht  # noqa: E402
import machine  # noqa: E402
import network  # noqa: E402
import simboard  # noqa: E402

import app  # noqa: E402
from app import config  # noqa: E402

SIM_DEFAULTS = dict(simboard.STATE)


def sim_config(broker=None, **sections):
    """A raw config for the sim board; sections override keys per section,
    e.g. sim_config(broker, sensor={"interval_s": 0.1})."""
    raw = {
        "device": "sim-node",
        "location": "test bench",
        "wifi": {"ssid": "simnet", "password": "wifi-pass", "backoff_min_s": 0.2, "backoff_max_s": 2,
                 "timeout_s": 3},
        "mqtt": {"server": "127.0.0.1", "port": broker.port if broker else 1883,
                 "user": "fireant", "password": "sensor-pass", "keepalive_s": 8, "ping_interval_s": 2,
                 "response_time_s": 3,
                 # Off in most runs, as the short keepalive: they time recoveries. The
                 # fleet (sim/fleet.py) keeps the default.
                 "reconnect_spread_s": 0},
        "sensor": {"type": "DHT22", "pin": 5, "interval_s": 0.2},
        "led": {"pin": 2, "active_low": True},
        "queue": {"size": 64},
        # No NTP server in most runs: the clock off (readings say "ts": null) rather than
        # every first publish waiting out ntp.timeout_s; tests of the clock start one.
        "ntp": {"resync_s": 0},
        # No flash spool either: most runs judge the RAM backlog, and in-process runs
        # share the host's cwd; the spool's tests turn it on in a directory of their own.
        "spool": {"size": 0},
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            raw.setdefault(name, {}).update(values)
        else:
            raw[name] = values
    return raw


async def until(predicate, timeout=30.0, step=0.05):
    """Wait for a condition instead of sleeping a fixed time: AssertionError once
    timeout s have passed on the host's clock without it (the tests' one helper)."""
    import time

    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not met within %.0f s" % timeout)
        await asyncio.sleep(step)


def reset_board():
    """Fresh board between runs: medium up, sensor fine, radio state forgotten."""
    simboard.STATE.clear()
    simboard.STATE.update(SIM_DEFAULTS)
    network._interfaces.clear()
    del network.calls[:]
    network.DNS_PORT = 53
    network.MDNS_SERVER = ("224.0.0.251", 5353)
    dht.reads = 0
    machine.resets = 0
    machine.wdt_resets = 0
    machine._wdt = None  # a started WDT: the next run's board has none


@contextlib.asynccontextmanager
async def running(raw):
    """Start the firmware with raw settings; on exit stop it as Ctrl-C would."""
    import app.board
    import app.start
    import app.stop
    from app.node import supervise

    fw = app.start.build(config.validate(raw, app.board.min_interval_s()))
    task = asyncio.create_task(supervise(fw.node, fw.jobs))
    try:
        yield fw
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await app.stop.stop(fw)
