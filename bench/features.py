"""What commands, Home Assistant discovery and the watchdog cost in heap (issue 11,
point 7; issue 12, points 3-4: the watchdog task, its boot record and safe mode's code).

The same short run four times, features off, commands only, discovery only,
both: the firmware under the 64-bit unix port (mpy build, the real mqtt_as
against a Mosquitto where lib/ has it), a command answered (interval, status)
and Home Assistant's "online" (discovery again) while it runs; live heap after
gc.collect() every HEAP_EVERY_MS, its peak and its steady median, and the
difference to "off". Then on the ESP8266 model (ROMFS), the smallest heap with
the defaults (both off there), bisected in 1 KB steps. Both are refused on an
ESP8266 by the validator: their figures (commands 33 KB idle, 41 KB handling
one; discovery 35 KB), measured before that rule, are in docs/ha.md; the watchdog's
(36 KB) in docs/watchdog.md. The provisioning portal (app/portal.py) runs instead
of the tasks: its row is the portal alone (page, a refused POST, a saved one, the
reset); refused on an ESP8266 too (34 KB on the model, measured before that rule:
docs/provisioning.md).
"""
import json
import statistics

from sim import paths, unixport
from sim.firmware import sim_config
from sim.mosquitto import PASSWORD, USER, Mosquitto

TITLE = "heap cost of commands, Home Assistant discovery and the watchdog"
HEAP_EVERY_MS = 100
RUN_S = 11  # room for the second discovery round (Home Assistant's online at 5 s) to finish
VARIANTS = {
    "off": {"ha": {"discovery": False}, "mqtt": {"cmd_topic": ""}},
    "commands": {"ha": {"discovery": False}},
    "discovery": {"mqtt": {"cmd_topic": ""}},
    "both": {},
    "watchdog": {"ha": {"discovery": False}, "mqtt": {"cmd_topic": ""}, "watchdog": {"timeout_s": 60}},
}


def _send(broker, topic, payload):
    import paho.mqtt.publish as pub

    pub.single(topic, payload, qos=1, hostname="127.0.0.1", port=broker.port,
               auth={"username": USER, "password": PASSWORD})


def _script(broker):
    cmd = "fireant/sim-node/cmd"
    return [(3, lambda: _send(broker, cmd, json.dumps({"cmd": "interval", "interval_s": 0.4}))),
            (4, lambda: _send(broker, cmd, json.dumps({"cmd": "status"}))),
            (5, lambda: _send(broker, "homeassistant/status", "online"))]


def _raw(broker, extra):
    raw = sim_config(broker, sensor={"interval_s": 0.2})
    for section, values in extra.items():
        raw.setdefault(section, {}).update(values)
    return raw


def _unix(broker, use_broker, name):
    heapsize = "160K"  # room enough: the live figure is what is measured
    r = unixport.run(_raw(broker, VARIANTS[name]), _script(broker), heapsize=heapsize, build="mpy",
                     broker=use_broker, seconds=RUN_S, heap_every_ms=HEAP_EVERY_MS)
    samples = [live for _, live in r.heap[:-1]]
    answers = len(r.on("fireant/sim-node/cmd/result"))
    configs = len([t for t, ret, _ in r.messages if t.endswith("/config") and not ret])
    return {"run": r.describe(), "heap_peak_bytes": max(samples) if samples else None,
            "heap_steady_bytes": int(statistics.median(samples)) if samples else None,
            "answers": answers, "discovery_messages": configs, "ok": r.returncode == 0 and r.stopped()}


def _model_smallest(name):
    with Mosquitto() as broker:
        raw = _raw(broker, VARIANTS[name])
        kw = dict(faults=_script(broker), broker=broker, seconds=RUN_S, interp="esp8266", heap_every_ms=0)
        runs = {}
        k = unixport.smallest_heap(raw, lo_k=27, hi_k=44, step_k=1, runs=runs, **kw)
        return {"smallest_heap_k": k, "tried": {str(kk): r.returncode == 0 and r.stopped()
                                                 for kk, r in sorted(runs.items())}}


def _portal_raw(broker):
    raw = sim_config(broker)
    raw["wifi"]["ssid"] = ""
    return raw


def _portal_user(port, seen):
    """A user at the portal's page: the form, one refused POST, the good one."""
    import urllib.parse
    import urllib.request

    url = "http://127.0.0.1:%d/" % port
    good = {"ssid": "simnet", "wifi_password": "wifi-pass", "server": "127.0.0.1", "port": "1883",
            "user": "fireant", "mqtt_password": "sensor-pass", "device": "porch"}

    def ask(data=None):
        try:
            seen.append(urllib.request.urlopen(url, data and urllib.parse.urlencode(data).encode(), timeout=10).read())
        except OSError as e:  # HTTPError 500: the page's handler failed (a MemoryError): the run says which
            seen.append(e)

    # Each POST is answered at once; the page's next GET shows the validator's verdict.
    return [(0.5, ask), (1, lambda: ask(dict(good, port="99999"))), (2.5, ask), (3, lambda: ask(good)),
            (4.5, ask)]


