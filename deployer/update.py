"""One board brought up to date: where fireant lives on it (the layout), what is
there already (the plan: only what changed is sent, what would shadow it deleted),
then the libraries, the ROMFS image, the files, a soft reset (deploy.py, deploy.py
config). fleet.py runs update() for several boards at once."""
import json

from deployer import Fail, validate_config, warn_config
from deployer.board import Board, describe, find_port, one_port
from deployer.deps import DEPS_KB, DEPS_MARKER, dep_spec, install_deps, pins
from deployer.files import (boot_files, build_files, check_mpy, host_libs, lib_files, mpy_cross_version,
                            romfs_image, settings_files, sha256)

BOOT_FILES = ("boot.py", "main.py")  # written last: a half-done deploy must not autorun


def plan(board, info, files, deps, precompiled):
    """What a deploy would do: libraries to mip, files to upload and to delete.
    Deleted: whatever app/ holds that the build does not (an old module, or a .py
    that would shadow its .mpy), and with precompiled libraries their .py sources."""
    lib = info["lib"][0] if info["lib"] else None
    marker = (lib + "/" + DEPS_MARKER) if lib and not precompiled else None
    installed = board.read(marker) if marker else None
    want = json.dumps(deps).encode()
    dirs = ["app"] + sorted({p.rsplit("/", 1)[0] for p in files if p.startswith("lib/")})
    state = board.hashes(sorted(files), dirs)
    upload = [p for p in _order(files) if state["hashes"].get(p) != sha256(files[p])]
    delete = sorted(p for p in state["listed"] if p not in files and (
        p.startswith("app/") or (p.endswith(".py") and p[:-3] + ".mpy" in files)))
    return {"info": info, "lib": lib, "marker": marker, "marker_data": want,
            "deps": [] if precompiled or installed == want else deps, "upload": upload, "delete": delete,
            "same": len(files) - len(upload), "precompiled": precompiled}


def _order(files):
    return sorted(p for p in files if p not in BOOT_FILES) + [p for p in BOOT_FILES if p in files]


def _kb(n):
    return (n + 4095) // 4096 * 4


