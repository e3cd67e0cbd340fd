"""Figures from what a subscriber saw: one node's readings, with arrival times.

All times are host monotonic seconds. A reading's sample time comes from its
uptime_ms (the node's ticks_ms, which on the sim board is the same clock), its
arrival time from the subscriber.
"""

WARMUP_S = 2.0
FIGURES = ("max_gap_ratio", "missed", "lost", "duplicates", "recovery_s", "drain_per_s", "p50_ms", "p99_ms")


def percentile(values, p):
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def _dead_slots(a, b, interval_s, windows):
    # Sampling slots on a's schedule that fell inside a sensor fault: no node
    # could have filled them, so a gap across a fault is credited with them.
    n, k = 0, 1
    while a + k * interval_s < b:
        t = a + k * interval_s
        if any(w0 <= t < w1 for w0, w1 in windows):
            n += 1
        k += 1
    return n


def figures(readings, interval_s, start_s, sample_time, clear_s=None, sensor_faults=(), warmup_s=WARMUP_S):
    """readings: decoded payloads in arrival order, each with "_at" (arrival);
    sample_time(r) gives its sample time; start_s is when the node was started;
    clear_s when the fault cleared (None for a healthy run); sensor_faults are
    (from, to) windows in which the sensor failed on purpose; warmup_s: 0 when
    the fault was there from boot (then the boot's latency is the fault's)."""
    first = {}
    for r in readings:
        first.setdefault(r["seq"], r)
    unique = list(first.values())
    arrival_seqs = [r["seq"] for r in unique]
    by_seq = sorted(unique, key=lambda r: r["seq"])
    samples = [sample_time(r) for r in by_seq]

    # Gaps are the sampler's: measured between consecutive seqs only (a lost
    # reading's sample time is unknown), and from start to seq 1.
    ratios, missed = [], 0
    prev_seq, prev_t = 0, start_s
    for r, t in zip(by_seq, samples):
        ratio = (t - prev_t) / interval_s - _dead_slots(prev_t, t, interval_s, sensor_faults)
        if prev_seq == 0:
            if r["seq"] == 1:  # every slot before the first reading was missed
                ratios.append(ratio)
                missed += int(ratio)
        else:
            if r["seq"] == prev_seq + 1:
                ratios.append(ratio)
            # Slots beyond the one that ends the gap and those the lost readings took.
            missed += max(0, int(round(ratio)) - 1 - (r["seq"] - prev_seq - 1))
        prev_seq, prev_t = r["seq"], t

    out = {
        "readings": len(unique),
        "max_gap_ratio": max(ratios) if ratios else None,
        "first_reading_s": samples[0] - start_s if samples else None,
        "missed": missed,
        "lost": (by_seq[-1]["seq"] - len(unique)) if unique else 0,
        "duplicates": len(readings) - len(unique),
        "in_order": arrival_seqs == sorted(arrival_seqs),
        "recovery_s": None,
        "drain_per_s": None,
        "backlog": None,
    }
    # Latency of every reading after a healthy boot, whose backlog drains at
    # mqtt_as's pace: from warmup_s after the node's first delivery.
    steady = min((r["_at"] for r in unique), default=0) + warmup_s if warmup_s else float("-inf")
    lat = [(r["_at"] - sample_time(r)) * 1000 for r in by_seq if sample_time(r) >= steady]
    out["p50_ms"] = percentile(lat, 50)
    out["p99_ms"] = percentile(lat, 99)

    if clear_s is not None:
        after = sorted((r["_at"], sample_time(r)) for r in unique if r["_at"] >= clear_s)
        if after:
            back = after[0][0]  # the first reading through once the fault cleared
            out["recovery_s"] = back - clear_s
            # The backlog: whatever was waiting when the node got through.
            backlog = [at for at, sampled in after if sampled < back]
            out["backlog"] = len(backlog)
            if len(backlog) >= 3 and backlog[-1] > backlog[0]:
                out["drain_per_s"] = (len(backlog) - 1) / (backlog[-1] - backlog[0])
    return out


def ratio(a, b):
    """fireant / blocking; None where there is no quotient (a missing figure, or
    the blocking node's is 0)."""
    if a is None or b is None or isinstance(a, bool) or b == 0:
        return None
    return a / b
