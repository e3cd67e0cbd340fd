"""deploy.py sim: the firmware on the simulated board (in-process under CPython, or
the MicroPython unix port) against a throwaway Mosquitto, shown as Entities."""
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from deployer import Fail, config_module, merged_raw
from deployer.monitor import Entities, subscribe, topics

def sim_raw(args, broker):
    """config.json (and secrets) pointed at the broker (host, port, user, password)
    and the sim radio."""
    raw = merged_raw(args.config, args.secrets)
    mqtt = raw.setdefault("mqtt", {})
    host, port, user, password = broker
    mqtt.update({"server": host, "port": port, "user": user, "password": password, "tls": False, "ca": ""})
    wifi = raw.setdefault("wifi", {})
    wifi.update({"ssid": wifi.get("ssid") or "simnet", "backoff_min_s": 0.5, "backoff_max_s": 5})
    raw.setdefault("sensor", {})["interval_s"] = args.interval
    return raw


def cmd_sim(args):
    from sim.mosquitto import PASSWORD, USER, Mosquitto

    mosquitto = None
    if args.broker:
        raw = merged_raw(args.config, args.secrets).get("mqtt", {})
        host, _, port = args.broker.partition(":")
        broker = (host, int(port or 1883), raw.get("user", ""), raw.get("password", ""))
    else:
        try:
            mosquitto = Mosquitto().start()
        except RuntimeError as e:
            raise Fail("%s; or run ./fireant sim, which installs it" % e)
        broker = ("127.0.0.1", mosquitto.port, USER, PASSWORD)
    control = os.path.join(tempfile.mkdtemp(prefix="fireant-sim-control-"), "control.json")
    with open(control, "w") as f:  # the sim board reads it at start and whenever it changes
        json.dump({"day_s": args.day_s, "noise": args.noise, "seed": args.seed}, f)
    os.environ["FIREANT_SIM_CONTROL"] = control
    from sim.ntpserver import ThreadedNtpServer

    ntp = ThreadedNtpServer().__enter__()  # a network has a time server: readings get their ts at once
    os.environ["FIREANT_SIM_NTP_PORT"] = str(ntp.port)
    try:
        raw = sim_raw(args, broker)
        raw.setdefault("ntp", {})["server"] = "127.0.0.1"
        print("Simulated board, broker %s:%d, a reading every %s s, a day every %s s (Ctrl-C to stop)"
              % (broker[0], broker[1], args.interval, args.day_s or "-"), flush=True)
        print("Steer the sensor: echo '{\"dht\": \"fail\"}' > %s  (or temperature, humidity, dht: ok, checksum, "
              "garbage, flaky, spike; link: false drops the Wi-Fi)" % control, flush=True)
        if args.micropython:
            _sim_micropython(args, raw, broker)
        else:
            _sim_cpython(args, raw, broker)
    finally:
        ntp.__exit__(None, None, None)
        shutil.rmtree(os.path.dirname(control), ignore_errors=True)
        if mosquitto:
            mosquitto.stop()
            shutil.rmtree(mosquitto.dir, ignore_errors=True)


class _Log(io.TextIOBase):
    """The in-process firmware's prints, line by line, to the view (so that a
    terminal's cards are redrawn below them, not over them)."""

    def __init__(self, view):
        self.view, self.part = view, ""

    def writable(self):
        return True

    def write(self, s):
        *lines, self.part = (self.part + s).split("\n")
        for line in lines:
            self.view.note(line)
        return len(s)


def _watch(cfg, broker):
    readings, subscribed = topics(cfg)
    host, port, user, password = broker
    view = Entities(cfg["mqtt"]["status_topic"], cfg["mqtt"]["stats_topic"])
    return view, subscribe(host, port, view, subscribed, user, password, readings_topic=readings)


def _sim_cpython(args, raw, broker):
    import asyncio

    from sim import firmware  # puts the sim board and the stand-ins on sys.path

    import app.board

    try:
        cfg = config_module().validate(json.loads(json.dumps(raw)), app.board.min_interval_s())
    except ValueError as e:
        raise Fail("invalid configuration for the sim: %s" % e)
    view, c = _watch(cfg, broker)

    async def run():
        async with firmware.running(raw):
            if args.seconds is None:
                await asyncio.Event().wait()
            await asyncio.sleep(args.seconds)

    # The board's filesystem (spool/, overrides.json) is a scratch directory, as
    # the unix port's below: not wherever deploy.py was started.
    here, work = os.getcwd(), tempfile.mkdtemp(prefix="fireant-sim-")
    os.chdir(work)
    try:
        with contextlib.redirect_stdout(_Log(view)):
            asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        os.chdir(here)
        shutil.rmtree(work, ignore_errors=True)
        time.sleep(0.3)  # the last acknowledged readings are on their way to the table
        c.loop_stop()
        c.disconnect()


def _sim_micropython(args, raw, broker):
    from sim import paths
    from sim.emulator import micropython_cmd

    try:
        cfg = config_module().validate(json.loads(json.dumps(raw)), {"DHT22": 0.05, "DHT11": 0.05})
    except ValueError as e:
        raise Fail("invalid configuration for the sim: %s" % e)
    if not paths.lib_dir():
        print("Note: neither lib/ nor the cache has the real mqtt_as, so the unix port uses the in-memory stand-in "
              "broker and no readings reach the broker; run `python deploy.py deps --host` (GitHub) or "
              "`./fireant upstream --from DIR` (a local clone) first.", flush=True)
    view, c = _watch(cfg, broker)
    work = tempfile.mkdtemp(prefix="fireant-sim-")
    with open(os.path.join(work, "config.json"), "w") as f:
        json.dump(raw, f)
    env = dict(os.environ, MICROPYPATH=paths.micropypath())
    p = subprocess.Popen(micropython_cmd() + ["-c", "import app; app.run()"], cwd=work, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    log = threading.Thread(target=lambda: [view.note(ln.rstrip("\n")) for ln in p.stdout], daemon=True)
    log.start()
    try:
        p.wait(args.seconds)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)  # Ctrl-C: the firmware says goodbye to the broker
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        log.join(5)
        c.loop_stop()
        c.disconnect()
        shutil.rmtree(work, ignore_errors=True)

