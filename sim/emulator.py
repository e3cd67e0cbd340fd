"""A MicroPython board on a pty, for deploy.py's tests and for trying deploy.py
without hardware (host only).

    python -m sim.emulator --flash DIR     # prints the port, serves until Ctrl-C
    python deploy.py --port /dev/pts/N

It speaks the board's REPL protocol over the pty: friendly REPL, raw REPL
(Ctrl-A, Ctrl-D to run, Ctrl-B to leave), raw-paste mode, Ctrl-C to interrupt a
running program, and soft reset (Ctrl-D on an empty line) which runs boot.py,
then main.py when in the friendly REPL, as a board does. Code runs in a
MicroPython unix-port process (sim/boardvm.py) whose working directory is the
emulated flash, with the sim board's machine/network/dht as its built-ins and
FLASH/lib as its /lib. A program that exits (machine.reset()) restarts the board.

    python -m sim.emulator --flash DIR --romfs-kb 320     # with a ROMFS partition
    python -m sim.emulator --flash DIR --esp8266          # on the ESP8266 model

romfs_kb gives the board a ROMFS partition of that size, as the ESP8266
FLASH_2M_ROMFS firmware has (320 KB): vfs.rom_ioctl to write it (mpremote romfs
deploy), kept in the file FLASH.romfs beside the flash directory so it outlives
soft and hard resets, and at every boot a valid image in it mounted at /rom with
/rom and /rom/lib on sys.path after ".frozen", as the board's mp_init() does.
platform: what sys.platform says ("esp8266"), for deploy.py's probe and the
firmware's branches; only that name changes, the interpreter stays the host's.
model: run on the ESP8266 model instead (sim/upstream.py model_exe(): 32-bit,
sys.platform "esp8266", its own C vfs.rom_ioctl over the same file, the sim
board frozen in), optionally with heap_kb as its -X heapsize; model="frozen": the
model with app/, mqtt_as and primitives frozen in too (manifest.py), as a
firmware built with fireant's manifest. Either raises RuntimeError saying why
when the model cannot be had here. boardvm shares the model's heap with the code
it runs (~5 KB of its own, and a copy of each request that a board would compile
as it streams in): heap figures come from the unix-port tier, not from here.
"""
import argparse
import os
import selectors
import signal
import struct
import subprocess
import sys
import threading
import tty

from sim import paths

BANNER = (b"MicroPython v1.29.0 on 2026-08-29; fireant emulator (unix port)\r\n"
          b'Type "help()" for more information.\r\n')
RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"
_PASTE_WINDOW = 256
_OUT_CAP = 1 << 16  # like a UART nobody reads: old output is dropped past this
_FRIENDLY, _RAW, _PASTE = "friendly", "raw", "paste"


def micropython_cmd():
    """How to start the unix port: the `micropython` next to this Python, else on PATH."""
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    return [exe] if os.path.exists(exe) else ["micropython"]


