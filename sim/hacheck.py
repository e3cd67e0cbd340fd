"""Home Assistant's own MQTT discovery schemas, to check what the node sends.

    python -m sim.hacheck         # (./fireant ha) fill the cache: a venv with Home Assistant

Home Assistant is too big a dependency for the project's venv and wants its own
pins, so it gets a venv of its own in the cache ($FIREANT_CACHE/ha, default
~/.cache/fireant/ha), from PyPI. RELEASE is the last release that installs on
Python 3.11 (2024.2 needs 3.12); paho-mqtt is its MQTT integration's pin.

check(prefix, messages) runs, inside that venv, what Home Assistant does with a
discovery message (homeassistant/components/mqtt/discovery.py): the topic
against its TOPIC_MATCHER, the payload through json_loads_object, abbreviations
expanded by its tables, then the component's DISCOVERY_SCHEMA (voluptuous);
and renders each value_template with its template engine against payloads the
node published, as the entity would on receiving them.
"""
import json
import os
import subprocess
import sys

from sim import paths

RELEASE = "2024.1.6"
REQUIREMENTS = ("homeassistant==%s" % RELEASE, "paho-mqtt==1.6.1")
INSTALL_HINT = "./fireant ha (python -m sim.hacheck)"


def venv_dir():
    return os.path.join(paths.cache_dir(), "ha")


def python():
    return os.path.join(venv_dir(), "bin", "python")


def _marker():
    return os.path.join(venv_dir(), ".installed")


def _installed():
    """What the cache's venv was filled with (its marker, written last), or None."""
    try:
        with open(_marker()) as f:
            return f.read().strip()
    except OSError:
        return None


def unavailable():
    """Why the check cannot run here, or None."""
    have = _installed()
    if have is None:
        return "Home Assistant %s is not in %s: run %s" % (RELEASE, venv_dir(), INSTALL_HINT)
    if have != " ".join(REQUIREMENTS):
        return "%s has %s, not %s: run %s" % (venv_dir(), have, " ".join(REQUIREMENTS), INSTALL_HINT)
    return None


def install():
    """Fill the cache's venv; nothing to do when it already holds REQUIREMENTS. A
    venv filled with other pins is made anew (--clear), not upgraded in place."""
    d = venv_dir()
    have = _installed()
    if have == " ".join(REQUIREMENTS) and os.path.exists(python()):
        print("Home Assistant %s already in %s" % (RELEASE, d))
        return
    exe = "python3.11" if subprocess.run(["sh", "-c", "command -v python3.11"], capture_output=True).returncode == 0 \
        else sys.executable
    subprocess.run([exe, "-m", "venv"] + (["--clear"] if have is not None else []) + [d], check=True)
    subprocess.run([python(), "-m", "pip", "install", "-q", "--disable-pip-version-check"] + list(REQUIREMENTS),
                   check=True)
    subprocess.run([python(), "-m", "pip", "check"], check=True)
    with open(_marker(), "w") as f:
        f.write(" ".join(REQUIREMENTS) + "\n")
    print("Home Assistant %s in %s" % (RELEASE, d))


# Runs in the Home Assistant venv: stdin {"prefix", "messages": [[topic, payload]],
# "samples": {topic: [payload, ...]}}; stdout one result per message.
_CHECK = r'''
import importlib, json, sys, logging
logging.disable(logging.CRITICAL)
import voluptuous as vol
import homeassistant.components.persistent_notification  # first: HA's own start order, else a circular import
from homeassistant.components.mqtt.abbreviations import ABBREVIATIONS, DEVICE_ABBREVIATIONS
from homeassistant.components.mqtt.discovery import SUPPORTED_COMPONENTS, TOPIC_MATCHER
import asyncio, tempfile
from homeassistant.core import HomeAssistant
from homeassistant.helpers.template import Template
from homeassistant.util.json import json_loads_object


async def render(tpl, samples):
    hass = HomeAssistant(tempfile.mkdtemp())  # the template engine needs one; nothing is started
    return [Template(tpl, hass).async_render_with_possible_json_value(s, "") for s in samples]

job = json.load(sys.stdin)
out = []
for topic, payload in job["messages"]:
    r = {"topic": topic, "error": None, "rendered": []}
    out.append(r)
    trimmed = topic.replace(job["prefix"] + "/", "", 1)
    m = TOPIC_MATCHER.match(trimmed)
    if not m or not topic.startswith(job["prefix"] + "/"):
        r["error"] = "not a discovery topic under %s" % job["prefix"]
        continue
    component, node_id, object_id = m.groups()
    if component not in SUPPORTED_COMPONENTS:
        r["error"] = "component %s not supported" % component
        continue
    try:
        p = json_loads_object(payload)
    except ValueError as e:
        r["error"] = "not JSON: %s" % e
        continue
    for key in list(p):
        p[ABBREVIATIONS.get(key, key)] = p.pop(key)
    if "device" in p:
        for key in list(p["device"]):
            p["device"][DEVICE_ABBREVIATIONS.get(key, key)] = p["device"].pop(key)
    platform = importlib.import_module("homeassistant.components.mqtt." + component)
    try:
        cfg = platform.DISCOVERY_SCHEMA(p)
    except vol.Invalid as e:
        r["error"] = str(e)
        continue
    r["config"] = {k: str(v) if not isinstance(v, (str, int, float, bool, list, dict, type(None))) else v
                   for k, v in cfg.items() if k != "device"}
    tpl = cfg.get("value_template")
    if tpl is not None:
        r["rendered"] = asyncio.run(render(tpl.template, job["samples"].get(cfg.get("state_topic"), [])))
print(json.dumps(out))
'''


def check(prefix, messages, samples=None):
    """messages: [(topic, payload str)] as captured; samples: {state topic: [payload]}
    to render the templates with. Returns one dict per message: topic, error (None
    when Home Assistant accepts it), config (what its schema made of it),
    rendered (each sample through value_template)."""
    job = {"prefix": prefix, "messages": [list(m) for m in messages], "samples": samples or {}}
    p = subprocess.run([python(), "-c", _CHECK], input=json.dumps(job), capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError("the Home Assistant check failed:\n" + p.stderr[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    try:
        install()
    except subprocess.CalledProcessError as e:
        sys.exit("hacheck: %s failed (exit %d); nothing marked installed" % (" ".join(e.cmd), e.returncode))
