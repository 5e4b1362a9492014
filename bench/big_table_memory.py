"""Peak memory of `hone fit` on a generated 10-million-row Parquet file (numeric + categorical columns).

It generates the file with DuckDB (seeded, ~300 MB), then measures, each with /usr/bin/time -v:
  1. the reference: pandas.read_parquet of the same file, the first step of tools that load the
     whole table into a DataFrame (any such tool peaks at least this high before it trains);
  2. `hone fit` on the full file: the split, statistics and scoring of all 10M rows are out of core
     (DuckDB with a 512 MB limit, Arrow batches); training reads a stated sample (--max-rows) and
     validation/test a stated cap (--max-eval-rows), both printed by hone.

Run:  python bench/big_table_memory.py [--rows 10000000] [--max-rows 1000000] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from _machine import machine_line
from _measure import peak_rss_mb


def generate(path: Path, rows: int) -> None:
    con = duckdb.connect()
    con.execute("SELECT setseed(0.42)")
    con.execute(f"""
        COPY (
          SELECT i AS row_id,
                 x1, x2, x3, x4, x5,
                 'city_' || (i * 7919 % 1000)::VARCHAR AS city,
                 ['web', 'app', 'store', 'phone'][1 + (i % 4)::INT] AS channel,
                 (x1 + 0.5 * x2 - 0.8 * x3 + (CASE WHEN i * 7919 % 1000 < 200 THEN 1.0 ELSE 0.0 END)
                  + 0.5 * random() > 0.9) AS churned
          FROM (SELECT range AS i, random() * 2 - 1 AS x1, random() * 2 - 1 AS x2, random() * 2 - 1 AS x3,
                       CASE WHEN random() < 0.1 THEN NULL ELSE random() * 100 END AS x4,
                       random() * 10 AS x5
                FROM range({rows}))
        ) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 122880)""")
    con.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--max-rows", type=int, default=1_000_000)
    ap.add_argument("--max-eval-rows", type=int, default=200_000)
    ap.add_argument("--epochs", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "big.parquet"
        t0 = time.perf_counter()
        generate(data, a.rows)
        print(f"generated {a.rows:,} rows ({data.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")
        ref_mb, ref_s, _, _ = peak_rss_mb(
            [sys.executable, "-c", f"import pandas as pd; df = pd.read_parquet('{data}'); print(len(df))"]
        )
        run = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "hone", "fit", str(data), "--target", "churned", "--output", str(run),
               "--max-rows", str(a.max_rows), "--max-eval-rows", str(a.max_eval_rows), "--epochs", str(a.epochs),
               "--no-progress"]
        print("$", " ".join(cmd))
        hone_mb, hone_s, out, err = peak_rss_mb(cmd)
        log = out + err
        print("\n".join(ln for ln in log.splitlines() if ln and not ln.startswith("\t")))
        m = json.loads((run / "metrics.json").read_text())
    print(f"\n{machine_line()}")
    print(f"{'what':<48} {'peak RSS MB':>12} {'wall s':>8}")
    print(f"{'pandas.read_parquet (load only, reference)':<48} {ref_mb:>12.0f} {ref_s:>8.1f}")
    print(f"{'hone fit (split of all rows, sampled training)':<48} {hone_mb:>12.0f} {hone_s:>8.1f}")
    print(f"hone test macro-F1 {m['test']['macro_f1']:.4f}, ROC-AUC {m['test']['roc_auc']:.4f}; "
          f"training {m['training']['train_samples_per_second']:.0f} rows/s")
    print(f"target: peak under 2048 MB -> {'PASS' if hone_mb < 2048 else 'FAIL'}")


if __name__ == "__main__":
    main()
