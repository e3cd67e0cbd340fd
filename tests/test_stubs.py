"""app/ against the board's API: mypy with the MicroPython stubs of each board.

CPython runs app/ in the other tests, so a CPython-only call (time.monotonic,
dataclasses, str methods MicroPython lacks) would pass them and fail on the board.
The stubs describe what the board's firmware has, stdlib included, so mypy
reports such a call as a missing attribute or module.

The stubs packages of different boards ship the same module names, so each is
installed into a directory of its own (once, with pip, inside the venv).
"""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUBS = {"esp8266": "micropython-esp8266-stubs==1.29.0.post1",
         "esp32": "micropython-esp32-stubs==1.29.0.post1"}

# Only the board's API is checked, not typing style: var-annotated asks for
# annotations; str-format and operator come from the stubs typing ticks_ms() as an
# opaque _TicksMs, which the app formats and masks as the int it is.
MYPY_INI = """\
[mypy]
python_version = 3.11
check_untyped_defs = True
disable_error_code = var-annotated, str-format, operator

[mypy-mqtt_as,mqtt_as.*,primitives,primitives.*,microdot]
# mip installs them on the board; they are not ours to check
ignore_missing_imports = True
"""


def stubs_dir(board):
    """The board's stubs, installed on first use into the venv."""
    d = os.path.join(sys.prefix, "fireant-stubs", board)
    if not os.path.exists(os.path.join(d, "machine.pyi")):
        p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", d, STUBS[board]],
                           capture_output=True, text=True)
        assert p.returncode == 0, "pip could not install %s:\n%s" % (STUBS[board], p.stderr)
    return d


def mypy(board, target, cwd, tmp_path):
    """mypy's findings in target (a path under cwd), with the board's stubs as
    the whole world: its stdlib replaces CPython's typeshed."""
    stubs = stubs_dir(board)
    ini = tmp_path / "mypy.ini"
    ini.write_text(MYPY_INI)
    env = dict(os.environ, MYPYPATH=stubs)
    p = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ini), "--custom-typeshed-dir", stubs,
                        "--no-incremental", "--cache-dir", str(tmp_path / "cache"), target],
                       cwd=cwd, env=env, capture_output=True, text=True)
    assert "checked" in p.stdout or "Success" in p.stdout, p.stdout + p.stderr  # mypy ran
    # The stubs' own complaints about themselves are not ours.
    return [line for line in p.stdout.splitlines() if line.startswith(target)]


@pytest.mark.parametrize("board", sorted(STUBS))
def test_app_uses_only_what_the_board_has(board, tmp_path):
    assert mypy(board, "app", ROOT, tmp_path) == []


@pytest.mark.parametrize("board", sorted(STUBS))
def test_the_check_catches_a_cpython_only_call(board, tmp_path):
    """Guards the guard: with the stubs in force, time.monotonic and dataclasses
    (CPython only) are reported, ticks_ms (the board's) is not."""
    pkg = tmp_path / "scratch"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "import time\n"
        "from dataclasses import dataclass\n\n\n"
        "def elapsed(t0):\n"
        "    return time.ticks_diff(time.ticks_ms(), t0), time.monotonic()\n")
    found = "\n".join(mypy(board, "scratch", str(tmp_path), tmp_path))
    assert 'Module has no attribute "monotonic"' in found, found
    assert '"dataclasses"' in found, found
    assert "ticks_ms" not in found and "ticks_diff" not in found, found
