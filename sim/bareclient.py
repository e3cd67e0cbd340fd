# The reference for the ESP8266 model's heap figures: a bare mqtt_as client, the
# minimal example of mqtt_as's README with fireant's settings, run by
# sim/unixport.py (run(..., program="bareclient")) on the same sim board and the
# same broker as the firmware. It connects, then takes a DHT reading and
# publishes it as a small JSON with QoS 1 every interval (the README's
# "publish, then sleep"): while mqtt_as waits through an outage nothing is
# sampled. No backlog, no tasks of its own beyond mqtt_as's; Ctrl-C disconnects.
# With mqtt.tls it connects as mqtt_as's ESP8266 example does (do_handshake
# False), or with FIREANT_TLS_FIRST through sim/tlsfirst.py (docs/esp8266.md).
# Its "starting" line comes once the first connect() succeeded (the runner's
# clock starts there).
#
# Host tooling, never on a board (MicroPython only). Its log follows the
# firmware's, so the same runner reads it: "[ticks] bare: ... starting: ...",
# "bare: Ctrl-C", "bare: stopped: {...}", and with FIREANT_HEAP_MS set the live
# heap after a collection, "[ticks] heap: <live> live <free> free", as unixrun.
import gc
import json
import os
from time import ticks_ms

import asyncio
import dht
import machine
from mqtt_as import MQTTClient, config


def log(text):
    print("[%9d] bare: %s" % (ticks_ms(), text))


def heap():
    gc.collect()
    print("[%9d] heap: %d live %d free" % (ticks_ms(), gc.mem_alloc(), gc.mem_free()))


# The settings the firmware runs with (its config.json; the README writes them inline).
with open("config.json") as f:
    cfg = json.load(f)
m = cfg["mqtt"]
device = cfg["device"]
config["client_id"] = device.encode()
config["server"] = m["server"]
config["port"] = m["port"]
config["user"] = m["user"].encode()
config["password"] = m["password"].encode()
config["keepalive"] = m["keepalive_s"]
config["ping_interval"] = m["ping_interval_s"]
config["response_time"] = m["response_time_s"]
config["will"] = (("fireant/%s/status" % device).encode(), b"offline", True, 1)
config["ssid"] = cfg["wifi"]["ssid"]
config["wifi_pw"] = cfg["wifi"]["password"]
config["queue_len"] = 1  # the event interface, as the README's example
if m.get("tls"):  # as mqtt_as's ESP8266 example (tls8266.py), without client certificates
    config["ssl"] = True
    config["ssl_params"] = {"server_hostname": m["server"], "do_handshake": False}
    if os.getenv("FIREANT_TLS_FIRST"):  # the ESP8266 model: sim/tlsfirst.py as mqtt_as's ssl
        import tlsfirst

        tlsfirst.install()
        del tlsfirst
TOPIC = m.get("topic", "sensors/environmental").encode()
PIN = cfg["sensor"]["pin"]
INTERVAL_MS = int(cfg["sensor"]["interval_s"] * 1000)
del cfg, m, f
stats = {"seq": 0, "published": 0, "sensor_errors": 0}


async def main(client):
    while True:  # the README: the first connect() raises on failure, the caller retries
        try:
            await client.connect()  # Wi-Fi, its 5 s stability check, then the broker
            break
        except OSError as e:
            log("connect failed: %r" % (e,))
            await asyncio.sleep(1)
    # The runner's clock (faults, run time) starts here, once connected: the
    # firmware's first connect is quick (its Wi-Fi task joined already).
    log("%s starting: connected, DHT22 every %d ms" % (device, INTERVAL_MS))
    sensor = dht.DHT22(machine.Pin(PIN))
    while True:
        try:
            sensor.measure()
        except OSError:
            stats["sensor_errors"] += 1
        else:
            stats["seq"] += 1
            msg = '{"device":"%s","seq":%d,"uptime_ms":%d,"temperature_C":%.1f,"humidity":%.1f}' % (
                device, stats["seq"], ticks_ms(), sensor.temperature(), sensor.humidity())
            await client.publish(TOPIC, msg.encode(), qos=1)  # pauses while the link is down
            stats["published"] += 1
        await asyncio.sleep_ms(INTERVAL_MS)


async def sample_heap(period_ms):
    while True:
        heap()
        await asyncio.sleep_ms(period_ms)


async def stop(client):
    try:
        await asyncio.wait_for(client.disconnect(), 2)
    except Exception:
        client.close()
    log("stopped: %s" % stats)


client = MQTTClient(config)
period = int(os.getenv("FIREANT_HEAP_MS") or 0)
if period:
    asyncio.create_task(sample_heap(period))
try:
    asyncio.run(main(client))
except KeyboardInterrupt:
    log("Ctrl-C")
finally:
    asyncio.new_event_loop()
    asyncio.run(stop(client))
heap()
