"""Where things are, for running app/ off the board (CPython and unix port)."""
import hashlib
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIM = os.path.join(ROOT, "sim")  # host tooling, and the runners the interpreters start
BOARD = os.path.join(SIM, "board")  # the simulated board: machine, network, dht, simboard
LIB = os.path.join(ROOT, "lib")  # the real mqtt_as / primitives (git-ignored; lib/README.md)
STANDIN = os.path.join(SIM, "standin")
# microdot.py: the provisioning portal's web server (app/portal.py), loaded only there.
LIB_FILES = ("mqtt_as/__init__.py", "primitives/__init__.py", "primitives/ringbuf_queue.py", "microdot.py")



def cache_dir():
    """The one cache of upstream sources and builds, outside the repository (sim/upstream.py)."""
    return os.environ.get("FIREANT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "fireant")


def pins():
    """[(url, commit)] of the libraries, from package.json."""
    with open(os.path.join(ROOT, "package.json")) as f:
        return [tuple(d) for d in json.load(f)["deps"]]


def cached_lib():
    """The cache's copy of the libraries at the pinned commits (it may not exist)."""
    key = hashlib.sha256(" ".join("%s@%s" % p for p in pins()).encode()).hexdigest()[:16]
    return os.path.join(cache_dir(), "lib", key)


def lib_dir():
    """Where the real mqtt_as and primitives are: lib/ when it has them, else the
    cache's copy at the pinned commits; None when neither does."""
    for d in (LIB, cached_lib()):
        if all(os.path.exists(os.path.join(d, rel)) for rel in LIB_FILES):
            return d
    return None


def micropypath():
    """Board modules first, then the real libraries, then the stand-ins they replace."""
    return ":".join((BOARD, lib_dir() or LIB, ROOT, STANDIN, ".frozen"))


def use_sim_cpython():
    """Put the sim board and stand-ins on sys.path for CPython (never lib/: the real
    libraries need MicroPython)."""
    for p in reversed((BOARD, ROOT, STANDIN)):
        if p not in sys.path:
            sys.path.insert(0, p)
    import hostpy  # noqa: F401  (time.ticks_ms & co.)
