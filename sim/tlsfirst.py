# An ssl module for mqtt_as on axTLS (the ESP8266's TLS) that finishes the TLS
# handshake inside wrap_socket(), before mqtt_as writes its CONNECT. Host tooling
# for the ESP8266 model (sim/unixport.py run(..., tls_first=True)), frozen in it;
# the firmware does not use it (docs/esp8266.md, "TLS").
#
# Why: mqtt_as wraps a non-blocking socket and writes CONNECT straight away.
# axTLS (extmod/modtls_axtls.c) can only finish a handshake in one of two ways:
# - do_handshake=True: within wrap_socket(), which on a non-blocking socket gives
#   up at the first read that would block (OSError EAGAIN), before the server
#   has answered;
# - do_handshake=False (what app/client.py passes, and mqtt_as's ESP8266 example
#   tls8266.py): wrap_socket() sends the ClientHello and returns; the handshake
#   would go on in later reads, but axTLS's ssl_write() sends application data
#   whatever the handshake's state: mqtt_as's CONNECT leaves unencrypted in the
#   middle of the handshake and the broker drops the connection (OpenSSL:
#   "unexpected record").
# So this wrap_socket() makes the socket blocking with a timeout for the
# handshake (as umqtt does on an ESP8266), then non-blocking again for mqtt_as.
# The event loop waits meanwhile: a round trip or two and an RSA public-key
# operation.
#
# install() puts it in sys.modules as "ssl", where mqtt_as's `import ssl` finds it.
import tls

TIMEOUT_S = 10


def wrap_socket(sock, server_hostname=None, **_):
    sock.settimeout(TIMEOUT_S)
    try:
        s = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT).wrap_socket(sock, server_hostname=server_hostname)
    finally:
        sock.setblocking(False)
    s.setblocking(False)
    return s


def install():
    import sys

    sys.modules["ssl"] = sys.modules[__name__]
