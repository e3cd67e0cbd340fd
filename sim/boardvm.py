"""The emulated board's interpreter: runs inside the MicroPython unix port for
sim/emulator.py, with the emulated flash as its working directory.

    micropython boardvm.py CTL_FD FLASH_KB SYS_PATH

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
_BLOCK = 4096
_HERE = '"%s"' % __file__


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
_globals = {"__name__": "__main__"}


def _reply(kind, text=b""):
    _ctl.write(b"%s %d\n" % (kind, len(text)) + text)


def _read(n):
    buf = b""
    while len(buf) < n:
        chunk = sys.stdin.buffer.read(n - len(buf))
        if not chunk:
            raise SystemExit
        buf += chunk
    return buf


def _traceback(e):
    # As the board prints it: without this file's frames.
    s = io.StringIO()
    sys.print_exception(e, s)
    lines = s.getvalue().split("\n")
    return "\n".join(ln for ln in lines if _HERE not in ln).encode()


def _run(op, src):
    if op == b"f":
        try:
            _os.stat(src)
        except OSError:
            return
        with open(src) as f:
            exec(compile(f.read(), src, "exec"), _globals)
    elif op == b"s":
        exec(compile(src, "<stdin>", "single"), _globals)
    else:
        exec(compile(src, "<stdin>", "exec"), _globals)


while True:
    try:
        header = sys.stdin.buffer.readline()
    except KeyboardInterrupt:  # a Ctrl-C that came just after a program ended: nothing to stop
        continue
    if not header:
        break
    op, n = header.split()
    try:
        _run(op, _read(int(n)).decode())
    except SystemExit:
        _reply(b"exit")
        break
    except BaseException as e:  # KeyboardInterrupt too: it ends the program, not the board
        if op == b"x":
            _reply(b"err", _traceback(e))
            continue
        sys.stdout.write(_traceback(e).decode())
    _reply(b"ok")
