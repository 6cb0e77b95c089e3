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
                   timeout: float = 60) -> str:
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
        res = run_chromium([f"--window-size={width},900", "--virtual-time-budget=3000", "--dump-dom", url], timeout)
    finally:
        tmp.unlink(missing_ok=True)
    if res.returncode != 0 or "<html" not in res.stdout:
        raise RuntimeError(f"chromium --dump-dom failed (rc {res.returncode}): {res.stderr[-800:]}")
    return res.stdout
