"""fireant on the ESP8266 RAM model (issue 10): its smallest heap beside a bare
mqtt_as client's, and where its heap goes.

The model (sim/upstream.py, docs/esp8266.md) is the MicroPython unix port built
32-bit with the ESP8266's object model, so `-X heapsize=N` allocates what an
ESP8266's GC heap would. Four programs run the same scenario against the
benchmark's Mosquitto (link down 2 s, mqtt_as's reconnection, a sensor fault,
Ctrl-C; 0.2 s interval, queue 64, so a backlog builds and drains):

- the firmware, app/ and the libraries .mpy in a ROMFS image at /rom (what
  deploy.py writes to a board), and frozen into the firmware (manifest.py);
- sim/bareclient.py, the minimal mqtt_as client of mqtt_as's README with the
  same settings, its libraries from /rom, and frozen.

Each is run once at the tier's heap (sim.unixport.ESP8266_HEAP) with the live
heap sampled, then bisected for its smallest heap in 1 KB steps without the
sampling task (as on a board: no periodic gc.collect() but the firmware's own
gc.threshold). A run passes when it stops cleanly with no MemoryError and the
readings taken before Ctrl-C reached the broker. The four bisections run side
by side, each with its own broker (heap need does not depend on timing; a run
is mostly asleep). Then the same four over TLS (mqtt.tls, no mqtt.ca: the
model's axTLS, its buffers on the GC heap as on a board; mqtt_as through
sim/tlsfirst.py, since as app/client.py configures it axTLS never connects),
and the firmware as configured, once per layout at the tier's heap, for how
its TLS connects fail. A probe then imports each module in the model and
records the live bytes each adds (the ROMFS and the frozen model).
"""
import ast
import os
import re
import statistics
import threading

from sim import paths, unixport
from sim.firmware import sim_config
from sim.mosquitto import Mosquitto

INTERVAL_S = 0.2
QUEUE = 64
# Seconds after the program's "starting" line (the bare client's: once connected).
SCRIPT = [(2.0, {"link": False}), (4.0, {"link": True}), (13.0, {"dht": "fail"}), (14.5, {"dht": "ok"})]
STOP_S = 17
HEAP_EVERY_MS = 250
GOAL_RATIO = 1.4  # issue 10: the firmware in at most 1.4x the bare client's heap
# name: (interp, program, lo_k, hi_k): the bisection's starting window, from the
# last measurement (docs/esp8266.md). It moves when the result lands on an edge.
VARIANTS = {
    "firmware_romfs": ("esp8266", "unixrun", 27, 35),
    "firmware_frozen": ("esp8266-frozen", "unixrun", 18, 26),
    "bare_romfs": ("esp8266", "bareclient", 14, 22),
    "bare_frozen": ("esp8266-frozen", "bareclient", 10, 18),
}
# The bare client over TLS (mqtt.tls, no mqtt.ca): the model's axTLS, its buffers
# on the GC heap as on a board, against the broker's TLS listener, mqtt_as given
# sim/tlsfirst.py as its ssl (the handshake finished before mqtt_as writes: with
# do_handshake=False axTLS sends the CONNECT mid-handshake). What TLS itself costs
# on an ESP8266. Not the firmware: config.py refuses mqtt.tls on an ESP8266 (its
# figures, measured before that rule, are in docs/esp8266.md).
TLS_VARIANTS = {
    "bare_romfs_tls": ("esp8266", "bareclient", 22, 30),
    "bare_frozen_tls": ("esp8266-frozen", "bareclient", 18, 26),
}
FLOOR_K, CEIL_K = 8, 48  # never looked for below / above (an ESP8266 has 38)
TITLE = "firmware and a bare mqtt_as client on the ESP8266 RAM model (32-bit, ESP8266 object model)"


def _caught_up(r):
    """Stop once the newest reading at the broker is fresh, or as soon as a run
    has failed for want of memory (a failed bisection step costs no more)."""
    if r.logged("MemoryError"):
        return True
    readings, now = r.readings(), r.node_ticks()
    return bool(readings) and now is not None and readings[-1]["uptime_ms"] >= now - 3 * INTERVAL_S * 1000


