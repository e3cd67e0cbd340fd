"""Issue 3's fault matrix: the whole firmware (in-process, sim board) against a real
Mosquitto with credentials, judged from a subscriber's side by seq and uptime_ms.

Every scenario checks the same promises: the sampler's cadence holds (max gap
between consecutive readings), nothing within the queue's capacity is lost, seq
order holds, duplicates (QoS 1 redelivery) are counted, `online` is retained once
the fault clears and, where the broker can notice, the will said `offline`.

The gap bound is the interval plus an absolute margin for a noisy 2-core CI
machine; the real figures are printed here (pytest -s) and measured by bench/.
Nothing in a test may block the event loop: the firmware shares it.

In-process the firmware runs on the CPython stand-in of mqtt_as, whose TLS
handshake sits in a paho thread and so can never freeze the loop. The last tests
therefore run the firmware under the MicroPython unix port with the real mqtt_as
from lib/, where a blocking handshake would freeze everything, and where the
keepalive that notices a half-open link is upstream's own.
"""
import asyncio
import json
import re
import sys
import time
from time import ticks_ms

import network
import pytest
import simboard

from sim import paths, unixport
from sim.dnsserver import DnsServer
from sim.faultproxy import FaultProxy
from sim.firmware import running, sim_config, until
from sim.mosquitto import Mosquitto, Subscriber, judge

INTERVAL_MS = 200
SLACK_MS = 100  # scheduling jitter on a loaded 2-core machine; bench/ reports the real figure
READINGS = "sensors/environmental"


def readings(sub, device):
    return [r for r in sub.readings(READINGS) if r["device"] == device]


def report(name, figures, **extra):
    """One line of figures, seen with pytest -s. To the real stdout: some tests
    read the firmware's log through capsys."""
    shown = dict(figures, lost=len(figures["lost"])) if figures else {}
    shown.update(extra)
    print("fault %-22s %s" % (name, " ".join("%s=%s" % kv for kv in shown.items())), file=sys.__stdout__)


def recovery_s(arrived, healed_at, last_before):
    """Fault cleared -> first reading taken during the outage arrives."""
    backlog = [r["_at"] for r in arrived if r["seq"] > last_before and r["_at"] >= healed_at]
    return round(min(backlog) - healed_at, 2) if backlog else None


def statuses(sub, device):
    """Live (not retained-on-subscribe) messages on the status topic: (arrival, payload)."""
    return [(m[0], m[2]) for m in sub.on("fireant/%s/status" % device) if not m[3]]


def _retained(broker, topic):
    sub = Subscriber(broker, topics=(topic,))
    try:
        end = time.monotonic() + 5
        while not sub.on(topic) and time.monotonic() < end:
            time.sleep(0.05)
        return [(m[2], m[3]) for m in sub.on(topic)]
    finally:
        sub.close()


async def retained(broker, topic):
    """What a newcomer subscribing now is handed: [(payload, retain flag)]."""
    return await asyncio.to_thread(_retained, broker, topic)


async def caught_up(sub, fw, device, timeout=30):
    """Wait until every reading the node has taken so far has arrived."""
    target = fw.node.seq
    await until(lambda: any(r["seq"] >= target for r in readings(sub, device)), timeout)


def assert_promises(fig, name, lost_ok=()):
    assert fig["in_order"], name
    assert fig["lost"] == list(lost_ok), name
    assert fig["max_gap_ms"] <= INTERVAL_MS + SLACK_MS, (name, fig)


async def test_wifi_drop_and_restore(broker, observer):
    dev = "fault-wifi"
    async with running(sim_config(broker, device=dev)) as fw:
        await until(lambda: len(readings(observer, dev)) >= 5)
        simboard.set(link=False)
        dropped_at = time.monotonic()
        await until(lambda: not fw.node.broker_up, 5)
        last_before = max(r["seq"] for r in readings(observer, dev))
        await until(lambda: ("offline" in [p for at, p in statuses(observer, dev) if at >= dropped_at]), 10)
        await asyncio.sleep(3 - (time.monotonic() - dropped_at))
        taken_offline = fw.node.seq - last_before
        simboard.set(link=True)
        healed = time.monotonic()
        await caught_up(observer, fw, dev)
        after = await retained(broker, "fireant/%s/status" % dev)
    fig = judge(readings(observer, dev))
    report("wifi drop 3 s", fig, recovery_s=recovery_s(readings(observer, dev), healed, last_before))
    assert_promises(fig, "wifi")
    assert taken_offline >= 12  # 15 intervals without a network: the sampler kept going
    assert after == [("online", True)]
    live = [p for _, p in statuses(observer, dev)]
    assert live[:3] == ["online", "offline", "online"]  # birth, the will while gone, back
    assert fw.node.restarts == 0 and fw.node.dropped == 0


