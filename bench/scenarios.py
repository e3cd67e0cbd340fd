"""The benchmark's scenarios: each runs fireant and the blocking node side by side
on the same simulated board (one sensor, one Wi-Fi medium), against one real
Mosquitto, and lets a subscriber see what arrives.

fireant runs in-process on this asyncio loop (sim.firmware); the blocking node
in a thread. Where a scenario breaks the TCP path, each node has its own
sim.faultproxy in front of the broker; the DNS scenario points the board's DNS
at a sim.dnsserver. A scenario script starts the nodes, injects its fault and
calls run.cleared() when the fault is over; the runner then waits until both
nodes have caught up and computes the figures from the subscriber's record.
"""
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time

import hostpy
import network
import simboard

from sim.dnsserver import DnsServer
from sim.faultproxy import FaultProxy
from sim.firmware import reset_board, running, sim_config
from sim.mosquitto import PASSWORD, USER, Mosquitto, Subscriber

from . import metrics
from .blocking_node import BlockingNode

READINGS = "sensors/environmental"
STATS = "fireant/+/stats"
OBSERVER = ("bench-observer", "observer-pass")  # its own account: credentials faults spare it
BROKER_NAME = "broker.test"
FIREANT, BLOCKING = "bench-fireant", "bench-blocking"
KEEPALIVE_S, PING_S, RESPONSE_S = 8, 2, 3  # sim_config's: fireant notices a dead path in 4 pings = 8 s
BACKOFF_MIN_S = 0.2  # sim_config's wifi.backoff_min_s; also the blocking node's reconnect delay
SETTLE_TIMEOUT_S = 45


class Scenario:
    def __init__(self, name, title, script, interval_s, duration_s=None, proxy=False, tls=False,
                 dns=False, queue=64, boot_fault=False, password=PASSWORD, note=""):
        self.name, self.title, self.script = name, title, script
        self.interval_s = interval_s
        self.duration_s = duration_s  # healthy runs: how long; fault runs settle instead
        self.proxy, self.tls, self.dns = proxy, tls, dns
        self.queue = queue
        self.boot_fault = boot_fault  # the fault is there from power-on
        self.password = password  # the node's password as the broker first knows it
        self.note = note


SCENARIOS = {}


def scenario(name, title, interval_s=0.5, **opts):
    def add(script):
        SCENARIOS[name] = Scenario(name, title, script, interval_s, **opts)
        return script
    return add


def sample_time(r):
    """Host monotonic time of a reading's sample: uptime_ms is the sim board's
    ticks_ms, which counts from hostpy's origin."""
    return hostpy._t0 + r["uptime_ms"] / 1000


class Run:
    """One scenario's world, handed to its script."""

    def __init__(self, sc, broker, observer, short):
        self.sc = sc
        self.broker = broker
        self.observer = observer
        self.short = short  # the smoke test's quick pass: shorter phases
        self.proxies = {}
        self.dns = None
        self.fw = None
        self.blocking = None
        self.started = {}
        self.clear_s = None  # when the script called cleared()
        self.seq_at_clear = {}
        self.settled = None
        self.sensor_faults = []
        self._stack = contextlib.AsyncExitStack()

    def seconds(self, s):
        return s / 3 if self.short else s

    async def open(self):
        if self.sc.proxy:
            port = self.broker.tls_port if self.sc.tls else self.broker.port
            for name in (FIREANT, BLOCKING):
                p = FaultProxy(port)
                await p.start()
                self._stack.push_async_callback(p.close)
                self.proxies[name] = p
        if self.sc.dns:
            self.dns = DnsServer({BROKER_NAME: "127.0.0.1"})
            network.DNS_PORT = await self.dns.start()
            self._stack.push_async_callback(self.dns.close)

    def _port(self, name):
        if name in self.proxies:
            return self.proxies[name].port
        return self.broker.tls_port if self.sc.tls else self.broker.port

    def set_path(self, mode):
        for p in self.proxies.values():
            p.set_mode(mode)

    async def start_nodes(self):
        sc = self.sc
        server = BROKER_NAME if sc.dns else "127.0.0.1"
        ca = self.broker.certs["ca"] if sc.tls else None
        mqtt = {"server": server, "port": self._port(FIREANT), "keepalive_s": KEEPALIVE_S,
                "ping_interval_s": PING_S, "response_time_s": RESPONSE_S, "tls": sc.tls}
        if ca:
            mqtt["ca"] = ca
        raw = sim_config(self.broker, device=FIREANT, mqtt=mqtt, sensor={"interval_s": sc.interval_s},
                         queue={"size": sc.queue}, wifi={"backoff_min_s": BACKOFF_MIN_S})
        self.blocking = BlockingNode(BLOCKING, sc.interval_s, server, self._port(BLOCKING), USER, PASSWORD,
                                     keepalive_s=KEEPALIVE_S, response_s=RESPONSE_S, delay_s=BACKOFF_MIN_S,
                                     ca=ca, topic=READINGS)
        self.started[BLOCKING] = time.monotonic()
        self.blocking.start()
        self._stack.callback(self.blocking.stop)
        self.started[FIREANT] = time.monotonic()
        self.fw = await self._stack.enter_async_context(running(raw))

    def cleared(self):
        self.clear_s = time.monotonic()
        self.seq_at_clear = {FIREANT: self.fw.node.seq, BLOCKING: self.blocking.seq}

    def sensor(self, ok):
        simboard.set(dht="ok" if ok else "fail")
        if ok:
            self.sensor_faults[-1] = (self.sensor_faults[-1][0], time.monotonic())
        else:
            self.sensor_faults.append((time.monotonic(), None))

    def readings(self, device):
        return [r for r in self.observer.readings(READINGS) if r.get("device") == device]

    def _caught_up(self):
        f, b = self.readings(FIREANT), self.readings(BLOCKING)
        fw_done = f and max(r["seq"] for r in f) >= self.fw.node.seq - 1 and len(self.fw.backlog) <= 1
        bl_done = any(r["seq"] > self.seq_at_clear[BLOCKING] for r in b)
        return fw_done and bl_done

    async def settle(self):
        """After the fault: until both nodes are delivering fresh readings again."""
        self.settled = True
        if self.clear_s is None:
            return
        end = time.monotonic() + SETTLE_TIMEOUT_S
        await asyncio.sleep(1)
        while not self._caught_up():
            if time.monotonic() > end:
                self.settled = False
                return
            await asyncio.sleep(0.1)
        await asyncio.sleep(2 * self.sc.interval_s)  # let the last ones land

    async def close(self):
        await self._stack.aclose()