def _delivered(r):
    """Every reading from the first to the newest published reached the broker, in
    order (QoS 1 may repeat one), and the newest was taken within a second of
    Ctrl-C: the backlog had drained."""
    readings = r.readings()
    seqs = [x["seq"] for x in readings]
    if not seqs or sorted(set(seqs)) != list(range(1, max(seqs) + 1)) or seqs != sorted(seqs):
        return False
    ctrl_c = r.logged("%s: Ctrl-C" % unixport.PROGRAMS[r.program])
    if not ctrl_c or r.logged("MemoryError"):
        return False
    return max(x["uptime_ms"] for x in readings) >= int(ctrl_c[0][1:ctrl_c[0].index("]")]) - 1000


def _heap_figures(r, started):
    samples = r.heap[:-1] if len(r.heap) > 1 else []  # the last one is taken after the program returned
    # Connected and healthy: after the start line (the bare client's comes once it has
    # connected; before it, its samples are of a client not yet connected), before the link drop.
    healthy = [live for t, live in samples if started is not None and 0 <= t - started < SCRIPT[0][0] * 1000]
    return {
        "heap_peak_bytes": max(live for _, live in samples) if samples else None,
        "heap_first_bytes": samples[0][1] if samples else None,
        "heap_steady_bytes": int(statistics.median(healthy)) if healthy else None,
        "heap_after_stop_bytes": r.heap[-1][1] if r.heap else None,
        # (ms since the start line, live bytes): the heap over the scenario
        "heap_samples": [(t - started, live) for t, live in samples] if started is not None else [],
    }


def _started_ticks(r):
    tag = unixport.PROGRAMS[r.program]
    for line in r.lines:
        if "] %s: " % tag in line and " starting: " in line:
            return int(line[1:line.index("]")])
    return None


def _config(broker, tls):
    raw = sim_config(broker, sensor={"interval_s": INTERVAL_S}, queue={"size": QUEUE})
    if tls:
        raw["mqtt"].update(port=broker.tls_port, tls=True)
    return raw


def _variant(name, out, short):
    tls = name in TLS_VARIANTS
    interp, program, lo, hi = (TLS_VARIANTS if tls else VARIANTS)[name]
    entry = out[name] = {}
    try:
        with Mosquitto(tls=tls) as broker:
            raw = _config(broker, tls)
            kw = dict(faults=SCRIPT, broker=broker, seconds=STOP_S, until=_caught_up, max_seconds=STOP_S + 30,
                      interp=interp, program=program, tls_first=tls)
            r = unixport.run(raw, heapsize=unixport.ESP8266_HEAP, heap_every_ms=HEAP_EVERY_MS, **kw)
            entry.update(run=r.describe() + (", over TLS (axTLS, sim/tlsfirst.py)" if tls else ""),
                         returncode=r.returncode, ok_at_tier_heap=bool(r.returncode == 0 and r.stopped() and
                                                                       _delivered(r)), readings=len(r.readings()))
            entry.update(_heap_figures(r, _started_ticks(r)))
            if not entry["ok_at_tier_heap"]:
                entry["error"] = "\n".join(r.lines[-8:] + (["killed by signal %d (a crash)" % -r.returncode]
                                                           if r.returncode and r.returncode < 0 else []))
            if short:
                return
            entry["smallest_heap_k"], entry["bisection"] = _smallest(raw, lo, hi, kw)
    except (RuntimeError, OSError) as e:
        entry["error"] = str(e)


def _smallest(raw, lo, hi, kw):
    """(smallest passing -X heapsize in KB or None above CEIL_K, {k: passed})."""
    tried = {}

    def bisect(lo, hi):
        runs = {}
        k = unixport.smallest_heap(raw, lo, hi, 1, accept=_delivered, runs=runs, heap_every_ms=0, **kw)
        for kk, r in runs.items():
            tried[kk] = bool(r.returncode == 0 and r.stopped() and _delivered(r))
        return k

    k = bisect(lo, hi)
    while k is None and hi < CEIL_K:  # more than the window: look higher
        lo, hi = hi, min(hi + 8, CEIL_K)
        k = bisect(lo, hi)
    while k is not None and k == lo + 1 and lo > FLOOR_K and lo not in tried:  # lo was assumed to fail: check
        tried_lo = unixport.run(raw, heapsize="%dK" % lo, heap_every_ms=0, **kw)
        tried[lo] = bool(tried_lo.returncode == 0 and tried_lo.stopped() and _delivered(tried_lo))
        if not tried[lo]:
            break
        lo, hi = max(lo - 8, FLOOR_K), lo
        k = bisect(lo, hi)
    return k, {str(kk): tried[kk] for kk in sorted(tried)}