async def test_broker_stopped_then_restarted():
    own = await asyncio.to_thread(Mosquitto().start)
    sub = await asyncio.to_thread(Subscriber, own)
    dev = "fault-broker"
    try:
        async with running(sim_config(own, device=dev)) as fw:
            await until(lambda: len(readings(sub, dev)) >= 5)
            await asyncio.to_thread(own.stop)
            stopped = time.monotonic()
            await until(lambda: not fw.node.broker_up, 5)
            last_before = max(r["seq"] for r in readings(sub, dev))
            await asyncio.sleep(3 - (time.monotonic() - stopped))
            await asyncio.to_thread(own.start)  # same ports; nothing retained survives
            healed = time.monotonic()
            await caught_up(sub, fw, dev)
            after = await retained(own, "fireant/%s/status" % dev)
        arrived = readings(sub, dev)
    finally:
        sub.close()
        await asyncio.to_thread(own.__exit__)
    fig = judge(arrived)
    report("broker restart 3 s", fig, recovery_s=recovery_s(arrived, healed, last_before))
    assert_promises(fig, "broker restart")
    assert after == [("online", True)]  # published again after the restart
    assert fw.node.restarts == 0 and fw.node.dropped == 0
    assert fw.node.wifi_drops == 0 and fw.node.broker_connects == 2  # Wi-Fi stayed up: a broker reconnect only


async def test_half_open_link_is_noticed_by_keepalive(broker, observer):
    proxy = FaultProxy(broker.port)
    await proxy.start()
    # ~16 s without the broker (noticed after ~8, reconnect takes ~6): a queue that holds it all
    raw = sim_config(broker, device="fault-halfopen", mqtt={"port": proxy.port}, queue={"size": 150})
    dev, ping_s = raw["device"], raw["mqtt"]["ping_interval_s"]
    try:
        async with running(raw) as fw:
            await until(lambda: len(readings(observer, dev)) >= 5)
            proxy.set_mode("blackhole")  # packets vanish: no RST, no FIN
            cut = time.monotonic()
            await until(lambda: not fw.node.broker_up, 20)
            noticed_s = time.monotonic() - cut
            last_before = max(r["seq"] for r in readings(observer, dev))
            # The broker's own keepalive gives the node up and publishes its will.
            await until(lambda: "offline" in [p for at, p in statuses(observer, dev) if at >= cut], 20)
            await asyncio.sleep(max(0, raw["mqtt"]["keepalive_s"] + 2 - (time.monotonic() - cut)))
            outage_s = time.monotonic() - cut
            proxy.set_mode("pass")
            healed = time.monotonic()
            await caught_up(observer, fw, dev, 40)
            after = await retained(broker, "fireant/%s/status" % dev)
    finally:
        await proxy.close()
    arrived = readings(observer, dev)
    fig = judge(arrived)
    report("half-open %.0f s" % outage_s, fig, noticed_s=round(noticed_s, 1),
           recovery_s=recovery_s(arrived, healed, last_before))
    assert_promises(fig, "half-open")
    # mqtt_as gives up after four silent ping intervals, checked once per interval.
    assert noticed_s <= 5 * ping_s + 1.5
    assert after == [("online", True)]
    live = [p for _, p in statuses(observer, dev)]
    assert live[:3] == ["online", "offline", "online"]
    assert fw.node.restarts == 0 and fw.node.dropped == 0


async def dns_for(name):
    server = DnsServer({name: "127.0.0.1"})
    network.DNS_PORT = await server.start()  # the sim board's DNS server; reset_board() restores 53
    return server


