"""One command, then this module is dropped (app/inbox.py loads it for each).

A command is a JSON object on mqtt.cmd_topic; the answer goes to <cmd_topic>/result:
{"cmd": ..., "ok": true, ...} or {"cmd": ..., "ok": false, "error": "..."}, with
the command's "id" when it had one.

  {"cmd": "interval", "interval_s": 10}  sampling period, checked by the validator's
                                         rules, kept on flash (config.OVERRIDES)
  {"cmd": "status"}                      the counters now, to the stats topic
  {"cmd": "identify", "s": 10}           the LED's IDENTIFY pattern for s seconds
  {"cmd": "restart"}                     answered, then the board restarts
  {"cmd": "factory_reset"}               forget what commands changed: config.json's
                                         settings again, now and after a restart
  {"cmd": "safe_mode", "on": false}      leave safe mode (app/watchdog.py): answered,
                                         then the board restarts into its tasks
"""
import json
import os

from .node import forget, log

_ID_MAX = 64


def _fail(problem):
    raise ValueError(problem)


def _number(req, key, lo, hi, default=None):
    v = req.get(key, default)
    if v is None:
        _fail("%s: missing" % key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        _fail("%s: a number from %s to %s, got %s" % (key, lo, hi, json.dumps(v)))
    return v


def _interval(fw, s):
    """s checked by the validator's rules for sensor.interval_s (a ConfigError names
    the key); the next boot checks the overrides with config.json in full. Reading
    and checking the whole files here would cost ~20 KB of heap (unix port)."""
    from . import board, config

    return config.check_interval(s, fw.sensor_type, board.min_interval_s())


def _save(over):
    # Written whole, then renamed over the old file: a reset mid-write leaves the
    # old file or the new one, never half of one.
    from .config import OVERRIDES

    tmp = OVERRIDES + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(over))
    os.rename(tmp, OVERRIDES)


def _overrides():
    from .config import OVERRIDES

    try:
        with open(OVERRIDES) as f:
            over = json.loads(f.read())
    except (OSError, ValueError):  # none yet, or one the boot ignored too
        return {}
    return over if isinstance(over, dict) else {}


async def _do(fw, client, name, req, reply):
    node = fw.node
    if name == "interval":
        s = _number(req, "interval_s", 0, 86400)
        _interval(fw, s)  # raises ConfigError (a ValueError) naming the key
        over = _overrides()
        if not isinstance(over.get("sensor"), dict):
            over["sensor"] = {}
        over["sensor"]["interval_s"] = s
        _save(over)
        node.interval_ms = int(s * 1000)
        reply["interval_s"] = s
    elif name == "status":
        await fw.status.report(client)
    elif name == "identify":
        s = _number(req, "s", 1, 3600, 10)
        node.identify_ms = int(s * 1000)
        reply["s"] = s
    elif name == "restart":
        reply["ok"] = True
        await client.publish(fw.cmd_result, json.dumps(reply).encode(), False, 1)
        moved = fw.backlog.flush()  # what RAM holds goes to flash: the next boot sends it
        log("cmd", "restart (%d readings kept on flash)" % moved)
        from . import board

        board.reset()
        return False  # answered already (a board never gets here)
    elif name == "safe_mode":
        if req.get("on") is not False:
            _fail("on: false (leave safe mode) is the only choice")
        if not node.safe_mode:
            _fail("not in safe mode")
        reply["ok"] = True
        await client.publish(fw.cmd_result, json.dumps(reply).encode(), False, 1)
        from .watchdog import reset

        reset(node, b"safe mode off")
        return False
    elif name == "factory_reset":
        from .config import OVERRIDES

        try:
            os.remove(OVERRIDES)
        except OSError:
            pass
        from . import config

        s = _interval(fw, config.interval(fw.files[0], fw.files[1]))
        node.interval_ms = int(s * 1000)
        reply["interval_s"] = s
    else:
        _fail("unknown command %s (known: interval, status, identify, restart, factory_reset, safe_mode)" % json.dumps(name))
    return True


async def run(fw, client, msg, retained):
    """msg: the command's bytes, or its length when it was too long. Never raises
    but CancelledError: every failure is answered and logged."""
    reply = {"cmd": None}  # type: dict
    try:
        try:
            if retained:
                _fail("retained command ignored: publish commands without the retain flag")
            if isinstance(msg, int):
                _fail("too long: %d bytes, at most %d" % (msg, 256))
            try:
                req = json.loads(msg)
            except ValueError:
                _fail("not JSON")
            if not isinstance(req, dict):
                _fail("not a JSON object")
            name, i = req.get("cmd"), req.get("id")
            reply["cmd"] = name
            if i is not None:
                if isinstance(i, (dict, list)) or len(json.dumps(i)) > _ID_MAX:
                    _fail("id: a string or number of at most %d characters" % _ID_MAX)
                reply["id"] = i
            if not await _do(fw, client, name, req, reply):
                return
            reply["ok"] = True
        except Exception as e:  # ValueError, ConfigError, OSError (flash), MemoryError
            reply["ok"] = False
            reply["error"] = str(e) if isinstance(e, ValueError) else "%s: %s" % (type(e).__name__, e)
        forget("config")
        log("cmd", "%s: %s" % (reply["cmd"], "ok" if reply["ok"] else reply["error"]))
        await client.publish(fw.cmd_result, json.dumps(reply).encode(), False, 1)
    except Exception as e:  # the answer itself failed (MemoryError): the log says it
        log("cmd", "no answer sent: %r" % e)
