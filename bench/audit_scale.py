"""Peak memory and time of `hone audit` on a generated 10-million-row Parquet file with planted
duplicates, conflicting labels and near-duplicate texts (the label-error step, which samples, is off).

The file (DuckDB, seeded) has a short text, two numbers, a category and a binary label. Planted:
  * 1% exact copies (row 100k+1 repeats row 100k),
  * 1% near copies (row 100k+2 repeats row 100k's text with one word changed),
  * 0.1% conflicting copies (row 1000k+3 repeats row 1000k's features with the other label).
It measures, each in its own process under /usr/bin/time -v:
  1. the reference: pandas.read_parquet + DataFrame.duplicated on the feature columns, what a
     DataFrame-based check does (exact duplicates only);
  2. `hone audit` (every check but label errors: columns, exact/conflicting/near duplicates, split
     leakage, label hygiene), and prints what it found against what was planted.

Run:  python bench/audit_scale.py [--rows 10000000]
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

_WORDS = 16


def generate(path: Path, rows: int) -> None:
    con = duckdb.connect()
    word = lambda k: f"'w' || (hash(s, {k}) % 30000)::VARCHAR"  # noqa: E731
    words = ", ".join(f"CASE WHEN i % 100 = 2 AND {k} = 5 THEN 'changed' ELSE {word(k)} END" for k in range(_WORDS))
    con.execute(f"""
        COPY (
          SELECT concat_ws(' ', {words}) AS text,
                 (hash(s, 101) % 1000000) / 1e6 AS x1,
                 CASE WHEN hash(s, 102) % 10 = 0 THEN NULL ELSE (hash(s, 103) % 1000) / 10.0 END AS x2,
                 'shop_' || (hash(s, 104) % 300)::VARCHAR AS shop,
                 CASE WHEN i % 1000 = 3 THEN NOT y ELSE y END AS label
          FROM (SELECT i, s, ((hash(s, 101) % 1000000) / 1e6 + (hash(s, 1) % 30000 < 15000)::INT * 0.5 > 0.7) AS y
                FROM (SELECT range AS i, CASE WHEN range % 100 = 1 THEN range - 1 WHEN range % 100 = 2 THEN range - 2
                                               WHEN range % 1000 = 3 THEN range - 3 ELSE range END AS s
                      FROM range({rows})))
        ) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 122880)""")
    con.close()


_PANDAS = """
import sys, pandas as pd
df = pd.read_parquet(sys.argv[1])
print("exact duplicate rows (features):", int(df.duplicated(subset=["text", "x1", "x2", "shop"]).sum()))
"""

_HONE = """
import sys, hone
hone.audit(sys.argv[1], target="label", output=sys.argv[2], **{"quality.label_errors": False})
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    a = ap.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.parquet"
        t0 = time.perf_counter()
        generate(path, a.rows)
        print(
            f"generated {a.rows:,} rows ({path.stat().st_size / 2**20:.0f} MB Parquet) "
            f"in {time.perf_counter() - t0:.0f} s"
        )
        n100, n1000 = a.rows // 100, a.rows // 1000
        print(f"planted: {n100:,} exact copies (of which {n1000:,} in conflicting groups), {n100:,} near copies, "
              f"{n1000:,} conflicting copies")
        mem, wall, out, _ = peak_rss_mb([sys.executable, "-c", _PANDAS, str(path)])
        print(f"reference pandas read_parquet + duplicated: peak {mem:,.0f} MB, {wall:.0f} s; {out.strip()}")
        mem, wall, _, _ = peak_rss_mb([sys.executable, "-c", _HONE, str(path), str(Path(tmp) / "audit")])
        data = json.loads((Path(tmp) / "audit" / "audit.json").read_text())
        print(f"hone audit (no label-error step): peak {mem:,.0f} MB, {wall:.0f} s, {a.rows / wall:,.0f} rows/s "
              f"-> {'under' if mem < 2048 else 'OVER'} the 2 GB target")
        for f in data["findings"]:
            if f["check"] in ("exact_duplicates", "conflicting_labels", "near_duplicates", "split_leakage"):
                print(f"  {f['check']}: {f['count']:,} rows - {f['message']}")


if __name__ == "__main__":
    main()
