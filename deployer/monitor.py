"""What the broker hears, as the firmware publishes it: readings as rows (Table),
one node as Home Assistant shows it (Entities, for deploy.py sim), every node of a
fleet in one live table (Fleet, for deploy.py monitor); subscribe() feeds either."""
import json
import os
import re
import sys
import threading
import time

from deployer import Fail, validate_config

class Table:
    """Readings as rows, as they arrive. age: how long ago the node took the
    reading (a backlog flushed after an outage shows its delay), estimated from
    uptime_ms against the freshest reading. Gaps in seq are marked."""

    HEAD = "%-22s %7s %8s %8s %8s  %s" % ("device", "seq", "temp C", "humid %", "age s", "")

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.devices = {}  # device -> {"seq": last seq, "offset": min(arrival - uptime)}
        self._lock = threading.Lock()
        self.rows = 0

    def _print(self, line):
        with self._lock:
            if self.rows == 0:
                self.out.write(self.HEAD + "\n")
            self.rows += 1
            self.out.write(line + "\n")
            self.out.flush()

    def reading(self, r, arrived):
        device, seq = str(r.get("device", "?")), r.get("seq")
        up = r.get("uptime_ms", 0) / 1000
        d = self.devices.get(device)
        note = ""
        if d is None or not isinstance(seq, int) or seq <= 1 or seq < d["seq"] - 1:
            if d is not None and isinstance(seq, int) and seq < d["seq"]:
                note = "node restarted"
            d = self.devices[device] = {"seq": (seq or 1) - 1, "offset": arrived - up}
        if isinstance(seq, int):
            if seq > d["seq"] + 1:
                missing = seq - d["seq"] - 1
                note = "gap: %d missing (%s)" % (missing, "%d" % (d["seq"] + 1) if missing == 1
                                                  else "%d-%d" % (d["seq"] + 1, seq - 1))
            elif seq <= d["seq"]:
                note = "repeat (QoS 1 may deliver twice)"
            d["seq"] = max(d["seq"], seq)
        d["offset"] = min(d["offset"], arrived - up)
        age = arrived - up - d["offset"]
        self._print("%-22s %7s %8s %8s %8.1f  %s" % (
            device[:22], seq, _fmt(r.get("temperature_C")), _fmt(r.get("humidity")), age, note))

    def status(self, topic, text):
        self._print("%-22s %s" % (topic[:60], text))


class Entities:
    """The node as Home Assistant would show it: per device its entities
    (Temperature, Humidity, Status, the diagnostics of its stats), updated as
    messages arrive. On a terminal a card redrawn in place, with a trend of the
    last readings; elsewhere (CI, a pipe) one line per update."""

    TREND = 24  # readings in the trend line

    def __init__(self, status_topic, stats_topic, out=None, tty=None):
        self.out = out or sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        utf = "utf" in (getattr(self.out, "encoding", None) or "utf-8").lower()
        self.deg, self.bars, self.dot = ("\u00b0C", "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588", "\u00b7") \
            if utf else ("C", "_.-=+*#@", "|")
        self.topics = topic_patterns(status_topic, stats_topic)
        self.devices = {}
        self._lock = threading.Lock()
        self._drawn = 0  # lines of the cards on screen (tty)

    def _device(self, name):
        return self.devices.setdefault(name, {"status": "unknown", "temps": [], "hums": [], "stats": {},
                                              "t": None, "h": None, "seq": None, "location": "", "note": ""})

    def reading(self, r, arrived):
        with self._lock:
            d = self._device(str(r.get("device", "?")))
            seq = r.get("seq")
            d["note"] = ""
            if isinstance(seq, int) and isinstance(d["seq"], int) and seq > d["seq"] + 1:
                d["note"] = "gap: %d missing" % (seq - d["seq"] - 1)
            d.update(t=r.get("temperature_C"), h=r.get("humidity"), seq=seq, location=r.get("location", ""))
            for key, v in (("temps", d["t"]), ("hums", d["h"])):
                if isinstance(v, (int, float)):
                    d[key] = (d[key] + [v])[-self.TREND:]
            self._show(r.get("device", "?"), "Temperature %s %s  Humidity %s %%  (seq %s)%s" % (
                _fmt(d["t"]), self.deg, _fmt(d["h"]), seq, "  " + d["note"] if d["note"] else ""))

    def status(self, topic, text):
        with self._lock:
            for pattern, kind in self.topics:
                m = pattern.match(topic)
                if m:
                    d = self._device(m.group(1))
                    if kind == "status":
                        d["status"] = text or "unknown"
                        self._show(m.group(1), "Status %s" % d["status"])
                        return
                    try:
                        d["stats"] = json.loads(text)
                    except ValueError:
                        break
                    self._show(m.group(1), "Diagnostics: %s" % self._diagnostics(d))
                    return
            self._show(topic, text)

    def note(self, text):
        """A line of the node's log: above the cards on a terminal."""
        with self._lock:
            self._show(None, text)

    def _diagnostics(self, d):
        s = d["stats"]
        return ", ".join("%s %s" % (k.replace("_", " "), s[k]) for k in
                         ("sensor_errors", "filtered", "dropped", "published", "wifi_drops") if k in s)

    def _trend(self, values):
        if len(values) < 2:
            return ""
        lo, hi = min(values), max(values)
        n = len(self.bars) - 1
        return "".join(self.bars[0 if hi == lo else round((v - lo) / (hi - lo) * n)] for v in values) + \
            "  %s..%s" % (_fmt(lo), _fmt(hi))

    def _card(self, name, d):
        head = " %s " % self.dot
        lines = [head.join(x for x in (name, d["location"], d["status"]) if x)]
        lines.append("  %-14s %6s %-3s %s" % ("Temperature", _fmt(d["t"]), self.deg, self._trend(d["temps"])))
        lines.append("  %-14s %6s %-3s %s" % ("Humidity", _fmt(d["h"]), "%", self._trend(d["hums"])))
        lines.append("  %-14s %s" % ("Reading", "seq %s %s" % (d["seq"], d["note"]) if d["seq"] is not None
                                     else "none yet"))
        if d["stats"]:
            lines.append("  %-14s %s" % ("Diagnostics", self._diagnostics(d)))
        return lines

    def _show(self, name, line):
        if not self.tty:
            self.out.write(line + "\n" if name is None else "%-22s %s\n" % (str(name)[:22], line))
        else:
            # Up over the cards, clear to the end; a line about no device stays above them.
            text = ("\x1b[%dA" % self._drawn if self._drawn else "") + "\x1b[J"
            if name not in self.devices:
                text += line + "\n" if name is None else "%s %s\n" % (name, line)
            lines = []
            for device, d in self.devices.items():
                lines += self._card(device, d) + [""]
            self.out.write(text + "".join(ln + "\n" for ln in lines))
            self._drawn = len(lines)
        self.out.flush()


