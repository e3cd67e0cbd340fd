"""The board: its serial port, and one mpremote session with it (Board) in its raw
REPL: what it is (the probe), what it holds (hashes, tree), writing, mip, romfs
deploy, reset; and following its output (deploy.py logs)."""
import argparse
import ast
import errno
import io
import os
import sys
import tempfile
import time

from deployer import Fail
from deployer.output import quiet, to


def usb_ports():
    """The USB serial ports attached: where a board can be (a built-in UART has no vid)."""
    from serial.tools import list_ports

    return sorted(p.device for p in list_ports.comports() if p.vid is not None)


def find_port(port=None):
    """The serial port of the one attached board, or --port."""
    if port:
        return port
    usb = usb_ports()
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
            with quiet():  # mpremote prints what it read
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
            with to(said):  # its progress, one \r line per 4 KB
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



def lost_board(e):
    """The one line for a board gone mid-session (serial or mpremote transport error e)."""
    return ("lost the board (%s): check the cable and that nothing reset it, then run again"
            % (str(e).splitlines() or ["?"])[0])


def one_port(ports):
    """--port for a command that works on one board: the one named, else the one attached."""
    if ports and len(ports) > 1:
        raise Fail("this command works on one board, and --port names %d (%s): name one"
                   % (len(ports), ", ".join(ports)))
    return find_port(ports[0] if ports else None)


def cmd_logs(args):
    import serial

    port = one_port(args.port)
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

