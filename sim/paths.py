"""Module search paths for running app/ off the board (CPython and unix port)."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIM = os.path.join(ROOT, "sim")
LIB = os.path.join(ROOT, "lib")  # real mqtt_as / primitives, when deploy.py deps put them there
STANDIN = os.path.join(SIM, "standin")

# Board modules first, then the real libraries, then the stand-ins they replace.
ORDER = (SIM, LIB, ROOT, STANDIN)


def real_libs():
    return os.path.isdir(os.path.join(LIB, "mqtt_as")) and os.path.isdir(os.path.join(LIB, "primitives"))


def micropypath():
    return ":".join(ORDER + (".frozen",))


def use_sim_cpython():
    """Put the sim board and stand-ins on sys.path for CPython (never lib/: the real
    libraries need MicroPython)."""
    for p in reversed((SIM, ROOT, STANDIN)):
        if p not in sys.path:
            sys.path.insert(0, p)
    import hostpy  # noqa: F401  (time.ticks_ms & co.)
