"""Issue 13: a fleet of real firmware processes on a clustered broker.

A three-node RabbitMQ cluster (MQTT plugin) behind HAProxy (sim/cluster.py), a
fleet of FLEET_N nodes, each the firmware with the real mqtt_as on the MicroPython
unix port in its own heap (sim/fleet.py), judged per node from a quorum-queue
observer that survives a broker node's death. One run (module fixture) holds a
broker-node kill and a router reboot; the tests read its figures. The large N,
the whole-cluster restart and the host cost per node are the benchmark's
(`./fireant bench --only fleet`, docs/fleet.md).
"""
import random
import sys
import threading
import time

import pytest

from sim import cluster as cl
from sim import paths
from sim.fleet import PEAK_OVER_MEAN, Fleet, per_node, print_histogram, reconnect_spread, spread_model
from sim.mosquitto import PASSWORD, USER

FLEET_N = 12
INTERVAL_S = 0.5
KILLED = 2  # not the seed node: the one the others joined
# Reconnects after a fault, 1 s bins from the fault (sim.fleet.reconnect_spread).
# A storm (every node in the same second after mqtt_as's ~6 s dead time) gives
# peak/mean ~7 and a spread (standard deviation) of ~0.3 s. mqtt.reconnect_spread_s
# (8 s by default, app/client.py) spreads them evenly over 8 s: a standard deviation
# of ~2.4 s; at N = 100 peak/mean ~2.4 (p99 3.2 by simulation: the bench holds each
# fault to such a model, sim.fleet.spread_model). At N = 12 peak/mean is too noisy to assert (p99 7);
# the spread is not: below 0.8 s in 3 of 100 000 simulated runs.
MIN_SPREAD_S = 0.8



def show(*args):
    print(*args, file=sys.__stdout__)


@pytest.fixture(scope="module")
def cluster():
    if cl.missing():
        pytest.skip("not installed: %s; `./fireant cluster --install` installs them" % " ".join(cl.missing()))
    if paths.lib_dir() is None:
        pytest.skip("the real mqtt_as is not in lib/: ./fireant deploy deps --host")
    with cl.Cluster() as c:
        show("cluster: 3 RabbitMQ nodes + HAProxy up in %.1f s" % c.startup_s)
        yield c


@pytest.fixture(scope="module")
def run(cluster):
    """The fleet through a broker-node kill, then a router reboot."""
    obs = cl.QueueObserver(cluster)
    out = {}
    try:
        # A backlog that holds the longest outage here (~12 s) twice over.
        with Fleet(cluster.port, FLEET_N, interval_s=INTERVAL_S, queue={"size": 64}) as fleet:
            time.sleep(4)
            out["before_kill"] = [s for _, s in cluster.connects()]
            out["kill_at"] = time.time()
            cluster.kill(KILLED)
            time.sleep(22)  # mqtt_as: ~7-10 s to reconnect, the spread's 0-8 s, then the drain
            out["reboot_at"] = time.time()
            fleet.router_reboot(3)
            out["link_back"] = time.time()
            time.sleep(20)  # ~6 s, the spread's 0-8 s, the drain
            fleet.stop()
            time.sleep(1.5)  # the last PUBACKed readings reach the observer
            out["report"] = per_node(obs, fleet.devices, fleet=fleet)
            out["clean"] = fleet.stopped_cleanly()
        out["connects"] = cluster.connects()
        out["observer_reconnects"] = obs.reconnects
        out["redelivered"] = obs.redelivered
    finally:
        obs.close()
    return out


def test_reconnect_spread_tells_a_storm_from_a_spread():
    storm = [(100.0 + 6.2 + i * 0.01, "n1") for i in range(12)]
    spread = [(100.0 + 6.0 + i * 0.5, "n%d" % (1 + i % 3)) for i in range(12)] + [(101.0, "<NOSRV>")]
    s, p = reconnect_spread(storm, 100.0), reconnect_spread(spread, 100.0)
    assert s["histogram"] == [0] * 6 + [12] and s["peak_over_mean"] == 7.0 and s["std_s"] < MIN_SPREAD_S
    assert p["count"] == 12 and p["refused"] == 1 and p["peak"] == 2 and p["peak_over_mean"] == 2.0  # 6 s dead time, then 2 a second
    assert p["peak_over_mean"] <= PEAK_OVER_MEAN < s["peak_over_mean"]
    assert p["std_s"] > 1.5
    # Three stragglers a cycle later (their first try failed) are not a storm:
    # the mean is taken to the 95th percentile, not stretched to them.
    bulk = [(100.0 + 5.0 + i * 0.1, "n1") for i in range(100)]  # 10 s from the fault, 10 a second
    late = reconnect_spread(bulk + [(100.0 + 21.0 + i, "n2") for i in range(3)], 100.0)
    assert late["count"] == 103 and late["p95_s"] == 14.7 and late["peak"] == 10
    assert late["peak_over_mean"] == 1.53 and late["peak_over_mean_to_last"] == 2.33


