"""Unit scenarios as MicroPython's own tests are written: a script in tests/mpy/
and its expected output beside it (name.py.exp), run under the unix port and
under CPython, which must both print exactly that.

To add one: write tests/mpy/name.py printing what it checks (sorted, never a
dict's own order: MicroPython's differs), run it under both interpreters, read
the output, and save it as name.py.exp when it is right.
"""
import glob
import os
import subprocess
import sys

import pytest

from sim import paths, unixport

SCRIPTS = sorted(glob.glob(os.path.join(paths.ROOT, "tests", "mpy", "*.py")))
# CPython gets the board's time.ticks_ms & co. from sim/board/hostpy.py first.
_CPYTHON_PRELUDE = ("import sys; sys.path[:0] = %r; import hostpy; "
                    "p = sys.argv[1]; exec(compile(open(p).read(), p, 'exec'), {'__name__': '__main__'})"
                    % [paths.BOARD, paths.ROOT, paths.STANDIN])


def _run(cmd, env=None):
    p = subprocess.run(cmd, cwd=paths.ROOT, env=env, capture_output=True, text=True, timeout=60)
    return p.stdout + p.stderr


def _expected(script):
    with open(script + ".exp") as f:
        return f.read()


@pytest.mark.parametrize("script", SCRIPTS, ids=[os.path.basename(s) for s in SCRIPTS])
def test_micropython_prints_the_expected_output(script):
    env = dict(os.environ, MICROPYPATH=":".join((paths.BOARD, paths.ROOT, paths.STANDIN, ".frozen")))
    assert _run([unixport.micropython_exe(), script], env) == _expected(script)


@pytest.mark.parametrize("script", SCRIPTS, ids=[os.path.basename(s) for s in SCRIPTS])
def test_cpython_prints_the_same(script):
    assert _run([sys.executable, "-c", _CPYTHON_PRELUDE, script]) == _expected(script)


def test_there_are_scripts():
    assert len(SCRIPTS) >= 3 and all(os.path.exists(s + ".exp") for s in SCRIPTS)
