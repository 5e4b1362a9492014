"""`hone serve` started in its own process on a free loopback port, for the service tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


@contextmanager
def running(model_dir: Path, *flags: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """``(url, process)`` of ``hone serve model_dir --port P *flags``, answering /health; stopped after.
    Its log is checked for tracebacks when it stops: no request may make the server log one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "hone", "serve", str(model_dir), "--port", str(port), *flags],
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the service did not start: " + proc.stdout.read().decode()[-2000:])
        yield url, proc
    finally:
        proc.terminate()
        log = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert "Traceback" not in log, log[-3000:]
