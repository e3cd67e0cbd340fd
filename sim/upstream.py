"""The upstream sources fireant is checked against, in one cache outside the
repository (host only; nothing here is ever committed).

    ./fireant upstream --from DIR [DIR ...]   fill the cache from local clones or mirrors
    ./fireant upstream --lib                  also copy the libraries into lib/
    ./fireant upstream                        say what the cache holds

A DIR is a git directory (a clone or a bare mirror) or a folder holding some;
each pinned commit is looked for in all of them. Pins: package.json "deps"
(mqtt_as, primitives: exported exactly as mip installs them, from their own
package.json; microdot: its one core module, src/microdot/microdot.py) and MICROPYTHON below (the source of the ESP8266 RAM model).

The cache ($FIREANT_CACHE, default ~/.cache/fireant):

    lib/<pins>/            mqtt_as/, primitives/, microdot.py at the pinned commits
    micropython/<commit>/  MicroPython's source tree, with the submodules the model
                           needs (lib/axtls, lib/micropython-lib) at the commits it pins
    esp8266/<key>/         the ESP8266 RAM model (sim/esp8266), built from it with
                           gcc -m32; <key> hashes everything the build reads

Tests and the benchmark use what is there (lib/ in the repository first) and
skip, saying why, where it is not.
"""
import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

from sim import paths

MICROPYTHON = "1c3c201149f37fe8d81246191b3127bb198d6306"  # v1.29.0-preview-731, 2026-08-19
MICROPYTHON_URL = "github:micropython/micropython"
MODEL_DIR = os.path.join(paths.SIM, "esp8266")  # the variant and its C modules (flash/, axtls/)
# What the model has in ROM besides asyncio and ssl (sim/esp8266/manifest.py).
MODEL_FROZEN = [os.path.join(paths.BOARD, n + ".py") for n in ("simboard", "machine", "simwdt", "network", "dht", "esp")] + \
    [os.path.join(paths.SIM, n) for n in ("unixrun.py", "tlsfirst.py")]


