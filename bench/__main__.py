"""python -m bench [--json] [--only NAME ...] [--list]"""
import argparse
import json
import sys
import time

import bench

LEGEND = """\
max_gap  largest gap between consecutive readings' sample times / interval (1.00 = on time)
missed   sampling slots with no reading (the node was not sensing)
lost     readings taken (seq) that never reached the subscriber
dup      QoS 1 redeliveries (same seq again)
recov_s  fault cleared -> first reading at the subscriber (fireant's: the oldest it held back)
drain/s  held-back readings delivered per second once through (fireant: bounded by mqtt_as, see docs)
p50/p99  sample -> arrival at the subscriber, ms, of every reading after a healthy boot (2 s
         warm-up): so under a fault they include the wait through it; healthy = steady state
ratio    fireant / blocking ("-": no quotient: a side has no figure, or blocking's is 0)"""


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench", description=bench.__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object keyed by scenario")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these scenarios")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--fleet-n", type=int, default=bench.fleet.DEFAULT_N, metavar="N",
                    help="nodes in the fleet section (--only fleet; default %(default)s)")
    ap.add_argument("--log", help="write the nodes' log here (default: a temporary file)")
    args = ap.parse_args(argv)
    if args.list:
        for name, sc in bench.SCENARIOS.items():
            print("%-18s %s" % (name, sc.title))
        print("%-18s %s" % (bench.UNIX_PORT, "fireant alone under the MicroPython unix port: heap"))
        print("%-18s %s" % (bench.FLEET, bench.fleet.TITLE + " (not run by default)"))
        print("%-18s %s" % (bench.ESP8266_MODEL, "fireant and a bare mqtt_as client on the ESP8266 RAM model: "
                                                 "smallest heaps"))
        for name, module in bench.MODULES.items():
            print("%-18s %s" % (name, module.TITLE))
        return 0
    t0 = time.monotonic()
    err = sys.stderr
    results = bench.run(args.only, log_path=args.log, progress=lambda m: print(m, file=err, flush=True),
                        fleet_n=args.fleet_n)
    if args.json:
        print(json.dumps(results, indent=1, sort_keys=True, default=str))
        return 0
    if any(name not in bench.HEAP_ROWS for name in results):
        print(bench.table(results))
        print()
        print(LEGEND)
        print()
        print(bench.notes(results))
    if bench.UNIX_PORT in results:
        print()
        print(bench.unix_port_section(results))
    if bench.ESP8266_MODEL in results:
        print()
        print(bench.esp8266_section(results))
    for name in bench.MODULES:
        if name in results:
            print()
            print(bench.module_section(results, name))
    if bench.FLEET in results:
        print()
        print(bench.fleet.section(results[bench.FLEET]))
    print()
    print("ran %d scenario(s) in %.0f s; nodes' log: %s" % (len(results), time.monotonic() - t0,
                                                         next(iter(results.values())).get("log")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
