"""Which fine-tuning strategy a time limit should buy: `hone fit --time-limit L --strategy S` on
bench/automl.py's tweets split, for each limit and strategy (full fine-tuning, the frozen backbone).
The figures behind hone.pipeline.budget.PASSES (docs/automl.md).

Printed per run: the network's own test macro-F1, the chosen model's (its blend with LightGBM,
usually), how many passes over the training rows the network made, why it stopped and the wall time.

Run:  python bench/strategy_by_time.py [--limits 35,60,120] [--strategies full,frozen] [--table tweets]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from _machine import machine_line
from automl import load, split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limits", default="35,60,120")
    ap.add_argument("--strategies", default="full,frozen")
    ap.add_argument("--table", default="tweets")
    a = ap.parse_args()
    print(machine_line())
    df, target, _ = load(a.table)
    df = df.assign(bench_split=split(df))
    with tempfile.TemporaryDirectory(prefix="bench-strategy-") as tmp:
        data = Path(tmp) / "data.parquet"
        df.to_parquet(data)
        train_rows = int((df.bench_split == "train").sum())
        print(f"{a.table}: {len(df)} rows, {train_rows} for training")
        for limit in a.limits.split(","):
            for strategy in a.strategies.split(","):
                out = Path(tmp) / f"{strategy}-{limit}"
                t0 = time.perf_counter()
                r = subprocess.run([sys.executable, "-m", "hone", "-q", "fit", str(data), "--target", target,
                                    "--output", str(out), "--split-column", "bench_split", "--no-track",
                                    "--no-progress", "--time-limit", limit, "--strategy", strategy],
                                   capture_output=True, text=True)
                wall = time.perf_counter() - t0
                if r.returncode:
                    print(f"  {limit:>4} s  {strategy:<7} failed: {r.stderr.strip()[-300:]}")
                    continue
                m = json.loads((out / "metrics.json").read_text())
                tr = m["training"]
                batch = yaml.safe_load((out / "config.resolved.yaml").read_text())["train"]["batch_size"]
                passes = tr["steps"] * batch / train_rows if strategy != "frozen" else float(tr["epochs_run"])
                print(f"  {limit:>4} s  {strategy:<7} network {m['network']['macro_f1']:.4f}  "
                      f"chosen ({m['model']['chosen']}) {m['test']['macro_f1']:.4f}  "
                      f"{passes:.1f} {'epochs' if strategy == 'frozen' else 'passes'}  "
                      f"stop: {str(tr.get('stop_reason')).split(' (')[0]}  wall {wall:.1f} s", flush=True)


if __name__ == "__main__":
    main()