def _digest(parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def micropython_src():
    d = os.path.join(paths.cache_dir(), "micropython", MICROPYTHON)
    return d if os.path.isfile(os.path.join(d, "py", "mpconfig.h")) else None


# -- finding pinned commits in local git directories


def _git(gitdir, *args, binary=False):
    p = subprocess.run(["git", "--git-dir", gitdir] + list(args), capture_output=True)
    if p.returncode:
        return None
    return p.stdout if binary else p.stdout.decode()


def _git_dirs(roots):
    """Every git directory under roots (not descending into one once found)."""
    found = []
    for root in roots:
        root = os.path.abspath(root)
        for d in (os.path.join(root, ".git"), root):
            if _git(d, "rev-parse", "--git-dir") is not None and os.path.isdir(d):
                found.append(d)
                break
        else:
            for name in sorted(os.listdir(root)) if os.path.isdir(root) else ():
                sub = os.path.join(root, name)
                if os.path.isdir(sub) and not name.startswith("."):
                    found += _git_dirs([sub])
    return found


def _holding(gitdirs, commit):
    for d in gitdirs:
        if _git(d, "cat-file", "-e", commit + "^{commit}") is not None:
            return d
    return None


def _export(gitdir, commit, files, dest):
    """git archive of files (repo paths) at commit, unpacked into dest."""
    data = _git(gitdir, "archive", "--format=tar", commit, *files, binary=True)
    if data is None:
        raise RuntimeError("git archive %s of %s failed in %s" % (commit[:10], " ".join(files), gitdir))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")


def _mip_files(gitdir, commit, url):
    """[(path in the repo, path as installed)] that mip installs for url at commit,
    read from the package.json there (github:owner/repo[/sub]); a url naming one
    .py file (github:owner/repo/path/name.py) installs that file as name.py."""
    sub = "/".join(url.split(":", 1)[1].split("/")[2:])
    if sub.endswith(".py"):
        return [(sub, sub.rsplit("/", 1)[-1])]
    manifest = _git(gitdir, "show", "%s:%s" % (commit, (sub + "/" if sub else "") + "package.json"))
    if manifest is None:
        raise RuntimeError("%s has no package.json at %s" % (url, commit[:10]))
    out = []
    for installed, src in json.loads(manifest)["urls"]:
        repo_path = "/".join(src.split(":", 1)[1].split("/")[2:])
        out.append((repo_path, installed))
    return out


def fill_lib(gitdirs, say=print):
    dest = paths.cached_lib()
    tmp = tempfile.mkdtemp(prefix="fireant-lib-", dir=os.path.dirname(dest) if os.path.isdir(
        os.path.dirname(dest)) else None)
    try:
        for url, commit in paths.pins():
            gitdir = _holding(gitdirs, commit)
            if gitdir is None:
                raise RuntimeError("no git directory given holds %s at %s" % (url, commit))
            files = _mip_files(gitdir, commit, url)
            src = tempfile.mkdtemp(dir=tmp)
            _export(gitdir, commit, [f for f, _ in files], src)
            for repo_path, installed in files:
                target = os.path.join(tmp, "out", installed)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(os.path.join(src, repo_path), target)
            say("lib: %s at %s (%d files, from %s)" % (url, commit[:10], len(files), gitdir))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        os.replace(os.path.join(tmp, "out"), dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


# The submodules of MicroPython's tree the model is built with, each exported at
# the commit MicroPython pins when a DIR holds it: (path, a file that shows it is
# there, what it is for).
SUBMODULES = (
    ("lib/axtls", "ssl/tls1.c", "the ESP8266's TLS (MICROPY_SSL_AXTLS)"),
    ("lib/micropython-lib", "python-stdlib/ssl/ssl.py", "the ssl module the ESP8266 has frozen"),
)


def missing_submodules(src=None):
    """[(path, what for)] of SUBMODULES the cached MicroPython tree lacks."""
    src = src or micropython_src()
    return [(path, why) for path, marker, why in SUBMODULES
            if src is None or not os.path.isfile(os.path.join(src, path, marker))]


def _fill_submodules(dest, gitdir, gitdirs, say):
    """Export into dest each missing submodule at the commit MicroPython pins
    (read from gitdir, a git directory holding MICROPYTHON), when a DIR holds it."""
    for path, why in missing_submodules(dest):
        entry = (_git(gitdir, "ls-tree", MICROPYTHON, path) or "").split()
        commit = entry[2] if len(entry) > 2 else None
        sub_git = _holding(gitdirs, commit) if commit else None
        if sub_git is None:
            say("micropython: %s (%s) not exported: no DIR holds %s" % (path, why, commit or "its commit"))
            continue
        target = os.path.join(dest, path)
        tmp = target + ".partial"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        _export(sub_git, commit, [], tmp)
        shutil.rmtree(target, ignore_errors=True)  # git archive left it empty (or a placeholder)
        os.replace(tmp, target)
        say("micropython: %s at %s exported (from %s)" % (path, commit[:10], sub_git))


def fill_micropython(gitdirs, say=print):
    """MicroPython's tree at MICROPYTHON into the cache, with SUBMODULES; a tree
    already cached gets the submodules it lacks."""
    dest = os.path.join(paths.cache_dir(), "micropython", MICROPYTHON)
    gitdir = _holding(gitdirs, MICROPYTHON)
    if micropython_src():
        say("micropython: %s already cached" % MICROPYTHON[:10])
        if missing_submodules(dest):
            if gitdir is None:
                raise RuntimeError("the cached MicroPython lacks %s: no git directory given holds %s at %s to read "
                                   "their commits from" % (", ".join(p for p, _ in missing_submodules(dest)),
                                                            MICROPYTHON_URL, MICROPYTHON))
            _fill_submodules(dest, gitdir, gitdirs, say)
        return dest
    if gitdir is None:
        raise RuntimeError("no git directory given holds %s at %s" % (MICROPYTHON_URL, MICROPYTHON))
    tmp = dest + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    _export(gitdir, MICROPYTHON, [], tmp)
    _fill_submodules(tmp, gitdir, gitdirs, say)
    os.replace(tmp, dest)
    say("micropython: %s exported (from %s)" % (MICROPYTHON[:10], gitdir))
    return dest


# -- the ESP8266 RAM model


def _files_digest(files):
    parts = []
    for path in sorted(files):
        with open(path, "rb") as f:
            parts += [os.path.relpath(path, paths.ROOT), f.read()]
    return parts


def _model_inputs():
    variant = [os.path.join(MODEL_DIR, n) for n in ("mpconfigvariant.h", "mpconfigvariant.mk", "manifest.py")]
    # The user C modules: flash/ (the ROMFS partition), axtls/ (axTLS on the GC heap).
    modules = [os.path.join(MODEL_DIR, d, n) for d in sorted(os.listdir(MODEL_DIR))
               if os.path.isdir(os.path.join(MODEL_DIR, d)) and not d.startswith((".", "__"))
               for n in sorted(os.listdir(os.path.join(MODEL_DIR, d))) if not n.startswith(".")]
    return variant + modules + MODEL_FROZEN


def _frozen_inputs(lib):
    app = sorted(os.path.join(paths.ROOT, "app", n) for n in os.listdir(os.path.join(paths.ROOT, "app"))
                 if n.endswith(".py"))
    return app + [os.path.join(paths.ROOT, "manifest.py")] + \
        [os.path.join(lib, rel) for rel in paths.LIB_FILES]


def model_key(frozen=False):
    parts = [MICROPYTHON] + _files_digest(_model_inputs())
    if frozen:
        parts += ["frozen"] + _files_digest(_frozen_inputs(paths.lib_dir()))
    return ("frozen-" if frozen else "romfs-") + _digest(parts)


def model_unavailable(frozen=False):
    """Why the model cannot be had here, or None."""
    if sys.platform != "linux":
        return "the ESP8266 model builds on Linux only"
    if frozen and paths.lib_dir() is None:
        return "no mqtt_as/primitives in lib/ or the cache to freeze (./fireant upstream --from DIR)"
    if os.path.exists(_model_exe(model_key(frozen))):
        return None
    if micropython_src() is None:
        return ("no MicroPython source in %s: ./fireant upstream --from DIR fills it from a clone or mirror of "
                "micropython/micropython holding %s" % (paths.cache_dir(), MICROPYTHON[:10]))
    missing = missing_submodules()
    if missing:
        return ("the cached MicroPython lacks %s: ./fireant upstream --from DIR exports them from clones or mirrors "
                "of micropython/axtls and micropython/micropython-lib at the commits MicroPython %s pins"
                % ("; ".join("%s (%s)" % m for m in missing), MICROPYTHON[:10]))
    if not _can_build_32bit():
        return "gcc cannot build 32-bit programs here: apt-get install gcc-multilib (./fireant upstream does)"
    return None


def _model_exe(key):
    return os.path.join(paths.cache_dir(), "esp8266", key, "micropython")


_built_32 = None


def _can_build_32bit():
    global _built_32
    if _built_32 is None:
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "t.c")
            with open(src, "w") as f:
                f.write("#include <stdio.h>\nint main(void){return 0;}\n")
            p = subprocess.run(["gcc", "-m32", src, "-o", os.path.join(d, "t")], capture_output=True)
            _built_32 = p.returncode == 0
    return _built_32


def model_exe(frozen=False, say=None):
    """The ESP8266 model's interpreter, built when its inputs changed; raises
    RuntimeError saying why when it cannot be had. frozen: app/, mqtt_as and
    primitives frozen in as well (manifest.py), else they come from a ROMFS image."""
    why = model_unavailable(frozen)
    if why:
        raise RuntimeError(why)
    key = model_key(frozen)
    exe = _model_exe(key)
    if os.path.exists(exe):
        return exe
    src = micropython_src()
    out = os.path.dirname(exe)
    build = os.path.join(paths.cache_dir(), "esp8266", "build-" + ("frozen" if frozen else "romfs"))
    manifest = os.path.join(paths.cache_dir(), "esp8266", "manifest-%s.py" % key)
    os.makedirs(os.path.dirname(manifest), exist_ok=True)
    with open(manifest, "w") as f:
        f.write("include(%r)\n" % os.path.join(MODEL_DIR, "manifest.py"))
        if frozen:
            f.write("include(%r, base=False, lib=%r)\n" % (os.path.join(paths.ROOT, "manifest.py"), paths.lib_dir()))
    if say:
        say("building the ESP8266 model (%s) from MicroPython %s ..." % (key, MICROPYTHON[:10]))
    # One build directory per layout, reused: make rebuilds what changed, but not
    # what a changed mpconfigvariant.mk (flags, libraries) compiles differently.
    # Its stamp names the variant last built there (and is stale if a build without
    # one, an older checkout's, came after it).
    variant = model_key(False)
    stamp = os.path.join(build, "fireant-variant")
    try:
        with open(stamp) as f:
            built = f.read()
        if os.path.getmtime(os.path.join(build, "micropython")) > os.path.getmtime(stamp):
            built = None
    except OSError:
        built = None
    if built != variant:
        shutil.rmtree(build, ignore_errors=True)
    log = os.path.join(paths.cache_dir(), "esp8266", "build-%s.log" % key)
    with open(log, "w") as f:
        for cmd in (["make", "-C", os.path.join(src, "mpy-cross"), "-j2"],
                    ["make", "-C", os.path.join(src, "ports", "unix"), "-j2", "VARIANT_DIR=" + MODEL_DIR,
                     "BUILD=" + build, "USER_C_MODULES=" + MODEL_DIR, "FROZEN_MANIFEST=" + manifest,
                     "CC=gcc -m32", "STRIP="]):
            p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
            if p.returncode:
                raise RuntimeError("building the ESP8266 model failed: see %s" % log)
    os.remove(log)
    with open(stamp, "w") as f:
        f.write(variant)
    os.makedirs(out, exist_ok=True)
    shutil.copyfile(os.path.join(build, "micropython"), exe + ".tmp")
    os.chmod(exe + ".tmp", 0o755)
    os.replace(exe + ".tmp", exe)
    return exe


# -- command line


def status():
    lib = paths.lib_dir()
    print("cache: %s" % paths.cache_dir())
    print("lib: %s" % (lib or "none (mqtt_as/primitives neither in lib/ nor cached)"))
    print("micropython source: %s" % (micropython_src() or "none"))
    if micropython_src():
        for path, why in missing_submodules():
            print("  lacks %s (%s)" % (path, why))
    for frozen in (False, True):
        why = model_unavailable(frozen)
        name = "frozen" if frozen else "romfs"
        if why:
            print("ESP8266 model (%s): unavailable: %s" % (name, why))
        else:
            exe = _model_exe(model_key(frozen))
            print("ESP8266 model (%s): %s" % (name, exe if os.path.exists(exe) else "built on first use"))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="./fireant upstream", description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="roots", nargs="+", metavar="DIR",
                    help="git clones or mirrors (or folders of them) holding the pinned commits")
    ap.add_argument("--lib", action="store_true", help="also copy mqtt_as and primitives into the repository's lib/")
    args = ap.parse_args(argv)
    try:
        if args.roots:
            gitdirs = _git_dirs(args.roots)
            if not gitdirs:
                raise RuntimeError("no git directory in %s" % " ".join(args.roots))
            fill_lib(gitdirs)
            fill_micropython(gitdirs)
            model_exe(say=print)
        if args.lib:
            src = paths.lib_dir()
            if src is None:
                raise RuntimeError("nothing to copy: fill the cache first with --from DIR")
            if src != paths.LIB:
                for name in sorted({rel.split("/")[0] for rel in paths.LIB_FILES}):
                    if name.endswith(".py"):
                        shutil.copyfile(os.path.join(src, name), os.path.join(paths.LIB, name))
                        continue
                    shutil.rmtree(os.path.join(paths.LIB, name), ignore_errors=True)
                    shutil.copytree(os.path.join(src, name), os.path.join(paths.LIB, name))
                print("lib/: copied from %s" % src)
    except RuntimeError as e:
        print("upstream: %s" % e, file=sys.stderr)
        return 2
    status()
    return 0


if __name__ == "__main__":
    sys.exit(main())
