"""The benchmark's fleet section (issue 13): N firmware processes on the unix port
against the three-node RabbitMQ cluster behind HAProxy, through a broker-node kill,
the killed node's return, a router reboot and a whole-cluster restart.

    python -m bench --only fleet --fleet-n 100

Prints broker-side throughput, per-node loss through the kill (and everything
after it), the reconnect histogram of each fault with its peak/mean, and the
host's CPU and RSS per simulated node, and what that makes the most nodes this
machine holds. docs/fleet.md explains the figures.
"""
import os
import time

from sim import cluster as cl
from sim.fleet import PEAK_OVER_MEAN, Fleet, per_node, reconnect_spread, spread_model

TITLE = "fleet on a 3-node RabbitMQ cluster behind HAProxy"
DEFAULT_N = 100
INTERVAL_S = 2.0  # a DHT22's fastest: the backlog (128) then holds a ~4 min outage
# What the fleet may take of the machine: the rest is the brokers', HAProxy's,
# the observer's and the OS's (measured beside it: broker_cpu_pct).
FLEET_SHARE = 0.7


def _beam_cpu(cluster):
    """CPU seconds of every process of the brokers (each node's process group)."""
    tck = os.sysconf("SC_CLK_TCK")
    groups = {n.proc.pid for n in cluster.nodes if n.proc is not None}
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in groups:
            total += (int(fields[11]) + int(fields[12])) / tck
    return total


def measure(n=DEFAULT_N, short=False, progress=print):
    """One fleet run; returns a dict of figures (and the histograms)."""
    settle = 16 if short else 25  # mqtt_as's ~6-10 s, then mqtt.reconnect_spread_s's 0-8 s
    out = {"title": TITLE, "n": n, "interval_s": INTERVAL_S}
    with cl.Cluster() as cluster:
        out["cluster_startup_s"] = round(cluster.startup_s, 1)
        progress("fleet: cluster up in %.1f s; starting %d nodes" % (cluster.startup_s, n))
        obs = cl.QueueObserver(cluster)
        try:
            with Fleet(cluster.port, n, interval_s=INTERVAL_S, queue={"size": 128}) as fleet:
                out["fleet_startup_s"] = round(time.monotonic() - fleet._t0, 1)
                time.sleep(settle)
                # Healthy throughput, as the broker routes it to the observer's queue.
                c0, b0, t0 = len(obs.messages), _beam_cpu(cluster), time.monotonic()
                time.sleep(10)
                dt = time.monotonic() - t0
                out["throughput_msgs_per_s"] = round((len(obs.messages) - c0) / dt, 1)
                out["broker_cpu_pct"] = round(100 * (_beam_cpu(cluster) - b0) / dt, 1)
                out["expected_msgs_per_s"] = round(n / INTERVAL_S, 1)
                faults = {}
                progress("fleet: killing broker node n2")
                faults["node_kill"] = time.time()
                cluster.kill(2)
                time.sleep(settle)
                cluster.restart(2)  # ~10-15 s; the fleet runs on
                faults["router_reboot"] = time.time()
                progress("fleet: router reboot (every node's Wi-Fi down 3 s)")
                fleet.router_reboot(3)
                faults["router_back"] = time.time()
                time.sleep(settle)
                progress("fleet: whole cluster restart")
                faults["cluster_restart"] = time.time()
                cluster.restart_all()
                faults["cluster_back"] = time.time()
                time.sleep(settle + n * 0.05)
                fleet.stop()
                time.sleep(2)
                report = per_node(obs, fleet.devices, fleet=fleet)
                out.update(fleet.figures())
                clean = fleet.stopped_cleanly()
                out["stopped_cleanly"] = len(clean)
                unclean = [d for d in fleet.devices if d not in clean]
                if unclean:
                    out["unclean_log_tail"] = "%s: %s" % (unclean[0], fleet.log(unclean[0])[-600:])
        finally:
            obs.close()
        connects = cluster.connects()
    spans = (("node_kill", faults["node_kill"], faults["router_reboot"]),
             ("router_reboot", faults["router_back"], faults["cluster_restart"]),
             ("cluster_restart", faults["cluster_restart"], float("inf")))
    out["reconnects"] = {name: reconnect_spread([(t, s) for t, s in connects if t < end], since)
                         for name, since, end in spans}
    for name, s in out["reconnects"].items():  # each held to its bound (docs/fleet.md)
        if not s["count"]:
            continue
        if name == "cluster_restart":  # retries while the brokers are down: no one instant to spread from
            s["bound"] = PEAK_OVER_MEAN
            s["within_bound"] = s["peak_over_mean"] <= PEAK_OVER_MEAN
        else:  # as the firmware's spread would give, for this many nodes after this dead time
            m = s["model"] = spread_model(s["count"], s["first_s"])
            s["bound"] = m["peak_over_mean_max"]
            s["within_bound"] = s["peak_over_mean"] <= m["peak_over_mean_max"] and s["span_s"] >= m["span_s_min"]
    figs = list(report.values())
    out["nodes_reconnected_after_kill"] = sum(1 for f in figs if f.get("broker_connects", 0) >= 4)
    out["lost_total"] = sum(len(f["lost"]) for f in figs)
    out["lost_max_per_node"] = max(len(f["lost"]) for f in figs)
    out["unaccounted_total"] = sum(f.get("unaccounted", 0) for f in figs)
    out["in_flight_at_stop"] = sum(f.get("in_flight", 0) for f in figs)
    out["duplicates_total"] = sum(f["duplicates"] for f in figs)
    out["out_of_order_nodes"] = sum(1 for f in figs if not f["in_order"])
    out["order_excused_total"] = sum(f["order_excused"] for f in figs)  # the observer's redeliveries
    out["max_gap_ms"] = max(f["max_gap_ms"] or 0 for f in figs)
    out["recovery_s_max"] = max(f["recovery_s"] for f in figs)
    out["received_total"] = sum(f["received"] for f in figs)
    out["observer_redelivered"] = obs.redelivered
    cpu = out.get("cpu_pct_per_node")
    if cpu:
        cores = os.cpu_count() or 1
        room = cores * 100 * FLEET_SHARE - out["broker_cpu_pct"]
        out["holds_n"] = int(room / cpu)
    return out


