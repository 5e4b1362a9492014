"""The examples of issue 33 (bad input and messy data), each run as a user would type it, with the
`hone` that `python -m hone` finds: its exit code, whether it printed a traceback, and its last line.

Run it on two commits to compare them, e.g.
    git worktree add /tmp/before e4616b1
    PYTHONPATH=/tmp/before/src python bench/bad_input_examples.py     # before
    python bench/bad_input_examples.py                                # this checkout

(`serve --port 70000` and `--max-body-mb -1` are stopped after 20 s where they serve instead of refusing.)
"""
import gzip
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from _machine import machine_line

print(machine_line())
d = Path(tempfile.mkdtemp(prefix="hone-bad-input-"))
rng = np.random.default_rng(0)
n = 300
x = rng.normal(0, 1, n)
w = rng.normal(5, 2, n)
y = np.where(x > 0, "up", "down")
xs = x.copy()
xs[[1, 2]] = math.nan
xs[3] = math.inf
pq.write_table(pa.table({"x": xs, "w": w, "y": x * 3 + w}), d / "nonfinite_reg.parquet")
(d / "nan_cells.csv").write_text(
    "x,w,y\n"
    + "".join(f"{'NaN' if i % 10 == 0 else f'{v:.5f}'},{ww:.5f},{yy}\n" for i, (v, ww, yy) in enumerate(zip(x, w, y)))
)
yf = np.where(x > 0, 1.0, 0.0)
yf[[5, 6]] = math.nan
pq.write_table(pa.table({"x": x, "w": w, "y": yf}), d / "nan_target.parquet")
pq.write_table(pa.table({"x": x, "w": w, "y": np.full(n, math.nan)}), d / "all_nan_target.parquet")
pq.write_table(
    pa.table({"x": x, "s": [{"a": float(i), "b": str(i % 3)} for i in range(n)], "y": y.tolist()}), d / "struct.parquet"
)
(d / "ids.csv").write_text("x,y\n" + "".join(f"{i * 1.5},id{i}\n" for i in range(60)))
notes = [f"note {i} {v}" for i, v in enumerate(y)]
notes[7] = "word " * 40000
pacsv.write_csv(pa.table({"note": notes, "x": x, "y": y.tolist()}), d / "big_cell.csv")
pacsv.write_csv(pa.table({"x": x, "w": w, "y": y.tolist()}), d / "plain.csv")
with gzip.open(d / "plain.csv.gz", "wb") as f:
    f.write((d / "plain.csv").read_bytes())
(d / "a_file").write_text("x")
(d / "out_dir").mkdir()
(d / "dup.yaml").write_text("train:\n  lr: 0.01\ntrain:\n  epochs: 1\n")
(d / "bad.yaml").write_text("train:\n  epochs: 1\n  lr: [0.01\n")
words = pa.table(
    {"note": [f"this is note number {i} of many" for i in range(80)], "y": ["ab"[i % 2] for i in range(80)]}
)
pq.write_table(words, d / "words.parquet")

def hone(*args, timeout=600):
    """``(exit code or None if still running, traceback?, last line, process)`` of ``hone *args``."""
    try:
        p = subprocess.run([sys.executable, "-m", "hone", *map(str, args)], capture_output=True, text=True,
                           timeout=timeout, cwd=d, env={**os.environ, "HONE_TRACKING": "off", "HONE_EXPLAIN": "off"})
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode()[-120:].strip().replace("\n", " | ")
        return None, False, f"still running after {timeout} s: {out}", None
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    last = lines[-1] if lines else (p.stdout.strip().splitlines() or [""])[-1]
    return p.returncode, "Traceback" in p.stderr, last[:160], p


def fit(src, *a):
    return hone("fit", d / src, "--target", "y", "--epochs", "1", "--no-progress", "--output",
                d / f"run_{src}_{len(a)}", *a)
rows = []
def case(name, res, extra=""):
    code, tb, last, p = res
    rows.append((name, code, tb, last, extra))
    print(f"{name:<44} exit {code} {'TRACEBACK ' if tb else ''}| {last} {extra}", flush=True)


r = fit("nonfinite_reg.parquet")
out = (d / "run_nonfinite_reg.parquet_0" / "metrics.json")
case("NaN/inf in a Parquet feature", r, (json.loads(out.read_text())["model"]["why"] if out.exists() else ""))
case("CSV cells reading NaN", fit("nan_cells.csv"))
r = fit("nan_target.parquet")
m = d / "run_nan_target.parquet_0" / "model" / "hone.json"
case("NaN in a float class target", r, ("classes " + str(json.loads(m.read_text())["classes"]) if m.exists() else ""))
case("all-NaN target", fit("all_nan_target.parquet"))
case("struct column", fit("struct.parquet"))
case("struct column as --categorical", fit("struct.parquet", "--categorical", "s"))
case(
    "--max-length 4096 (backbone reads 512)",
    hone(
        "fit",
        d / "words.parquet",
        "--target",
        "y",
        "--epochs",
        "1",
        "--no-progress",
        "--max-length",
        "4096",
        "--output",
        d / "run_ml",
    ),
)
case("as many classes as rows", fit("ids.csv"))
case("CSV cell over 131,072 bytes", fit("big_cell.csv", "--max-length", "16"))
case("gzip-compressed CSV", fit("plain.csv.gz"))
case("fit --output an existing file", fit("plain.csv", "--output", d / "a_file"))
model = d / "run_plain.csv.gz_0" / "model"
if not model.exists():
    fit("plain.csv")
    model = d / "run_plain.csv_0" / "model"
case("predict --output an existing folder", hone("predict", model, d / "plain.csv", "--output", d / "out_dir"))
before = (d / "plain.csv").read_bytes()
r = hone("predict", model, d / "plain.csv", "--output", d / "plain.csv")
case(
    "predict --output its own input",
    r,
    "input changed" if (d / "plain.csv").read_bytes() != before else "input unchanged",
)
(d / "plain.csv").write_bytes(before)
case("unwritable --output", hone("predict", model, d / "plain.csv", "--output", "/sys/hone/x.csv"))
case("YAML key given twice", fit("plain.csv", "--config", d / "dup.yaml"))
case("YAML syntax error", fit("plain.csv", "--config", d / "bad.yaml"))
case("serve --port 70000", hone("serve", model, "--port", "70000", timeout=20))
case("serve --max-body-mb -1", hone("serve", model, "--max-body-mb", "-1", "--port", "18765", timeout=20))
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    case("serve on a port in use", hone("serve", model, "--port", s.getsockname()[1], timeout=30))
print(json.dumps(rows))
