"""The benchmark's machinery on one short scenario (the benchmark itself is not a
test: python -m bench prints figures and asserts nothing)."""
import json

import bench
from bench import metrics


def test_bench_reports_every_figure_for_both_nodes():
    results = bench.run(["wrong_credentials"], short=True)
    assert list(results) == ["wrong_credentials"]
    entry = json.loads(json.dumps(results))["wrong_credentials"]  # what --json prints
    assert entry["settled"]
    for key in metrics.FIGURES:
        assert key in entry and key in entry["fireant"] and key in entry["blocking"] and key in entry["ratio"]
    for side in ("fireant", "blocking"):
        figs = entry[side]
        assert figs["readings"] > 0
        for key in ("missed", "lost", "duplicates"):
            assert isinstance(figs[key], int) and figs[key] >= 0
        for key in ("max_gap_ratio", "recovery_s", "p50_ms", "p99_ms"):
            assert isinstance(figs[key], float) and figs[key] >= 0
    assert entry["fireant"]["in_order"]
    assert entry["max_gap_ratio"] == entry["fireant"]["max_gap_ratio"]
    # Refused at boot, the blocking node takes no reading until it is let in;
    # fireant senses throughout. The margin is over a second.
    assert entry["fireant"]["max_gap_ratio"] < entry["blocking"]["max_gap_ratio"]
    assert entry["blocking"]["missed"] > 0
    assert entry["ratio"]["max_gap_ratio"] < 1


def test_figures_from_a_known_record():
    # Readings every 1 s from t=0, seq 3 never arrives, seq 4 arrives twice, the
    # sensor is dead over [5.5, 7.5): seq 6 at t=5, seq 7 at t=8.
    times = {1: 0, 2: 1, 4: 3, 5: 4, 6: 5, 7: 8}
    arrivals = [(1, 0.01), (2, 1.01), (4, 3.5), (4, 3.6), (5, 4.01), (6, 5.01), (7, 8.02)]
    readings = [{"seq": s, "t": times[s], "_at": at} for s, at in arrivals]
    f = metrics.figures(readings, 1.0, 0.0, lambda r: r["t"], clear_s=3.2, sensor_faults=[(5.5, 7.5)])
    assert f["lost"] == 1 and f["duplicates"] == 1 and f["in_order"]
    assert f["missed"] == 0  # seq 3 filled t=2; t=6 and t=7 fell in the sensor fault
    assert abs(f["max_gap_ratio"] - 1.0) < 1e-9  # 2 -> 4 is not a sampler gap; 5 -> 8 is credited 2 slots
    assert abs(f["recovery_s"] - 0.3) < 1e-9


def test_esp8266_model_summary_and_section_from_a_known_record():
    # The figures of one measurement (bench.esp8266.measure runs the model; this
    # checks the arithmetic and the table, not the model).
    from bench import esp8266

    variants = {name: {"smallest_heap_k": k, "ok_at_tier_heap": True, "heap_peak_bytes": 1000 * k,
                       "heap_steady_bytes": 900 * k, "heap_after_stop_bytes": 800 * k}
                for name, k in (("firmware_romfs", 32), ("firmware_frozen", 22), ("bare_romfs", 18),
                                ("bare_frozen", 14))}
    variants["bare_frozen"]["smallest_heap_k"] = None  # not found under the ceiling
    s = esp8266.summary(variants, "32K")
    assert s["smallest_heap_k"] == {"firmware_romfs": 32, "firmware_frozen": 22, "bare_romfs": 18, "bare_frozen": None}
    assert s["ratio_romfs"] == 1.78 and s["ratio_frozen"] is None
    assert s["margin_k"] == s["margin_romfs_k"] == 0 and s["margin_frozen_k"] == 10
    entry = dict(s, title="t", scenario="sc", tier_heap="32K", goal_ratio=1.4)
    text = esp8266.section(entry)
    assert "firmware_romfs" in text and "32K" in text and "ROMFS 1.78, frozen -" in text
    assert esp8266.section({"error": "no model"}) == "ESP8266 model: not measured: no model"


def test_esp8266_model_tls_figures_from_a_known_record():
    from bench import esp8266

    variants = {name: {"smallest_heap_k": k, "ok_at_tier_heap": k <= 33}
                for name, k in (("firmware_romfs", 31), ("firmware_frozen", 21), ("bare_romfs", 18),
                                ("bare_frozen", 14), ("bare_romfs_tls", 30), ("bare_frozen_tls", 28))}
    s = esp8266.summary(variants, "33K")
    assert s["smallest_heap_k"]["bare_romfs_tls"] == 30 and s["margin_k"] == 2
    assert "tls_ratio_romfs" not in s  # the firmware does not run TLS on an ESP8266
    text = esp8266.section(dict(s, title="t", scenario="sc", tier_heap="33K", goal_ratio=1.4))
    assert "bare_frozen_tls" in text and "refused on an ESP8266 by config.py" in text
    # Without TLS entries (an older record) nothing TLS is shown.
    plain = {k: v for k, v in variants.items() if not k.endswith("_tls")}
    assert "tls" not in esp8266.section(dict(esp8266.summary(plain, "33K"), title="t", scenario="sc",
                                              tier_heap="33K", goal_ratio=1.4)).lower()


def test_features_section_from_a_known_record():
    from bench import features

    def v(peak, steady, answers, configs):
        return {"heap_peak_bytes": peak, "heap_steady_bytes": steady, "answers": answers,
                "discovery_messages": configs, "ok": True,
                "heap_peak_added_bytes": peak - 85000, "heap_steady_added_bytes": steady - 80000}

    e = {"title": features.TITLE,
         "unix_port": {"off": v(85000, 80000, 0, 0), "commands": v(88000, 82500, 2, 0),
                       "discovery": v(91500, 83500, 0, 20), "both": v(92000, 84000, 2, 20)},
         "esp8266_model": {"off": {"smallest_heap_k": 31}, "refused": "commands and discovery: refused"}}
    text = features.section(e)
    assert "commands     88000 ( +3000)   82500 ( +2500)  2  0" in text
    assert "both         92000 ( +7000)   84000 ( +4000)  2  20" in text
    assert "defaults (both off): 31 KB" in text and "refused" in text
    assert "not measured: boom" in features.section({"error": "boom"})


def test_filters_row_measures_the_modules_heap_and_no_allocation_per_reading():
    results = bench.run([bench.FILTERS])
    e = json.loads(json.dumps(results))[bench.FILTERS]
    unix = e["unix_port"]
    assert 0 < unix["module_bytes"] < 8000 and 0 < unix["instance_bytes"] < 2000
    assert unix["allocated_per_1000_readings"] == 0  # the sampler's path allocates nothing per reading
    text = bench.module_section(results, bench.FILTERS)
    assert "unix port" in text and "import %d B" % unix["module_bytes"] in text
    model = e["esp8266_model"]
    if "error" not in model:  # where the model is built: the board's figures, smaller
        assert model["allocated_per_1000_readings"] == 0 and model["total_bytes"] < unix["total_bytes"]


def test_clock_section_from_a_known_record():
    from bench import clock

    row = {"steady_bytes": 29824, "peak_bytes": 30224, "synced": True, "added_steady_bytes": 816,
           "added_peak_bytes": 816}
    text = clock.section({"esp8266_model": {"clock": row}})
    assert "esp8266_model" in text and "steady  29824 ( +816)" in text and "synced" in text
    assert "not measured: no lib" in clock.section({"error": "no lib"})