# -- where the heap goes: live bytes after each import, in the model

def _app_modules():
    """app's modules in an order where each one's module-level imports of app
    modules come first (so each row is the module's own cost)."""
    deps = {}
    app_dir = os.path.join(paths.ROOT, "app")
    for fn in sorted(os.listdir(app_dir)):
        if not fn.endswith(".py") or fn == "__init__.py":
            continue
        with open(os.path.join(app_dir, fn)) as f:
            tree = ast.parse(f.read())
        names = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    names.add(node.module)
                else:
                    names.update(a.name for a in node.names)
        deps[fn[:-3]] = names
    order = []

    def visit(m, seen=()):
        if m in order or m not in deps or m in seen:
            return
        for d in sorted(deps[m]):
            visit(d, seen + (m,))
        order.append(m)

    for m in deps:
        visit(m)
    return ["app." + m for m in order]


def dropped_modules():
    """app modules the firmware drops once started: forget("name") calls in app/."""
    names = set()
    app_dir = os.path.join(paths.ROOT, "app")
    for fn in os.listdir(app_dir):
        if fn.endswith(".py"):
            with open(os.path.join(app_dir, fn)) as f:
                names.update(re.findall(r'forget\("(\w+)"\)', f.read()))
    return sorted(names)


BOARD = ["simboard", "machine", "network", "dht", "esp"]
ASYNCIO = ["asyncio", "asyncio.event", "asyncio.lock"]  # the core, and what Event and Lock load
LIBS = ["mqtt_as", "primitives", "primitives.ringbuf_queue"]
_PROBE = """import gc,micropython
def a():
 gc.collect();return gc.mem_alloc()
p=a()
print('probe start',p)
micropython.qstr_info()
for n in %r:
 __import__(n)
 c=a();print('probe',n,c-p);p=c
 micropython.qstr_info()
"""
# The firmware as unixrun starts it, and a look at it once it is connected and
# steady: which modules it holds, its live heap, the qstrs interned so far.
_SPY = """import gc,sys,micropython,asyncio
import app
async def spy():
 await asyncio.sleep_ms(%d)
 gc.collect()
 print('spy modules',' '.join(sorted(sys.modules)))
 print('spy live',gc.mem_alloc())
 micropython.qstr_info()
asyncio.create_task(spy())
app.run()
"""
SPY_AT_MS = 3000
_QSTR = re.compile(r"n_qstr=(\d+)")


