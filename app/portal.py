"""The provisioning portal: an access point fireant-XXXX (the chip id's last four
hex digits) and one web page to set Wi-Fi and broker settings, run by app.run()
*instead of* the tasks (no wifi.ssid, or the Wi-Fi task gave up joining): it has
the heap to itself. The page's POST is checked by app/config.py's validator as
the files would be at boot; a problem is shown on the page and nothing is
written. Settings that pass are written whole and renamed over the old files
(config.json, secrets.json), then the board resets and joins as a station.

Passwords go to secrets.json and never back into the page: a password field
left empty keeps the one set. microdot (lib/, pinned in package.json) is the
web server; only its core module, loaded here and nowhere else.
"""
import asyncio
import gc
import json
import os

from . import board
from .node import forget, log

# The form's fields: (name, settings key, for a secret the fields it goes with).
# A secret left empty keeps the one stored, but only while those are unchanged:
# anyone in range may use an open portal, and a stored password must not follow
# a new server or network there.
_FIELDS = (("ssid", "wifi.ssid", ()), ("wifi_password", "wifi.password", ("ssid",)),
           ("server", "mqtt.server", ()), ("port", "mqtt.port", ()), ("user", "mqtt.user", ()),
           ("mqtt_password", "mqtt.password", ("server", "port", "user")), ("device", "device", ()))
_SAVED_MS = 10000  # the "saved" page waits this long for the browser's look before the reset

_HEAD = """<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>%s setup</title><style>body{font-family:sans-serif;max-width:26em;margin:1em auto;padding:0 1em}
label{display:block;margin-top:.6em}input{width:100%;box-sizing:border-box;padding:.3em}
.err{background:#fdd;border:1px solid #c00;padding:.5em}.ok{background:#dfd;border:1px solid #080;padding:.5em}
button{margin-top:1em;padding:.4em 1.5em}</style></head><body><h1>%s</h1>"""
_FORM = """<form method="post" action="/"><h2>Wi-Fi</h2>
<label>Network (SSID)<input name="ssid" value="%s" maxlength="32"></label>
<label>Password<input name="wifi_password" type="password" placeholder="%s"></label>
<h2>MQTT broker</h2><label>Host<input name="server" value="%s"></label>
<label>Port (0: 1883, or 8883 with TLS)<input name="port" value="%s"></label>
<label>User<input name="user" value="%s"></label>
<label>Password<input name="mqtt_password" type="password" placeholder="%s"></label>
<h2>Node</h2><label>Device name (empty: %s)<input name="device" value="%s"></label>
<button type="submit">Save and reboot</button></form></body></html>"""
# Answers a POST while the validator checks it (the web server stopped meanwhile): asks again till it is back.
_CHECKING = """<p id="checking">Checking the settings&hellip;</p><script>function again(){fetch("/ready").then(
function(){location.replace("/")},function(){setTimeout(again,500)})}setTimeout(again,700)</script>
<noscript><meta http-equiv="refresh" content="3;url=/"></noscript></body></html>"""
_DONE = """<p class="ok" id="saved">Saved. Rebooting to join <b>%s</b>; this access point goes away.</p></body></html>"""


def _esc(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _get(d, key):
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def _put(d, key, value):
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(d.get(part), dict):
            d[part] = {}
        d = d[part]
    d[parts[-1]] = value


def _read(path):
    try:
        with open(path) as f:
            data = json.loads(f.read())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(path, data):
    # Whole, then renamed over the old file: a reset mid-write leaves the old one or the new.
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(data))
    os.rename(tmp, path)


def _fill(template, values):
    """template's pieces with values in place of its %s, one after the other:
    streamed as microdot sends a generator, no whole page in one allocation,
    which a fragmented ESP8266 heap may not have in one piece."""
    for i, piece in enumerate(template.split("%s")):
        yield piece
        if i < len(values):
            yield values[i]


def _framed(essid, template, values):
    yield from _fill(_HEAD, (essid, essid))
    yield from _fill(template, values)


