"""The pinned libraries (package.json's "deps"): mip onto the board, with a marker
saying which pins are there, or into the host's lib/ through the unix port's mip."""
import json
import os
import shutil
import subprocess
import tempfile

from deployer import ROOT, Fail
from deployer.board import Board, one_port

PACKAGE = os.path.join(ROOT, "package.json")
DEPS_MARKER = "fireant-deps.json"  # in the board's lib dir: which pins are installed
DEPS_KB = 150  # flash the two libraries take as source, about


def pins():
    """[(url, version)] from package.json's deps."""
    with open(PACKAGE) as f:
        return [tuple(d) for d in json.load(f)["deps"]]


def dep_spec(url, version, index=None):
    """What mip is asked for. From an index (a mirror you serve) a package is
    named by the last part of its GitHub path: micropython-mqtt, primitives, microdot."""
    name = url.rstrip("/").rsplit("/", 1)[-1] if index else url
    if index and name.endswith(".py"):  # one module (microdot.py): the index names its package microdot
        name = name[:-3]
    return "%s@%s" % (name, version)


def install_deps(board, deps, marker, marker_data, index):
    for url, version in deps:
        board.mip(dep_spec(url, version, index), index)
    if marker:
        board.write(marker, marker_data)



_HOST_MIP = """import mip, sys
for spec in sys.argv[1:]:
    name, version = spec.rsplit('@', 1)
    mip.install(name, index=%r, target=%r, version=version, mpy=False)
"""


def host_deps(target, index=None):
    """Install the pinned libraries into target (lib/) through the unix port's mip:
    into a scratch dir first, so a failure leaves target as it was."""
    from sim.emulator import micropython_cmd

    scratch = tempfile.mkdtemp(prefix="fireant-lib-")
    try:
        specs = [dep_spec(u, v, index) for u, v in pins()]
        code = _HOST_MIP % (index or "https://micropython.org/pi/v2", scratch)
        p = subprocess.run(micropython_cmd() + ["-c", code] + specs, capture_output=True, text=True, timeout=300)
        print(p.stdout, end="")
        failed = p.returncode != 0 or "Package may be partially installed" in p.stdout
        if failed:
            last = (p.stderr.strip() or p.stdout.strip() or "no output").splitlines()[-1]
            raise Fail("mip (unix port) could not install the libraries: %s; the host needs to reach %s: check the "
                       "network, or serve the packages yourself and pass --index URL"
                       % (last, index or "GitHub (raw.githubusercontent.com)"))
        os.makedirs(target, exist_ok=True)
        for name in sorted(os.listdir(scratch)):
            dst = os.path.join(target, name)
            if os.path.isdir(dst):
                shutil.rmtree(dst)
            elif os.path.exists(dst):
                os.remove(dst)
            shutil.move(os.path.join(scratch, name), dst)
            print("Installed", os.path.relpath(dst))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def cmd_deps(args):
    if args.host:
        host_deps(args.target, args.index)
        return
    board = Board(one_port(args.port))
    try:
        info = board.info()
        lib = info["lib"][0] if info["lib"] else None
        deps = pins()
        install_deps(board, deps, lib and lib + "/" + DEPS_MARKER, json.dumps(deps).encode(), args.index)
    finally:
        board.close()

