"""A throwaway clustered broker (host only): three RabbitMQ nodes with the MQTT
plugin on loopback ports, behind HAProxy in TCP mode, with the same credentials as
sim/mosquitto.py. `./fireant cluster` starts one until Ctrl-C; tests and the
benchmark use Cluster directly. docs/fleet.md says what the cluster replicates.

    with Cluster() as c:      # c.port: MQTT through HAProxy; c.amqp_port: AMQP through it
        obs = QueueObserver(c)    # a quorum queue: survives a node's death
        c.kill(1); c.restart(1); c.restart_all()

Each node has its own name (fireant-K@localhost), AMQP/MQTT/distribution ports,
data and log dirs under one scratch dir, and the Erlang cookie in that dir's
$HOME; all share a private epmd port, so nothing here meets a system RabbitMQ.
Nodes join by classic peer discovery: node 1 first, then the others together.
HAProxy logs every accepted MQTT connection as it is accepted (logasap), which
gives the connect-rate histogram: connects().

One policy is set before any client connects (SUBSCRIPTION_POLICY, docs/fleet.md):
the MQTT plugin's queue for a clean session's QoS 1 subscription is a durable
classic queue on the node the client was connected to, and once that node is
dead it can be neither used nor declared again elsewhere ("home node ... is down
or inaccessible"): the plugin then closes every connection that subscribes again
under that client id. Mirrored on every node, the queue lives on on a survivor.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from sim.mosquitto import PASSWORD, USER, Subscriber, free_port

RABBIT_BIN = "/usr/lib/rabbitmq/bin"
HAPROXY = "/usr/sbin/haproxy"
START_TIMEOUT_S = 90
READINGS_KEY = "sensors.environmental"  # MQTT topics are AMQP routing keys with / as .
# rabbitmqctl set_policy's arguments: the clean-session QoS 1 subscription queues
# (mqtt-subscription-<client id>qos1; qos0 ones are transient and are deleted with
# their node) mirrored on all nodes. Classic mirroring: RabbitMQ 3.10 has no other
# replication for them (mqtt.durable_queue_type = quorum is for clean session off only).
SUBSCRIPTION_POLICY = ("--apply-to", "queues", "fireant-mqtt-subscriptions", "^mqtt-subscription-.+qos1$",
                       '{"ha-mode": "all", "ha-sync-mode": "automatic"}')


def missing():
    """What is not installed, as the apt package names; [] when all is there."""
    out = []
    if not os.path.exists(os.path.join(RABBIT_BIN, "rabbitmq-server")):
        out.append("rabbitmq-server")
    if not os.path.exists(HAPROXY):
        out.append("haproxy")
    return out


def _port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


class Node:
    def __init__(self, index, root, names, epmd_port):
        self.index = index
        self.name = names[index - 1]
        self.amqp, self.mqtt, self.dist = free_port(), free_port(), free_port()
        self.dir = os.path.join(root, "node%d" % index)
        os.makedirs(self.dir)
        self.proc = None
        conf = [
            "listeners.tcp.default = 127.0.0.1:%d" % self.amqp,
            "mqtt.listeners.tcp.default = 127.0.0.1:%d" % self.mqtt,
            "mqtt.allow_anonymous = false",
            "mqtt.vhost = /",
            "mqtt.exchange = amq.topic",
            "default_user = %s" % USER,
            "default_pass = %s" % PASSWORD,
            "loopback_users = none",
            "log.console = false",
            "log.file.level = warning",
            "cluster_formation.peer_discovery_backend = classic_config",
        ] + ["cluster_formation.classic_config.nodes.%d = %s" % (i + 1, n) for i, n in enumerate(names)]
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write("\n".join(conf) + "\n")
        self.env = dict(
            os.environ, HOME=root, ERL_EPMD_PORT=str(epmd_port), ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_NODENAME=self.name, RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.amqp), RABBITMQ_DIST_PORT=str(self.dist),
            RABBITMQ_CONFIG_FILE=os.path.join(self.dir, "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=os.path.join(self.dir, "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=os.path.join(self.dir, "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(root, "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=os.path.join(self.dir, "mnesia"),
            RABBITMQ_LOG_BASE=os.path.join(self.dir, "log"),
            RABBITMQ_PID_FILE=os.path.join(self.dir, "pid"),
            # One scheduler thread each: three VMs share two cores with the fleet.
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+S 1:1 +SDio 2 -kernel inet_dist_use_interface {127,0,0,1}",
        )
        open(self.env["RABBITMQ_CONF_ENV_FILE"], "w").close()  # not /etc/rabbitmq's

    def start(self):
        self.proc = subprocess.Popen([os.path.join(RABBIT_BIN, "rabbitmq-server")], env=self.env, cwd=self.dir,
                                     stdout=open(os.path.join(self.dir, "stdout.log"), "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def up(self):
        return self.proc is not None and self.proc.poll() is None and _port_open(self.mqtt)

    def kill(self):
        """SIGKILL: the node dies as a crashed host would, no goodbye to anyone."""
        if self.proc and self.proc.poll() is None:
            self._kill_group()

    def _group_gone(self):
        self.proc.poll()  # reap the script (our child) once it exits: a zombie stays in the group
        try:
            os.killpg(self.proc.pid, 0)
            return False
        except ProcessLookupError:
            return True

    def _kill_group(self):
        # The script runs the VM as its own child: wait for the whole group.
        end = time.monotonic() + 10
        while not self._group_gone() and time.monotonic() < end:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self.proc.wait()

    def stop(self, timeout=30):
        """SIGTERM to the VM (rabbit's clean shutdown), waited for; then SIGKILL."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        end = time.monotonic() + timeout
        while not self._group_gone() and time.monotonic() < end:
            time.sleep(0.1)
        self._kill_group()

    def log(self):
        out = []
        for base, _, files in os.walk(os.path.join(self.dir, "log")):
            for name in files:
                with open(os.path.join(base, name), errors="replace") as f:
                    out.append(f.read())
        return "\n".join(out)


class Cluster:
    def __init__(self, nodes=3, workdir=None, mirror_subscriptions=True):
        """mirror_subscriptions=False leaves out SUBSCRIPTION_POLICY: a 3.10 cluster
        as installed, which refuses a subscription whose queue's node died."""
        if missing():
            raise RuntimeError("not installed: %s (./fireant cluster installs them)" % " ".join(missing()))
        self.dir = workdir or tempfile.mkdtemp(prefix="fireant-cluster-")
        self.epmd_port = free_port()
        with open(os.path.join(self.dir, ".erlang.cookie"), "w") as f:
            f.write("fireant-%s" % os.urandom(8).hex())
        os.chmod(os.path.join(self.dir, ".erlang.cookie"), 0o400)
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[rabbitmq_mqtt].\n")  # management off: not needed, and slow to start
        names = ["fireant-%d@localhost" % (i + 1) for i in range(nodes)]
        self.nodes = [Node(i + 1, self.dir, names, self.epmd_port) for i in range(nodes)]
        self.port, self.amqp_port = free_port(), free_port()
        self.haproxy = None
        self.startup_s = None
        self.mirror_subscriptions = mirror_subscriptions
        self._write_haproxy()

    def _write_haproxy(self):
        def backend(name, attr):
            return ["backend %s" % name, "  balance leastconn",
                    # a dead node is out within ~1 s, and what it still holds is cut
                    "  default-server inter 500 fall 2 rise 2 on-marked-down shutdown-sessions"] + \
                   ["  server n%d 127.0.0.1:%d check" % (n.index, getattr(n, attr)) for n in self.nodes]

        lines = ["global", "  maxconn 8192", "defaults", "  mode tcp", "  timeout connect 2s",
                 "  timeout client 120s", "  timeout server 120s",
                 "frontend mqtt", "  bind 127.0.0.1:%d" % self.port,
                 "  log stdout format raw local0", "  option logasap",
                 '  log-format "%Ts.%ms %b/%s %ci:%cp"', "  default_backend rabbit_mqtt",
                 "frontend amqp", "  bind 127.0.0.1:%d" % self.amqp_port, "  default_backend rabbit_amqp"]
        lines += backend("rabbit_mqtt", "mqtt") + backend("rabbit_amqp", "amqp")
        self.haproxy_conf = os.path.join(self.dir, "haproxy.cfg")
        with open(self.haproxy_conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.haproxy_log = os.path.join(self.dir, "haproxy.log")

    def _wait(self, nodes, timeout=START_TIMEOUT_S):
        end = time.monotonic() + timeout
        while not all(n.up() for n in nodes):
            dead = [n for n in nodes if n.proc.poll() is not None]
            if dead or time.monotonic() > end:
                raise RuntimeError("RabbitMQ node %s did not start:\n%s" % (
                    (dead or nodes)[0].name, (dead or nodes)[0].log()[-3000:]))
            time.sleep(0.1)

    def start(self):
        if self.haproxy is not None:
            raise RuntimeError("cluster already started")
        t0 = time.monotonic()
        try:
            self.nodes[0].start()  # the seed: the others join it
            self._wait(self.nodes[:1])
            for n in self.nodes[1:]:
                n.start()
            self._wait(self.nodes)
            if self.mirror_subscriptions:  # before HAProxy: no client subscribes without it
                out = self.ctl("set_policy", *SUBSCRIPTION_POLICY)
                if out.returncode:
                    raise RuntimeError("set_policy failed: %s%s" % (out.stdout, out.stderr))
            self.haproxy = subprocess.Popen([HAPROXY, "-db", "-f", self.haproxy_conf],
                                            stdout=open(self.haproxy_log, "ab"), stderr=subprocess.STDOUT)
            end = time.monotonic() + 10
            while not (_port_open(self.port) and _port_open(self.amqp_port)):
                if self.haproxy.poll() is not None or time.monotonic() > end:
                    raise RuntimeError("haproxy did not start: %s" % open(self.haproxy_log).read())
                time.sleep(0.05)
            time.sleep(1.2)  # health checks: every server marked up (rise 2 × 500 ms)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - t0
        return self

    def ctl(self, *args, node=1):
        """rabbitmqctl args against node (1-based); the CompletedProcess (text)."""
        n = self.nodes[node - 1]
        return subprocess.run([os.path.join(RABBIT_BIN, "rabbitmqctl"), "-n", n.name] + list(args), env=n.env,
                              capture_output=True, text=True, timeout=60)

    def members(self):
        """The cluster's running nodes, as RabbitMQ itself reports them."""
        out = self.ctl("eval", "rabbit_nodes:all_running().")
        return sorted(n.name for n in self.nodes if "'%s'" % n.name in out.stdout)

    def kill(self, index):
        self.nodes[index - 1].kill()

    def restart(self, index):
        """Start a killed node again; it rejoins from its data dir."""
        self.nodes[index - 1].start()
        self._wait([self.nodes[index - 1]])

    def restart_all(self, down_s=0.0):
        """Every node stopped cleanly (together), then all started together: each
        waits for the others' tables, so none may be started alone."""
        stops = [threading.Thread(target=n.stop) for n in self.nodes]
        for t in stops:
            t.start()
        for t in stops:
            t.join()
        self.stopped_at = time.monotonic()
        time.sleep(down_s)
        for n in self.nodes:
            n.start()
        self._wait(self.nodes, timeout=3 * START_TIMEOUT_S)

    def connects(self):
        """Host wall-clock times (time.time()) at which HAProxy accepted an MQTT
        connection, and the node it sent each to ("n2", or "<NOSRV>" when none was up)."""
        out = []
        try:
            with open(self.haproxy_log) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 2 and parts[1].startswith("rabbit_mqtt/"):
                        out.append((float(parts[0]), parts[1].split("/", 1)[1]))
        except OSError:
            pass
        return out

    def stop(self):
        if self.haproxy and self.haproxy.poll() is None:
            self.haproxy.terminate()
            self.haproxy.wait(10)
        for n in self.nodes:
            n.stop()
        # The epmd the first node started (on our private port): nothing else uses it.
        subprocess.run(["epmd", "-port", str(self.epmd_port), "-kill"], capture_output=True,
                       env=dict(os.environ, ERL_EPMD_PORT=str(self.epmd_port)))

    def __enter__(self):
        return self.start()

    def __exit__(self, *_):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class QueueObserver(Subscriber):
    """Sees what the fleet publishes through a durable quorum queue bound to
    amq.topic (where the MQTT plugin routes): the queue is replicated on all three
    nodes, so nothing routed to it is lost when a node dies or the whole cluster
    restarts, whichever node this observer was connected to. It reconnects through
    HAProxy and acks each message once recorded: a message in flight at a cut comes
    again (counted in redelivered, and as a duplicate by judge()). Same records
    and readings()/on() as sim.mosquitto.Subscriber: (arrival, topic, payload, False)."""

    def __init__(self, cluster, keys=(READINGS_KEY, "fireant.*.status", "fireant.*.stats")):
        import pika

        self.messages = []
        self.redelivered = 0
        self._again = set()  # the records of messages that came redelivered
        self.reconnects = 0
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._conn = None
        self.queue = "fireant-observer-%d-%x" % (os.getpid(), id(self))
        self._params = pika.ConnectionParameters("127.0.0.1", cluster.amqp_port,
                                                 credentials=pika.PlainCredentials(USER, PASSWORD),
                                                 heartbeat=5, blocked_connection_timeout=10,
                                                 connection_attempts=1, socket_timeout=2)
        self._keys = keys
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._connected.wait(20):
            raise RuntimeError("observer could not reach the cluster over AMQP")

    def _run(self):
        import pika

        while not self._stop.is_set():
            try:
                self._conn = conn = pika.BlockingConnection(self._params)
                ch = conn.channel()
                ch.queue_declare(self.queue, durable=True, arguments={"x-queue-type": "quorum"})
                for key in self._keys:
                    ch.queue_bind(self.queue, "amq.topic", routing_key=key)
                ch.basic_qos(prefetch_count=500)
                ch.basic_consume(self.queue, self._on_message)
                if self._connected.is_set():
                    self.reconnects += 1
                self._connected.set()
                while not self._stop.is_set():
                    conn.process_data_events(time_limit=0.2)
                ch.queue_delete(self.queue)
                conn.close()
                return
            except Exception:  # a node's death, the whole cluster restarting: again, through HAProxy
                try:
                    self._conn.close()
                except Exception:
                    pass
                time.sleep(0.3)

    def _on_message(self, ch, method, _props, body):
        with self._lock:
            record = (time.monotonic(), method.routing_key.replace(".", "/"), body.decode(errors="replace"), False)
            self.messages.append(record)
            if method.redelivered:
                self.redelivered += 1
                self._again.add(record)
        ch.basic_ack(method.delivery_tag)

    def _reading(self, record):
        """As Subscriber's, a redelivered one marked "_redelivered": what was in
        flight to this observer when its connection was cut comes again when the
        queue decides, so its place in the arrival order tells of the observer's
        cut, not of the node's order (judge() leaves it out of in_order)."""
        r = Subscriber._reading(self, record)
        if record in self._again:
            r["_redelivered"] = True
        return r

    def connected(self):
        return self._conn is not None and self._conn.is_open

    def close(self):
        self._stop.set()
        self._thread.join(10)


def main(argv=None):
    """./fireant cluster [--seconds S]: a cluster until Ctrl-C, its endpoints printed."""
    import argparse

    ap = argparse.ArgumentParser(prog="./fireant cluster", description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, help="stop by itself after this long")
    ap.add_argument("--install", action="store_true", help="only install rabbitmq-server and haproxy (apt)")
    args = ap.parse_args(argv)
    if args.install:
        return 0  # ./fireant did it before starting Python
    c = Cluster()
    print("fireant cluster: starting 3 RabbitMQ nodes and HAProxy in %s ..." % c.dir, flush=True)
    with c:
        print("up in %.1f s: %s" % (c.startup_s, ", ".join(c.members())))
        print("MQTT  127.0.0.1:%d  (HAProxy; user %s, password %s) -> nodes on %s" % (
            c.port, USER, PASSWORD, ", ".join(str(n.mqtt) for n in c.nodes)))
        print("AMQP  127.0.0.1:%d  (HAProxy) -> nodes on %s" % (c.amqp_port, ", ".join(str(n.amqp) for n in c.nodes)))
        print("Ctrl-C stops it (nothing is left running)", flush=True)
        try:
            time.sleep(args.seconds if args.seconds else 1e9)
        except KeyboardInterrupt:
            pass
    print("fireant cluster: stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
