"""The design fireant replaces, measured beside it: a blocking node.

The seed tutorial's final program is `while True: measure(); publish(); sleep()`
over umqtt.robust, whose publish() answers any OSError by reconnecting in a
loop until it succeeds (sleeping between attempts) and then publishing again.
This is that program over paho-mqtt's blocking calls (no MQTT code of our own),
reading the same simulated sensor and using the same simulated link as the
firmware. Wherever the classic node would do worse, this one is given the
benefit of the doubt, so the comparison is not against a strawman:

- QoS 1 with a PUBACK timeout of response_s. The tutorial publishes QoS 0,
  which loses readings silently on a half-open link; umqtt.simple waits for a
  PUBACK with no timeout at all.
- connect() and the TLS handshake are bounded by response_s (umqtt.simple's
  wrap_socket() has no bound).
- A refused CONNACK is retried like an OSError. umqtt raises MQTTException,
  which umqtt.robust does not catch: the tutorial's node would crash.
- A failed sensor read is counted and skipped. The tutorial reconnects to the
  broker on it (its `except OSError` covers measure() too).
- A dead link fails socket calls at once (a real stack may block until TCP
  gives up), and reconnect attempts are delay_s apart: the benchmark passes
  fireant's shortest backoff, where umqtt.robust waits 2 s.

It adds seq and uptime_ms to its payload, as fireant does, so both are measured
the same way from the subscriber's side. It runs in a thread: its blocking is
its own and cannot stall the benchmark's loop.
"""
import asyncio
import errno
import json
import threading
import time

import dht
import machine
import network
import paho.mqtt.client as paho
import simboard

from app import dns


class Stopped(Exception):
    pass


class RobustClient:
    """umqtt.robust's contract on paho's blocking API. connect() raises OSError;
    publish() returns only once the broker has the message, reconnecting as often
    as it takes: it blocks for as long as the network is broken."""

    def __init__(self, node, client_id, server, port, user, password, keepalive_s, response_s,
                 delay_s, ca=None):
        self._node = node
        self._id = client_id
        self._server, self._port = server, port
        self._user, self._password = user, password
        self._keepalive_s = keepalive_s
        self._response_s = response_s
        self._delay_s = delay_s
        self._ca = ca
        self._c = None

    def _check_link(self):
        # The station's IP is gone while the medium is down or still re-associating.
        if simboard.link_up_for_ms() < simboard.get("join_ms"):
            raise OSError(errno.EHOSTUNREACH, "no Wi-Fi")

    def _resolve(self):
        # umqtt.simple calls socket.getaddrinfo() on every connect(); it blocks.
        # The same query and timeout as fireant's app/dns.py, waited for in place.
        self._check_link()
        server = ("127.0.0.1", network.DNS_PORT)  # what the sim network's DHCP hands a station
        return asyncio.run(dns.resolve(self._server, server))

    def connect(self):
        self.close()
        host = self._resolve()
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self._id, clean_session=True,
                        protocol=paho.MQTTv311, reconnect_on_failure=False)
        c.username_pw_set(self._user, self._password)
        c.connect_timeout = self._response_s  # bounds the TCP connect and the TLS handshake
        if self._ca:
            c.tls_set(ca_certs=self._ca)
        answer = []
        c.on_connect = lambda _c, _u, _f, rc, _p: answer.append(rc)
        self._c = c
        c.connect(host, self._port, self._keepalive_s)  # OSError (ssl.SSLError, timeout) on failure
        end = time.monotonic() + self._response_s
        while not answer:
            self._check_link()
            if time.monotonic() > end:
                raise OSError(errno.ETIMEDOUT, "no CONNACK")
            if c.loop(timeout=0.05) != paho.MQTT_ERR_SUCCESS:
                raise OSError(errno.ECONNRESET, "connection lost awaiting CONNACK")
        if answer[0].is_failure:
            raise OSError(errno.ECONNREFUSED, "CONNACK refused: %s" % answer[0])
        self._node.connects += 1

    def reconnect(self):
        while True:
            self._node.check_stop()
            try:
                return self.connect()
            except OSError as e:
                self._node.connect_failures += 1
                self._node.last_error = str(e)
            self._node.sleep(self._delay_s)

    def _publish(self, topic, msg):
        self._check_link()
        if self._c is None:
            raise OSError(errno.ENOTCONN, "not connected")
        info = self._c.publish(topic, msg, qos=1)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise OSError(errno.ECONNRESET, paho.error_string(info.rc))
        end = time.monotonic() + self._response_s
        while not info.is_published():
            self._check_link()
            if time.monotonic() > end:
                raise OSError(errno.ETIMEDOUT, "no PUBACK")
            if self._c.loop(timeout=0.05) != paho.MQTT_ERR_SUCCESS:
                raise OSError(errno.ECONNRESET, "connection lost awaiting PUBACK")

    def publish(self, topic, msg):
        while True:
            self._node.check_stop()
            try:
                return self._publish(topic, msg)
            except OSError as e:
                self._node.last_error = str(e)
            self.reconnect()

    def close(self):
        # Dropped, not disconnected: the node is gone, as a lost link leaves it.
        c, self._c = self._c, None
        if c is not None and c.socket() is not None:
            try:
                c.socket().close()
            except OSError:
                pass


class BlockingNode:
    """The reference node in a thread: start(), then stop() when done."""

    def __init__(self, device, interval_s, server, port, user, password, keepalive_s=8,
                 response_s=3, delay_s=0.2, ca=None, topic="sensors/environmental",
                 location="test bench", pin=5):
        self.device = device
        self.interval_s = interval_s
        self.topic = topic
        self.location = location
        self.seq = 0
        self.sensor_errors = 0
        self.connects = 0
        self.connect_failures = 0
        self.last_error = None
        self.crashed = None
        self._stop = threading.Event()
        self._thread = None
        self._sensor = dht.DHT22(machine.Pin(pin, machine.Pin.IN, machine.Pin.PULL_UP))
        self.client = RobustClient(self, device, server, port, user, password, keepalive_s,
                                   response_s, delay_s, ca)

    def check_stop(self):
        if self._stop.is_set():
            raise Stopped()

    def sleep(self, seconds):
        if self._stop.wait(seconds):
            raise Stopped()

    def _payload(self, uptime_ms, t, h):
        return json.dumps({"device": self.device, "location": self.location, "seq": self.seq,
                           "uptime_ms": uptime_ms, "temperature_C": t,
                           "temperature_F": round(t * 1.8 + 32, 1), "humidity": h})

    def _loop(self):
        self.client.reconnect()  # the tutorial connects before its first reading
        while True:
            now = time.ticks_ms()
            try:
                self._sensor.measure()
            except OSError:
                self.sensor_errors += 1
            else:
                self.seq += 1
                msg = self._payload(now, self._sensor.temperature(), self._sensor.humidity())
                self.client.publish(self.topic, msg)
            self.sleep(self.interval_s)

    def _run(self):
        try:
            self._loop()
        except Stopped:
            pass
        except Exception as e:  # reported by the benchmark, never silently dead
            self.crashed = repr(e)
        finally:
            self.client.close()

    def start(self):
        self._thread = threading.Thread(target=self._run, name="blocking-node", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=10):
        self._stop.set()
        self._thread.join(timeout)
