"""Headless Chromium: screenshots of the page and its DOM after the scripts ran (for build and the page test)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--mute-audio")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name)
        if p:
            return p
    return None


def run_chromium(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Run headless Chromium with a throwaway profile and no network chatter."""
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium not found (Debian: apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="symbench-chromium-") as profile:
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def dump_dom(html_path: str | Path, fragment: str = "", timeout: float = 60) -> str:
    """The page's DOM after its scripts ran (``chromium --dump-dom``)."""
    url = Path(html_path).resolve().as_uri() + (f"#{fragment}" if fragment else "")
    res = run_chromium(["--window-size=1400,900", "--virtual-time-budget=3000", "--dump-dom", url], timeout)
    if res.returncode != 0 or "<html" not in res.stdout:
        raise RuntimeError(f"chromium --dump-dom failed (rc {res.returncode}): {res.stderr[-800:]}")
    return res.stdout


def take_screenshot(html_path: str | Path, png_path: str | Path, size: tuple[int, int] = (1400, 1500),
                    timeout: float = 60) -> Path:
    png_path = Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    res = run_chromium([f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=3000",
                        f"--screenshot={png_path}", Path(html_path).resolve().as_uri()], timeout)
    if res.returncode != 0 or not png_path.is_file():
        raise RuntimeError(f"chromium --screenshot failed (rc {res.returncode}): {res.stderr[-800:]}")
    return png_path


MAX_SHOT_HEIGHT = 16000


def page_height(html_path: str | Path, width: int, timeout: float = 60) -> int:
    """The page's full height at a window width (the page's script writes it to <html data-height>)."""
    url = Path(html_path).resolve().as_uri()
    res = run_chromium([f"--window-size={width},900", "--virtual-time-budget=3000", "--dump-dom", url], timeout)
    m = re.search(r'<html[^>]*data-height="(\d+)"', res.stdout)
    return int(m.group(1)) if m else 1500


def take_full_screenshot(html_path: str | Path, png_path: str | Path, width: int, timeout: float = 90) -> Path:
    """A full-page screenshot at ``width`` px (headless Chromium shoots the window, so size it to the page)."""
    height = min(max(page_height(html_path, width, timeout), 600), MAX_SHOT_HEIGHT)
    return take_screenshot(html_path, png_path, (width, height), timeout)


def dump_dom_after(html_path: str | Path, script: str, fragment: str = "", width: int = 1400,
                   timeout: float = 60, height: int = 900) -> str:
    """The DOM after the page's scripts and then ``script`` ran (a user's clicks, scripted).

    The page is copied beside itself with the script appended, so its relative links still resolve.
    """
    src = Path(html_path)
    fd, tmp = tempfile.mkstemp(dir=src.parent, prefix=".dom-", suffix=".html")
    os.close(fd)
    tmp = Path(tmp)
    try:
        tmp.write_text(src.read_text().replace("</body>", f"<script>{script}</script></body>"))
        url = tmp.resolve().as_uri() + (f"#{fragment}" if fragment else "")
        res = run_chromium([f"--window-size={width},{height}", "--virtual-time-budget=3000", "--dump-dom", url], timeout)
    finally:
        tmp.unlink(missing_ok=True)
    if res.returncode != 0 or "<html" not in res.stdout:
        raise RuntimeError(f"chromium --dump-dom failed (rc {res.returncode}): {res.stderr[-800:]}")
    return res.stdout


# ------------------------------------------------------------------------------------------------
# a phone's viewport: headless Chromium's window is at least 500 px wide, so --window-size=390 lays the page
# out at 500 px; DevTools' device emulation (over --remote-debugging-pipe, no extra package) gives a real
# 390 CSS px viewport, as a phone browser does
# ------------------------------------------------------------------------------------------------