def section(e):
    if "error" in e:
        return "fleet: not measured: %s" % e["error"]
    lines = ["%s: N=%d nodes, one reading per %.0f s each (firmware on the unix port, real mqtt_as, %s heap)" % (
        e["title"], e["n"], e["interval_s"], "86K")]
    lines.append("  startup: cluster %.1f s, fleet %.1f s; %d/%d nodes stopped cleanly" % (
        e["cluster_startup_s"], e["fleet_startup_s"], e.get("stopped_cleanly", 0), e["n"]))
    lines.append("  broker-side throughput %.1f msg/s (readings alone: %.1f/s expected), brokers' CPU %.1f%% of a core" % (
        e["throughput_msgs_per_s"], e["expected_msgs_per_s"], e["broker_cpu_pct"]))
    lines.append("  through a node kill, its return, a router reboot and a cluster restart: %d readings received, "
                 "lost %d (max per node %d), PUBACKed but unseen %d, delivered but not yet PUBACKed at the stop %d, "
                 "duplicates %d, out of order %d node(s) (%d readings first seen redelivered to the observer "
                 "left out of that)" % (
                     e["received_total"], e["lost_total"], e["lost_max_per_node"], e["unaccounted_total"],
                     e["in_flight_at_stop"],
                     e["duplicates_total"], e["out_of_order_nodes"], e.get("order_excused_total", 0)))
    lines.append("  %d node(s) were on the killed broker node and moved; max sampling gap %d ms; "
                 "longest silence of a node at the subscriber %.1f s" % (
                     e["nodes_reconnected_after_kill"], e["max_gap_ms"], e["recovery_s_max"]))
    if e.get("unclean_log_tail"):
        lines.append("  a node that did not stop cleanly: " + e["unclean_log_tail"].replace("\n", " | "))
    for name, s in e["reconnects"].items():
        m = s.get("model")
        bounds = " (at most %s)" % s.get("bound") if m is None else (
            " (at most %s, the designed spread's p99; its median %s), 5th to 95th percentile %s s (at least %s, "
            "its p1; its median %s)" % (m["peak_over_mean_max"], m["peak_over_mean_median"], s["span_s"],
                                        m["span_s_min"], m["span_s_median"]))
        lines.append("  reconnects after %-15s %4d, peak %d/s, mean %.2f/s to the 95th percentile (%s s), peak/mean "
                     "%s%s; %s the bounds; to the last reconnect %s; per second: %s" % (
                         name.replace("_", " ") + ":", s["count"], s["peak"], s["mean"], s.get("p95_s"),
                         s["peak_over_mean"], bounds, "within" if s.get("within_bound") else "OUTSIDE",
                         s.get("peak_over_mean_to_last"), " ".join(str(c) for c in s["histogram"])))
    if e.get("cpu_pct_per_node"):
        lines.append("  host per simulated node: CPU %.2f%% of a core, RSS %.1f MB; this %d-core machine holds "
                     "about %d nodes (%.0f%% of it for the fleet, the brokers' share measured)" % (
                         e["cpu_pct_per_node"], e["rss_mb_per_node"], os.cpu_count() or 1, e["holds_n"],
                         100 * FLEET_SHARE))
    return "\n".join(lines)
