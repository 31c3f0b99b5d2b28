"""Headless Chromium for the report tests, driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: JSON messages ending in NUL on file descriptors 3 and 4), so no
websocket client, driver or network port is needed. :func:`open_page` loads a file, collects
console messages, uncaught exceptions, log entries and every request the page makes, runs a
few DOM queries and takes a screenshot; :func:`decode_png` reads the screenshot back with NumPy
and zlib alone.

    python tests/headless.py page.html shot.png [width]     # a screenshot from the shell
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless_shell")


def find_browser() -> Optional[str]:
    """``$BACKPROP_CHROMIUM`` or the first Chromium-like program on ``PATH``."""
    env = os.environ.get("BACKPROP_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    for n in NAMES:
        p = shutil.which(n)
        if p:
            return p
    return None


@dataclass
class PageResult:
    """What :func:`open_page` saw."""

    console: List[Dict[str, Any]] = field(default_factory=list)  # Runtime.consoleAPICalled params
    exceptions: List[Dict[str, Any]] = field(default_factory=list)  # Runtime.exceptionThrown params
    log: List[Dict[str, Any]] = field(default_factory=list)  # Log.entryAdded entries
    requests: List[str] = field(default_factory=list)  # URLs of Network.requestWillBeSent
    dom: Dict[str, Any] = field(default_factory=dict)  # results of the DOM queries
    png: bytes = b""

    @property
    def errors(self) -> List[str]:
        """Console errors and warnings, uncaught exceptions and error/warning log entries."""
        out = [f"console.{c['type']}: {[a.get('value', a.get('description')) for a in c.get('args', [])]}"
               for c in self.console if c.get("type") in ("error", "warning", "assert")]
        for e in self.exceptions:
            d = e.get("exceptionDetails", {})
            out.append(f"exception: {d.get('text')} {d.get('exception', {}).get('description', '')}".strip())
        out += [f"log {e.get('level')}: {e.get('text')} ({e.get('url', '')})" for e in self.log
                if e.get("level") in ("error", "warning")]
        return out


class _Pipe:
    def __init__(self, proc: subprocess.Popen, to_browser: int, from_browser: int) -> None:
        self.proc, self.w, self.r = proc, to_browser, from_browser
        self.buf = b""
        self.next_id = 0
        self.events: List[Dict[str, Any]] = []

    def send(self, method: str, params: Optional[Dict[str, Any]] = None, session: Optional[str] = None,
             timeout: float = 30.0) -> Dict[str, Any]:
        self.next_id += 1
        msg: Dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._read(timeout)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, timeout: float = 30.0) -> Dict[str, Any]:
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        while True:
            m = self._read(timeout)
            if m.get("method") == method:
                return m
            self.events.append(m)

    def _read(self, timeout: float) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from the browser")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"the browser closed the pipe (exit code {self.proc.poll()})")
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)


DOM_QUERIES = {
    "title": "document.title",
    "height": "document.documentElement.scrollHeight",
    "width": "document.documentElement.scrollWidth",
    "svgs": "document.querySelectorAll('svg').length",
    "svgs_drawn": "[...document.querySelectorAll('svg')].filter(s => s.getBoundingClientRect().width > 0).length",
    "images": "document.images.length",
    "images_decoded": "[...document.images].filter(i => i.complete && i.naturalWidth > 0).length",
    "scripts": "document.scripts.length",
    "text_chars": "document.body.innerText.length",
}


class Browser:
    """One headless Chromium (a context manager); :meth:`open` loads pages in fresh tabs."""

    def __init__(self, browser: Optional[str] = None, width: int = 1200, height: int = 900) -> None:
        exe = browser or find_browser()
        if exe is None:
            raise FileNotFoundError("no Chromium found (install chromium, or set BACKPROP_CHROMIUM)")
        self._profile = tempfile.TemporaryDirectory(prefix="bp-chromium-")
        cmd_r, cmd_w = os.pipe()  # we write commands, the browser reads them on fd 3
        out_r, out_w = os.pipe()  # the browser writes answers on fd 4

        def child_fds() -> None:  # in the child, before exec: the pipe ends become fds 3 and 4
            a, b = os.dup(cmd_r), os.dup(out_w)  # neither of these is 3 or 4 while those are open
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [exe, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                "--disable-sync", "--disable-component-update", "--mute-audio", "--hide-scrollbars",
                f"--user-data-dir={self._profile.name}", f"--window-size={width},{height}", "about:blank"]
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=child_fds, pass_fds=(3, 4))
        os.close(cmd_r)
        os.close(out_w)
        self._pipe = _Pipe(proc, cmd_w, out_r)

    def open(self, path: str, width: int = 1200, height: int = 900, scale: float = 1.0, full_page: bool = True,
             timeout: float = 60.0) -> PageResult:
        """Loads the local file ``path`` in a new tab (``width`` x ``height`` viewport), waits
        for the load event, runs :data:`DOM_QUERIES` and takes a PNG screenshot of the whole
        page (``full_page``) or the viewport, scaled by ``scale``; closes the tab."""
        pipe, res = self._pipe, PageResult()
        url = "file://" + os.path.abspath(path)
        pipe.events.clear()
        tid = pipe.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
        sid = pipe.send("Target.attachToTarget", {"targetId": tid, "flatten": True})["sessionId"]
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                pipe.send(f"{domain}.enable", session=sid)
            pipe.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=sid)
            pipe.send("Page.navigate", {"url": url}, session=sid)
            pipe.wait_event("Page.loadEventFired", timeout=timeout)
            for name, expr in DOM_QUERIES.items():
                r = pipe.send("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session=sid)
                res.dom[name] = r.get("result", {}).get("value")
            w = int(res.dom.get("width") or width)
            h = int(res.dom.get("height") or height) if full_page else height
            shot = pipe.send("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": full_page,
                "clip": {"x": 0, "y": 0, "width": max(w, width), "height": h, "scale": scale}}, session=sid, timeout=timeout)
            res.png = base64.b64decode(shot["data"])
        finally:
            pipe.send("Target.closeTarget", {"targetId": tid})
        for e in pipe.events:  # what the page did while we waited
            if e.get("sessionId") != sid:
                continue
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled":
                res.console.append(p)
            elif m == "Runtime.exceptionThrown":
                res.exceptions.append(p)
            elif m == "Log.entryAdded":
                res.log.append(p.get("entry", {}))
            elif m == "Network.requestWillBeSent":
                res.requests.append(p.get("request", {}).get("url", ""))
        pipe.events.clear()
        return res

    def close(self) -> None:
        """Closes the browser."""
        pipe = self._pipe
        try:
            pipe.send("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        for fd in (pipe.w, pipe.r):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            pipe.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pipe.proc.kill()
            pipe.proc.wait()
        self._profile.cleanup()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_page(path: str, browser: Optional[str] = None, **kw: Any) -> PageResult:
    """:meth:`Browser.open` in a browser started for this one page."""
    with Browser(browser) as b:
        return b.open(path, **kw)


def decode_png(data: bytes) -> np.ndarray:
    """A PNG (8-bit gray, RGB or RGBA, not interlaced) as an ``(h, w, channels)`` uint8 array."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat = 8, []
    w = h = depth = ctype = interlace = 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + n
    ch = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype)
    if depth != 8 or ch is None or interlace:
        raise ValueError(f"unsupported PNG (bit depth {depth}, colour type {ctype}, interlace {interlace})")
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8).reshape(h, 1 + w * ch)
    out = np.zeros((h, w * ch), dtype=np.int32)
    prev = np.zeros(w * ch, dtype=np.int32)
    for y in range(h):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if f == 0:
            cur = line
        elif f == 1:  # Sub: a running sum per channel
            cur = (np.cumsum(line.reshape(w, ch), axis=0) & 255).reshape(-1)
        elif f == 2:  # Up
            cur = (line + prev) & 255
        elif f in (3, 4):  # Average, Paeth: sequential along the row
            cur = np.empty_like(line)
            lst, pv = line.tolist(), prev.tolist()
            c = [0] * len(lst)
            for i in range(len(lst)):
                a = c[i - ch] if i >= ch else 0
                b = pv[i]
                if f == 3:
                    c[i] = (lst[i] + ((a + b) >> 1)) & 255
                else:
                    cc = pv[i - ch] if i >= ch else 0
                    p = a + b - cc
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                    c[i] = (lst[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else cc)) & 255
            cur = np.asarray(c, dtype=np.int32)
        else:
            raise ValueError(f"bad PNG filter {f}")
        out[y] = cur
        prev = cur
    return out.astype(np.uint8).reshape(h, w, ch)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit("usage: python tests/headless.py PAGE.html SHOT.png [WIDTH]")
    r = open_page(sys.argv[1], width=int(sys.argv[3]) if len(sys.argv) > 3 else 1100)
    with open(sys.argv[2], "wb") as f:
        f.write(r.png)
    print(json.dumps({"dom": r.dom, "errors": r.errors, "requests": r.requests}, indent=1))
