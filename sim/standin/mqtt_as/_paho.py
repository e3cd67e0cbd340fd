"""Real MQTT for the CPython stand-in, through paho-mqtt.

paho runs in a thread of its own per connection (its blocking connect and TLS
handshake must not stall the test's event loop, as the real mqtt_as's
non-blocking socket does not); results come back through call_soon_threadsafe.
paho never reconnects by itself: reconnection is the stand-in's job, as in mqtt_as.

Keepalive: mqtt_as pings every ping interval and gives up after four silent
intervals. paho has no public ping, so it is given keepalive = 2 ping intervals:
it pings after that much silence and drops the link after as much again with no
answer, the same four-interval bound (the broker is told that keepalive too).
"""
import asyncio
import errno
import socket
import ssl
import threading
from time import ticks_ms

import paho.mqtt.client as paho

from . import on_wire

# paho 2 reports MQTT 3.1.1 CONNACK codes as MQTT 5 reason codes; mqtt_as reports
# the 3.1.1 code ("CONNACK reason code 0x5").
_V311 = {0x84: 1, 0x85: 2, 0x88: 3, 0x86: 4, 0x87: 5}


class _TLS(ssl.SSLContext):
    """Verifies the certificate against server_hostname although paho dials the
    address (the app resolves the name itself, as it does for mqtt_as)."""
    hostname = None

    def wrap_socket(self, sock, server_hostname=None, **kwargs):
        return super().wrap_socket(sock, server_hostname=self.hostname or server_hostname, **kwargs)


