"""Global importance: what the chosen model relies on, over many rows.

* Permutation importance: the drop of the validation metric when one input column's values are
  shuffled across rows (its link to the label broken, its distribution kept), averaged over a few
  shuffles, with a bootstrap interval (rows resampled, paired: the same draws for the intact and the
  shuffled predictions). It needs nothing but the chosen model's outputs, so it works for the
  network, the baseline and the blend alike.
* From explained rows: the mean absolute attribution per column, and the words with the largest
  mean attribution towards each class.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

from hone.evaluate.bootstrap import macro_f1

TOP_WORDS = 10


def _outputs(model: Any, table: pa.Table) -> np.ndarray:
    return np.concatenate([o for _, o in model.outputs([table])])


def _metric(model: Any, y: np.ndarray, out: np.ndarray, w: np.ndarray) -> float:
    """Higher is better: macro-F1 with the model's decision rule, or minus the RMSE."""
    if model.task == "regression":
        return -float(np.sqrt(np.sum(w * (out - y) ** 2) / np.sum(w)))
    return macro_f1(y, out, w, model.decision.predict(out))


def permutation_importance(model: Any, table: pa.Table, *, repeats: int = 3, resamples: int = 200,
                           level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Permutation importance of every input column of ``table`` (a labelled batch typed as the
    model's schema): ``{"metric", "rows", "score", "columns": [{column, importance, ci_low, ci_high}]}``,
    most important first. ``importance`` is the metric's drop (macro-F1 points, or RMSE increase)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    y = model.pre.targets(table)
    if model.task == "regression":
        y = y * model.pre.target_std + model.pre.target_mean
    n = len(y)
    ones = np.ones(n)
    base = _outputs(model, table)
    weights = [rng.multinomial(n, np.full(n, 1.0 / n)).astype(np.float64) for _ in range(resamples)]
    base_boot = np.array([_metric(model, y, base, w) for w in weights])
    score = _metric(model, y, base, ones)
    cols = []
    alpha = (1 - level) / 2
    for name in model.pre.schema.names():
        i = table.column_names.index(name)
        shuffled = [_outputs(model, table.set_column(i, name, table.column(i).take(pa.array(rng.permutation(n)))))
                    for _ in range(repeats)]
        drop = score - np.mean([_metric(model, y, o, ones) for o in shuffled])
        boot = base_boot - np.array([np.mean([_metric(model, y, o, w) for o in shuffled]) for w in weights])
        cols.append({"column": name, "importance": float(drop), "ci_low": float(np.quantile(boot, alpha)),
                     "ci_high": float(np.quantile(boot, 1 - alpha))})
    cols.sort(key=lambda c: -c["importance"])
    return {"metric": "rmse increase" if model.task == "regression" else "macro_f1 drop", "rows": n,
            "repeats": repeats, "resamples": resamples, "level": level, "score": abs(score), "columns": cols,
            "seconds": round(time.perf_counter() - t0, 2)}


def attribution_summary(rows: list[dict[str, Any]], columns: list[str]) -> dict[str, Any]:
    """Mean absolute attribution per column over explained rows, and per explained class the words
    with the largest mean attribution towards it (seen at least twice when enough rows allow)."""
    mean_abs = {c: float(np.mean([abs(r["columns"].get(c, 0.0)) for r in rows])) if rows else 0.0 for c in columns}
    extra = sorted({k for r in rows for k in r["columns"]} - set(columns))  # e.g. the baseline's joined text
    mean_abs.update({c: float(np.mean([abs(r["columns"].get(c, 0.0)) for r in rows])) for c in extra})
    by_class: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        words = r.get("network", {}).get("words", {})
        seen: dict[str, float] = {}
        for ws in words.values():
            for w in ws:
                key = str(w[0]).lower()
                seen[key] = seen.get(key, 0.0) + float(w[1])
        for t, v in r.get("baseline", {}).get("terms", []) if not words else []:
            seen[t] = seen.get(t, 0.0) + float(v)
        cls = str(r.get("explained_class", "value"))
        for k, v in seen.items():
            by_class.setdefault(cls, {}).setdefault(k, []).append(v)
    top: dict[str, list[list[Any]]] = {}
    for cls, words in by_class.items():
        min_count = 2 if sum(len(v) >= 2 for v in words.values()) >= TOP_WORDS else 1
        ranked = sorted(((w, float(np.mean(v)), len(v)) for w, v in words.items() if len(v) >= min_count),
                        key=lambda x: -x[1])
        top[cls] = [[w, round(m, 6), c] for w, m, c in ranked[:TOP_WORDS]]
    units = rows[0]["units"] if rows else ""
    return {"rows": len(rows), "units": units, "mean_abs": dict(sorted(mean_abs.items(), key=lambda kv: -kv[1])),
            "top_words": top}