async def test_dns_outage_does_not_freeze_sensing(broker, observer, capsys):
    dns = await dns_for("broker.test")
    dns.set_mode("silent")
    raw = sim_config(broker, device="fault-dns", mqtt={"server": "broker.test"})
    try:
        async with running(raw) as fw:
            began = time.monotonic()
            await until(lambda: len(dns.queries) >= 3, 15)  # a lookup timed out, the next began
            await asyncio.sleep(1)
            taken_in_outage, outage_s = fw.node.seq, time.monotonic() - began
            dns.set_mode("answer")
            healed = time.monotonic()
            await until(lambda: fw.node.broker_up, 15)
            connected_s = time.monotonic() - healed
            await caught_up(observer, fw, "fault-dns")
    finally:
        await dns.close()
    out = capsys.readouterr().out
    arrived = readings(observer, "fault-dns")
    fig = judge(arrived)
    report("dns silent", fig, connected_s=round(connected_s, 1), recovery_s=recovery_s(arrived, healed, 0))
    assert_promises(fig, "dns silent")
    assert outage_s >= 3 and taken_in_outage >= int(outage_s * 5 * 0.8)  # 5 readings/s
    assert min(r["_at"] for r in arrived) >= healed  # nothing could be sent before the name resolved
    assert "cannot connect to broker.test: DNS server 127.0.0.1 did not answer" in out
    assert fw.node.restarts == 0


async def test_dns_junk_is_ignored_and_the_answer_taken(broker, observer, capsys):
    """Ahead of the answer come a reply with another id, one to another question
    (an A record for other.test), a truncated one and one from another port: the
    lookup ignores each and connects on its first attempt."""
    dns = await dns_for("broker.test")
    dns.set_mode("stray")
    try:
        async with running(sim_config(broker, device="fault-dnsjunk", mqtt={"server": "broker.test"})) as fw:
            await until(lambda: len(readings(observer, "fault-dnsjunk")) >= 3, 15)
    finally:
        await dns.close()
    assert "cannot connect" not in capsys.readouterr().out
    assert dns.queries == ["broker.test"] and fw.node.broker_connects == 1


async def test_a_local_name_is_asked_of_mdns(broker, observer):
    """homeassistant.local is unknown to the DNS server, as on a LAN; a one-shot
    mDNS query (answered by unicast, RFC 6762 6.7) finds it, as an ESP32's
    getaddrinfo would, without blocking."""
    dns = await dns_for("broker.test")
    responder = DnsServer({"homeassistant.local": "127.0.0.1"})
    network.MDNS_SERVER = ("127.0.0.1", await responder.start())
    try:
        async with running(sim_config(broker, device="fault-mdns", mqtt={"server": "homeassistant.local"})) as fw:
            await until(lambda: len(readings(observer, "fault-mdns")) >= 3, 15)
    finally:
        network.MDNS_SERVER = ("224.0.0.251", 5353)
        await responder.close()
        await dns.close()
    assert responder.queries == ["homeassistant.local"] and not dns.queries
    assert fw.node.broker_connects == 1


async def test_slow_dns_then_tls_with_server_name_verified(broker, observer):
    dns = await dns_for("broker.test")
    dns.set_mode("delay", 1.5)  # slow, yet within app/dns.py's 3 s timeout
    raw = sim_config(broker, device="fault-tls", mqtt={
        "server": "broker.test", "port": broker.tls_port, "tls": True, "ca": broker.certs["ca"]})
    try:
        async with running(raw) as fw:
            await until(lambda: len(readings(observer, "fault-tls")) >= 15, 20)
    finally:
        await dns.close()
    fig = judge(readings(observer, "fault-tls"))
    report("dns slow + tls", fig, dns_queries=len(dns.queries))
    assert_promises(fig, "slow dns")
    assert dns.queries[0] == "broker.test"
    assert fw.node.broker_connects == 1 and fw.node.restarts == 0