def _seen(body, shown):
    """body, then marks the "saved" page as sent whole: the reset may come."""
    yield from body
    shown[2] = 2


def page(essid, config, secrets, form=None, error=None):
    """The form, filled in with the settings (or what was posted), secrets left
    out: the page's pieces, one after the other."""
    cfg, sec = _read(config), _read(secrets)
    shown = []
    for name, key, secret in _FIELDS:
        if secret:
            shown.append("unchanged" if _get(sec, key) or _get(cfg, key) else "")
        else:
            value = form.get(name, "") if form is not None else _get(cfg, key)
            shown.append(_esc("" if value is None else value))
            if name == "device":
                shown.insert(-1, "fireant-" + board.unique_id())
    yield from _fill(_HEAD, (essid, essid))
    if error:
        yield '<p class="err" id="error">%s</p>' % _esc(error)
    yield from _fill(_FORM, shown)


def save(form, config, secrets):
    """Check the posted settings with the validator, over what the files hold;
    write both files when they pass. Returns the problem (a ConfigError's
    message), or None: written."""
    cfg, sec = _read(config), _read(secrets)
    changed = []
    for name, key, goes_with in _FIELDS:
        value = form.get(name, "")
        if goes_with:  # a secret
            if value:
                _put(sec, key, value)
            elif name == "mqtt_password" and not form.get("user"):  # no user, no password
                for d in (sec, cfg):
                    if _get(d, key):
                        _put(d, key, "")
            elif _get(sec, key) or _get(cfg, key):
                moved = [k for n, k, _ in _FIELDS if n in goes_with and n in changed]
                if moved:
                    return "config: %s: type it again: %s changed, and the one stored goes only where it was set " \
                           "for" % (key, " and ".join(moved))
            continue
        if name == "port":
            value = int(value) if value.strip().isdigit() else (value or 0)
        was = _get(cfg, key)
        if (was if was is not None else 0 if name == "port" else "") != value:
            changed.append(name)
        _put(cfg, key, value)
    if not _get(cfg, "wifi.ssid"):
        return "config: wifi.ssid: must not be empty (the network the node is to join)"
    gc.collect()
    from .config import ConfigError, merge, validate

    try:
        validate(merge(json.loads(json.dumps(cfg)), sec), board.min_interval_s(), board.platform())
    except ConfigError as e:
        return str(e)
    finally:
        del ConfigError, merge, validate
        forget("config")  # the validator is ~7 KB on an ESP8266: the page's heap between POSTs
        gc.collect()
    _write(secrets, sec)
    _write(config, cfg)
    return None


async def _serve(essid, host, port, config, secrets, shown, until):
    """The web server until a POST (its form, kept in RAM: returned) or, with no
    POST, until(): None. shown: (form, problem, saved) for the page a GET gets."""
    import sys

    from microdot import Microdot, Request, Response

    # A form of seven fields fits in 2 KB; microdot's 16 KB default, parsed into
    # one object per field, is more than an ESP32's heap holds for a hostile POST.
    Request.max_content_length = Request.max_body_length = 2048
    Request.max_readline = 512
    web = Microdot()
    posted = []

    @web.route("/ready")
    async def ready(request):  # the "checking" page's probe: the server is back, nothing shown yet
        return "ok"

    @web.route("/", methods=["GET", "POST"])
    async def index(request):
        form, problem, saved = shown
        if request.method == "POST":
            posted.append({name: request.form.get(name, "") for name, _, _ in _FIELDS} if request.form else {})
            body = _framed(essid, _CHECKING, ())
        elif saved:
            body = _seen(_framed(essid, _DONE, (_esc(form.get("ssid")),)), shown)
        else:
            body = page(essid, config, secrets, form, problem)
        return Response(body, headers={"Content-Type": "text/html; charset=utf-8"})

    server = asyncio.create_task(web.start_server(host=host, port=port))
    while not posted and not until():
        await asyncio.sleep_ms(100)
    await asyncio.sleep_ms(300)  # the answer on its way out
    web.shutdown()
    try:
        await asyncio.wait_for_ms(server, 1000)  # the listening socket closed, its task done
    except Exception:  # noqa: BLE001  (CancelledError, TimeoutError: it is gone either way)
        pass
    sys.modules.pop("microdot", None)  # its ~9 KB back for the validator (ESP8266)
    return posted[0] if posted else None


