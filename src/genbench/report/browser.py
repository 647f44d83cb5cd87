"""Open a report in headless Chromium: did every image load, did the page log errors? Plus a screenshot.

The page itself records broken images and script errors into ``<pre id="report-check">`` on load
(see the template); ``--dump-dom`` reads that back, and Chromium's own log (``--enable-logging``)
is scanned for console errors. Debian's ``chromium`` package is enough: nothing is downloaded.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--allow-file-access-from-files")
CONSOLE_ERROR = re.compile(r"Uncaught|CONSOLE\(\d+\).*(error|Error)|:ERROR:CONSOLE", re.IGNORECASE)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(binary: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="genbench-chromium-") as profile:
        cmd = [binary, *FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def check_report(page: Path, screenshot: Path | None = None, timeout: float = 60.0) -> dict:
    """``{"images": n, "broken": [...], "errors": [...], "console": [...], "screenshot": path}``."""
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("chromium not found")
    url = Path(page).resolve().as_uri()
    res = _run(binary, ["--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", url], timeout)
    m = re.search(r'<pre id="report-check"[^>]*>(.*?)</pre>', res.stdout, re.DOTALL)
    if not m or not m.group(1).strip():
        raise RuntimeError(f"the page did not report its check (chromium exit {res.returncode}): {res.stderr[-800:]}")
    check = json.loads(html.unescape(m.group(1)))
    check["console"] = [line for line in res.stderr.splitlines() if CONSOLE_ERROR.search(line)]
    if screenshot is not None:
        screenshot = Path(screenshot).resolve()
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        shot = _run(binary, ["--window-size=1280,2000", "--virtual-time-budget=5000",
                             f"--screenshot={screenshot}", url], timeout)
        if not screenshot.is_file():
            raise RuntimeError(f"no screenshot written (chromium exit {shot.returncode}): {shot.stderr[-800:]}")
        check["screenshot"] = str(screenshot)
    return check