def _tls_context(params):
    # MicroPython ssl_params -> CPython context: cadata + cert_reqs verify, else not.
    # cadata as an ESP32's mbedtls takes it: one DER certificate, or PEM bytes holding
    # any number (CPython reads bytes as DER only, PEM as str). What it cannot parse
    # is MicroPython's ValueError.
    ctx = _TLS(ssl.PROTOCOL_TLS_CLIENT)
    cadata = params.get("cadata")
    if cadata and params.get("cert_reqs") == ssl.CERT_REQUIRED:
        if cadata.startswith(b"-----BEGIN"):
            cadata = cadata.decode()
        try:
            ctx.load_verify_locations(cadata=cadata)
        except (ssl.SSLError, UnicodeError):
            raise ValueError("invalid cert")
        ctx.hostname = params.get("server_hostname")
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Transport:
    def __init__(self, client):
        self._client = client
        self._paho = None
        self._loop = None
        self._up = False
        self._closed = False  # by the broker (not by our keepalive)
        self._acked = set()
        self._granted = {}
        self.inbound = []  # (topic, msg, retained) for the message task to hand to subs_cb

    def _rx(self):
        self._client.last_rx = ticks_ms()

    def _post(self, fn, *args):
        """From paho's thread into the loop now using the client (app.run() makes a
        second loop for its goodbye); a closed loop has nobody left to tell."""
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass

    async def connect(self, addr, cfg, clean):
        loop = self._loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._acked = set()
        self._closed = False
        will = cfg["will"] or (None, None)
        for field in (cfg["client_id"], cfg["user"], cfg["password"], will[0], will[1]):
            if field is not None and len(on_wire(field)[0]) != on_wire(field)[1]:
                raise OSError(-1, "Connection closed by host")  # the broker drops a malformed CONNECT

        ping_s = max(1, self._client._ping_interval // 1000)
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=on_wire(cfg["client_id"])[0].decode(),
                        clean_session=clean, protocol=paho.MQTTv311, reconnect_on_failure=False)
        if cfg["user"]:
            c.username_pw_set(on_wire(cfg["user"])[0].decode(), on_wire(cfg["password"])[0] or None)
        if cfg["will"]:
            topic, msg, retain, qos = (list(cfg["will"]) + [False, 0])[:4]
            c.will_set(on_wire(topic)[0].decode(), on_wire(msg)[0], qos, retain)
        if cfg["ssl"]:
            c.tls_set_context(_tls_context(cfg["ssl_params"]))
        def settle(fn, *a):
            self._post(lambda: done.done() or fn(*a))

        def on_connect(_c, _u, _flags, rc, _props):
            self._post(self._rx)
            if rc.is_failure:
                code = _V311.get(rc.value, rc.value)
                settle(done.set_exception, OSError(-1, "CONNACK reason code 0x%x" % code))
            else:
                settle(done.set_result, True)

        def on_publish(_c, _u, mid, _rc, _props):
            self._post(self._rx)
            self._post(self._ack, mid)

        def on_disconnect(_c, _u, _flags, rc, _props):
            self._post(self._lost, rc.getName() != "Keep alive timeout")
            settle(done.set_exception, OSError(-1, "Connection closed by host"))

        c.on_connect, c.on_publish, c.on_disconnect = on_connect, on_publish, on_disconnect
        def on_message(_c, _u, m):
            self._post(self._rx)
            self._post(self.inbound.append, (m.topic.encode(), bytes(m.payload), bool(m.retain)))

        def on_subscribe(_c, _u, mid, codes, _props):
            self._post(self._rx)
            self._post(self._granted.__setitem__, mid, codes[0].value)

        c.on_message, c.on_subscribe = on_message, on_subscribe
        self.inbound = []
        def run():
            try:
                c.connect(addr[0], addr[1], keepalive=2 * ping_s)
            except (OSError, ssl.SSLError) as e:
                settle(done.set_exception, OSError(getattr(e, "errno", None) or errno.ECONNREFUSED, str(e)))
                return
            c.loop_forever(timeout=0.1)

        self._paho = c
        threading.Thread(target=run, daemon=True, name="paho").start()
        try:
            await asyncio.wait_for(done, self._client._response_time / 1000)
        except asyncio.TimeoutError:
            raise OSError(-1, "Timeout on socket read")
        self._up = True

    def _ack(self, mid):
        self._acked.add(mid)

    def _lost(self, by_host):
        if self._up:
            self._closed = by_host
        self._up = False

    def closed_by_host(self):
        return self._closed

    def ping(self):
        if not self._up:
            raise OSError(-1, "Connection closed by host")
        # paho pings by itself on silence (see the module note)

    def subscribe(self, topic, qos):
        """Returns a callable: the SUBACK's granted QoS (0x80: refused), None before it."""
        if not self._up:
            raise OSError(-1, "Connection closed by host")
        t, t_len = on_wire(topic)
        if len(t) != t_len:
            self._drop()
            raise OSError(-1, "Connection closed by host")
        rc, mid = self._paho.subscribe(t.decode(), qos)
        if rc != paho.MQTT_ERR_SUCCESS:
            raise OSError(-1, "subscribe failed: %s" % paho.error_string(rc))
        return lambda: self._granted.get(mid)

    def publish(self, topic, msg, retain, qos):
        """Returns a callable: has the broker acknowledged it yet. A republish is a
        new message to paho: the subscriber sees it twice, as after upstream's."""
        if not self._up:
            raise OSError(-1, "Connection closed by host")
        self._loop = asyncio.get_running_loop()
        (t, t_len), (m, m_len) = on_wire(topic), on_wire(msg)
        if len(t) != t_len or len(m) != m_len:
            if len(t) == t_len:  # the broker parsed a payload cut short, then garbage
                self._paho.publish(t.decode(), m[:m_len], qos, retain)
            self._drop()
            return lambda: False
        info = self._paho.publish(t.decode(), m, qos, retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise OSError(-1, "publish failed: %s" % paho.error_string(info.rc))
        return lambda: info.mid in self._acked

    def _drop(self):
        """The broker closes the connection unannounced (it then sends the will)."""
        self._close_socket()
        self._up, self._closed = False, True

    def close(self, graceful):
        if self._paho is None:
            return
        if graceful:
            self._paho.disconnect()  # DISCONNECT: the broker discards the will
        else:
            self._close_socket()
        self._paho, self._up = None, False

    def _close_socket(self):
        c = self._paho
        sock = c.socket() if c is not None else None
        if sock is not None:  # drop the TCP connection unannounced, as a lost link does
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if c is not None:
            c.disconnect()