def _model_program(interp, code, broker=None, seconds=None):
    """Run code (-c) in the model with the firmware's partition (or frozen) and a
    config.json for broker; SIGINT after seconds. Returns its output."""
    import signal
    import shutil
    import subprocess
    import tempfile

    work = tempfile.mkdtemp(prefix="fireant-probe-")
    try:
        exe, extra = unixport.prepare_model(work, interp)
        env = dict(os.environ)
        env.pop("FIREANT_ROMFS", None)
        env.update(extra)
        if broker is not None:
            import json

            with open(os.path.join(work, "config.json"), "w") as f:
                json.dump(sim_config(broker, sensor={"interval_s": INTERVAL_S}, queue={"size": QUEUE}), f)
        p = subprocess.Popen([exe, "-X", "heapsize=64K", "-c", code], cwd=work, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        try:
            out = p.communicate(timeout=seconds or 60)[0]
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGINT)
            out = p.communicate(timeout=15)[0]
        return p.returncode, out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def imports(interp, broker):
    """Where the heap goes in the model (interp "esp8266": the ROMFS image at /rom;
    "esp8266-frozen": everything in ROM), in a 64K heap so that nothing is starved:

    modules: [(name, live bytes its import added, qstrs it interned)], the
    interpreter's own start first, each module after the app modules it imports.
    The qstr pools grow by doubling: the module that interns the name past a
    pool's end pays for the next pool (the fifth holds names 301 to 620, ~2.4 KB).
    steady: the firmware itself, connected, SPY_AT_MS after start: its live heap,
    the modules it holds, its interned qstrs. runtime_objects_bytes: steady live
    less the imports of the modules it holds: settings, Node, Backlog, Sensor,
    Led, the client, tasks, the connection (approximate: the two starts differ a little)."""
    order = ASYNCIO + BOARD + LIBS + ["app"] + _app_modules()
    code, out = _model_program(interp, _PROBE % (order,))
    rows = []
    for line in out.splitlines():
        if line.startswith("probe "):
            rows.append([line.split()[1], int(line.split()[2]), 0])
        m = _QSTR.search(line)
        if m and rows:
            rows[-1][2] = int(m.group(1)) - sum(r[2] for r in rows[:-1])
    if code or not rows:
        raise RuntimeError("heap probe failed: %s" % out[-500:])
    code, out = _model_program(interp, _SPY % SPY_AT_MS, broker, SPY_AT_MS / 1000 + 2)
    held = live = qstrs = None
    for line in out.splitlines():
        if line.startswith("spy modules "):
            held = line.split()[2:]
        elif line.startswith("spy live "):
            live = int(line.split()[2])
        elif held is not None and qstrs is None and _QSTR.search(line):
            qstrs = int(_QSTR.search(line).group(1))
    if live is None:
        raise RuntimeError("heap spy failed: %s" % out[-500:])
    held_bytes = sum(b for name, b, _ in rows if name == "start" or name in held)
    return {"modules": [tuple(r) for r in rows], "steady": {"live_bytes": live, "modules": held, "qstrs": qstrs},
            "runtime_objects_bytes": live - held_bytes, "groups": _group(rows, held)}


def _group(rows, held):
    """Import costs per group: the model's start, asyncio, the sim board (C on a
    board), the libraries, app modules held once steady, dropped after start-up,
    not loaded in this scenario (e.g. ntp: TLS only)."""
    dropped = {"app." + m for m in dropped_modules()}
    out = dict.fromkeys(("start", "asyncio", "sim_board", "mqtt_as_primitives", "app_held", "app_dropped",
                         "app_not_loaded"), 0)
    for name, b, _ in rows:
        if name == "start":
            key = "start"
        elif name in ASYNCIO:
            key = "asyncio"
        elif name in BOARD:
            key = "sim_board"
        elif name in LIBS:
            key = "mqtt_as_primitives"
        elif name in held:
            key = "app_held"
        elif name in dropped:
            key = "app_dropped"
        else:
            key = "app_not_loaded"
        out[key] += b
    return out


def summary(variants, tier_heap):
    """The headline figures from the variants' entries: smallest heaps (KB), the
    firmware / bare client ratios (ROMFS and frozen), the margin at the tier's heap;
    the same for TLS where its variants were measured (tls_*)."""
    names = list(VARIANTS) + [n for n in TLS_VARIANTS if n in variants]
    smallest = {name: variants.get(name, {}).get("smallest_heap_k") for name in names}
    out = {"variants": variants, "smallest_heap_k": smallest}
    tier_k = int(tier_heap.rstrip("K"))
    for suffix, prefix in (("", ""), ("_tls", "tls_")):
        for kind in ("romfs", "frozen"):
            if "firmware_%s%s" % (kind, suffix) not in smallest:
                continue
            fw, bare = smallest["firmware_%s%s" % (kind, suffix)], smallest.get("bare_%s%s" % (kind, suffix))
            out[prefix + "ratio_" + kind] = round(fw / bare, 2) if fw and bare else None
            out[prefix + "margin_%s_k" % kind] = tier_k - fw if fw else None
    out["margin_k"] = out["margin_romfs_k"]  # ROMFS: how deploy.py installs it on an ESP8266
    return out