async def _wait_observer(observer):
    # The observer reconnects by itself after a broker restart; until it has,
    # anything published would be lost to it, not by the nodes.
    for _ in range(200):
        if observer.connected():
            await asyncio.sleep(0.5)  # its SUBSCRIBE is on the way
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("observer did not reconnect to the restarted broker")


def _set_broker_password(broker, user, password):
    # Mosquitto rereads its password file on SIGHUP: the operator fixing the account.
    pwfile = os.path.join(broker.dir, "passwords")
    subprocess.run(["mosquitto_passwd", "-b", pwfile, user, password], check=True, capture_output=True)
    broker.proc.send_signal(signal.SIGHUP)


# -- the scenarios (issue 3's fault matrix plus a healthy run)

@scenario("healthy", "healthy steady state", interval_s=0.2, duration_s=15,
          note="p50/p99 here are the per-reading latency of a healthy node (sample -> subscriber).")
async def healthy(run):
    await run.start_nodes()
    await asyncio.sleep(run.seconds(run.sc.duration_s))


@scenario("wifi_drop", "Wi-Fi link down 4 s, then back",
          note="fireant's recovery_s includes mqtt_as's reconnect: 1 s poll, Wi-Fi rejoin, and its "
               "5 s link-stability check before it dials the broker.")
async def wifi_drop(run):
    await run.start_nodes()
    await asyncio.sleep(run.seconds(3))
    simboard.set(link=False)
    await asyncio.sleep(run.seconds(4))
    simboard.set(link=True)
    run.cleared()


@scenario("broker_restart", "broker stopped 4 s, then restarted", proxy=True,
          note="The fault clears once the restarted broker has its subscriber back. fireant redials "
               "through mqtt_as's reconnect (Wi-Fi re-join and 5 s stability check).")
async def broker_restart(run):
    await run.start_nodes()
    await asyncio.sleep(run.seconds(3))
    run.set_path("reset")  # held closed until the observer is back
    # In threads: stopping and starting Mosquitto blocks, and fireant shares this loop.
    await asyncio.to_thread(run.broker.stop)
    await asyncio.sleep(run.seconds(4))
    await asyncio.to_thread(run.broker.start)
    await _wait_observer(run.observer)
    run.set_path("pass")
    run.cleared()


@scenario("half_open", "TCP path blackholed 10 s (> keepalive 8 s): no RST, no FIN", proxy=True,
          note="fireant notices through keepalive (within 4 ping intervals = 8 s); the blocking "
               "node through its PUBACK timeout (3 s). Packets held in the black hole are delivered "
               "when it heals: a reading sent on a connection the broker has not yet timed out "
               "arrives at once (the blocking node's recovery_s), and QoS 1 duplicates are "
               "expected (detected by seq).")