def test_a_faults_bounds_are_what_the_spread_gives_and_a_storm_or_a_short_spread_is_outside():
    """The bench holds a fault's reconnects to the firmware's spread modelled for
    its N and its first reconnect (sim.fleet.spread_model): peak/mean at most the
    model's p99, the 5th-95th percentile span at least its p1 (the dead time,
    which peak/mean's mean is taken over, left out)."""
    rnd = random.Random(1)
    for n, first_s in ((34, 9.0), (100, 5.0), (34, 2.0), (100, 1.0)):
        m = spread_model(n, first_s)
        assert 1.5 < m["peak_over_mean_median"] < m["peak_over_mean_max"] < 7 and 5 < m["span_s_min"] < 8, m
        storm = reconnect_spread([(100.0 + first_s + rnd.random() * 0.5, "n1") for i in range(n)], 100.0)
        assert storm["span_s"] < m["span_s_min"] / 5, (n, first_s, storm)
        for spread_s in (0.0, 1.0, 2.0, 4.0):  # app/client.py's spread broken, or too short
            short = [rnd.random() + rnd.random() * spread_s for _ in range(n)]
            r = reconnect_spread([(100.0 + first_s + t - min(short), "n1") for t in short], 100.0)
            assert r["span_s"] < m["span_s_min"], (n, first_s, spread_s, r["span_s"], m)
        ok = [rnd.random() + rnd.random() * 8.0 for _ in range(n)]
        r = reconnect_spread([(100.0 + first_s + t - min(ok), "n1") for t in ok], 100.0)
        assert r["span_s"] >= m["span_s_min"] * 0.8 and r["peak_over_mean"] <= m["peak_over_mean_max"] * 1.3, (r, m)


def test_cluster_has_three_members_and_refuses_bad_credentials(cluster):
    import paho.mqtt.client as paho

    assert cluster.members() == sorted(n.name for n in cluster.nodes)
    codes = {}
    for name, password in (("good", PASSWORD), ("bad", "wrong")):
        done = threading.Event()
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="fireant-auth-%s" % name)
        c.username_pw_set(USER, password)
        c.on_connect = lambda _c, _u, _f, rc, _p, name=name: (codes.__setitem__(name, rc.is_failure), done.set())
        c.connect("127.0.0.1", cluster.port)
        c.loop_start()
        done.wait(10)
        c.loop_stop()
        c.disconnect()
    assert codes == {"good": False, "bad": True}


def test_retained_messages_stay_on_the_node_they_were_published_to(cluster):
    """What docs/fleet.md says about retained status/stats, observed: RabbitMQ
    3.10's retained store is per node, not replicated."""
    import paho.mqtt.client as paho

    def client(port, cid):
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=cid)
        c.username_pw_set(USER, PASSWORD)
        c.connect("127.0.0.1", port)
        c.loop_start()
        return c

    n1, n3 = cluster.nodes[0], cluster.nodes[2]
    pub = client(n1.mqtt, "fireant-retain-pub")
    pub.publish("fireant/retain-probe/status", b"online", qos=1, retain=True).wait_for_publish(10)
    pub.loop_stop()
    pub.disconnect()
    seen = {}
    for node in (n1, n3):
        got = []
        c = client(node.mqtt, "fireant-retain-sub-%d" % node.index)
        c.on_message = lambda _c, _u, m, got=got: got.append((m.payload, m.retain))
        c.subscribe("fireant/retain-probe/status", qos=1)
        time.sleep(1.5)
        c.loop_stop()
        c.disconnect()
        seen[node.index] = got
    assert seen == {1: [(b"online", True)], 3: []}