def portal_run(broker, heapsize, interp="unix", heap_every_ms=HEAP_EVERY_MS, raw=None):
    """The provisioning portal (app/portal.py) by itself, as it runs: the page,
    a refused POST, a saved one, then the reset. (Run, whether all of it happened.)
    raw: the settings (default: no wifi.ssid)."""
    import socket
    import tempfile

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    seen = []
    with tempfile.TemporaryDirectory(prefix="fireant-portal-") as work:
        r = unixport.run(raw or _portal_raw(broker), _portal_user(port, seen), heapsize=heapsize, build="mpy",
                         libs="real", broker=broker, seconds=0, until=lambda r: False, max_seconds=20,
                         workdir=work, interp=interp, portal_port=port, heap_every_ms=heap_every_ms)
        with open(work + "/config.json") as f:
            saved = json.load(f)["wifi"]["ssid"] == "simnet"
    r.answers = seen
    ok = (r.returncode == 0 and r.logged("machine: reset") and r.logged("refused: config: mqtt.port")
          and saved and all(isinstance(x, bytes) for x in seen) and len(seen) == 5 and b"must be between" in seen[2]
          and b'id="saved"' in seen[4] and not r.logged("MemoryError") and not r.logged("Traceback"))
    return r, ok


def _portal(broker):
    r, ok = portal_run(broker, "160K")
    samples = [live for _, live in r.heap]
    return {"run": r.describe(), "heap_peak_bytes": max(samples) if samples else None,
            "heap_steady_bytes": int(statistics.median(samples)) if samples else None, "ok": ok}


def measure(short=False):
    out = {"title": TITLE, "unix_port": {}, "esp8266_model": {}}
    with Mosquitto() as broker:
        use_broker = broker if paths.lib_dir() else None
        for name in VARIANTS:
            out["unix_port"][name] = _unix(broker, use_broker, name)
        if use_broker:
            out["portal"] = _portal(broker)
    off = out["unix_port"]["off"]
    for name, e in out["unix_port"].items():
        for k in ("heap_peak_bytes", "heap_steady_bytes"):
            if e[k] is not None and off[k] is not None:
                e[k.replace("_bytes", "_added_bytes")] = e[k] - off[k]
    if short:
        return out
    from sim import upstream

    why = upstream.model_unavailable(False)
    if why or not paths.lib_dir():
        out["esp8266_model"]["error"] = why or "no real mqtt_as"
        return out
    out["esp8266_model"]["off"] = _model_smallest("off")
    out["esp8266_model"]["refused"] = ("commands and discovery: refused on an ESP8266 by the validator (docs/ha.md); "
                                       "so is the watchdog (36 KB there, measured before that rule: docs/watchdog.md)")
    return out


def _signed(n):
    return "-" if n is None else "%+d" % n


def section(e):
    if "unix_port" not in e:
        return "features: not measured: %s" % e.get("error")
    lines = ["%s" % e["title"],
             "  64-bit unix port, live heap (bytes): variant, peak (+ over off), steady (+ over off), "
             "answers, discovery messages"]
    for name, v in e["unix_port"].items():
        lines.append("    %-10s %7s (%6s) %7s (%6s)  %d  %d%s" % (
            name, v["heap_peak_bytes"], _signed(v.get("heap_peak_added_bytes")), v["heap_steady_bytes"],
            _signed(v.get("heap_steady_added_bytes")), v["answers"], v["discovery_messages"],
            "" if v["ok"] else "  (run FAILED)"))
    p = e.get("portal")
    if p:
        lines.append("    %-10s %7s           %7s           (instead of the tasks: app/portal.py, microdot)%s" % (
            "portal", p["heap_peak_bytes"], p["heap_steady_bytes"], "" if p["ok"] else "  (run FAILED)"))
    m = e.get("esp8266_model", {})
    if m.get("error"):
        lines.append("  ESP8266 model: not measured: %s" % m["error"])
    if "off" in m:
        lines.append("  ESP8266 model (ROMFS) smallest heap, defaults (both off): %s KB" % m["off"]["smallest_heap_k"])
    if "refused" in m:
        lines.append("  ESP8266 model: %s" % m["refused"])
    return "\n".join(lines)