def measure(short=False):
    """The benchmark entry (JSON key esp8266_model). short: only the runs at the
    tier's heap, no bisection (the smoke test)."""
    from sim import upstream

    entry = {"title": TITLE, "tier_heap": unixport.ESP8266_HEAP, "goal_ratio": GOAL_RATIO,
             "scenario": "interval %g s, queue %d, link down %g-%g s, sensor fault %g-%g s, Ctrl-C at %d s" % (
                 INTERVAL_S, QUEUE, SCRIPT[0][0], SCRIPT[1][0], SCRIPT[2][0], SCRIPT[3][0], STOP_S)}
    why = upstream.model_unavailable() or upstream.model_unavailable(frozen=True)
    if why is None and not paths.lib_dir():
        why = "no mqtt_as/primitives in lib/ or the cache (./fireant upstream --from DIR)"
    if why:
        entry["error"] = "ESP8266 model unavailable: %s" % why
        return entry
    upstream.model_exe()  # built here, before the runs share them
    upstream.model_exe(frozen=True)
    variants = {}
    for wave in (VARIANTS, TLS_VARIANTS):  # four side by side, as before TLS: the load stays the same
        threads = [threading.Thread(target=_variant, args=(name, variants, short)) for name in wave]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    entry.update(summary(variants, unixport.ESP8266_HEAP))
    entry["imports"] = {}
    with Mosquitto() as broker:
        for interp, kind in (("esp8266", "romfs"), ("esp8266-frozen", "frozen")):
            try:
                entry["imports"][kind] = imports(interp, broker)
            except (RuntimeError, OSError) as e:
                entry["imports"][kind] = {"error": str(e)}
    entry["dropped_after_start"] = dropped_modules()
    return entry


def section(e):
    """The table output's lines for the entry."""
    if e.get("error"):
        return "ESP8266 model: not measured: %s" % e["error"]
    v = e["variants"]
    lines = ["%s; %s" % (e["title"], e["scenario"]),
             "  %-19s %9s %10s %9s %10s %10s  %s" % ("", "smallest", "at " + e["tier_heap"], "live peak", "steady",
                                                   "after stop", "")]
    for name in list(VARIANTS) + [n for n in TLS_VARIANTS if n in v]:
        x = v.get(name, {})
        lines.append("  %-19s %9s %10s %9s %10s %10s  %s" % (
            name, "%sK" % x["smallest_heap_k"] if x.get("smallest_heap_k") else "-",
            "ok" if x.get("ok_at_tier_heap") else "FAILS", x.get("heap_peak_bytes") or "-",
            x.get("heap_steady_bytes") or "-", x.get("heap_after_stop_bytes") or "-",
            ("error: " + x["error"].splitlines()[-1]) if x.get("error") else ""))
    margin = {k: "%sK" % e[k] if e.get(k) is not None else "-" for k in ("margin_romfs_k", "margin_frozen_k")}
    lines.append("  firmware / bare client smallest heap: ROMFS %s, frozen %s (goal <= %s); firmware's margin at %s: "
                 "ROMFS %s, frozen %s" % (e.get("ratio_romfs") or "-", e.get("ratio_frozen") or "-", e["goal_ratio"],
                                          e["tier_heap"], margin["margin_romfs_k"], margin["margin_frozen_k"]))
    if any(n in v for n in TLS_VARIANTS):
        lines.append("  over TLS (*_tls: axTLS on the GC heap, mqtt_as through sim/tlsfirst.py): the bare client "
                     "only; the firmware's is refused on an ESP8266 by config.py (docs/esp8266.md, TLS)")
    for kind, probe in e.get("imports", {}).items():
        if "groups" in probe:
            lines.append("  heap by import (%s model, live bytes): %s; objects made at run time %d; steady live "
                         "%d with %s qstrs interned" % (kind, ", ".join("%s %d" % kv for kv in probe["groups"].items()),
                                                        probe["runtime_objects_bytes"], probe["steady"]["live_bytes"],
                                                        probe["steady"]["qstrs"]))
        elif probe.get("error"):
            lines.append("  heap by import (%s model): %s" % (kind, probe["error"]))
    lines.append("  live figures: samples every %d ms after gc.collect() at %s; smallest heap: bisected in 1 KB "
                 "steps without the sampling task; docs/esp8266.md" % (HEAP_EVERY_MS, e["tier_heap"]))
    return "\n".join(lines)
