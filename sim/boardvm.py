"""The emulated board's interpreter: runs inside the MicroPython unix port for
sim/emulator.py, with the emulated flash as its working directory.

    micropython boardvm.py CTL_FD FLASH_KB SYS_PATH [ROMFS [PLATFORM]]

ROMFS: "-" no ROM partition (vfs as the interpreter has it); "native" the
interpreter has its own vfs.rom_ioctl and mounts /rom at start-up (the ESP8266
model); else the file holding the partition, served here as the ESP8266's
vfs.rom_ioctl (sys.modules["vfs"] swapped, as os is for statvfs), a valid image
in it mounted at /rom at start-up as mp_init() does. Either way a mounted /rom
puts /rom and /rom/lib on sys.path after ".frozen", in the board's order.
PLATFORM: what sys.platform says to the code run (sys swapped the same way);
"-" the interpreter's own.

Requests arrive on stdin as b"<op> <n>\\n" plus n bytes: x = exec (raw REPL),
s = one friendly-REPL line (expression results printed), f = run a file if it
exists (boot.py, main.py). Program output goes to stdout, as on the board's
UART. When a request is done one line goes to the control fd: b"ok 0\\n", or
b"err <n>\\n" plus the traceback, or b"exit 0\\n" for SystemExit (a reset).
"""
import io
import os
import sys

_ctl = open("/proc/self/fd/" + sys.argv[1], "wb")
_flash_bytes = int(sys.argv[2]) * 1024
sys.path[:] = sys.argv[3].split(":")
_romfs = sys.argv[4] if len(sys.argv) > 4 else "-"
_platform = sys.argv[5] if len(sys.argv) > 5 else "-"
_BLOCK = 4096
_HERE = '"%s"' % sys.argv[0]  # this file, as tracebacks name it (the model has no __file__)


def _used(path):
    total = 0
    for entry in _os.ilistdir(path):
        p = path + "/" + entry[0]
        if entry[1] == 0x4000:
            total += _BLOCK + _used(p)
        else:
            total += (_os.stat(p)[6] + _BLOCK - 1) // _BLOCK * _BLOCK
    return total


class _Flash:
    """os as the board's: statvfs() reports the emulated flash, not the host disk."""

    def __getattr__(self, name):
        return getattr(_os, name)

    def statvfs(self, path):
        blocks = _flash_bytes // _BLOCK
        free = max(0, blocks - _used(".") // _BLOCK)
        return (_BLOCK, _BLOCK, blocks, free, free, 0, 0, 0, 0, 255)


_os = os
sys.modules["os"] = _Flash()
del os

_ROMFS_HEADER = b"\xd2\xcd\x31"


class _Rom:
    """The ROMFS partition (ports/esp8266/vfs_rom_ioctl.c's behaviour): its bytes
    in memory, every write also stored in the file, which outlives the process
    as flash outlives a reset."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.data = bytearray(f.read())
        self.view = memoryview(self.data)

    def ioctl(self, op, *args):
        if op == 1:  # number of partitions
            return 1
        if not args or args[0] != 0:
            return -19  # ENODEV
        if op == 2:  # the segment
            return self.view
        if op == 3:  # prepare: erase the 4 KB sectors about to be written; the minimum write size
            n = min(len(self.data), (args[1] + 4095) // 4096 * 4096)
            for i in range(0, n, 4096):
                self.data[i:i + 4096] = b"\xff" * min(4096, n - i)
            self._store(0, n)
            return 4
        if op == 4:  # write buf at offset
            off, buf = args[1], args[2]
            if off < 0 or off + len(buf) > len(self.data):
                return -22  # EINVAL
            self.data[off:off + len(buf)] = buf
            self._store(off, len(buf))
            return 0
        return -22  # as the ESP8266: no write-complete, no minimum-prepare query

    def _store(self, off, n):
        with open(self.path, "r+b") as f:
            f.seek(off)
            f.write(self.view[off:off + n])


class _Vfs:
    def __getattr__(self, name):
        return getattr(_vfs, name)

    def rom_ioctl(self, *args):
        return _rom.ioctl(*args)


class _Sys:
    """sys as the emulated chip's: sys.platform only; everything else the interpreter's."""

    def __init__(self, platform):
        self.platform = platform

    def __getattr__(self, name):
        return getattr(_sys, name)


import vfs as _vfs  # noqa: E402

if _romfs not in ("-", "native"):
    _rom = _Rom(_romfs)
    sys.modules["vfs"] = _Vfs()
    if _rom.data[:3] == _ROMFS_HEADER:
        try:
            _vfs.mount(_vfs.VfsRom(_rom.view), "/rom")
        except Exception:  # an image that does not parse is not mounted, as on a board
            pass
if any(m[1] == "/rom" for m in _vfs.mount()):
    _at = sys.path.index(".frozen") + 1 if ".frozen" in sys.path else len(sys.path)
    sys.path[_at:_at] = ["/rom", "/rom/lib"]
_sys = sys
if _platform != "-":
    sys.modules["sys"] = _Sys(_platform)
_globals = {"__name__": "__main__"}


def _reply(kind, text=b""):
    _ctl.write(b"%s %d\n" % (kind, len(text)) + text)


def _read(n):
    buf = sys.stdin.buffer.read(n)
    if buf is None or len(buf) < n:  # rare: a short read
        buf = bytearray(buf or b"")
        while len(buf) < n:
            chunk = sys.stdin.buffer.read(n - len(buf))
            if not chunk:
                raise SystemExit
            buf += chunk
        buf = bytes(buf)
    return buf


def _traceback(e):
    # As the board prints it: without this file's frames.
    s = io.StringIO()
    sys.print_exception(e, s)
    lines = s.getvalue().split("\n")
    return "\n".join(ln for ln in lines if _HERE not in ln).encode()


def _compile(op, src):
    # The source is compiled as bytes and dropped before the code runs: a board
    # compiles what it receives as it streams in, keeping no copy (on the ESP8266
    # model this process shares the heap with the code it runs).
    if op == b"f":
        name = src.decode()
        try:
            _os.stat(name)
        except OSError:
            return None
        with open(name, "rb") as f:
            return compile(f.read(), name, "exec")
    return compile(src, "<stdin>", "single" if op == b"s" else "exec")


while True:
    try:
        header = sys.stdin.buffer.readline()
    except KeyboardInterrupt:  # a Ctrl-C that came just after a program ended: nothing to stop
        continue
    if not header:
        break
    op, n = header.split()
    header = None
    try:
        code = _compile(op, _read(int(n)))
        if code is not None:
            exec(code, _globals)
        code = None
    except SystemExit:
        _reply(b"exit")
        break
    except BaseException as e:  # KeyboardInterrupt too: it ends the program, not the board
        if op == b"x":
            _reply(b"err", _traceback(e))
            continue
        sys.stdout.write(_traceback(e).decode())
    _reply(b"ok")