class DevToolsPage:
    """One page in headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4)."""

    def __init__(self, timeout: float = 60):
        import json  # noqa: F401  (used by the methods)

        exe = find_chromium()
        if exe is None:
            raise FileNotFoundError("chromium not found (Debian: apt-get install -y chromium)")
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="symbench-chromium-")
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        # chromium reads commands on fd 3 and writes replies on fd 4
        fd3, fd4 = os.dup(to_chrome_r), os.dup(from_chrome_w)

        def child_fds():
            os.dup2(fd3, 3)
            os.dup2(fd4, 4)
        # close_fds=False: fds 3/4 are made by dup2 in the child after subprocess would close them; every other
        # fd of this process is non-inheritable (Python's default), so exec closes it anyway
        self.proc = subprocess.Popen([exe, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}",
                                      "--remote-debugging-pipe", "about:blank"], close_fds=False,
                                     preexec_fn=child_fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in (to_chrome_r, from_chrome_w, fd3, fd4):
            os.close(fd)
        self._buf = b""
        self._id = 0
        self.session = None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable")

    def call(self, method: str, **params) -> dict:
        import json
        import select
        import time

        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + self.timeout
        while True:
            while b"\0" not in self._buf:
                left = end - time.monotonic()
                if left <= 0 or not select.select([self._r], [], [], left)[0]:
                    raise TimeoutError(f"chromium did not answer {method} in {self.timeout:.0f} s")
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium exited during {method}")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})

    def open(self, html_path: str | Path, width: int, height: int, fragment: str = "", mobile: bool = True) -> None:
        """Emulate a ``width`` x ``height`` screen (a phone: ``mobile``) and load the page; scripts run."""
        import time

        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=mobile)
        url = Path(html_path).resolve().as_uri() + (f"#{fragment}" if fragment else "")
        self.call("Page.navigate", url=url)
        end = time.monotonic() + self.timeout
        while self.evaluate("document.readyState") != "complete" or not self.evaluate(
                "!!(document.body && document.body.getAttribute('data-js') !== null || !document.querySelector('script'))"):
            if time.monotonic() > end:
                raise TimeoutError(f"{url} did not finish loading")
            time.sleep(0.05)

    def evaluate(self, expression: str):
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"script failed: {res['exceptionDetails'].get('text')}")
        return res.get("result", {}).get("value")

    def screenshot(self, png_path: str | Path, full_page: bool = True) -> Path:
        """The page as seen (the whole page when ``full_page``), at the emulated width."""
        import base64

        png_path = Path(png_path).resolve()
        png_path.parent.mkdir(parents=True, exist_ok=True)
        params = {"format": "png"}
        if full_page:
            w, h = self.evaluate("[document.documentElement.clientWidth, Math.ceil(document.documentElement.scrollHeight)]")
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": w, "height": min(h, MAX_SHOT_HEIGHT),
                                                             "scale": 1})
        png_path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", **params)["data"]))
        return png_path

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except Exception:  # noqa: BLE001  (closing a browser that already went)
            pass
        for fd in (self._w, self._r):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._profile.cleanup()

    def __enter__(self) -> "DevToolsPage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# what a phone reader sees first, measured after the page's own script ran
_LAYOUT_JS = """
(function(){
  var de=document.documentElement, vw=de.clientWidth, vh=window.innerHeight, wide=[];
  Array.prototype.forEach.call(document.querySelectorAll('body *'),function(el){
    var r=el.getBoundingClientRect(); if(!r.width)return;
    for(var p=el.parentElement;p&&p!==document.body;p=p.parentElement){if(getComputedStyle(p).overflowX!=='visible')return;}
    if(r.right>vw+1)wide.push(el.tagName.toLowerCase()+(el.id?'#'+el.id:'')+(typeof el.className==='string'&&el.className?'.'+el.className.split(' ').join('.'):'')+' '+Math.round(r.right));
  });
  var sec=document.querySelector('section.tab.active'), row=sec&&sec.querySelector('tr.ranked:not(.hidden)');
  var r=row?row.getBoundingClientRect():null;
  return {viewport:[vw,vh],scrollWidth:de.scrollWidth,clientWidth:de.clientWidth,tab:sec?sec.id:null,
    first_ranked_top:r?Math.round(r.top+window.scrollY):null,first_ranked_bottom:r?Math.round(r.bottom+window.scrollY):null,
    overflowing:wide.slice(0,20)};
})()
"""


def measure_layout(html_path: str | Path, width: int = 390, height: int = 844, fragment: str = "",
                   timeout: float = 60) -> dict:
    """On a ``width`` x ``height`` phone screen: the page's ``scrollWidth`` (no horizontal overflow when it
    equals the viewport's width), where the active board's first ranked row lies, and any element sticking
    out past the right edge (outside a table's own scrolling box)."""
    with DevToolsPage(timeout) as page:
        page.open(html_path, width, height, fragment)
        return page.evaluate(_LAYOUT_JS)


def phone_screenshot(html_path: str | Path, png_path: str | Path, width: int = 390, height: int = 844,
                     timeout: float = 90) -> Path:
    """A full-page screenshot as a ``width`` px phone shows the page (true viewport width, not a cropped 500)."""
    with DevToolsPage(timeout) as page:
        page.open(html_path, width, height)
        return page.screenshot(png_path)
