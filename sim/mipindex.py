"""A mip package index on loopback, for tests and offline installs (host only).

    with PackageIndex({"primitives": {"primitives/__init__.py": b"..."}}, ["a3fe38a"]) as index:
        mpremote mip install --index index.url primitives@a3fe38a

Laid out as micropython-lib's index (what mip asks for): package/<mpy>/<name>/<version>.json
lists (path, short sha256) pairs, and file/<h[:2]>/<h> holds each file. Any mpy
version gets the same files (source). Requests are recorded for tests.
"""
import hashlib
import http.server
import json
import os
import threading


def standin_packages():
    """The host stand-ins we wrote, packaged under the names deploy.py asks an index
    for (never upstream code)."""
    here = os.path.dirname(os.path.abspath(__file__))
    out = {}
    for name, pkg in (("micropython-mqtt", "mqtt_as"), ("primitives", "primitives")):
        d = os.path.join(here, "standin", pkg)
        out[name] = {}
        for f in sorted(os.listdir(d)):
            if f.endswith(".py"):
                with open(os.path.join(d, f), "rb") as fh:
                    out[name][pkg + "/" + f] = fh.read()
    return out


class PackageIndex:
    def __init__(self, packages, versions):
        """packages: {name: {path: content}}, each served under every version."""
        self.files = {}  # short hash -> content
        self.packages = {}  # (name, version) -> package json bytes
        self.requests = []
        for name, files in packages.items():
            hashes = []
            for path, data in sorted(files.items()):
                h = hashlib.sha256(data).hexdigest()[:8]
                self.files[h] = data
                hashes.append([path, h])
            for version in versions:
                self.packages[(name, version)] = json.dumps({"hashes": hashes, "version": version}).encode()
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                index.requests.append(self.path)
                body = index._lookup(self.path.strip("/").split("/"))
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *_):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self._server.server_address[1]

    def _lookup(self, parts):
        if len(parts) == 4 and parts[0] == "package" and parts[3].endswith(".json"):
            return self.packages.get((parts[2], parts[3][:-5]))
        if len(parts) == 3 and parts[0] == "file":
            return self.files.get(parts[2])
        return None

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_):
        self._server.shutdown()
        self._server.server_close()
