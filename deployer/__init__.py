"""What deploy.py does, one module per concern (host only; deploy.py is the command line).

    board     the board's serial port(s) and one mpremote session with it (Board), logs
    files     what goes onto a board: app/ compiled to .mpy, the settings, the ROMFS image
    deps      the pinned libraries: mip onto the board, or into the host's lib/
    update    one board brought up to date: layout, plan, upload (deploy, config)
    fleet     several boards at once, in parallel, one summary line each
    monitor   what the broker hears: readings, and every node's availability and counters
    simulate  the firmware on the simulated board (deploy.py sim)
    output    stdout per thread, so that boards deployed in parallel each get their own

Named deployer, not deploy: a package deploy/ beside deploy.py would be what `import
deploy` finds (a package wins over a module of the same name), and `python deploy.py`
could no longer be imported by the tests that drive it.
"""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Fail(Exception):
    """A problem the user can fix: the message says what and how, in one line."""


def config_module():
    # The firmware's own validator, loaded by path: importing the app package
    # would pull in the board-only parts.
    spec = importlib.util.spec_from_file_location("fireant_config", os.path.join(ROOT, "app", "config.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def validate_config(path, secrets, min_interval_s=None, platform=None):
    """The settings as the board will load them; platform (the board's sys.platform)
    refuses what that chip cannot do, before anything is uploaded."""
    config = config_module()
    try:
        return config.load(path, secrets, min_interval_s, platform)
    except config.ConfigError as e:
        raise Fail("invalid configuration (%s, %s%s): %s" % (os.path.relpath(path), os.path.relpath(secrets),
                                                             ", for an " + platform if platform else "", e))


def merged_raw(path, secrets):
    config = config_module()
    return config.merge(config.read_json(path), config.read_json(secrets, required=False))


def warn_config(cfg):
    """Say, as the board will at boot, where the broker password would travel unverified."""
    for w in config_module().warnings(cfg):  # with the plan, on stdout: stderr is for what stops it
        print("deploy.py: warning: %s" % w, flush=True)

