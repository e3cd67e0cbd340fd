"""The flash spool: readings the RAM backlog had no room for, on the board's
filesystem, oldest first, across reboots and power cuts. app/backlog.py loads it
when the RAM backlog reaches its high-water mark, or at boot when spool/ holds
readings from before.

Layout: spool/ holds segment files named by an increasing hex number, each a run
of batches appended whole (append-only: what FAT and littlefs do best, and a
power cut can tear only the batch being written), at most _SEGMENT batches each,
and spool/pos, the read position (segment, offset) saved after each batch the
broker has acknowledged. A batch (little-endian):

    0  2  b"\\xfa\\x17"        4  8  the boot id (ASCII hex)   12 4  seq of the first
    2  1  n readings           16 4  uptime stamp of the NTP answer, 20 4 its UTC s, 24 2 its ms
    3  1  1: the clock fields are valid            26 2  0
    28 8n each reading: uptime stamp u32 (30 bits), t10 i16, h10 i16
    28+8n 2  Fletcher-16 of all that

A batch that does not check out (a torn write, flash gone bad) is skipped, never
replayed: the reader looks for the next batch that does, and the readings it
cannot account for are counted in node.dropped. A full spool drops its oldest
segment, counted too. No CRC32: an ESP8266's binascii has none; Fletcher-16 in
small ints allocates nothing.
"""
import os
import struct

from micropython import const

_DIR = "spool"
_POS = "spool/pos"
_MAGIC0 = const(0xFA)
_MAGIC1 = const(0x17)
_HEAD = const(28)
_SEGMENT = const(32)  # batches per segment file
BATCH = 16  # readings per batch: a power cut loses at most this many less one, in RAM


def _sum(buf, end):
    a = b = 0
    for i in range(end):
        a = (a + buf[i]) % 255
        b = (b + a) % 255
    return b << 8 | a


def _segments():
    try:
        return sorted(int(n, 16) for n in os.listdir(_DIR) if n != "pos" and not n.endswith(".tmp"))
    except OSError:  # no spool/ yet
        return []


def _path(seg):
    return "%s/%08x" % (_DIR, seg)


def _i16(buf, i):
    v = buf[i] | buf[i + 1] << 8
    return v - 0x10000 if v & 0x8000 else v


def _u32(buf, i):
    return buf[i] | buf[i + 1] << 8 | buf[i + 2] << 16 | buf[i + 3] << 24


