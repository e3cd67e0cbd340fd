"""Issue 12, point 1: the flash spool (app/spool.py) behind the RAM backlog.

Unit tests of the spool's file format under CPython (batches appended, read back
in order, the read position kept across a "reboot" — a new Spool on the same
directory —, a torn or garbled batch skipped and counted, a full spool dropping
its oldest segment, counted), the firmware in-process through an outage longer
than its RAM queue, and the firmware on the MicroPython unix port across real
restarts of the process on the same directory: a clean stop (Ctrl-C keeps RAM's
readings on flash), a power cut (SIGKILL: at most what RAM held is lost), and
power cuts at random instants while batches are being written.
"""
import json
import os
import random

import pytest

from sim import paths, unixport
from sim.firmware import running, sim_config, until

from app import spool as spool_mod  # noqa: E402  (sim.firmware put the sim board on the path)
from app.node import Node  # noqa: E402
from app.spool import BATCH, Spool  # noqa: E402

from array import array


def _rings(size):
    return array("i", bytearray(4 * size)), array("h", bytearray(4 * size))


def _write(sp, node, seq, n, size=64, t0=200):
    """n readings seq.. as one batch, from ring arrays as the backlog holds them."""
    stamps, tenths = _rings(size)
    for k in range(n):
        i = (seq + k) % size
        stamps[i], tenths[2 * i], tenths[2 * i + 1] = 1000 * (seq + k), t0 + k, 450 - k
    sp.write(node.boot.encode(), seq, None, stamps, tenths, seq % size, n, size)


def _drain(sp, take=None):
    """Every reading the spool hands out, acknowledged batch by batch: [(seq, stamp, t10, h10)]."""
    out = []
    while sp.load():
        n = sp.n if take is None else min(take, sp.n)
        out += [sp.reading(i) for i in range(n)]
        sp.done(n)
        if take is not None:
            return out
    return out


@pytest.fixture
def flash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_batches_come_back_in_order_and_are_not_sent_twice_after_a_reboot(flash):
    node = Node("t")
    sp = Spool(node, 10000)
    for b in range(5):
        _write(sp, node, 1 + b * BATCH, BATCH)
    assert len(sp) == 5 * BATCH
    first = _drain(sp, take=BATCH)  # one batch acknowledged, then a reboot
    assert [r[0] for r in first] == list(range(1, BATCH + 1))
    assert first[0] == (1, 1000, 200, 450)
    again = Spool(Node("t"), 10000)
    assert len(again) == 4 * BATCH
    rest = _drain(again)
    assert [r[0] for r in rest] == list(range(BATCH + 1, 5 * BATCH + 1))
    assert again.boot == node.boot.encode() and again.synced is None
    assert len(Spool(Node("t"), 10000)) == 0  # acknowledged: nothing for the next boot


def test_a_torn_batch_is_skipped_counted_and_never_replayed(flash):
    node = Node("t")
    sp = Spool(node, 10000)
    for b in range(3):
        _write(sp, node, 1 + b * BATCH, BATCH)
    seg = os.path.join("spool", sorted(n for n in os.listdir("spool") if n != "pos")[-1])
    size = os.path.getsize(seg)
    with open(seg, "r+b") as f:  # a power cut in the middle of the third batch
        f.truncate(size - 40)
    booted = Node("t")
    sp = Spool(booted, 10000)
    _write(sp, booted, 100, BATCH)  # the next boot goes on writing, in a segment of its own
    seqs = [r[0] for r in _drain(sp)]
    assert seqs == list(range(1, 2 * BATCH + 1)) + list(range(100, 100 + BATCH))
    assert booted.dropped == BATCH  # the torn batch's readings, counted