def test_fleet_loses_nothing_through_a_broker_node_kill_and_a_router_reboot(run):
    report = run["report"]
    for device, fig in report.items():
        show(device, " ".join("%s=%s" % (k, len(v) if k == "lost" else v) for k, v in fig.items()))
    show("observer: %d reconnects, %d redelivered" % (run["observer_reconnects"], run["redelivered"]))
    assert len(run["clean"]) == FLEET_N  # every node stopped cleanly, its counters logged
    on_killed = [d for d, f in report.items() if f["broker_connects"] == 3]
    assert "n%d" % KILLED in run["before_kill"]  # nodes were on the node that died
    assert on_killed, "no node reconnected after the kill"
    for device, fig in report.items():
        assert fig["lost"] == [], device
        assert fig["in_order"], device  # of those not first seen redelivered to the observer:
        assert fig["order_excused"] <= run["redelivered"], (device, fig)  # it cannot excuse more
        assert fig["dropped"] == 0 and fig["unaccounted"] == 0, (device, fig)
        assert fig["queued"] <= 3, (device, fig)  # the backlog drained before the stop
        assert fig["received"] >= 60, (device, fig)  # ~40 s at 2 readings/s
        # Each (re)connect said online: at least boot and reboot (3 with the kill).
        assert fig["connects"] == fig["broker_connects"] >= 2, (device, fig)
        # Sensing never stalled (a stall lasts seconds); one interval's slack for a loaded host.
        assert fig["max_gap_ms"] <= 2 * INTERVAL_S * 1000, (device, fig)


def test_broker_node_kill_moves_its_nodes_to_live_nodes(run):
    after = [(t, s) for t, s in run["connects"] if run["kill_at"] <= t < run["reboot_at"]]
    spread = reconnect_spread(run["connects"], run["kill_at"])
    print_histogram("reconnects after killing n%d" % KILLED, reconnect_spread(after, run["kill_at"]),
                    out=sys.__stdout__)
    assert after and all(s in ("n1", "n3") for _, s in after), after
    assert spread["count"] >= len(after)


def test_reconnects_after_a_router_reboot_spread_out(run):
    after = [(t, s) for t, s in run["connects"] if t >= run["link_back"]]
    spread = reconnect_spread(after, run["link_back"])
    print_histogram("reconnects after the router reboot", spread, out=sys.__stdout__)
    assert spread["count"] >= FLEET_N
    assert spread["std_s"] >= MIN_SPREAD_S, spread


def test_a_refused_subscription_does_not_stop_the_readings(cluster):
    """RabbitMQ 3.10 closes the connection at a SUBSCRIBE it cannot serve (the
    subscription queue's node is dead, docs/fleet.md; here: no read permission on
    the command topic). mqtt_as alone would subscribe again at once on every new
    connection, so no reading would get out; app/inbox.py waits 15-30 s after
    such a failure, and the readings drain on the connection in between."""
    user, password = "fireant-norecv", "norecv-pass"
    for args in (("add_user", user, password), ("set_permissions", "-p", "/", user, ".*", ".*", ".*"),
                 ("set_topic_permissions", "-p", "/", user, "amq.topic", ".*", "^$")):  # writes all, reads nothing
        out = cluster.ctl(*args)
        assert out.returncode == 0, out.stdout + out.stderr
    try:
        with Fleet(cluster.port, 1, interval_s=INTERVAL_S, prefix="refused", queue={"size": 64},
                   mqtt={"user": user, "password": password, "reconnect_spread_s": 0}) as fleet:
            time.sleep(25)
            fleet.stop()
            log, own = fleet.log(fleet.devices[0]), fleet.counters(fleet.devices[0])
    finally:
        cluster.ctl("delete_user", user)
    mqtt = "\n".join(line for line in log.splitlines() if "] mqtt: " in line)
    show("refused subscription:\n%s\n%s" % (mqtt, own))
    assert "subscribing to fireant/refused-001/cmd failed (1 in a row)" in log, log
    assert own is not None, log
    # Each refusal costs one connection (seconds to notice, ~7 s to reconnect: ~20
    # readings wait); the next try comes 15-30 s after it, perhaps before the stop.
    # Without the wait every connection was lost ~2 s after it was made, at its
    # SUBSCRIBE, and only what got out in those seconds was published.
    assert own["dropped"] == 0 and own["seq"] >= 40, own
    assert own["seq"] - own["published"] <= 25, (mqtt, own)
    assert own["broker_connects"] <= 3, (mqtt, own)
    assert longest_connection_ms(log) >= 7000, mqtt


def longest_connection_ms(log):
    """The longest a connection lasted, in the node's ticks_ms, from its log (one
    still up at Ctrl-C lasted until then)."""
    longest, since = 0, None
    for line in log.splitlines():
        if not line.startswith("[") or "]" not in line:
            continue
        t = int(line[1:line.index("]")])
        if "] mqtt: connected" in line:
            since = t
        elif since is not None and ("] mqtt: connection lost" in line or "] app: Ctrl-C" in line):
            longest, since = max(longest, t - since), None
    return longest
