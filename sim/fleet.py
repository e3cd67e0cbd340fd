"""A fleet (host only): N copies of the real firmware, each a MicroPython unix-port
process in its own heap (the unix-port tier's budget) with the real mqtt_as from
lib/, its own device id, config.json and sim-board control file, all publishing to
one broker (sim/cluster.py's HAProxy port).

    with Fleet(cluster.port, 20) as fleet:   # started; each logged "starting"
        fleet.router_reboot(3)                 # every node's Wi-Fi down 3 s at once
    per_node(observer, fleet.devices)          # judge() per device, plus recovery

One compiled tree (unixport.prepare: the build deploy.py uploads) is shared by
every node through symlinks, so each node's MICROPYPATH is the relative one a
single unix-port run has: the heap each node spends is the tier's own figure.
Each node's output goes to its own log file (no reader thread per node).
"""
import json
import os
import random
import shutil
import subprocess
import tempfile
import time

from sim.mosquitto import judge
from sim import paths, unixport

READINGS = "sensors/environmental"
HEAPSIZE = unixport.HEAP_BUDGET[("mpy", "real")]


def fleet_config(port, device, interval_s, **sections):
    """One node's settings: sim_config's with the fleet's port and device."""
    from sim.firmware import sim_config

    raw = sim_config(None, device=device, sensor={"interval_s": interval_s}, **sections)
    raw["mqtt"]["port"] = port
    if "reconnect_spread_s" not in sections.get("mqtt", {}):
        del raw["mqtt"]["reconnect_spread_s"]  # the firmware's default: what a real fleet runs
    return raw


