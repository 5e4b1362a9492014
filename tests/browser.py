"""A real headless Chromium for tests (Debian's package, installed here on first use as root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    """The chromium executable; installs Debian's ``chromium`` package when it is missing."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return exe
    if os.geteuid() != 0:
        raise RuntimeError("chromium is not installed; install Debian's chromium package (apt-get install chromium)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env, capture_output=True, timeout=900
    )
    exe = shutil.which("chromium")
    if not exe:
        raise RuntimeError("apt-get installed chromium but it is not on PATH")
    return exe


def render(page: Path, screenshot: Path) -> tuple[str, str]:
    """Load ``page`` in headless Chromium: ``(DOM after load, console/JS error lines)``; saves a screenshot."""
    exe = chromium()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        base = [exe, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0"]
        dom = subprocess.run(
            [*base, "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, timeout=120
        )
        shot = subprocess.run([*base, "--window-size=1200,3000", f"--screenshot={screenshot}", page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=120)
    errors = [ln for ln in (dom.stderr + shot.stderr).splitlines()
              if "CONSOLE" in ln or "Uncaught" in ln or "net::ERR" in ln or "Failed to load resource" in ln]
    return dom.stdout, "\n".join(errors)
