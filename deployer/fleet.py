"""Several boards in one command (deploy.py --port A --port B, or --all): each
updated by update.update() in a thread of its own, with its own mpremote session,
its output prefixed with its port; one board failing stops only that board. Ends
with a summary line per board: port, board, layout, files written, ok or the
one-line reason it failed."""
import sys
import threading

from deployer import Fail, validate_config, warn_config
from deployer.board import lost_board, usb_ports
from deployer.deps import pins
from deployer.output import PerThread, Prefixed, to
from deployer.update import update


def several(args):
    """Whether deploy.py's options name more than one board."""
    return args.all or len(args.port or ()) > 1


def cmd_fleet(args):
    cfg = validate_config(args.config, args.secrets)
    warn_config(cfg)
    deps = pins()
    ports = list(dict.fromkeys(args.port or ()))  # in the order given, each once
    if args.all:
        ports += [p for p in usb_ports() if p not in ports]
        if not ports:
            raise Fail("--all: no board found: plug them in with USB data cables (some cables only charge), "
                       "or name their ports with --port")
    print("%s %d boards in parallel: %s" % ("Dry run on" if args.dry_run else "Deploying to", len(ports),
                                            ", ".join(ports)), flush=True)
    real, lock = sys.stdout, threading.Lock()
    results = {port: {} for port in ports}
    threads = [threading.Thread(target=_one, args=(args, port, deps, results[port], Prefixed(real, port + ": ", lock)),
                                name="deploy " + port, daemon=True) for port in ports]
    sys.stdout = PerThread(real)
    try:
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.5)  # a timeout, so that Ctrl-C reaches this thread
    finally:
        sys.stdout = real
    width = max(len(p) for p in ports)
    print("Summary:")
    for port in ports:
        print(summary(port, results[port], args.dry_run, width))
    failed = [p for p in ports if not results[p].get("ok")]
    if failed:
        raise Fail("%d of %d boards failed (%s): see the summary above; run again for those (only what is missing "
                   "is sent)" % (len(failed), len(ports), ", ".join(failed)))


def _one(args, port, deps, result, out):
    import serial
    from mpremote.transport import TransportError

    with to(out):
        try:
            update(args, port, deps, result, follow=args.seconds is not None)
            result["ok"] = True
        except Fail as e:
            result["error"] = str(e)
        except (serial.SerialException, TransportError) as e:
            result["error"] = lost_board(e)
        except Exception as e:  # a bug on one board's path must not stop the others: its summary names it
            result["error"] = "%s: %s" % (type(e).__name__, (str(e).splitlines() or [""])[0])
        if "error" in result:
            print("deploy.py: %s" % result["error"])
        out.close_line()


def summary(port, r, dry_run, width=0):
    """One line: port, board, layout, files written, ok or error: why."""
    p = r.get("plan")
    if p is None:
        written = "-"
    elif dry_run:
        written = "would write %d files%s" % (len(p["upload"]), " and the ROMFS image" if p.get("write_image") else "")
    else:
        written = "%d files written%s" % (r.get("written", 0), " and the ROMFS image" if r.get("image") else "")
    return "%-*s  %-16s  %-6s  %-34s  %s" % (width, port, r.get("board", "-"), r.get("layout", "-"), written,
                                            "ok" if r.get("ok") else "error: %s" % r.get("error", "?"))
