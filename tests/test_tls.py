"""TLS as the chips do it, under the MicroPython unix port with the real mqtt_as
against the test Mosquitto's TLS listener (its CA made at test time).

- a CA that did not sign the broker's certificate: refused, said, retried; the node
  keeps sensing and no task crashes;
- a clock at 2000-01-01, as an ESP32's after power-up (libfaketime runs the
  process's clock; the sim RTC moves it when the firmware sets it): certificate
  dates cannot be checked until NTP has set the clock, so that comes first;
- mqtt.ca holding several certificates (a bundle): tried one by one, the one that
  verifies the broker stays;
- TLS without mqtt.ca connects, unverified, and says so loudly at boot.

The ESP8266's refusal of mqtt.ca (axTLS cannot verify) is the validator's: see
tests/test_config.py and tests/mpy/config_errors.py, which run on MicroPython.
"""
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from sim import paths, unixport
from sim.firmware import sim_config
from sim.mosquitto import make_certs
from sim.ntpserver import NtpServer

pytestmark = pytest.mark.skipif(
    not paths.lib_dir(), reason="the real mqtt_as is neither in lib/ nor in the cache (./fireant upstream --from DIR)")
FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
Y2000 = 946684800


@pytest.fixture(scope="module")
def other_ca():
    d = tempfile.mkdtemp(prefix="fireant-otherca-")
    yield make_certs(d)["ca"]
    shutil.rmtree(d, ignore_errors=True)


def tls_config(broker, device, ca):
    return sim_config(broker, device=device, mqtt={"port": broker.tls_port, "tls": True, "ca": ca})


def connected(device):
    return lambda r: any(r["device"] == device for r in r.readings())


async def run(raw, broker, seconds, until=None, max_seconds=None, faults=()):
    r = await asyncio.to_thread(unixport.run, raw, broker=broker, libs="real", heapsize="256K", heap_every_ms=0,
                                seconds=seconds, until=until, max_seconds=max_seconds, faults=faults)
    assert r.returncode == 0 and r.logged("app: stopped"), r.output()
    return r


def attempts(r):
    return r.logged("mqtt: cannot connect to 127.0.0.1")


async def test_a_wrong_ca_is_refused_said_and_retried(broker, other_ca):
    r = await run(tls_config(broker, "tls-wrongca", other_ca), broker, seconds=6)
    failed = attempts(r)
    assert len(failed) >= 2, r.output()  # retried, with backoff
    # (the PEM file whole first: this unix port's mbedtls parses no PEM, "invalid cert")
    assert all("ValueError: invalid cert" in f or "ValueError: The certificate is not correctly signed by the trusted CA"
               in f for f in failed), failed
    assert any("not correctly signed" in f for f in failed), failed
    assert not r.readings() and not r.logged("Traceback") and not r.logged("crashed")
    stats = json.loads(r.logged("app: stopped")[0].split("app: stopped: ", 1)[1])
    assert stats["restarts"] == 0 and stats["seq"] > 0  # sensing went on


@pytest.mark.skipif(not os.path.exists(FAKETIME), reason="libfaketime is not installed (apt-get install faketime; "
                                                         "./fireant test installs it)")
async def test_a_clock_at_2000_is_set_by_ntp_before_the_first_tls_connect(broker, monkeypatch, tmp_path):
    ntp = NtpServer()
    await ntp.start()
    ntp.set_mode("silent")  # at first no NTP server answers: the clock stays at 2000
    clock = tempfile.mktemp(prefix="fireant-clock-")
    with open(clock, "w") as f:
        f.write("%+d" % -(int(time.time()) - Y2000))  # the process's clock reads 2000-01-01
    for k, v in {"LD_PRELOAD": FAKETIME, "FAKETIME_TIMESTAMP_FILE": clock, "FAKETIME_NO_CACHE": "1",
                 "FIREANT_SIM_CLOCK": clock, "FIREANT_SIM_NTP_PORT": str(ntp.port)}.items():
        monkeypatch.setenv(k, v)
    der = tmp_path / "ca.der"  # DER: what fails first is the certificate's date, not this port's PEM parsing
    subprocess.run(["openssl", "x509", "-in", broker.certs["ca"], "-outform", "DER", "-out", str(der)], check=True)
    raw = tls_config(broker, "tls-clock", str(der))
    raw["ntp"] = {"server": "127.0.0.1"}
    loop = asyncio.get_running_loop()
    try:
        r = await run(raw, broker, seconds=8, until=connected("tls-clock"), max_seconds=40,
                      faults=[(5, lambda: loop.call_soon_threadsafe(ntp.set_mode, "answer"))])
    finally:
        await ntp.close()
        os.remove(clock)
    before = [f for f in attempts(r) if "clock is behind" in f]
    assert r.logged("ntp: cannot set the clock from 127.0.0.1"), r.output()
    assert before, r.output()  # mbedtls checked the dates against 2000 and said so
    assert r.logged("ntp: clock set from 127.0.0.1: %d-" % time.gmtime()[0]), r.output()
    assert r.readings() and ntp.queries >= 2


async def test_a_ca_bundle_is_tried_certificate_by_certificate(broker, other_ca, tmp_path):
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(open(other_ca, "rb").read() + open(broker.certs["ca"], "rb").read())
    r = await run(tls_config(broker, "tls-bundle", str(bundle)), broker, seconds=3, until=connected("tls-bundle"),
                  max_seconds=30)
    failed = attempts(r)
    # The whole PEM first (this unix port's mbedtls parses no PEM: "invalid cert"), then
    # each certificate: the first did not sign the broker's, the second did.
    assert [f.split(": ValueError: ")[1].split(";")[0] for f in failed] == [
        "invalid cert", "The certificate is not correctly signed by the trusted CA"], r.output()
    assert r.readings(), r.output()


async def test_tls_without_a_ca_connects_and_warns(broker):
    r = await run(tls_config(broker, "tls-noca", ""), broker, seconds=3, until=connected("tls-noca"), max_seconds=20)
    assert r.logged("config: WARNING: mqtt.tls without mqtt.ca: the broker is not verified"), r.output()
    assert r.readings() and not attempts(r)