def test_garbled_bytes_are_skipped_to_the_next_good_batch(flash):
    node = Node("t")
    sp = Spool(node, 10000)
    for b in range(3):
        _write(sp, node, 1 + b * BATCH, BATCH)
    seg = os.path.join("spool", sorted(n for n in os.listdir("spool") if n != "pos")[0])
    with open(seg, "r+b") as f:  # flash gone bad inside the second batch's readings
        f.seek(_batch_len() + 40)
        f.write(b"\x00\xff\x13")
    booted = Node("t")
    seqs = [r[0] for r in _drain(Spool(booted, 10000))]
    assert seqs == list(range(1, BATCH + 1)) + list(range(2 * BATCH + 1, 3 * BATCH + 1))
    assert booted.dropped == BATCH


def _batch_len(n=BATCH):
    return 28 + 8 * n + 2


def test_a_full_spool_drops_its_oldest_segment_and_counts_it(flash):
    node = Node("t")
    per_segment = BATCH * spool_mod._SEGMENT
    sp = Spool(node, 2 * per_segment)  # two segments at most
    for b in range(3 * spool_mod._SEGMENT):
        _write(sp, node, 1 + b * BATCH, BATCH)
    assert node.dropped == per_segment and len(sp) == 2 * per_segment
    seqs = [r[0] for r in _drain(sp)]
    assert seqs == list(range(per_segment + 1, 3 * per_segment + 1))


def test_bytes_written_per_reading(flash):
    """The wear figure docs/spool.md states: one batch of BATCH readings per append."""
    node = Node("t")
    sp = Spool(node, 10000)
    for b in range(10):
        _write(sp, node, 1 + b * BATCH, BATCH)
    written = sum(os.path.getsize(os.path.join("spool", n)) for n in os.listdir("spool"))
    assert written == 10 * _batch_len() and written / (10 * BATCH) < 10.5


# -- the firmware, in-process (CPython, the stand-in mqtt_as over Mosquitto)


async def test_an_outage_longer_than_the_ram_queue_loses_nothing(flash, broker, observer):
    import simboard

    raw = sim_config(broker, sensor={"interval_s": 0.1}, queue={"size": 20}, spool={"size": 5000})
    async with running(raw) as fw:
        await until(lambda: len(observer.readings()) >= 3)
        simboard.set(link=False)
        await until(lambda: not fw.node.broker_up)
        await until(lambda: fw.backlog.spool is not None and len(fw.backlog.spool) >= 3 * BATCH)
        simboard.set(link=True)
        await until(lambda: fw.node.broker_up)
        await until(lambda: len(fw.backlog) <= 1 and observer.readings()
                    and observer.readings()[-1]["seq"] >= fw.node.published, timeout=60)
    seqs = [r["seq"] for r in observer.readings()]
    first = sorted(set(seqs), key=seqs.index)
    assert first == list(range(1, len(first) + 1))  # every reading, in order (repeats aside)
    assert fw.node.dropped == 0 and len(first) >= 4 * BATCH
    assert all(r["boot"] == fw.node.boot for r in observer.readings())


# -- the firmware on the MicroPython unix port, restarted on the same directory

INTERVAL_S = 0.1
QUEUE = 32


def _libs(request, libs):
    if libs == "real" and not paths.lib_dir():
        pytest.skip("the real mqtt_as is neither in lib/ nor in the cache (./fireant upstream --from DIR)")
    return request.getfixturevalue("broker") if libs == "real" else None


def _config(broker):
    return sim_config(broker, sensor={"interval_s": INTERVAL_S}, queue={"size": QUEUE}, spool={"size": 20000})


HEAP = {"standin": "128K", "real": "140K"}


def _boots(readings):
    """{boot: [seq, ...]} in arrival order."""
    out = {}
    for r in readings:
        out.setdefault(r["boot"], []).append(r["seq"])
    return out


def _unique(seqs):
    return sorted(set(seqs), key=seqs.index)