async def test_stalled_tls_handshake_does_not_freeze_sensing(broker, observer, capsys):
    dns = await dns_for("localhost")
    proxy = FaultProxy(broker.tls_port)
    await proxy.start()
    proxy.set_mode("blackhole")  # TCP connects, the ClientHello goes nowhere
    raw = sim_config(broker, device="fault-tlsstall", mqtt={
        "server": "localhost", "port": proxy.port, "tls": True, "ca": broker.certs["ca"]})
    dev = raw["device"]
    try:
        async with running(raw) as fw:
            await until(lambda: proxy.accepted >= 1, 10)
            await asyncio.sleep(raw["mqtt"]["response_time_s"] + 1)  # the attempt gave up meanwhile
            stalled = proxy.accepted
            taken_in_stall = fw.node.seq
            proxy.set_mode("pass")
            healed = time.monotonic()
            await until(lambda: fw.node.broker_up, 20)
            connected_s = time.monotonic() - healed
            await caught_up(observer, fw, dev)
    finally:
        await proxy.close()
        await dns.close()
    out = capsys.readouterr().out
    arrived = readings(observer, dev)
    fig = judge(arrived)
    report("tls handshake stall", fig, connected_s=round(connected_s, 1),
           recovery_s=recovery_s(arrived, healed, 0))
    assert_promises(fig, "tls stall")
    assert stalled >= 1 and taken_in_stall >= 15
    assert re.search(r"cannot connect to localhost: .*Timeout", out)  # the stalled attempt gave up
    assert fw.node.restarts == 0


async def test_wrong_credentials_back_off_without_crashing(broker, observer, capsys):
    proxy = FaultProxy(broker.port)  # counts the connection attempts
    await proxy.start()
    raw = sim_config(broker, device="fault-creds", mqtt={"port": proxy.port, "password": "wrong"},
                     wifi={"backoff_min_s": 0.2, "backoff_max_s": 0.8})
    try:
        async with running(raw) as fw:
            await asyncio.sleep(9)
            seq, attempts = fw.node.seq, proxy.accepted
    finally:
        await proxy.close()
    out = capsys.readouterr().out
    refusals = re.findall(r"mqtt: cannot connect to 127\.0\.0\.1: (.*); retry in (\d+) ms", out)
    delays = [int(ms) for _, ms in refusals]
    report("wrong credentials", None, attempts=attempts, retry_ms=delays)
    assert len(refusals) >= 4 and len(refusals) in (attempts, attempts - 1)  # one log line per refusal
    assert all("not authorised" in why or "bad user name or password" in why for why, _ in refusals)
    # Capped exponential backoff with jitter in [d/2, d]: 200 ms, then 400, then 800 for ever.
    assert delays[0] <= 200 and all(d <= 800 for d in delays) and all(d >= 400 for d in delays[2:])
    assert seq >= 40 and fw.node.restarts == 0  # ~9 s at 5 readings/s, never a crash loop
    assert not readings(observer, "fault-creds") and not fw.node.broker_up


