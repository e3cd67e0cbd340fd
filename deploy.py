#!/usr/bin/env python3
"""fireant on a board in one command, and the tools around it (host only).

    python deploy.py              validate, put app/ and the libraries where the board runs
                                  them (a ROMFS image, frozen, or .mpy files: docs/boards.md),
                                  upload what changed, reset, then show its output (Ctrl-C)
    python deploy.py --dry-run    the plan only; nothing is written
    python deploy.py --port A --port B (or --all)
                                  several boards at once, in parallel, a summary line each
    python deploy.py sim          the firmware on a simulated board, readings as they arrive
    python deploy.py monitor      every node's availability, last reading and counters
                                  from the broker, as a live table
    python deploy.py deps         the pinned libraries onto the board (--host: into lib/)
    python deploy.py config       validate and push config.json and secrets.json only
    python deploy.py logs         follow the board's output

It drives the board through mpremote (its transport, mip and romfs deploy). Library versions are pinned in one place:
the "deps" of package.json. Every failure a user can fix ends in one line saying
what is wrong and what to do (see docs/deploy.md). The work is done by the
deployer package, a module per concern (deployer/__init__.py lists them).
"""
import argparse
import os
import sys

from deployer import ROOT, Fail
from deployer.board import cmd_logs, lost_board
from deployer.deps import cmd_deps
from deployer.fleet import cmd_fleet, several
from deployer.monitor import cmd_monitor
from deployer.simulate import cmd_sim
from deployer.update import LAYOUTS, cmd_config, cmd_deploy


def _board_options(p, suppress):
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    p.add_argument("--port", action="append", default=d(None),
                   help="the board's serial port (default: the one USB serial port); deploy: give it once per board "
                        "to update several at once")
    p.add_argument("--config", default=d(os.path.join(ROOT, "config.json")), help="settings (default config.json)")
    p.add_argument("--secrets", default=d(os.path.join(ROOT, "secrets.json")),
                   help="passwords merged over the settings (default secrets.json, git-ignored)")
    p.add_argument("--index", default=d(None),
                   help="install the libraries from this mip package index (a mirror you serve) instead of GitHub")
    p.add_argument("--seconds", type=float, default=d(None), help="stop following the output after this long")


def parser():
    ap = argparse.ArgumentParser(prog="deploy.py", description="\n\n".join(__doc__.split("\n\n")[:2]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Prerequisite: the board runs MicroPython (docs/deploy.md explains flashing).")
    _board_options(ap, False)
    ap.add_argument("--dry-run", action="store_true", help="print the plan; write nothing to the board")
    ap.add_argument("--all", action="store_true",
                    help="every board attached (each USB serial port) and those --port names, in parallel; with "
                         "several boards the output is not followed unless --seconds says how long")
    ap.add_argument("--layout", choices=LAYOUTS, default="auto",
                    help="where app/ and the libraries go: romfs (an image in the board's ROMFS partition), frozen "
                         "(already in the firmware: only main.py, boot.py and the settings are uploaded), files "
                         "(.mpy files on the filesystem); auto (default): frozen if the firmware has app, else romfs "
                         "where there is a ROMFS partition, else files, except on an ESP8266 (docs/boards.md)")
    ap.add_argument("--precompiled-libs", action="store_true",
                    help="files layout: compile the libraries on this computer (from --libs) instead of mip "
                         "installing their source; always on for an ESP8266, which cannot compile mqtt_as itself")
    ap.add_argument("--libs", help="where mqtt_as and primitives are on this computer, for the ROMFS image and "
                                   "--precompiled-libs (default: lib/, else the cache ./fireant upstream fills)")
    sub = ap.add_subparsers(dest="command", metavar="command")

    s = sub.add_parser("sim", help="run the firmware on the simulated board against a local Mosquitto")
    _board_options(s, True)
    s.add_argument("--interval", type=float, default=1.0, help="seconds between readings (default 1)")
    s.add_argument("--micropython", action="store_true", help="run under the MicroPython unix port")
    s.add_argument("--day-s", type=float, default=120, help="the sim sensor's day/night cycle, compressed into this "
                                                            "many seconds (default 120; 0: constant values)")
    s.add_argument("--noise", type=float, default=0.1, help="spread of each reading's noise in C (default 0.1)")
    s.add_argument("--seed", type=int, default=1, help="the noise's seed: the same seed, the same noise")
    s.add_argument("--broker", help="HOST[:PORT] of a broker to use (user and password from the config) "
                                    "instead of a throwaway local Mosquitto")

    s = sub.add_parser("monitor", help="every node's availability, last reading and counters, from the broker, as a "
                                       "live table (piped: the readings as lines, the table every --every s)")
    _board_options(s, True)
    s.add_argument("--host", help="broker (default mqtt.server)")
    s.add_argument("--broker-port", type=int, help="broker port (default mqtt.port, else 1883 / 8883 with TLS)")
    s.add_argument("--user", help="broker user (default mqtt.user)")
    s.add_argument("--password", help="broker password (default mqtt.password from secrets.json)")
    s.add_argument("--every", type=float, default=10,
                   help="not on a terminal: print the table every this many seconds when it changed (default 10)")

    s = sub.add_parser("deps", help="install the pinned libraries onto the board (--host: into lib/)")
    _board_options(s, True)
    s.add_argument("--host", action="store_true", help="into the host's lib/ with the unix port's mip")
    s.add_argument("--target", default=os.path.join(ROOT, "lib"), help="with --host: where (default lib/)")

    s = sub.add_parser("config", help="validate config.json + secrets.json and push them only")
    _board_options(s, True)

    s = sub.add_parser("logs", help="follow the board's output")
    _board_options(s, True)
    s.add_argument("--reset", action="store_true", help="soft-reset the board first")
    return ap


def deploy(args):
    (cmd_fleet if several(args) else cmd_deploy)(args)


COMMANDS = {None: deploy, "sim": cmd_sim, "monitor": cmd_monitor, "deps": cmd_deps, "config": cmd_config,
            "logs": cmd_logs}


def main(argv=None):
    args = parser().parse_args(argv)
    sys.path.insert(0, ROOT)
    try:
        import paho.mqtt.client  # noqa: F401  (sim, monitor)
        import serial
        from mpremote.transport import TransportError
    except ImportError as e:
        print("deploy.py: %s: pip install -r requirements-dev.txt, or run ./fireant deploy, which sets it up"
              % e, file=sys.stderr)
        return 2
    try:
        COMMANDS[args.command](args)
    except Fail as e:
        print("deploy.py: %s" % e, file=sys.stderr)
        return 2
    except (serial.SerialException, TransportError) as e:
        print("deploy.py: %s" % lost_board(e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deploy.py: interrupted; run again to finish (only what is missing is sent)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