@pytest.mark.parametrize("libs", ["standin", "real"])
@pytest.mark.parametrize("stop", ["ctrl-c", "power cut"])
def test_readings_taken_offline_arrive_after_a_restart(libs, stop, request, tmp_path):
    """Offline from power-on, then stopped: Ctrl-C keeps every reading on flash;
    a power cut (SIGKILL) loses what RAM held, at most BATCH - 1 + QUEUE's share
    not yet written. The next start, online, sends them first, with their boot id."""
    broker = _libs(request, libs)
    raw = _config(broker)
    first = unixport.run(raw, heapsize=HEAP[libs], build="mpy", libs=libs, broker=broker, seconds=5,
                         workdir=str(tmp_path), board={"link": False}, power_cut=stop == "power cut")
    assert not first.logged("Traceback"), first.output()
    taken = [ln for ln in first.lines if " sensor:" not in ln]
    assert os.listdir(tmp_path / "spool"), "\n".join(taken)
    second = unixport.run(raw, heapsize=HEAP[libs], build="mpy", libs=libs, broker=broker, seconds=4,
                          workdir=str(tmp_path), until=lambda r: len(_boots(r.readings())) >= 2, max_seconds=30)
    assert second.returncode == 0 and not second.logged("Traceback"), second.output()
    boots = _boots(second.readings())
    stats = json.loads(second.logged("app: stopped: ")[-1].split("app: stopped: ", 1)[1])
    old = [b for b in boots if b != stats["boot"]]
    assert len(old) == 1, boots
    seqs = _unique(boots[old[0]])
    assert seqs == list(range(1, len(seqs) + 1))  # from the first, in order, none missing
    arrived = list(boots)
    assert arrived.index(old[0]) < arrived.index(stats["boot"])  # the older boot's readings first
    if stop == "ctrl-c":
        kept = int(first.logged("readings kept on flash")[-1].split("] app: ")[1].split()[0])
        assert kept >= 1
        assert len(seqs) >= 40  # ~5 s at 0.1 s: all of them
        last_taken = json.loads(first.logged("app: stopped: ")[-1].split("app: stopped: ", 1)[1])["seq"]
        assert len(seqs) == last_taken
    else:
        assert len(seqs) % BATCH == 0 and len(seqs) >= 2 * BATCH  # whole batches: RAM's share is the loss


@pytest.mark.parametrize("libs", ["standin"])
def test_power_cuts_while_writing_never_replay_garbage(libs, request, tmp_path):
    """Five power cuts at random instants of offline runs (a batch every 1.6 s)
    (each long enough for two batches), then the last write cut in half on purpose: the start that comes online
    sends only whole, checked batches (each boot's seqs a run of whole batches
    from 1), counts the torn one, and never a reading that was not taken."""
    broker = _libs(request, libs)
    raw = _config(broker)
    rng = random.Random(12)
    for _ in range(5):
        r = unixport.run(raw, heapsize=HEAP[libs], build="mpy", libs=libs, broker=broker,
                         seconds=4 + rng.random() * 2, workdir=str(tmp_path), board={"link": False}, power_cut=True)
        assert not r.logged("Traceback"), r.output()
    segs = sorted(n for n in os.listdir(tmp_path / "spool") if n != "pos")
    last = tmp_path / "spool" / segs[-1]
    size = last.stat().st_size
    with open(last, "r+b") as f:  # the last write torn: half a batch on flash
        f.truncate(size - _batch_len() // 2)
    final = unixport.run(raw, heapsize=HEAP[libs], build="mpy", libs=libs, broker=broker, seconds=4,
                         workdir=str(tmp_path), until=lambda r: len(_boots(r.readings())) >= 6, max_seconds=40)
    assert final.returncode == 0 and not final.logged("Traceback"), final.output()
    boots = _boots(final.readings())
    stats = json.loads(final.logged("app: stopped: ")[-1].split("app: stopped: ", 1)[1])
    old = [b for b in boots if b != stats["boot"]]
    assert len(old) == 5, boots
    for b in old:
        seqs = _unique(boots[b])
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) % BATCH == 0, (b, seqs)
    assert stats["dropped"] == BATCH  # the torn batch, counted on the start that found it
    assert all(15 <= r["temperature_C"] <= 30 for r in final.readings())