class Fleet:
    def __init__(self, port, n, interval_s=1.0, prefix="fleet", heapsize=HEAPSIZE, workdir=None, **sections):
        if not paths.lib_dir():
            raise RuntimeError("a fleet runs the real mqtt_as: ./fireant deploy deps --host (lib/)")
        self.port, self.n, self.interval_s, self.heapsize = port, n, interval_s, heapsize
        self.devices = ["%s-%03d" % (prefix, i + 1) for i in range(n)]
        self.dir = workdir or tempfile.mkdtemp(prefix="fireant-fleet-")
        self.sections = sections
        self.procs, self.controls = {}, {}
        self.usage = {}  # device -> (cpu seconds, rss KB), taken just before stop
        self.wall_s = None
        self._t0 = None

    def _node_dir(self, device):
        return os.path.join(self.dir, device)

    def start(self, timeout=None):
        """Start every node at once (a site powering up); returns when all have
        logged "starting" (raises naming the first that did not, with its log)."""
        shared = os.path.join(self.dir, "shared")
        path = unixport.prepare(shared, "mpy", "real")
        exe = unixport.micropython_exe()
        for device in self.devices:
            d = self._node_dir(device)
            os.makedirs(d)
            for name in ("board", "fw"):
                os.symlink(os.path.join(shared, name), os.path.join(d, name))
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(fleet_config(self.port, device, self.interval_s, **self.sections), f)
            self.controls[device] = unixport._Control(os.path.join(d, "control.json"))
        env = dict(os.environ, MICROPYPATH=path, FIREANT_HEAP_MS="0")
        for k in ("FIREANT_ROMFS", "FIREANT_TLS_FIRST", "FIREANT_SIM_BROKER_LOG"):
            env.pop(k, None)
        self._t0 = time.monotonic()
        for device in self.devices:
            d = self._node_dir(device)
            self.procs[device] = subprocess.Popen(
                [exe, "-X", "heapsize=%s" % self.heapsize, "-m", "unixrun"], cwd=d,
                env=dict(env, FIREANT_SIM_CONTROL=self.controls[device].path),
                stdout=open(os.path.join(d, "log"), "wb"), stderr=subprocess.STDOUT)
        end = time.monotonic() + (timeout or 30 + self.n * 0.3)
        waiting = list(self.devices)
        while waiting:
            waiting = [d for d in waiting if " starting: " not in self.log(d)]
            dead = [d for d in waiting if self.procs[d].poll() is not None]
            if dead or (waiting and time.monotonic() > end):
                bad = (dead or waiting)[0]
                self.stop()
                raise RuntimeError("fleet node %s did not start:\n%s" % (bad, self.log(bad)[-2000:]))
            time.sleep(0.2)
        return self

    def log(self, device):
        try:
            with open(os.path.join(self._node_dir(device), "log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def alive(self):
        return [d for d, p in self.procs.items() if p.poll() is None]

    def set_all(self, **changes):
        """The same sim-board change on every node at once (e.g. link=False)."""
        for c in self.controls.values():
            c.write(changes)

    def router_reboot(self, down_s):
        """Every node's access point gone for down_s, then back for all at once."""
        self.set_all(link=False)
        time.sleep(down_s)
        self.set_all(link=True)

    def _sample_usage(self):
        tck = os.sysconf("SC_CLK_TCK")
        for device, p in self.procs.items():
            try:
                with open("/proc/%d/stat" % p.pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open("/proc/%d/status" % p.pid) as f:
                    rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            except (OSError, StopIteration):
                continue
            self.usage[device] = ((int(fields[11]) + int(fields[12])) / tck, rss)

    def figures(self):
        """Host cost per simulated node: mean CPU (% of one core) and RSS (MB)."""
        if not self.usage or not self.wall_s:
            return {}
        cpu = [u[0] for u in self.usage.values()]
        rss = [u[1] for u in self.usage.values()]
        return {"cpu_pct_per_node": round(100 * sum(cpu) / len(cpu) / self.wall_s, 2),
                "rss_mb_per_node": round(sum(rss) / len(rss) / 1024, 1)}

    def stop(self):
        """Ctrl-C to every node (its clean stop), then wait; usage taken first."""
        if self._t0 is not None and self.wall_s is None:
            self.wall_s = time.monotonic() - self._t0
            self._sample_usage()
        unixport.ctrl_c([(p, self.controls[d]) for d, p in self.procs.items()])
        end = time.monotonic() + unixport.STOP_TIMEOUT_S + 0.2 * self.n  # all at once, on a loaded host
        for p in self.procs.values():
            try:
                p.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stopped_cleanly(self):
        return [d for d in self.devices if "app: stopped:" in self.log(d)]

    def counters(self, device):
        """The node's own counters from its clean stop's log line (node.stats()),
        or None if it did not stop cleanly."""
        for line in self.log(device).splitlines():
            if "] app: stopped: {" in line:
                return json.loads(line.split("stopped: ", 1)[1])
        return None

    def __enter__(self):
        return self.start()

    def __exit__(self, *_):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def per_node(observer, devices, topic=READINGS, fleet=None):
    """The subscriber-side report, per device: judge()'s figures (received, lost,
    duplicates, in_order, max_gap_ms) plus recovery_s, the longest the subscriber
    went without a reading from that node, and connects, how many times the node
    said `online` (its first connect plus each reconnect). With the (stopped)
    fleet, each node's own counters too: seq and published (PUBACKed) at its stop,
    queued = seq - published - dropped (taken, not PUBACKed when it stopped: still
    in the backlog, or in_flight = delivered but its PUBACK not back), and
    unaccounted = published - received: readings the broker acknowledged that the
    subscriber never saw (0 is the promise)."""
    by_dev = {d: [] for d in devices}
    for r in observer.readings(topic):
        if r.get("device") in by_dev:
            by_dev[r["device"]].append(r)
    onlines = {d: 0 for d in devices}
    for _, t, payload, _ in list(observer.messages):
        parts = t.split("/")
        if len(parts) == 3 and parts[2] == "status" and payload == "online" and parts[1] in onlines:
            onlines[parts[1]] += 1
    out = {}
    for d, arrived in by_dev.items():
        fig = judge(arrived)
        at = [r["_at"] for r in arrived]
        fig["recovery_s"] = round(max((b - a for a, b in zip(at, at[1:])), default=0), 2)
        fig["connects"] = onlines[d]
        own = fleet.counters(d) if fleet is not None else None
        if own is not None:
            fig.update(seq=own["seq"], published=own["published"], dropped=own["dropped"],
                       queued=own["seq"] - own["published"] - own["dropped"],
                       unaccounted=max(0, own["published"] - fig["received"]),
                       in_flight=max(0, fig["received"] - own["published"]), broker_connects=own["broker_connects"])
        out[d] = fig
    return out


def histogram(times, start, end, bin_s=1.0):
    """Counts of times in bins of bin_s from start to end (inclusive of the last)."""
    nbins = max(1, int((end - start) // bin_s) + 1)
    counts = [0] * nbins
    for t in times:
        if start <= t <= end:
            counts[min(nbins - 1, int((t - start) // bin_s))] += 1
    return counts


PEAK_OVER_MEAN = 4  # the cluster restart's bound on reconnect_spread()'s peak_over_mean (docs/fleet.md)
SPREAD_S = 8.0  # mqtt.reconnect_spread_s's default (app/config.py)


def spread_model(n, first_s, spread_s=SPREAD_S, runs=4000, seed=0):
    """What reconnect_spread() gives when the firmware spreads as designed: n
    nodes, each back U(0, 1) s (mqtt_as's 1 s link poll) + U(0, spread_s)
    (app/client.py) after the others' common dead time, shifted so that the
    first is back first_s after the fault, as measured; over `runs` simulated
    faults. Returns the bounds a fault is held to (docs/fleet.md), each a false
    alarm in one run of 100: peak_over_mean's 99th percentile (it depends on n
    and on the dead time, which the mean is taken over: 34 nodes first back 9 s
    after a node kill, 5.7; 100 nodes 5 s after a router reboot, 3.2), and
    span_s's 1st percentile (the 5th to 95th percentile reconnect: 5.8 s and
    6.5 s there). A storm fails both; a spread too short, the second."""
    rnd = random.Random(seed)
    pom, span = [], []
    for _ in range(runs):
        times = [rnd.random() + rnd.random() * spread_s for _ in range(n)]
        shift = first_s - min(times)
        r = reconnect_spread([(t + shift, "n") for t in times], 0.0)
        pom.append(r["peak_over_mean"])
        span.append(r["span_s"])
    pom.sort()
    span.sort()
    return {"peak_over_mean_median": pom[runs // 2], "peak_over_mean_max": pom[runs * 99 // 100],
            "span_s_median": span[runs // 2], "span_s_min": span[runs // 100]}


def reconnect_spread(connects, since, bin_s=1.0):
    """The reconnects after a fault at host time `since` (time.time()): histogram
    from the fault to the last reconnect, its peak, and peak/mean, the figure the
    fleet's bound is on (docs/fleet.md): the mean is over the bins from the fault
    to the 95th percentile reconnect. A storm (everyone in one second) gives the
    window's length in bins; an even spread gives 1. Not to the last one: a few
    nodes whose first try failed come back a cycle later, which is the opposite
    of a storm, yet would stretch the window and lower the mean (one run at N =
    100 gave 4.4 so, 2.5 to the 95th percentile). peak_over_mean_to_last: that one."""
    times = sorted(t for t, server in connects if t >= since and server != "<NOSRV>")
    if not times:
        return {"count": 0, "histogram": [], "peak": 0, "mean": 0.0, "peak_over_mean": None}
    counts = histogram(times, since, times[-1], bin_s)
    k = -(-len(times) * 95 // 100)  # the 95th percentile's rank
    k5 = -(-len(times) * 5 // 100)  # the 5th's
    mean = k / (int((times[k - 1] - since) // bin_s) + 1)
    avg = sum(times) / len(times)
    std = (sum((t - avg) ** 2 for t in times) / len(times)) ** 0.5
    return {"count": len(times), "histogram": counts, "peak": max(counts), "mean": round(mean, 2),
            "std_s": round(std, 2), "first_s": round(times[0] - since, 1), "p95_s": round(times[k - 1] - since, 1),
            "span_s": round(times[k - 1] - times[k5 - 1], 2),  # 5th to 95th percentile: the dead time left out
            "peak_over_mean": round(max(counts) / mean, 2),
            "peak_over_mean_to_last": round(max(counts) * len(counts) / len(times), 2), "refused": sum(
                1 for t, s in connects if t >= since and s == "<NOSRV>")}


def print_histogram(name, spread, bin_s=1.0, out=None):
    import sys

    out = out or sys.stdout
    print("%s: %d connects, peak %d/%.0fs, mean %.2f, peak/mean %s, spread (std) %s s" % (
        name, spread["count"], spread["peak"], bin_s, spread["mean"], spread["peak_over_mean"],
        spread.get("std_s")), file=out)
    for i, c in enumerate(spread["histogram"]):
        print("  %5.1fs %4d %s" % (i * bin_s, c, "#" * c), file=out)
