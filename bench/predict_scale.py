"""Peak memory and speed of `hone predict` scoring a generated 10-million-row Parquet file with a
tabular model (numeric + categorical columns), against a reference in the same run.

It generates the file (the same generator as bench/big_table_memory.py), fits a model on a
100,000-row sample (1 epoch), then measures, each in its own process under /usr/bin/time -v:
  1. the reference: pandas.read_parquet of the file + LightGBM (trained on the same sample)
     predicting all rows at once, the way a DataFrame-based tool scores;
  2. `hone predict` of all rows to Parquet (streamed in batches, input order kept).

Run:  python bench/predict_scale.py [--rows 10000000] [--workers N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from _machine import machine_line
from _measure import peak_rss_mb
from big_table_memory import generate

_REFERENCE = """
import sys, time, lightgbm as lgb, pandas as pd
train = pd.read_parquet(sys.argv[1]).sample(100_000, random_state=0)
feats = ["x1", "x2", "x3", "x4", "x5", "city", "channel"]
for c in ("city", "channel"):
    train[c] = train[c].astype("category")
model = lgb.LGBMClassifier(n_estimators=100, verbose=-1).fit(train[feats], train["churned"])
t0 = time.perf_counter()
df = pd.read_parquet(sys.argv[1])
for c in ("city", "channel"):
    df[c] = pd.Categorical(df[c], categories=train[c].cat.categories)
p = model.predict_proba(df[feats])[:, 1]
pd.DataFrame({"row_id": df["row_id"], "proba": p}).to_parquet(sys.argv[2])
print(f"scored {len(df)} rows in {time.perf_counter() - t0:.1f} s")
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--workers", type=int, default=None)
    a = ap.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "big.parquet"
        generate(data, a.rows)
        print(f"generated {a.rows:,} rows ({data.stat().st_size / 1e6:.0f} MB Parquet)")
        run = Path(tmp) / "run"
        subprocess.run([sys.executable, "-m", "hone", "-q", "fit", str(data), "--target", "churned", "--output",
                        str(run), "--max-rows", "100000", "--max-eval-rows", "50000", "--epochs", "1",
                        "--no-progress", "--no-audit"], check=True, capture_output=True)
        ref_mb, ref_s, ref_out, _ = peak_rss_mb(
            [sys.executable, "-c", _REFERENCE, str(data), str(Path(tmp) / "ref.parquet")]
        )
        out = Path(tmp) / "scored.parquet"
        cmd = [sys.executable, "-m", "hone", "predict", str(run / "model"), str(data), "--output", str(out),
               "--keep", "row_id", "--no-progress"] + (["--workers", str(a.workers)] if a.workers else [])
        mb, wall, _, _ = peak_rss_mb(cmd)
        n = pq.ParquetFile(out).metadata.num_rows
        print(f"{'what':<62} {'peak RSS MB':>12} {'wall s':>8} {'rows/s':>10}")
        print(f"{'pandas read + LightGBM predict_proba (reference; ' + ref_out.strip() + ')':<62} {ref_mb:>12.0f} "
              f"{ref_s:>8.1f} {a.rows / ref_s:>10,.0f}")
        print(f"{'hone predict (streamed, input order, Parquet out)':<62} {mb:>12.0f} {wall:>8.1f} {n / wall:>10,.0f}")
        print(f"target: peak under 1536 MB -> {'PASS' if mb < 1536 else 'FAIL'}; {n:,} rows written")


if __name__ == "__main__":
    main()
