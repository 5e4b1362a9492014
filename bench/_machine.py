"""The machine a benchmark ran on, printed by every script in bench/: CPU model, cores, native bf16."""

from __future__ import annotations

import os
import time

from hone._provenance import cpu_model  # one reader of /proc/cpuinfo's model name


def native_bf16() -> str:
    """Which native bf16 instructions the CPU has (AVX-512 BF16, AMX), or "no"."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((ln for ln in f if ln.startswith("flags")), "").split()
    except OSError:
        return "unknown"
    found = [name for flag, name in (("avx512_bf16", "AVX-512 BF16"), ("amx_bf16", "AMX")) if flag in flags]
    return ", ".join(found) if found else "no"


def machine_line() -> str:
    """One line: date, CPU model, cores available to this process, native bf16, load average."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{time.strftime('%Y-%m-%d')} | CPU: {cpu_model()} | {cores} cores | native bf16: {native_bf16()} | "
            f"load average {os.getloadavg()[0]:.2f}")