class Emulator:
    def __init__(self, flash, flash_kb=2048, env=None, romfs_kb=None, platform=None, model=False, heap_kb=None):
        self.flash = os.path.abspath(flash)
        os.makedirs(self.flash, exist_ok=True)
        self.flash_kb = flash_kb
        self.env = dict(os.environ, **(env or {}))
        self.env.pop("FIREANT_ROMFS", None)
        self.romfs = None  # the file holding the ROMFS partition
        if romfs_kb:
            self.romfs = self.flash.rstrip("/") + ".romfs"
            size = romfs_kb * 1024
            if not os.path.exists(self.romfs) or os.path.getsize(self.romfs) != size:
                with open(self.romfs, "wb") as f:
                    f.write(b"\xff" * size)  # erased flash
        self.platform = platform
        self.model = model
        if model:
            from sim import upstream

            exe = upstream.model_exe(frozen=model == "frozen")
            self.cmd = [exe] + (["-X", "heapsize=%dK" % heap_kb] if heap_kb else [])
            if self.romfs:
                self.env["FIREANT_ROMFS"] = self.romfs  # its vfs.rom_ioctl serves this file
        else:
            self.cmd = micropython_cmd() + (["-X", "heapsize=%dK" % heap_kb] if heap_kb else [])
        self.resets = 0  # soft and hard, for tests
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        os.set_blocking(self._master, False)
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        self._out = bytearray()
        self._mode = _FRIENDLY
        self._line = bytearray()
        self._pending = bytearray()  # input that arrived while a program ran
        self._requests = []  # (op, payload, on_done) waiting for the vm
        self._active = None
        self._paste_left = 0
        self._vm = None
        self._stop = False
        self._thread = None

    # -- lifecycle
    def start(self):
        self._sel.register(self._master, selectors.EVENT_READ, self._on_input)
        self._sel.register(self._wake_r, selectors.EVENT_READ, lambda: os.read(self._wake_r, 64))
        self._boot(hard=True)
        self._thread = threading.Thread(target=self._serve, name="emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop = True
        os.write(self._wake_w, b"x")
        if self._thread:
            self._thread.join(10)
        self._kill_vm()
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            os.close(fd)

    def __enter__(self):
        return self.start()

    def __exit__(self, *_):
        self.stop()

    def _serve(self):
        while not self._stop:
            events = self._out and selectors.EVENT_WRITE
            self._sel.modify(self._master, selectors.EVENT_READ | (events or 0), self._on_input)
            for key, mask in self._sel.select(1.0):
                if key.fileobj == self._master and mask & selectors.EVENT_WRITE:
                    self._flush()
                if mask & selectors.EVENT_READ:
                    key.data()

    # -- the wire
    def _send(self, data):
        self._out += data
        if len(self._out) > _OUT_CAP:
            del self._out[:len(self._out) - _OUT_CAP]

    def _flush(self):
        try:
            n = os.write(self._master, self._out)
        except BlockingIOError:
            return
        del self._out[:n]

    def _on_input(self):
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, OSError):
            return
        for i in range(len(data)):
            b = data[i:i + 1]
            if self._busy():
                if b == b"\x03":
                    self._interrupt()
                else:
                    self._pending += b
            else:
                self._key(b)

    def _busy(self):
        return self._active is not None or bool(self._requests)

    def _key(self, b):
        if self._mode == _PASTE:
            self._paste(b)
        elif self._mode == _RAW:
            self._raw_key(b)
        else:
            self._friendly_key(b)

    def _raw_key(self, b):
        line = self._line
        if line[:1] == b"\x05":  # raw paste asks with \x05 A \x01
            line += b
            if line == b"\x05A\x01":
                line.clear()
                self._mode = _PASTE
                self._paste_left = _PASTE_WINDOW
                self._send(b"R\x01" + struct.pack("<H", _PASTE_WINDOW))
            elif line != b"\x05A":
                line.clear()
                self._send(b"R\x00")
        elif b == b"\x05" and not line:
            line += b
        elif b == b"\x01":
            line.clear()
            self._send(b"\r\n" + RAW_PROMPT)
        elif b == b"\x02":
            self._mode = _FRIENDLY
            line.clear()
            self._send(b"\r\n" + BANNER + b">>> ")
        elif b == b"\x03":
            line.clear()
        elif b == b"\x04":
            if not line:
                self._send(b"OK\r\n")
                self._soft_reset()
            else:
                code = bytes(line)
                line.clear()
                self._send(b"OK")
                self._submit(b"x", code, self._raw_done)
        else:
            line += b

    def _paste(self, b):
        if b == b"\x04":
            code = bytes(self._line)
            self._line.clear()
            self._mode = _RAW
            self._send(b"\x04")
            self._submit(b"x", code, self._raw_done)
            return
        self._line += b
        self._paste_left -= 1
        if self._paste_left == 0:
            self._paste_left = _PASTE_WINDOW
            self._send(b"\x01")

    def _raw_done(self, status, err):
        self._send(b"\x04" + err.replace(b"\n", b"\r\n") + b"\x04>")

    def _friendly_key(self, b):
        line = self._line
        if b == b"\x01":
            self._mode = _RAW
            line.clear()
            self._send(b"\r\n" + RAW_PROMPT)
        elif b == b"\x03":
            line.clear()
            self._send(b"\r\n>>> ")
        elif b == b"\x04":
            if not line:
                self._send(b"\r\n")
                self._soft_reset()
        elif b == b"\r":
            self._send(b"\r\n")
            code = bytes(line)
            line.clear()
            if code.strip():
                self._submit(b"s", code, lambda *_: self._send(b">>> "))
            else:
                self._send(b">>> ")
        elif b in (b"\x08", b"\x7f"):
            if line:
                del line[-1]
                self._send(b"\x08 \x08")
        elif b >= b" ":
            line += b
            self._send(b)

    # -- the interpreter
    def _start_vm(self):
        ctl_r, ctl_w = os.pipe()
        lib = os.path.join(self.flash, "lib")
        # The sim board's modules are the model's frozen built-ins; for the unix port, a path.
        sys_path = ":".join(("", ".frozen", lib) if self.model else (paths.BOARD, "", ".frozen", lib))
        romfs = ("native" if self.model else self.romfs) if self.romfs else "-"
        self._vm = subprocess.Popen(
            self.cmd + [os.path.join(paths.SIM, "boardvm.py"), str(ctl_w), str(self.flash_kb), sys_path, romfs,
                        self.platform or "-"],
            cwd=self.flash, env=self.env, pass_fds=(ctl_w,),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        os.close(ctl_w)
        self._ctl = ctl_r
        self._ctl_buf = b""
        out = self._vm.stdout.fileno()
        os.set_blocking(out, False)
        self._sel.register(out, selectors.EVENT_READ, self._on_vm_output)
        self._sel.register(ctl_r, selectors.EVENT_READ, self._on_ctl)

    def _kill_vm(self):
        vm, self._vm = self._vm, None
        if vm is None:
            return
        for fd in (vm.stdout.fileno(), self._ctl):
            try:
                self._sel.unregister(fd)
            except (KeyError, ValueError):
                pass
        vm.kill()
        vm.wait()
        vm.stdout.close()
        vm.stdin.close()
        os.close(self._ctl)

    def _on_vm_output(self):
        try:
            data = os.read(self._vm.stdout.fileno(), 4096)
        except BlockingIOError:
            return
        if data:  # the board's console turns \n into \r\n
            self._send(data.replace(b"\n", b"\r\n"))

    def _on_ctl(self):
        chunk = os.read(self._ctl, 4096)
        if not chunk:  # the vm is gone: a crash or a reset from the program
            self._on_vm_output()
            self._active = None
            self._requests.clear()
            self._boot(hard=True)
            return
        self._ctl_buf += chunk
        while b"\n" in self._ctl_buf:
            header, rest = self._ctl_buf.split(b"\n", 1)
            kind, n = header.split()
            n = int(n)
            if len(rest) < n:
                return
            body, self._ctl_buf = rest[:n], rest[n:]
            self._on_vm_output()  # all the program's output is in the pipe by now
            op, payload, on_done = self._active
            self._active = None
            if kind == b"exit":
                self._boot(hard=True)
                return
            if on_done:
                on_done(kind, body)
            self._next()

    def _submit(self, op, payload, on_done=None):
        self._requests.append((op, payload, on_done))
        if self._active is None:
            self._next()

    def _next(self):
        if self._active is None and self._requests:
            self._active = self._requests.pop(0)
            op, payload, _ = self._active
            self._vm.stdin.write(op + b" %d\n" % len(payload) + payload)
            self._vm.stdin.flush()
        elif self._active is None and self._pending:
            pending, self._pending = self._pending, bytearray()
            for i in range(len(pending)):
                if self._busy():
                    self._pending += pending[i:]
                    break
                self._key(pending[i:i + 1])

    def _interrupt(self):
        if self._vm and self._active:
            self._vm.send_signal(signal.SIGINT)

    def _soft_reset(self):
        self._send(b"MPY: soft reboot\r\n")
        self._boot(hard=False)

    def _boot(self, hard):
        self.resets += 1
        self._kill_vm()
        if hard:
            self._mode = _FRIENDLY
            self._line.clear()
        self._start_vm()
        if self._mode == _FRIENDLY:
            self._submit(b"f", b"boot.py")
            self._submit(b"f", b"main.py", lambda *_: self._send(BANNER + b">>> "))
        else:  # a board in the raw REPL runs boot.py only
            self._submit(b"f", b"boot.py", lambda *_: self._send(RAW_PROMPT))


def main():
    ap = argparse.ArgumentParser(description="Emulate a MicroPython board on a pty (see sim/emulator.py).")
    ap.add_argument("--flash", required=True, help="directory playing the board's flash")
    ap.add_argument("--flash-kb", type=int, default=2048, help="flash size reported by os.statvfs")
    ap.add_argument("--romfs-kb", type=int, help="a ROMFS partition of this size (the ESP8266 FLASH_2M_ROMFS "
                                                 "firmware has 320), kept in FLASH.romfs")
    ap.add_argument("--platform", help="what sys.platform says (e.g. esp8266); the interpreter stays the host's")
    ap.add_argument("--esp8266", nargs="?", const="plain", choices=["plain", "frozen"],
                    help="run on the ESP8266 model (./fireant upstream --from DIR builds it); --esp8266 frozen: "
                         "the model with fireant frozen in")
    ap.add_argument("--heap-kb", type=int, help="the interpreter's heap (-X heapsize)")
    args = ap.parse_args()
    try:
        emu = Emulator(args.flash, args.flash_kb, romfs_kb=args.romfs_kb, platform=args.platform,
                       model=args.esp8266, heap_kb=args.heap_kb)
    except RuntimeError as e:  # the model cannot be had here: it says why
        sys.exit("emulator: the ESP8266 model is unavailable: %s" % e)
    with emu:
        print(emu.port, flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