class Spool:
    def __init__(self, node, capacity):
        """capacity: readings kept at most (the oldest segment goes first)."""
        self._node = node
        self._max_segments = max(2, -(-capacity // (BATCH * _SEGMENT)))
        self.buf = bytearray(_HEAD + 8 * BATCH + 2)  # the batch being read
        self.n = 0  # readings in buf still to be acknowledged, from self.first
        self.first = 0  # index in buf of the oldest of them
        self.boot = b""  # the loaded batch's boot id and clock
        self.synced = None
        self._orphan = False  # the loaded batch's segment was dropped (spool full)
        try:
            os.mkdir(_DIR)
        except OSError:
            pass
        self._segs = _segments()
        self._seg = self._off = 0  # read position
        try:
            with open(_POS) as f:
                self._seg, self._off = (int(x) for x in f.read().split())
        except (OSError, ValueError):  # none yet, or lost: from the start (duplicates, not loss)
            pass
        # Each boot writes a segment of its own: a batch torn by a power cut ends
        # its segment, and nothing is ever appended after it.
        self._write_seg = (self._segs[-1] + 1) if self._segs else 0
        self._batches = 0  # in the write segment
        self.count = 0  # readings on flash not yet acknowledged
        for seg in self._segs:
            if seg >= self._seg:
                self.count += self._readings(seg, self._off if seg == self._seg else 0)

    def __len__(self):
        return self.count

    def _readings(self, seg, at):
        """Readings the headers of seg claim from offset at on (checksums unread)."""
        total = 0
        try:
            with open(_path(seg), "rb") as f:
                data = f.read()
        except OSError:
            return 0
        while at + _HEAD <= len(data):
            n = data[at + 2]
            if data[at] == _MAGIC0 and data[at + 1] == _MAGIC1 and n <= BATCH:
                total += n
                at += _HEAD + 8 * n + 2
            else:
                at += 1
        return total

    def write(self, boot, seq, synced, stamps, tenths, start, n, size):
        """Append n readings as one batch: seqs seq.., fields from the backlog's
        ring arrays (stamps, tenths; slots start.. mod size); boot: the boot id as
        bytes; synced: the node's (stamp, utc s, ms) or None. Blocks the loop for
        the write (a few ms on a board's flash)."""
        b = bytearray(len(self.buf))  # a batch per BATCH readings: not per reading
        c = synced or (0, 0, 0)
        struct.pack_into("<BBBB8sIIIHH", b, 0, _MAGIC0, _MAGIC1, n, 1 if synced else 0, boot, seq, c[0], c[1], c[2],
                         0)
        at = _HEAD
        for k in range(n):
            i = (start + k) % size
            s, t, h = stamps[i], tenths[2 * i] & 0xFFFF, tenths[2 * i + 1] & 0xFFFF
            b[at], b[at + 1], b[at + 2], b[at + 3] = s & 0xFF, s >> 8 & 0xFF, s >> 16 & 0xFF, s >> 24 & 0xFF
            b[at + 4], b[at + 5], b[at + 6], b[at + 7] = t & 0xFF, t >> 8, h & 0xFF, h >> 8
            at += 8
        c = _sum(b, at)
        b[at], b[at + 1] = c & 0xFF, c >> 8
        if self._batches >= _SEGMENT:
            self._write_seg += 1
            self._batches = 0
        if not self._segs or self._segs[-1] != self._write_seg:
            self._segs.append(self._write_seg)
            while len(self._segs) > self._max_segments:
                self._drop_oldest()
        with open(_path(self._write_seg), "ab") as f:
            f.write(memoryview(b)[:at + 2])
        self._batches += 1
        self.count += n

    def _drop_oldest(self):
        seg = self._segs.pop(0)
        reading = seg == self._seg
        lost = self._readings(seg, self._off if reading else 0)
        self._remove(seg)
        if reading:
            if self.n:  # the loaded batch is in RAM and still goes out
                lost -= self.buf[2]
                self._orphan = True
            self._seg, self._off = self._segs[0], 0
            self._save()
        self._node.dropped += lost
        self.count -= lost

    def load(self):
        """Read the oldest batch not yet acknowledged into buf; its readings
        available: self.n (0: the spool is empty)."""
        b = self.buf
        while self._segs:
            seg = self._segs[0]
            if seg < self._seg:  # acknowledged whole before a reboot
                self._segs.pop(0)
                self._remove(seg)
                continue
            if seg > self._seg:
                self._seg, self._off = seg, 0
            try:
                with open(_path(seg), "rb") as f:
                    f.seek(self._off)
                    got = f.readinto(b)
            except OSError:
                got = 0
            if not got:  # the end of the segment
                if seg == self._write_seg:
                    return 0  # all that was written has been read: more may come
                self._segs.pop(0)
                self._remove(seg)
                self._seg, self._off = (self._segs[0] if self._segs else self._write_seg), 0
                self._save()
                continue
            end = _HEAD + 8 * b[2]
            if got >= _HEAD + 2 and b[0] == _MAGIC0 and b[1] == _MAGIC1 and 0 < b[2] <= BATCH and got >= end + 2 \
                    and _sum(b, end) == b[end] | b[end + 1] << 8:
                self.n, self.first = b[2], 0
                self.boot = bytes(b[4:12])
                self.synced = (_u32(b, 16), _u32(b, 20), b[24] | b[25] << 8) if b[3] & 1 else None
                return self.n
            self._skip(got)
        return 0

    def _skip(self, got):
        """Move the read position past a batch that does not check out (torn by a
        power cut, or garbled) to the next magic; the readings its header claims
        are counted as dropped."""
        b = self.buf
        lost = b[2] if b[0] == _MAGIC0 and b[1] == _MAGIC1 and b[2] <= BATCH else 0
        for i in range(1, got - 1):
            if b[i] == _MAGIC0 and b[i + 1] == _MAGIC1:
                self._off += i
                break
        else:
            self._off += max(1, got - 1)
        self._node.dropped += lost
        self.count = max(0, self.count - lost)

    def _remove(self, seg):
        try:
            os.remove(_path(seg))
        except OSError:
            pass

    def reading(self, i):
        """(seq, stamp, t10, h10) of the i-th oldest unacknowledged reading of the
        loaded batch; its boot and clock are self.boot, self.synced."""
        b, k = self.buf, self.first + i
        at = _HEAD + 8 * k
        return _u32(b, 12) + k, _u32(b, at), _i16(b, at + 4), _i16(b, at + 6)

    def done(self, n):
        """The n oldest loaded readings are acknowledged; the batch, once all are,
        is passed on disk (the position saved: a reboot does not send it again)."""
        self.first += n
        self.n -= n
        self.count -= n
        if not self.n:
            if self._orphan:
                self._orphan = False
            else:
                self._off += _HEAD + 8 * self.buf[2] + 2
            self._save()

    def _save(self):
        tmp = _POS + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d %d" % (self._seg, self._off))
        os.rename(tmp, _POS)  # littlefs: atomic; FAT: the old one removed first