async def half_open(run):
    await run.start_nodes()
    await asyncio.sleep(run.seconds(3))
    run.set_path("blackhole")
    await asyncio.sleep(run.seconds(10) if not run.short else KEEPALIVE_S + 1)
    run.set_path("pass")
    run.cleared()


@scenario("dns", "DNS silent 5 s at boot, then answering 1 s late", dns=True, boot_fault=True,
          note="Both nodes resolve the broker's name with the same 3 s query timeout; fireant "
               "polls for the answer, the blocking node waits in getaddrinfo's place.")
async def dns_outage(run):
    run.dns.set_mode("silent")
    await run.start_nodes()
    await asyncio.sleep(run.seconds(5))
    run.dns.set_mode("delay", 1.0)
    run.cleared()


@scenario("tls_stall", "TLS handshake stalled 5 s at boot (blackholed path)", proxy=True, tls=True,
          boot_fault=True,
          note="fireant gives up a stalled connect after response_time (3 s) and retries with backoff; "
               "the blocking node's handshake is bounded by the same 3 s (umqtt's is not).")
async def tls_stall(run):
    run.set_path("blackhole")
    await run.start_nodes()
    await asyncio.sleep(run.seconds(5))
    run.set_path("pass")
    run.cleared()


@scenario("wrong_credentials", "broker refuses the credentials 4 s at boot, then accepts", boot_fault=True,
          password="rotated-" + PASSWORD,
          note="fireant backs off 0.2..2 s between refused connects; the blocking node retries "
               "every 0.2 s (umqtt would raise MQTTException and the tutorial's node would stop).")
async def wrong_credentials(run):
    await run.start_nodes()
    await asyncio.sleep(run.seconds(4))
    await asyncio.to_thread(_set_broker_password, run.broker, USER, PASSWORD)
    run.cleared()


@scenario("sensor_and_wifi", "sensor fails 2 s in the middle of a 5 s Wi-Fi drop",
          note="Gaps across the sensor fault are credited with the sampling slots that fell "
               "inside it: no node can fill those.")
async def sensor_and_wifi(run):
    await run.start_nodes()
    await asyncio.sleep(run.seconds(3))
    simboard.set(link=False)
    await asyncio.sleep(run.seconds(1.5))
    run.sensor(False)
    await asyncio.sleep(run.seconds(2))
    run.sensor(True)
    await asyncio.sleep(run.seconds(1.5))
    simboard.set(link=True)
    run.cleared()


@scenario("queue_overflow", "Wi-Fi down 6 s with a 10-reading queue (outage longer than the queue)",
          queue=10,
          note="fireant drops its oldest readings (lost is expected here, and equals its own "
               "dropped count) and reports the count on its stats topic when it reconnects and "
               "again once its backlog has drained (dropped_reported: the last report; a publish "
               "waiting out the outage resumes on mqtt_as's 1 s connection poll, so one or two "
               "more are pushed out after the connect's report).")
async def queue_overflow(run):
    await run.start_nodes()
    await asyncio.sleep(run.seconds(3))
    simboard.set(link=False)
    await asyncio.sleep(run.seconds(6))
    simboard.set(link=True)
    run.cleared()


def _dropped_reported(observer):
    stats = [json.loads(m[2]) for m in observer.on("fireant/%s/stats" % FIREANT)]
    return stats[-1]["dropped"] if stats else None


async def run_scenario(sc, short=False):
    """Run one scenario; returns {"fireant": figures, "blocking": figures, ...}."""
    reset_board()
    users = {USER: sc.password, OBSERVER[0]: OBSERVER[1]}
    with Mosquitto(tls=sc.tls, users=users) as broker:
        observer = Subscriber(broker, topics=(READINGS, STATS), user=OBSERVER[0], password=OBSERVER[1])
        run = Run(sc, broker, observer, short)
        try:
            await run.open()
            await sc.script(run)
            await run.settle()
            fw_node = run.fw.node
        finally:
            await run.close()
            observer.close()
            reset_board()
        out = {"title": sc.title, "interval_s": sc.interval_s, "settled": run.settled, "note": sc.note}
        for name in (FIREANT, BLOCKING):
            out[name] = metrics.figures(run.readings(name), sc.interval_s, run.started[name], sample_time,
                                        run.clear_s, [w for w in run.sensor_faults if w[1]],
                                        0 if sc.boot_fault else metrics.WARMUP_S)
        out[FIREANT]["dropped"] = fw_node.dropped
        out[FIREANT]["dropped_reported"] = _dropped_reported(observer)
        out[FIREANT].update(restarts=fw_node.restarts, connects=fw_node.broker_connects,
                            sensor_errors=fw_node.sensor_errors)
        bl = run.blocking
        out[BLOCKING].update(crashed=bl.crashed, connects=bl.connects, connect_failures=bl.connect_failures,
                             sensor_errors=bl.sensor_errors)
    return out
