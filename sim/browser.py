"""A real headless browser for tests (host only): Debian's chromium, driven over
the Chrome DevTools Protocol on --remote-debugging-pipe (JSON messages, each
ended by a NUL, on file descriptors 3 and 4), so no websocket library is needed.

    with Browser() as b:
        b.open("http://127.0.0.1:8080/")
        b.type("input[name=ssid]", "home"); b.click("button"); b.wait_for("#saved")  # the next page's
        b.screenshot("form.png")
"""
import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time


def chromium():
    """The browser's executable, or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    def __init__(self, width=480, height=760, timeout_s=20):
        self.timeout_s = timeout_s
        self._profile = tempfile.mkdtemp(prefix="fireant-chromium-")
        to_browser, self._out = os.pipe()  # we write, it reads on fd 3
        self._in, from_browser = os.pipe()  # it writes on fd 4, we read

        def fds():
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self._proc = subprocess.Popen(
            [chromium(), "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
             "--user-data-dir=" + self._profile, "--window-size=%d,%d" % (width, height), "about:blank"],
            preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._id = 0
        self._buf = b""
        self._session = None
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)

    def send(self, method, **params):
        """One CDP command; its result (events in between are dropped)."""
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if self._session and not method.startswith("Target."):
            msg["sessionId"] = self._session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + self.timeout_s
        while time.monotonic() < end:
            while b"\0" not in self._buf:
                if not select.select([self._in], [], [], max(0.0, end - time.monotonic()))[0]:
                    raise TimeoutError(method)
                chunk = os.read(self._in, 65536)
                if not chunk:
                    raise RuntimeError("chromium closed its pipe")
                self._buf += chunk
            line, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(line)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError("%s: %s" % (method, reply["error"]))
                return reply["result"]
        raise TimeoutError(method)

    def js(self, expression):
        """The value of a JavaScript expression in the page."""
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError("%s: %s" % (expression, r["exceptionDetails"].get("text")))
        return r["result"].get("value")

    def wait_for(self, selector, timeout_s=None):
        """Wait until an element matching selector is in a loaded page; its text."""
        end = time.monotonic() + (timeout_s or self.timeout_s)
        probe = "!window.fireantStale && document.readyState === 'complete' && document.querySelector(%s) ? " \
                "document.querySelector(%s).innerText : null" % (json.dumps(selector), json.dumps(selector))
        while time.monotonic() < end:
            try:
                text = self.js(probe)
            except RuntimeError:  # the page was navigating
                text = None
            if text is not None:
                return text
            time.sleep(0.1)
        raise TimeoutError("no %s in %s" % (selector, self.js("location.href")))

    def open(self, url):
        self.send("Page.navigate", url=url)

    def type(self, selector, text, clear=True):
        """Focus the field and type into it, as a user would (Input.insertText)."""
        self.js("(e => {e.focus(); %s})(document.querySelector(%s))"
                % ("e.select();" if clear else "", json.dumps(selector)))
        if clear:
            self.send("Input.dispatchKeyEvent", type="keyDown", key="Delete", code="Delete",
                      windowsVirtualKeyCode=46)
            self.send("Input.dispatchKeyEvent", type="keyUp", key="Delete", code="Delete", windowsVirtualKeyCode=46)
        if text:
            self.send("Input.insertText", text=text)

    def click(self, selector):
        """A mouse click at the middle of the element. The page is marked stale
        first: wait_for() then waits for the one the click loads."""
        self.js("window.fireantStale = true")
        box = self.js("(r => [r.x + r.width / 2, r.y + r.height / 2])(document.querySelector(%s)"
                      ".getBoundingClientRect())" % json.dumps(selector))
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def screenshot(self, path):
        """The whole page as a PNG."""
        height = self.js("document.documentElement.scrollHeight")
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": self.js("document.documentElement.clientWidth"),
                               "height": height, "scale": 1})["data"]
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self._proc.terminate()
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._out)
        os.close(self._in)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