async def test_sensor_fails_while_the_link_is_down(broker, observer):
    dev = "fault-both"
    async with running(sim_config(broker, device=dev)) as fw:
        await until(lambda: len(readings(observer, dev)) >= 5)
        simboard.set(link=False)
        dropped_at = time.monotonic()
        await asyncio.sleep(1)
        simboard.set(dht="fail")
        fail_from, seq_at_fail = ticks_ms(), fw.node.seq
        await asyncio.sleep(1.5)
        simboard.set(dht="ok", temperature=25.0)
        fail_to = ticks_ms()
        await asyncio.sleep(1)
        simboard.set(link=True)
        healed = time.monotonic()
        await caught_up(observer, fw, dev)
        after = await retained(broker, "fireant/%s/status" % dev)
        errors = fw.node.sensor_errors
    arrived = readings(observer, dev)
    fig = judge(arrived)
    (a, b), = [(a, b) for a, b in zip(arrived, arrived[1:]) if a["seq"] == seq_at_fail]
    others = [y["uptime_ms"] - x["uptime_ms"] for x, y in zip(arrived, arrived[1:]) if x is not a]
    report("sensor fail + wifi down", fig, max_gap_outside_failure_ms=max(others), sensor_errors=errors)
    assert fig["in_order"] and fig["lost"] == []  # seq counts readings only: no holes
    # The one long gap spans the failure; every other gap keeps the cadence.
    assert fail_to - fail_from <= b["uptime_ms"] - a["uptime_ms"] <= fail_to - fail_from + INTERVAL_MS + SLACK_MS
    assert max(others) <= INTERVAL_MS + SLACK_MS
    assert 5 <= errors <= 9  # 1.5 s at 5 reads/s, each failure counted
    # No stale copy: nothing was sampled while the sensor failed, and values changed with it.
    assert not [r for r in arrived if fail_from < r["uptime_ms"] < fail_to - INTERVAL_MS // 2]
    assert {r["temperature_C"] for r in arrived if r["seq"] > seq_at_fail} == {25.0}
    assert after == [("online", True)]
    assert "offline" in [p for at, p in statuses(observer, dev) if dropped_at <= at <= healed + 10]
    assert fw.node.restarts == 0


async def test_outage_longer_than_the_queue_drops_oldest_and_reports_it(broker, observer):
    dev, size = "fault-overflow", 10
    async with running(sim_config(broker, device=dev, queue={"size": size})) as fw:
        await until(lambda: len(readings(observer, dev)) >= 5)
        simboard.set(link=False)
        await until(lambda: not fw.node.broker_up, 5)
        await asyncio.sleep(4)  # ~20 readings into a queue of 10
        dropped_in_outage = fw.node.dropped
        simboard.set(link=True)
        await until(lambda: fw.node.broker_up, 20)
        await asyncio.sleep(1)  # a full queue keeps dropping until the first publishes are through
        await caught_up(observer, fw, dev)
        dropped = fw.node.dropped
        told = []

        def told_true():  # once drained, the node says the count it has, not the one of the connect
            told[:] = [json.loads(m[2]) for m in observer.on("fireant/%s/stats" % dev)]
            return told and told[-1]["dropped"] == dropped

        try:
            await until(told_true, 5)
        except AssertionError:
            pass
        stats = told
    arrived = readings(observer, dev)
    fig = judge(arrived)
    report("queue overflow", fig, dropped=dropped, queue=size)
    assert dropped_in_outage >= 8
    lost = fig["lost"]
    # Every loss counted, nothing else lost. dropped counts what left the backlog
    # without a PUBACK: of those sent when the link went, up to mqtt.window may have
    # reached the broker (their PUBACKs lost with it), and arrive though counted.
    assert dropped - fw.window <= len(lost) <= dropped, (lost, dropped)
    assert lost == list(range(lost[0], lost[0] + len(lost)))  # one block: the oldest of the outage
    assert fig["in_order"]
    assert max(b["uptime_ms"] - a["uptime_ms"] for a, b in zip(arrived, arrived[1:])
               if b["seq"] == a["seq"] + 1) <= INTERVAL_MS + SLACK_MS
    # Reported once the backlog has drained: the retained stats message carries the whole count
    # (the connect's said fewer: a full queue kept dropping until the first publishes were through).
    assert stats[-1]["dropped"] == dropped, (stats[-1], dropped)
    assert fw.node.restarts == 0


# -- the real mqtt_as under the MicroPython unix port (sim/unixport.py)

needs_real_mqtt_as = pytest.mark.skipif(
    not paths.lib_dir(), reason="the real mqtt_as is neither in lib/ nor in the cache (./fireant upstream --from DIR)")
_STARTING = re.compile(r"\[\s*(\d+)\] app: .* starting: ")


async def on_unix_port(raw, broker, observer, faults, heal_s, max_s):
    """Run raw on the unix port with the real libraries; faults are (s, callable).
    Stops once a reading taken 1 s after heal_s has arrived (so all before it
    have). Returns the Run, the node's ticks at start, and the retained status then."""
    dev, seen = raw["device"], {}

    def caught_up(run):
        start = [int(m.group(1)) for m in map(_STARTING.match, run.lines) if m]
        if not start or not any(r["uptime_ms"] >= start[0] + (heal_s + 1) * 1000 for r in readings(observer, dev)):
            return False
        seen["start"] = start[0]
        seen["retained"] = _retained(broker, "fireant/%s/status" % dev)  # this runs in unixport's thread
        return True

    run = await asyncio.to_thread(unixport.run, raw, faults=faults, broker=broker, libs="real",
                                  heapsize="256K", heap_every_ms=0, seconds=heal_s + 1, max_seconds=max_s,
                                  until=caught_up)
    assert "retained" in seen, "did not catch up within %d s:\n%s" % (max_s, run.output())
    assert run.returncode == 0 and "Traceback" not in run.output(), run.output()
    return run, seen["start"], seen["retained"]


def in_loop(fn, *args):
    """A fault for unixport's thread that acts in this test's event loop."""
    loop = asyncio.get_running_loop()
    return lambda: loop.call_soon_threadsafe(fn, *args)


@needs_real_mqtt_as
async def test_real_mqtt_as_stalled_tls_handshake_does_not_freeze_the_loop(broker, observer):
    proxy = FaultProxy(broker.tls_port)
    await proxy.start()
    proxy.set_mode("blackhole")
    raw = sim_config(broker, device="unix-tlsstall", mqtt={
        "port": proxy.port, "tls": True, "ca": broker.certs["ca"]})
    try:
        run, _, after = await on_unix_port(raw, broker, observer, [(6, in_loop(proxy.set_mode, "pass"))], 6, 30)
    finally:
        await proxy.close()
    fig = judge(readings(observer, "unix-tlsstall"))
    report("unix tls stall", fig, attempts=proxy.accepted)
    # With do_handshake=True the loop would sit in wrap_socket until the path heals (~5 s gap).
    assert_promises(fig, "unix tls stall")
    # (where this build's ssl parses no PEM, a "ValueError: invalid cert" comes first)
    assert any("Timeout" in line for line in run.logged("cannot connect to 127.0.0.1"))
    assert proxy.accepted >= 2 and after == [("online", True)]


@needs_real_mqtt_as
async def test_real_mqtt_as_notices_a_half_open_link_by_keepalive(broker, observer):
    proxy = FaultProxy(broker.port)
    await proxy.start()
    raw = sim_config(broker, device="unix-halfopen", mqtt={"port": proxy.port}, queue={"size": 150})
    dev, ping_s, cut_s, heal_s = raw["device"], raw["mqtt"]["ping_interval_s"], 3, 17
    faults = [(cut_s, in_loop(proxy.set_mode, "blackhole")), (heal_s, in_loop(proxy.set_mode, "pass"))]
    try:
        run, start, after = await on_unix_port(raw, broker, observer, faults, heal_s, 45)
    finally:
        await proxy.close()
    lost_at = int(run.logged("mqtt: connection lost")[0].split("]")[0].strip("[ "))
    noticed_s = (lost_at - start) / 1000 - cut_s
    fig = judge(readings(observer, dev))
    report("unix half-open %d s" % (heal_s - cut_s), fig, noticed_s=round(noticed_s, 1))
    assert_promises(fig, "unix half-open")
    assert noticed_s <= 5 * ping_s + 1.5  # four silent ping intervals, checked once per interval
    live = [p for _, p in statuses(observer, dev)]
    assert live[:3] == ["online", "offline", "online"] and after == [("online", True)]


@needs_real_mqtt_as
async def test_real_mqtt_as_slow_pubacks_neither_repeat_readings_nor_reconnect(broker, observer):
    """A broker whose PUBACKs come later than mqtt.response_time_s, on a live
    link. Sending a reading again with DUP there draws a second PUBACK, for an id
    the first already settled: the real mqtt_as raises "Invalid pid in PUBACK
    packet" on it and drops the connection. TCP delivers on a live connection;
    a dead one is mqtt_as's keepalive's to notice (the half-open test)."""
    proxy = FaultProxy(broker.port)
    await proxy.start()
    # Round trip 2 s against response_time_s 1 s; the 2 s silence when the delay
    # begins stays under the keepalive's four silent ping intervals (8 s).
    raw = sim_config(broker, device="unix-slowack", queue={"size": 150},
                     mqtt={"port": proxy.port, "response_time_s": 1})
    slow_s, fast_s = 3, 11
    faults = [(slow_s, in_loop(proxy.set_mode, "delay", 1.0)), (fast_s, in_loop(proxy.set_mode, "pass"))]
    try:
        run, _, after = await on_unix_port(raw, broker, observer, faults, fast_s, 40)
    finally:
        await proxy.close()
    fig = judge(readings(observer, "unix-slowack"))
    report("unix slow PUBACKs", fig, accepted=proxy.accepted)
    assert_promises(fig, "unix slow PUBACKs")
    assert not run.logged("Invalid pid"), run.output()
    assert proxy.accepted == 1 and len(run.logged("mqtt: connected")) == 1, run.output()
    assert fig["duplicates"] == 0, fig
    assert after == [("online", True)]


@needs_real_mqtt_as
async def test_real_mqtt_as_recovers_from_its_empty_response_assertion():
    """The pinned mqtt_as asserts on the empty read of a connection the broker
    closed (upstream #172, fixed after the pin): the message task dies without
    reconnecting. The node recovers all the same (the next ping or publish fails
    on the dead socket) and loses nothing."""
    own = await asyncio.to_thread(Mosquitto().start)
    sub = await asyncio.to_thread(Subscriber, own)
    raw = sim_config(own, device="unix-restart", queue={"size": 150})
    dev = raw["device"]

    def caught_up(run):
        start = [int(m.group(1)) for m in map(_STARTING.match, run.lines) if m]
        return bool(start) and any(r["uptime_ms"] >= start[0] + 9000 for r in readings(sub, dev))

    try:
        run = await asyncio.to_thread(unixport.run, raw, faults=[(3, own.stop), (5, own.start)], broker=own,
                                      libs="real", heapsize="256K", heap_every_ms=0, seconds=9, max_seconds=45,
                                      until=caught_up)
        arrived, live = readings(sub, dev), [p for _, p in statuses(sub, dev)]
        told = [json.loads(m[2]) for m in sub.on("fireant/%s/stats" % dev)]
    finally:
        sub.close()
        await asyncio.to_thread(own.__exit__)
    fig = judge(arrived)
    report("unix broker restart", fig)
    # mqtt_as's reconnect cycle (wifi_coro(False), its Wi-Fi check, connect_coro) with Wi-Fi up
    # all along is a broker reconnect, not a Wi-Fi drop: the counts say so, to the node and outside.
    final = json.loads(run.logged("app: stopped: ")[-1].split("app: stopped: ", 1)[1])
    assert final["wifi_drops"] == 0 and final["broker_connects"] == 2, final
    assert told[-1]["wifi_drops"] == 0 and told[-1]["broker_connects"] == 2, told[-1]
    assert run.logged("AssertionError: Empty response"), run.output()  # upstream's path, taken
    assert run.returncode == 0 and run.logged("app: stopped")
    assert fig["lost"] == [] and fig["in_order"] and fig["received"] >= 40
    assert len(run.logged("mqtt: connected")) == 2
    assert live[-2:] == ["online", "offline"]  # said again after the restart; the goodbye at Ctrl-C


async def test_the_stand_in_reproduces_the_empty_response_assertion():
    """The in-memory stand-in on the unix port: a broker gone is a connection closed
    by it, and the message task dies as upstream's does; the node recovers."""
    run = await asyncio.to_thread(unixport.run, sim_config(None, device="standin-restart"), libs="standin",
                                  faults=[(2, {"broker": False}), (3, {"broker": True})], heapsize="256K",
                                  heap_every_ms=0, seconds=13)  # mqtt_as re-joins after ~7 s: its 5 s Wi-Fi check
    assert run.logged("AssertionError: Empty response"), run.output()
    seqs = [r["seq"] for r in run.readings()]
    assert len(run.logged("mqtt: connected")) == 2 and seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 45


@pytest.mark.parametrize("libs", ["standin", "real"])
async def test_a_refusal_is_explained_on_micropython(libs, broker):
    """MicroPython prints mqtt_as's OSError(-1, "CONNACK reason code 0x5") as
    "(-1, 'CONNACK reason code 0x5')": the reason must still be put in words.
    Mosquitto refuses a wrong password with 5 under MQTT 3.1.1."""
    if libs == "real" and not paths.lib_dir():
        pytest.skip("the real mqtt_as is neither in lib/ nor in the cache (./fireant upstream --from DIR)")
    raw = sim_config(broker if libs == "real" else None, device="unix-refused", mqtt={"password": "not-the-one"})
    faults = [] if libs == "real" else [(0, {"mqtt_password": "sensor-pass"})]
    run = await asyncio.to_thread(unixport.run, raw, faults=faults, libs=libs, broker=broker if libs == "real" else None,
                                  heapsize="256K", heap_every_ms=0, seconds=4)
    refused = run.logged("mqtt: cannot connect to 127.0.0.1: ")
    assert len(refused) >= 2, run.output()
    assert all("not authorised: wrong mqtt.user or mqtt.password" in line and "(CONNACK reason code 0x5)" in line
               for line in refused), refused
