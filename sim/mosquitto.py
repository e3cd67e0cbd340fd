"""A throwaway Mosquitto for tests, the benchmark and `deploy.py sim` (host only).

Set up as a real deployment is: allow_anonymous false and a password file; with
tls=True also a TLS listener whose CA and server certificate are made on the
spot with openssl; with acl=True the ACL of docs/mosquitto/fireant.acl (each
node writes only its own topics: users named as the devices), and
max_packet_size as docs/ha.md suggests it. It listens on free loopback ports and can be stopped and
restarted on the same ports. Subscriber records what arrives, with arrival times.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

USER = "fireant"
PASSWORD = "sensor-pass"
ACL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "mosquitto", "fireant.acl")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("mosquitto did not open port %d" % port)


def _openssl(*args, cwd):
    subprocess.run(("openssl",) + args, cwd=cwd, check=True, capture_output=True)


def make_certs(d, names=("localhost", "broker.test")):
    """A test CA and a server certificate for names and 127.0.0.1; returns paths."""
    san = ",".join(["DNS:%s" % n for n in names] + ["IP:127.0.0.1"])
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=fireant test CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % names[0],
             "-keyout", "server.key", "-out", "server.csr", cwd=d)
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=%s\n" % san)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem", cwd=d)
    return {k: os.path.join(d, k + ".pem") for k in ("ca", "server")} | {"key": os.path.join(d, "server.key")}


class Mosquitto:
    def __init__(self, tls=False, users=None, workdir=None, acl=False, max_packet_size=None):
        if not (shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")):
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.dir = workdir or tempfile.mkdtemp(prefix="fireant-broker-")
        self.users = users or {USER: PASSWORD}
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.certs = make_certs(self.dir) if tls else None
        self.acl = ACL if acl is True else acl or None
        self.max_packet_size = max_packet_size
        self.proc = None
        self._write_config()

    def _write_config(self):
        pwfile = os.path.join(self.dir, "passwords")
        open(pwfile, "w").close()
        for user, password in self.users.items():
            subprocess.run(["mosquitto_passwd", "-b", pwfile, user, password], check=True, capture_output=True)
        lines = [
            "user root",  # as root mosquitto would switch to a user who cannot read these files
            "per_listener_settings false",
            "allow_anonymous false",
            "password_file %s" % pwfile,
            "persistence false",
            "log_dest file %s" % os.path.join(self.dir, "mosquitto.log"),
            "log_type error", "log_type warning", "log_type notice",
            "listener %d 127.0.0.1" % self.port,
        ]
        if self.acl:
            lines.insert(4, "acl_file %s" % self.acl)
        if self.max_packet_size:
            lines.insert(4, "max_packet_size %d" % self.max_packet_size)
        if self.tls_port:
            lines += ["listener %d 127.0.0.1" % self.tls_port, "cafile %s" % self.certs["ca"],
                      "certfile %s" % self.certs["server"], "keyfile %s" % self.certs["key"]]
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self):
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        try:
            _wait_port(self.port)
        except RuntimeError:
            self.proc.kill()
            raise RuntimeError("mosquitto failed: %s" % self.proc.stderr.read().decode(errors="replace"))
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def log(self):
        try:
            with open(os.path.join(self.dir, "mosquitto.log")) as f:
                return f.read()
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *_):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Subscriber:
    """Records (arrival monotonic s, topic, payload str, retained) for topics."""

    def __init__(self, broker, topics=("#",), user=USER, password=PASSWORD):
        import paho.mqtt.client as paho

        self.messages = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        # One id per Subscriber: two with the same id in one process would keep
        # taking the session from each other and miss messages.
        client_id = "fireant-observer-%d-%x" % (os.getpid(), id(self))
        self._c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
        self._c.username_pw_set(user, password)
        self._c.on_message = self._on_message

        def on_connect(c, *_):
            for t in topics:
                c.subscribe(t, qos=1)
            self._connected.set()

        self._c.on_connect = on_connect
        self._c.reconnect_delay_set(min_delay=0.2, max_delay=1)  # back before the node after a broker restart
        self._c.connect("127.0.0.1", broker.port, keepalive=10)
        self._c.loop_start()
        if not self._connected.wait(10):
            raise RuntimeError("observer could not connect to the broker")

    def _on_message(self, _c, _u, msg):
        with self._lock:
            self.messages.append((time.monotonic(), msg.topic, msg.payload.decode(errors="replace"), msg.retain))

    def connected(self):
        return self._c.is_connected()

    def on(self, topic):
        with self._lock:
            return [m for m in self.messages if m[1] == topic]

    def readings(self, topic="sensors/environmental"):
        """Decoded reading payloads in arrival order, each with its arrival time as "_at"."""
        return [self._reading(m) for m in self.on(topic)]

    def _reading(self, record):
        r = json.loads(record[2])
        r["_at"] = record[0]
        return r

    def close(self):
        self._c.loop_stop()
        self._c.disconnect()


def judge(arrived):
    """Figures read from the outside: readings received, duplicates, seqs missing,
    arrival in seq order (of those the observer was not handed again), and the max
    gap in uptime_ms between consecutive seqs."""
    seen, unique = set(), []
    for r in arrived:
        if r["seq"] not in seen:
            seen.add(r["seq"])
            unique.append(r)
    seqs = [r["seq"] for r in unique]
    ordered = [r["seq"] for r in unique if not r.get("_redelivered")]  # sim.cluster.QueueObserver's
    consecutive = [(a, b) for a, b in zip(unique, unique[1:]) if b["seq"] == a["seq"] + 1]
    gaps = [b["uptime_ms"] - a["uptime_ms"] for a, b in consecutive]
    return {
        "received": len(unique),
        "duplicates": len(arrived) - len(unique),
        "in_order": ordered == sorted(ordered),
        "order_excused": len(seqs) - len(ordered),
        "lost": sorted(set(range(1, max(seqs) + 1)) - seen) if seqs else [],
        "max_gap_ms": max(gaps) if gaps else None,
    }
