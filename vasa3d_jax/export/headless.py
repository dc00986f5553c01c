"""Headless Chromium driven through the DevTools protocol (for the player's tests and measurements).

Chromium (Debian package ``chromium``) runs with software WebGL 2 (SwiftShader through ANGLE), the
flags of reference/assets.md §8, and a throw-away profile; the page must be served over HTTP
(``serve.make_server``). Every console error, uncaught exception and error log entry is collected
(``errors``). Needs ``websocket-client`` (test extra).
"""

from __future__ import annotations

import base64
import itertools
import json
import pathlib
import shutil
import subprocess
import tempfile
import time
import urllib.request

FLAGS = ("--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--ignore-gpu-blocklist", "--autoplay-policy=no-user-gesture-required", "--mute-audio",
         "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--remote-debugging-port=0")
BINARIES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """Path of a Chromium binary on PATH, or None."""
    return next((p for p in map(shutil.which, BINARIES) if p), None)


class Chromium:
    """One headless Chromium with one page. ``with Chromium(w, h) as c: c.open(url); c.evaluate(js)``."""

    def __init__(self, width: int = 800, height: int = 800, binary: str | None = None, timeout: float = 60.0):
        import websocket

        binary = binary or find_chromium()
        if binary is None:
            raise FileNotFoundError("no Chromium found; install it with `apt-get install chromium` (or `make setup-web`)")
        self.profile = pathlib.Path(tempfile.mkdtemp(prefix="vasa3d-chromium-"))
        self.log = open(self.profile / "stderr.log", "wb")
        self.proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={self.profile}",
                                      f"--window-size={width},{height}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        self.timeout, self.events, self._ids = timeout, [], itertools.count(1)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"Chromium did not start; see {self.profile / 'stderr.log'}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=timeout,
                                              suppress_origin=True)
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, method: str, **params) -> dict:
        """One DevTools command; returns its result (events that arrive meanwhile are kept)."""
        i = next(self._ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]
            self.events.append(msg)

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def evaluate(self, expression: str, timeout: float | None = None):
        """Value of a JavaScript expression (promises are awaited)."""
        r = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True,
                      timeout=int(1000 * (timeout or self.timeout)))
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise RuntimeError(f"JavaScript error: {d.get('exception', {}).get('description', d.get('text'))}")
        return r["result"].get("value")

    def screenshot(self) -> bytes:
        """PNG of the page as composited."""
        return base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen so far."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") == "error":
                out.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append(d.get("exception", {}).get("description", d.get("text")))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(f"{p['entry'].get('text')} ({p['entry'].get('url', '')})")
        return out

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)