def _fmt(v):
    return "%.1f" % v if isinstance(v, (int, float)) else "-"


def subscribe(host, port, table, topics, user="", password="", tls=False, ca=None, readings_topic=None):
    """A paho client feeding table; returns it running (call loop_stop/disconnect)."""
    import paho.mqtt.client as paho

    connected = threading.Event()
    failed = []

    def on_connect(c, _u, _f, rc, _p=None):
        if rc.is_failure:
            failed.append(str(rc))
        else:
            for t in topics:
                c.subscribe(t, qos=1)
        connected.set()

    def on_message(_c, _u, msg):
        arrived = time.monotonic()
        text = msg.payload.decode(errors="replace")
        if msg.topic == readings_topic:
            try:
                table.reading(json.loads(text), arrived)
                return
            except (ValueError, AttributeError):
                pass
        table.status(msg.topic, text)

    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="fireant-monitor-%d" % os.getpid())
    if user:
        c.username_pw_set(user, password or None)
    if tls:
        c.tls_set(ca_certs=ca or None)
    c.on_connect = on_connect
    c.on_message = on_message
    try:
        c.connect(host, port, keepalive=30)
    except OSError as e:
        raise Fail("cannot reach the broker at %s:%d (%s): check mqtt.server / mqtt.port, or pass --host/--port"
                   % (host, port, e.strerror or e))
    c.loop_start()
    if not connected.wait(10) or failed:
        c.loop_stop()
        raise Fail("the broker at %s:%d refused us (%s): check mqtt.user and mqtt.password in secrets.json, or pass "
                   "--user/--password" % (host, port, failed[0] if failed else "no answer"))
    return c


def topic_patterns(status_topic, stats_topic):
    """[(regex, "status" | "stats")]: the device id is group 1."""
    return [(re.compile("^%s$" % re.escape(t).replace(re.escape("{device}"), "([^/]+)")), kind)
            for t, kind in ((status_topic, "status"), (stats_topic, "stats"))]


def topics(cfg):
    """The readings topic, and every topic to subscribe to: it, and every device's status and stats."""
    m = cfg["mqtt"]
    return m["topic"], [m["topic"], m["status_topic"].replace("{device}", "+"),
                        m["stats_topic"].replace("{device}", "+")]


