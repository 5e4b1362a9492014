"""Run a command in its own process under /usr/bin/time -v: peak memory, wall time and its output."""

from __future__ import annotations

import re
import subprocess
import sys
import time


def peak_rss_mb(cmd: list[str]) -> tuple[float, float, str, str]:
    """``(peak RSS in MB, wall seconds, stdout, stderr without time's report)``; exits on failure."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    err = "\n".join(
        ln for ln in proc.stderr.splitlines() if not ln.startswith("\t") and "Command being timed" not in ln
    )
    return kb / 1024, wall, proc.stdout, err
