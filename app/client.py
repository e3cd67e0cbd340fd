"""Builds the mqtt_as client from our settings. Needed only at start-up: run()
Firmware drops this module afterwards so its RAM goes to the tasks."""
from .node import log
from .publisher import topic


def make(cfg, device):
    """The mqtt_as client for our settings."""
    from mqtt_as import MQTTClient, config as defaults

    m = cfg["mqtt"]
    c = dict(defaults)
    c["client_id"] = device.encode()
    c["server"] = m["server"]
    c["port"] = m["port"]
    c["user"] = m["user"]
    c["password"] = m["password"]
    c["keepalive"] = m["keepalive_s"]
    c["ping_interval"] = m["ping_interval_s"]
    c["response_time"] = m["response_time_s"]
    c["will"] = (topic(m["status_topic"], device), "offline", True, 1)
    c["ssid"] = cfg["wifi"]["ssid"]
    c["wifi_pw"] = cfg["wifi"]["password"]
    c["queue_len"] = 1  # event interface: client.up / client.down
    c["ssl"] = m["tls"]
    if m["tls"]:
        # do_handshake=False: the handshake then runs inside mqtt_as's non-blocking
        # reads and writes instead of blocking the loop in wrap_socket().
        params = {"server_hostname": m["server"], "do_handshake": False}
        if m["ca"]:
            import ssl

            try:
                params["cadata"] = _der(m["ca"])
            except OSError as e:  # keep sensing; every connect attempt will say why it fails
                log("mqtt", "cannot read the CA file mqtt.ca %r (%s)" % (m["ca"], e))
            params["cert_reqs"] = ssl.CERT_REQUIRED
        c["ssl_params"] = params
    return MQTTClient(c)


def _der(path):
    """The CA certificate as DER: MicroPython's ssl takes one DER certificate as
    cadata and refuses PEM ("invalid cert"), while CA files usually come as PEM."""
    with open(path, "rb") as f:
        data = f.read()
    begin = data.find(b"-----BEGIN")
    if begin < 0:
        return data
    from binascii import a2b_base64

    body = data[data.find(b"\n", begin) + 1:data.find(b"-----END", begin)]
    return a2b_base64(body.replace(b"\r", b"").replace(b"\n", b""))
