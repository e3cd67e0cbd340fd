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
recov_s  fault cleared -> first held-back reading at the subscriber
drain/s  held-back readings delivered per second after recovery
p50/p99  sample -> arrival at the subscriber, ms
ratio    fireant / blocking ("-": no quotient: a side has no figure, or blocking's is 0)"""


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench", description=bench.__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object keyed by scenario")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these scenarios")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--log", help="write the nodes' log here (default: a temporary file)")
    args = ap.parse_args(argv)
    if args.list:
        for name, sc in bench.SCENARIOS.items():
            print("%-18s %s" % (name, sc.title))
        return 0
    t0 = time.monotonic()
    err = sys.stderr
    results = bench.run(args.only, log_path=args.log, progress=lambda m: print(m, file=err, flush=True))
    if args.json:
        print(json.dumps(results, indent=1, sort_keys=True, default=str))
        return 0
    print(bench.table(results))
    print()
    print(LEGEND)
    print()
    print(bench.notes(results))
    print()
    print("ran %d scenarios in %.0f s; nodes' log: %s" % (len(results), time.monotonic() - t0,
                                                         next(iter(results.values()))["log"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