def password(config, secrets):
    """Settings missing or refused (app.run() opens the portal for them): the
    access point's password ("" for an open one), or None, said, where there must
    be no portal: wifi.portal_after_s 0, or a wifi.ap_password asked for that
    cannot be used: misspelt, misplaced, not a passphrase, in a file that cannot
    be read. Anyone in range may use an open portal (save() keeps a stored
    password only for where it was set), so it is open only when none was asked."""
    from .config import wpa2

    pw = after = None
    ask_pw = ask_after = False  # the files name them, readable or not
    for path in (secrets, config):  # the first that has a key decides, as merge() does
        try:
            with open(path, "rb") as f:
                text = f.read().decode()
        except OSError:
            continue  # no file: it asks for nothing
        except ValueError:  # not UTF-8
            return _no_portal(path + " is not UTF-8 text")
        low = text.lower()
        ask_pw, ask_after = ask_pw or "ap_pas" in low, ask_after or "portal_after" in low
        try:
            w = json.loads(text)
            w = w.get("wifi", {}) if isinstance(w, dict) else None
        except ValueError:
            w = None
        if isinstance(w, dict):
            if pw is None and "ap_password" in w:
                pw = w["ap_password"]
            if after is None and "portal_after_s" in w:
                after = w["portal_after_s"]
    if after == 0 or after is None and ask_after:
        return _no_portal("wifi.portal_after_s is 0, or cannot be read")
    if pw is None and ask_pw:
        return _no_portal("a wifi.ap_password is asked for that cannot be read (misspelt, misplaced, not JSON)")
    if pw is not None and pw != "" and not wpa2(pw):
        return _no_portal("wifi.ap_password is not a WPA2 passphrase")
    return pw or ""


def _no_portal(why):
    log("app", "no setup portal: %s; fix the files over USB (deploy.py)" % why)


async def run(config, secrets, ap_password, open_ms, problem=None):
    """Serve the page until settings are saved (then reset), or for open_ms (0:
    for ever), then reset: the Wi-Fi task gave up, perhaps only for an outage.
    A POST is answered at once with a page that asks again in a moment; the web
    server is then stopped and microdot dropped while the validator checks it,
    as the two do not fit an ESP8266's heap together, and started again to show
    the problem or "saved"."""
    from time import ticks_diff, ticks_ms

    essid = "fireant-" + board.unique_id()[-4:]
    host, port = board.access_point(essid, ap_password)
    log("app", "%s starting: provisioning portal at http://%s:%d/" % (essid, host, port))
    t0 = ticks_ms()
    shown = [None, problem, 0]  # problem: why the settings on flash did not start the node
    while True:
        form = await _serve(essid, host, port, config, secrets, shown,
                            lambda: open_ms and ticks_diff(ticks_ms(), t0) >= open_ms)
        if form is None:
            log("portal", "nothing saved in %d s: rebooting to join again" % (open_ms // 1000))
            break
        gc.collect()
        problem = save(form, config, secrets)
        if problem is None:
            log("portal", "settings saved for %r: rebooting" % form.get("ssid"))
            shown[:] = [form, None, 1]
            t1 = ticks_ms()  # the "saved" page for the browser's next look, then the reset
            await _serve(essid, host, port, config, secrets, shown,
                         lambda: shown[2] == 2 or ticks_diff(ticks_ms(), t1) >= _SAVED_MS)
            await asyncio.sleep_ms(1000)  # the page's last bytes out of the radio before the reset
            break
        log("portal", "refused: %s" % problem)
        shown[:] = [form, problem, 0]
    board.reset()