def check_space(p, files):
    free = p["info"]["free"]
    if free is None:
        return
    need_kb = sum(_kb(len(files[f])) for f in p["upload"]) + (DEPS_KB if p["deps"] else 0)
    if need_kb * 1024 > free:
        raise Fail("not enough flash: this deploy needs about %d KB, the board has %d KB free; delete files you do "
                   "not need (mpremote fs ls / rm) or erase the flash and reflash MicroPython (docs/deploy.md)"
                   % (need_kb, free // 1024))


def print_plan(p, index, layout="files"):
    print("Board: %s, %s KB free" % (describe(p["info"]), "?" if p["info"]["free"] is None else p["info"]["free"] // 1024))
    print(describe_layout(layout, p["info"]))
    if p["deps"]:
        print("Install with mip%s: %s" % (" from " + index if index else "",
                                          ", ".join(dep_spec(u, v, index) for u, v in p["deps"])))
    elif p["precompiled"]:
        print("Libraries: precompiled on this computer (uploaded with the files below)")
    else:
        print("Libraries: up to date (package.json pins)")
    print("Upload (%d): %s" % (len(p["upload"]), ", ".join(p["upload"]) or "nothing"))
    if p["delete"]:
        print("Delete (%d): %s" % (len(p["delete"]), ", ".join(p["delete"])))
    print("Unchanged: %d files" % p["same"])


def print_local_plan(files, deps, index, why):
    """The plan when no board is attached: everything, as onto an empty board."""
    print("Dry run without a board (%s)." % str(why).split(":")[0])
    print("Configuration: valid. Compiled with mpy-cross .mpy v%d.%d." % mpy_cross_version())
    print("Layout: chosen by the board (docs/boards.md): a ROMFS image where it has a ROMFS partition (the "
          "ESP8266 FLASH_2M_ROMFS firmware), nothing of app/ where fireant is frozen in, else .mpy files as below")
    print("Install with mip%s: %s" % (" from " + index if index else "",
                                      ", ".join(dep_spec(u, v, index) for u, v in deps)))
    print("Upload at most (%d): %s" % (len(files), ", ".join(_order(files))))
    print("Then: soft reset and follow the output. With a board attached only changed files are sent.")



# -- layouts: where app/ and the libraries live on the board -------------------------
#
# files   .mpy files on the filesystem (libraries by mip, or compiled here): loaded
#         into the heap when imported; an ESP32 has the RAM, an ESP8266 does not
# romfs   one image in the ROMFS partition, mounted at /rom: bytecode runs in place
# frozen  built into the firmware (manifest.py): nothing of it on the filesystem
# With romfs and frozen only main.py, boot.py and the settings go on the filesystem,
# and whatever would shadow or duplicate the built-in copy is deleted: the
# filesystem root comes first on sys.path ('', '.frozen', '/rom', '/rom/lib', '/lib').

LAYOUTS = ("auto", "romfs", "frozen", "files")
SHADOWS = ("app", "mqtt_as", "primitives")  # at the filesystem root they would shadow the built-in copy
LIB_PACKAGES = ("mqtt_as", "primitives")  # in the board's lib dir they would duplicate it
LIB_MODULES = ("microdot",)  # one-file libraries: at the root or in lib, .py or .mpy, the same

NO_ROMFS_ESP8266 = (
    "this ESP8266's MicroPython has no ROMFS partition and fireant as .mpy files does not fit its 38 KB heap: "
    "flash the ESP8266_GENERIC FLASH_2M_ROMFS firmware (https://micropython.org/download/ESP8266_GENERIC/, "
    "esptool commands in docs/boards.md), or a firmware with fireant frozen in (manifest.py), then deploy again; "
    "--layout files installs the .mpy files anyway")


def choose_layout(requested, info, frozen):
    """The layout for this board (see above); frozen: whether help('modules') lists
    app (None: the firmware cannot say)."""
    rom = info.get("rom", 0) > 0
    if requested == "auto":
        if frozen:
            return "frozen"
        if rom:
            return "romfs"
        if info["platform"] == "esp8266":
            raise Fail(NO_ROMFS_ESP8266)
        return "files"
    if requested == "romfs" and not rom:
        raise Fail("--layout romfs: the board's MicroPython has no ROMFS partition (vfs.rom_ioctl): flash a "
                   "firmware with one (docs/boards.md), or deploy without --layout")
    if requested == "frozen" and frozen is False:
        raise Fail("--layout frozen: the board's firmware has no app frozen in (help('modules') does not list "
                   "app/__init__): flash the firmware built with manifest.py (docs/boards.md), or deploy without "
                   "--layout")
    return requested


def describe_layout(layout, info):
    if layout == "romfs":
        return ("Layout: ROMFS (a %d KB partition): app/, mqtt_as and primitives in one image mounted at /rom, run "
                "in place; main.py, boot.py and the settings on the filesystem" % (info["rom_size"] // 1024))
    if layout == "frozen":
        return ("Layout: frozen (app/, mqtt_as and primitives are built into the firmware); main.py, boot.py and the "
                "settings on the filesystem")
    if info["platform"] == "esp8266":
        why = "--layout files on an ESP8266: the modules load into its 38 KB heap and may not fit (docs/boards.md)"
    elif info.get("rom", 0) > 0:
        why = "--layout files"
    elif info["platform"] == "esp32":
        why = "no ROMFS partition; an ESP32 has the RAM to load them"
    else:
        why = "no ROMFS partition"
    return "Layout: .mpy files on the filesystem (%s)" % why


def plan_builtin(board, info, files, image=None):
    """romfs and frozen: the image to write (romfs, when the partition does not hold
    it already), main.py, boot.py and the settings to upload, and what would shadow
    or duplicate the built-in copy to delete (app/ and the libraries on the
    filesystem, the mip marker)."""
    lib = info["lib"][0] if info["lib"] else None
    marker = lib + "/" + DEPS_MARKER if lib else None
    modules = [d + m + ext for m in LIB_MODULES for ext in (".py", ".mpy") for d in [""] + ([lib + "/"] if lib else [])]
    state = board.hashes(sorted(files) + ([marker] if marker else []) + modules, ())["hashes"]
    upload = [p for p in _order(files) if state.get(p) != sha256(files[p])]
    delete = board.tree(list(SHADOWS) + [lib + "/" + d for d in LIB_PACKAGES if lib])
    delete += [p for p in modules if state.get(p)]
    if marker and state.get(marker):
        delete.append(marker)
    p = {"info": info, "upload": upload, "delete": delete, "same": len(files) - len(upload), "deps": [],
         "image": image, "write_image": False}
    if image is not None:
        p["write_image"] = board.rom_hash(len(image)) != sha256(image)
    return p


def check_image(image, info):
    if len(image) > info["rom_size"]:
        raise Fail("the ROMFS image (%d KB) does not fit the board's ROMFS partition (%d KB): flash a firmware with a "
                   "larger partition or build one with fireant frozen in (manifest.py; docs/boards.md)"
                   % (_kb(len(image)), info["rom_size"] // 1024))


def print_builtin_plan(p, layout, libs):
    info = p["info"]
    print("Board: %s, %s KB free" % (describe(info), "?" if info["free"] is None else info["free"] // 1024))
    print(describe_layout(layout, info))
    if p["image"] is not None:
        print("ROMFS image: %s (%d bytes of %d; libraries from %s)" % (
            "to write" if p["write_image"] else "up to date", len(p["image"]), info["rom_size"], libs))
    print("Upload (%d): %s" % (len(p["upload"]), ", ".join(p["upload"]) or "nothing"))
    if p["delete"]:
        print("Delete (%d): %s" % (len(p["delete"]), ", ".join(p["delete"])))
    print("Unchanged: %d files" % p["same"])



def cmd_deploy(args):
    """One board: the one --port names, else the one attached (fleet.py: several)."""
    cfg = validate_config(args.config, args.secrets)
    warn_config(cfg)
    deps = pins()
    try:
        port = find_port(args.port[0] if args.port else None)
    except Fail as e:
        if not args.dry_run:
            raise
        print_local_plan(build_files(args.config, args.secrets, cfg), deps, args.index, e)
        return
    update(args, port, deps)


def update(args, port, deps, result=None, follow=True):
    """Deploy to the board on port (args: deploy.py's options); result, filled in as it
    goes (for the fleet's summary even when it fails): board, layout, written, image."""
    result = {} if result is None else result
    if args.dry_run:
        print("Dry run: nothing is written to %s." % port)
    board = Board(port)
    try:
        info = board.info()
        result["board"] = "%s v%s" % (info["platform"], info["version"])
        cfg = validate_config(args.config, args.secrets, platform=info["platform"])
        check_mpy(info["mpy"], mpy_cross_version())
        frozen = None if args.layout == "files" else board.frozen_modules()
        layout = result["layout"] = choose_layout(args.layout, info, frozen and "app/__init__" in frozen)
        if layout == "files":
            files = build_files(args.config, args.secrets, cfg)
            precompiled = args.precompiled_libs or info["platform"] == "esp8266"
            if precompiled:
                files.update(lib_files(host_libs(args.libs, "the board needs compiled on this computer")))
            p = plan(board, info, files, deps, precompiled)
            print_plan(p, args.index)
        else:
            files = boot_files()
            files.update(settings_files(args.config, args.secrets, cfg))
            image = libs = None
            if layout == "romfs":
                libs = host_libs(args.libs, "go into the ROMFS image")
                image = romfs_image(libs, info["platform"])
                check_image(image, info)
            p = plan_builtin(board, info, files, image)
            print_builtin_plan(p, layout, libs)
        result["plan"] = p
        if args.dry_run:
            print("Then: soft reset and follow the output.")
            board.reset()  # restart the program the REPL interrupted
            return result
        check_space(p, files)
        if p["deps"]:
            install_deps(board, p["deps"], p["marker"], p["marker_data"], args.index)
        if p.get("write_image"):
            print("Writing the ROMFS image (%d bytes) with mpremote romfs deploy" % len(p["image"]))
            board.write_romfs(p["image"])
            result["image"] = True
        for path in p["delete"]:
            print("Deleting", path)
            board.remove(path)
        result["written"] = 0
        for path in p["upload"]:
            print("Uploading %s (%d bytes)" % (path, len(files[path])))
            board.write(path, files[path])
            result["written"] += 1
        if follow:
            print("Soft reset; the board's output follows (Ctrl-C to stop watching; the board keeps running).")
        else:
            print("Soft reset.")
        board.reset()
        if follow:
            board.follow(args.seconds)
        return result
    finally:
        board.close()


def cmd_config(args):
    cfg = validate_config(args.config, args.secrets)
    warn_config(cfg)
    files = settings_files(args.config, args.secrets, cfg)
    board = Board(one_port(args.port))
    try:
        validate_config(args.config, args.secrets, platform=board.info()["platform"])
        state = board.hashes(sorted(files), ())["hashes"]
        changed = [p for p in sorted(files) if state.get(p) != sha256(files[p])]
        for path in changed:
            print("Uploading", path)
            board.write(path, files[path])
        if not changed:
            print("Configuration on the board is up to date.")
        board.reset()
        board.follow(args.seconds)
    finally:
        board.close()

