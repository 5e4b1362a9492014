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

from hone.evaluation.bootstrap import macro_f1
from hone.models.ensemble import Parts

TOP_WORDS = 10
REPEATS = 5  # permutation importance's shuffles per column


class ShuffledScorer:
    """The chosen model's outputs on ``table`` with one column's values shuffled across rows.

    Each column enters the network through its own slice of the head's input (:meth:`HoneNet.fuse`)
    and the LightGBM baseline through its own features, so the encoders and the feature extraction
    run once and a shuffle is a permutation of that column's slice: exact, and as cheap as the head.
    A column that is not separable that way (several text columns, which the TF-IDF baseline reads
    joined) is shuffled in the table and rescored.
    """

    def __init__(self, model: Any, table: pa.Table) -> None:
        import torch

        from hone.models.inference import by_length
        from hone.models.precision import autocast

        self.model, self.table = model, table
        dec, pre = model.decision, model.pre
        self.fused: np.ndarray | None = None
        self.net_cols = self.base_cols = np.array([], dtype=object)
        joined: set[str] = set()
        if dec.uses_network:
            net, device = model.net, model.device

            def run(part: pa.Table) -> np.ndarray:
                with torch.inference_mode(), autocast(model.precision, device):
                    return net.fuse(pre.inputs(part, device)).float().cpu().numpy()

            was = net.training
            net.eval()
            try:
                self.fused = by_length(pre, table, run)
            finally:
                net.train(was)
            self.net_cols = np.array(net.output_columns(pre), dtype=object)
        self.base_x: Any = None
        if dec.uses_baseline and model.baseline is not None:
            from hone.explain.baseline import feature_columns, text_key

            b = model.baseline
            self.base_x = b._features(table)
            names = (feature_columns(b, embedded=True) if b.kind in ("lightgbm", "ensemble")
                     else [text_key(pre.text.columns)] * self.base_x.shape[1])
            self.base_cols = np.array(names, dtype=object)
            if pre.text is not None and len(pre.text.columns) > 1:
                joined = set(pre.text.columns)
        self.rescored = joined  # columns shuffled in the table itself

    def outputs(self, column: str | None = None, perm: np.ndarray | None = None) -> np.ndarray:
        model, dec = self.model, self.model.decision
        if column is not None and column in self.rescored:
            i = self.table.column_names.index(column)
            t = self.table.set_column(i, column, self.table.column(i).take(pa.array(perm)))
            return np.concatenate([o for _, o in model.outputs([t])])
        net_out = base_out = None
        if self.fused is not None:
            import torch

            from hone.models.inference import to_outputs
            from hone.models.precision import autocast

            fused = self.fused
            if column is not None:
                fused = fused.copy()
                dims = self.net_cols == column
                fused[:, dims] = self.fused[perm][:, dims]
            with torch.inference_mode(), autocast(model.precision, model.device):
                head = model.net.head(torch.from_numpy(fused).to(model.device))
            net_out = to_outputs(head.float(), model.pre)
        if self.base_x is not None:
            x = self.base_x
            if column is not None and isinstance(x, Parts):  # an ensemble: dense columns, and the TF-IDF rows
                from hone.explain.baseline import text_key

                width = x.dense.shape[1]  # the backbone's embeddings (of the text columns) follow the rest
                dims = np.flatnonzero(self.base_cols[:width] == column)
                dense = x.dense.copy()
                dense[:, dims] = x.dense[perm][:, dims]
                embedded = x.embedded
                if embedded is not None:
                    dims = np.flatnonzero(self.base_cols == column)
                    embedded = embedded.copy()
                    embedded[:, dims] = x.embedded[perm][:, dims]  # type: ignore[index]
                text, chars = x.text, x.chars
                if self.model.pre.text is not None and column == text_key(self.model.pre.text.columns):
                    text = None if text is None else text[perm]
                    chars = None if chars is None else chars[perm]
                x = Parts(dense, text, chars, embedded)
            elif column is not None:
                dims = np.flatnonzero(self.base_cols == column)
                if len(dims) == x.shape[1]:
                    x = x[perm]
                elif len(dims):
                    x = x.copy()
                    x[:, dims] = self.base_x[perm][:, dims]
            base_out = model.baseline.outputs_from(x)
        return dec.combine(net_out, base_out)


def _metric(model: Any, y: np.ndarray, out: np.ndarray, w: np.ndarray, pred: np.ndarray | None) -> float:
    """Higher is better: macro-F1 of the predictions (the model's decision rule applied to ``out``),
    or minus the RMSE; rows weighted by ``w`` (a bootstrap resample's counts)."""
    if model.task == "regression":
        return -float(np.sqrt(np.sum(w * (out - y) ** 2) / np.sum(w)))
    return macro_f1(y, out, w, pred)


def permutation_importance(model: Any, table: pa.Table, *, repeats: int = REPEATS, resamples: int = 200,
                           level: float = 0.95, seed: int = 0, scorer: ShuffledScorer | None = None) -> dict[str, Any]:
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
    scorer = scorer or ShuffledScorer(model, table)

    def predicted(out: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return out, None if model.task == "regression" else model.decision.predict(out)

    base = predicted(scorer.outputs())
    weights = [rng.multinomial(n, np.full(n, 1.0 / n)).astype(np.float64) for _ in range(resamples)]
    base_boot = np.array([_metric(model, y, base[0], w, base[1]) for w in weights])
    score = _metric(model, y, base[0], ones, base[1])
    cols = []
    alpha = (1 - level) / 2
    for name in model.pre.schema.names():
        shuffled = [predicted(scorer.outputs(name, rng.permutation(n))) for _ in range(repeats)]
        drop = score - np.mean([_metric(model, y, o, ones, p) for o, p in shuffled])
        boot = base_boot - np.array([np.mean([_metric(model, y, o, w, p) for o, p in shuffled]) for w in weights])
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
        net, base = r.get("network", {}), r.get("baseline", {})
        factor = net.get("blend_factor", 1.0)  # a blend's words count as much as its network part
        words = net.get("words", {}) if factor else {}
        seen: dict[str, float] = {}
        for ws in words.values():
            for w in ws:
                key = str(w[0]).lower()
                seen[key] = seen.get(key, 0.0) + float(w[1]) * factor
        for t, v in base.get("terms", []) if not words else []:
            seen[t] = seen.get(t, 0.0) + float(v) * base.get("blend_factor", 1.0)
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
