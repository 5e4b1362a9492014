"""Bootstrap intervals, blocked (hone.evaluation.bootstrap) against the per-resample loop they replaced,
in the same run: 1,000 resamples of a binary test split of 2 models (macro-F1, accuracy, ROC-AUC,
average precision), at several sizes. The loop uses hone's one-resample metric functions on the same
multinomial draws; the script checks that both give the same intervals.

    python bench/bootstrap_speed.py
"""

from __future__ import annotations

import time

import numpy as np

from _machine import machine_line
from hone.evaluation.bootstrap import accuracy, bootstrap, macro_f1, pr_auc, roc_auc


def _loop(y: np.ndarray, outputs: list[np.ndarray], n: int, seed: int) -> list[dict[str, list[float]]]:
    rng = np.random.default_rng(seed)
    m = len(y)
    out: list[dict[str, list[float]]] = [{"accuracy": [], "macro_f1": [], "roc_auc": [], "pr_auc": []} for _ in outputs]
    for _ in range(n):
        w = np.bincount(rng.integers(0, m, m), minlength=m).astype(np.float64)
        for i, o in enumerate(outputs):
            out[i]["accuracy"].append(accuracy(y, o, w))
            out[i]["macro_f1"].append(macro_f1(y, o, w))
            out[i]["roc_auc"].append(roc_auc(y, o, w))
            out[i]["pr_auc"].append(pr_auc(y, o, w))
    return out


def main() -> None:
    print(machine_line())
    head = ("test rows", "per-resample loop s", "blocked s", "speed-up", "largest bound difference")
    print(f"{head[0]:>10} {head[1]:>20} {head[2]:>10} {head[3]:>9} {head[4]:>25}")
    for m in (40, 500, 5_000, 50_000):
        rng = np.random.default_rng(m)
        y = rng.integers(0, 2, m)
        outputs = [np.round(rng.dirichlet(np.ones(2), m), 2) for _ in range(2)]
        n = min(1000, max(200, 20_000_000 // m))  # what bootstrap() uses for this many rows
        t0 = time.perf_counter()
        loop = _loop(y, outputs, n, seed=0)
        t_loop = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = bootstrap("binary", y, outputs, n=n, seed=0)
        t_block = time.perf_counter() - t0
        diff = max(abs(float(np.percentile(loop[i][k], q)) - res["models"][i][k][b])
                   for i in range(2) for k in loop[i] for q, b in ((2.5, "ci_low"), (97.5, "ci_high")))
        print(f"{m:>10,} {t_loop:>20.3f} {t_block:>10.3f} {t_loop / t_block:>8.1f}x {diff:>25.1e}")


if __name__ == "__main__":
    main()