class Fleet:
    """Every node in one table, a row each: its availability (the status topic:
    online, or offline, the broker's last will for a node gone), its last reading
    and how long ago it came, and the counters of its last stats. On a terminal the
    table is redrawn in place as messages arrive; elsewhere (a pipe, CI) log (a Table)
    gets every message as a line, and the table is printed by show()."""

    COUNTERS = (("published", "published"), ("queued", "queued"), ("dropped", "dropped"),
                ("sensor_errors", "errors"), ("wifi_drops", "wifi drops"), ("broker_connects", "connects"),
                ("restarts", "restarts"))
    ROW = "| %-22s | %-7s | %6s | %6s | %7s | %6s | " + " | ".join("%%%ds" % len(h) for _, h in COUNTERS) + " |"
    HEAD = ROW % (("device", "status", "seq", "temp C", "humid %", "last s") + tuple(h for _, h in COUNTERS))

    def __init__(self, status_topic, stats_topic, out=None, tty=None, log=None):
        self.out = out or sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self.log = log
        self.topics = topic_patterns(status_topic, stats_topic)
        self.devices = {}  # device -> {"status", "reading", "arrived", "stats"}
        self._lock = threading.Lock()
        self._drawn = 0  # lines of the table on screen (tty)
        self.changed = False

    def _device(self, name):
        return self.devices.setdefault(name, {"status": "unknown", "reading": None, "arrived": None, "stats": {}})

    def reading(self, r, arrived):
        with self._lock:
            d = self._device(str(r.get("device", "?")))
            d["reading"], d["arrived"] = r, arrived
            self.changed = True
        if self.log:
            self.log.reading(r, arrived)
        self._redraw()

    def status(self, topic, text):
        with self._lock:
            for pattern, kind in self.topics:
                m = pattern.match(topic)
                if not m:
                    continue
                d = self._device(m.group(1))
                if kind == "status":
                    d["status"] = text or "unknown"  # empty: the retained status was cleared
                else:
                    try:
                        d["stats"] = json.loads(text)
                    except ValueError:
                        pass
                self.changed = True
                break
        if self.log:
            self.log.status(topic, text)
        self._redraw()

    def rows(self, now=None):
        """The table's lines: a title, the head, a row per device (sorted by name)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            devices = sorted(self.devices.items())
            online = sum(1 for _, d in devices if d["status"] == "online")
            lines = ["Fleet: %d devices, %d online, %d not (%s)" % (len(devices), online, len(devices) - online,
                                                                    time.strftime("%H:%M:%S")), self.HEAD]
            for name, d in devices:
                r, s = d["reading"] or {}, d["stats"]
                lines.append(self.ROW % ((name[:22], d["status"][:7], r.get("seq", "-"), _fmt(r.get("temperature_C")),
                                          _fmt(r.get("humidity")),
                                          "-" if d["arrived"] is None else "%.0f" % (now - d["arrived"]))
                                         + tuple(s.get(k, "-") for k, _ in self.COUNTERS)))
            self.changed = False
        return lines

    def show(self, only_changed=False):
        """The table, below what is printed (not on a terminal: there it is redrawn)."""
        if self.tty or (only_changed and not self.changed):
            return
        self.out.write("".join(ln + "\n" for ln in self.rows()))
        self.out.flush()

    def _redraw(self):
        if not self.tty:
            return
        lines = self.rows()
        up = "\x1b[%dA" % self._drawn if self._drawn else ""  # over the table drawn before, then clear below
        self.out.write(up + "\x1b[J" + "".join(ln + "\n" for ln in lines))
        self.out.flush()
        self._drawn = len(lines)


def _wait(seconds, every, tick):
    """Until seconds pass (None: Ctrl-C), calling tick every every seconds."""
    end = None if seconds is None else time.monotonic() + seconds
    try:
        while end is None or time.monotonic() < end:
            time.sleep(every if end is None else max(0, min(every, end - time.monotonic())))
            tick()
    except KeyboardInterrupt:
        pass


def cmd_monitor(args):
    cfg = validate_config(args.config, args.secrets)
    m = cfg["mqtt"]
    host = args.host or m["server"]
    port = args.broker_port or m["port"] or (8883 if m["tls"] else 1883)
    user = m["user"] if args.user is None else args.user
    password = m["password"] if args.password is None else args.password
    readings, subscribed = topics(cfg)
    tty = sys.stdout.isatty()
    fleet = Fleet(m["status_topic"], m["stats_topic"], tty=tty, log=None if tty else Table())
    print("Watching %s:%d %s (Ctrl-C to stop)" % (host, port, " ".join(subscribed)), flush=True)
    ca = m["ca"] and os.path.join(os.path.dirname(os.path.abspath(args.config)), m["ca"].lstrip("/"))
    c = subscribe(host, port, fleet, subscribed, user, password, m["tls"], ca, readings)
    try:
        _wait(args.seconds, args.every, lambda: fleet.show(only_changed=True))
    finally:
        c.loop_stop()
        c.disconnect()
        fleet.show()  # where it stands at the end
