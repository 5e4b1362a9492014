"""What the report shows beyond headline metrics, as JSON-able figures computed from test outputs:
ROC and precision-recall curves, the confusion matrix, the reliability diagram, residuals by
target range, metrics per slice, and the test rows wrong with the highest confidence."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from hone.evaluation.bootstrap import accuracy, macro_f1
from hone.evaluation.calibration import reliability

_POINTS = 200


def _thin(xs: np.ndarray, ys: np.ndarray) -> list[list[float]]:
    idx = np.unique(np.linspace(0, len(xs) - 1, min(len(xs), _POINTS)).astype(int))
    return [[round(float(xs[i]), 5), round(float(ys[i]), 5)] for i in idx]


def curves(y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """ROC and precision-recall curves of the positive class (index 1), thinned to 200 points."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    if len(np.unique(y)) < 2:
        return {}
    fpr, tpr, _ = roc_curve(y, proba[:, 1])
    prec, rec, _ = precision_recall_curve(y, proba[:, 1])
    return {"roc": _thin(fpr, tpr), "pr": _thin(rec[::-1], prec[::-1]), "positive_rate": float(np.mean(y == 1))}


def confusion(y: np.ndarray, pred: np.ndarray, k: int) -> list[list[int]]:
    """``[true][predicted]`` counts."""
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (y, pred), 1)
    return m.tolist()


def residuals(y: np.ndarray, pred: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Error by target range (deciles of the truth) and a sample of (truth, prediction) points."""
    edges = np.unique(np.quantile(y, np.linspace(0, 1, bins + 1)))
    idx = np.clip(np.searchsorted(edges, y, side="right") - 1, 0, len(edges) - 2)
    by_range = [{"from": float(edges[b]), "to": float(edges[b + 1]), "rows": int((idx == b).sum()),
                 "mae": float(np.abs(pred - y)[idx == b].mean()), "bias": float((pred - y)[idx == b].mean())}
                for b in range(len(edges) - 1) if (idx == b).any()]
    sample = np.random.default_rng(0).permutation(len(y))[:_POINTS]
    return {"by_range": by_range, "points": [[float(y[i]), float(pred[i])] for i in sample]}


def slices(table: pa.Table, columns: list[str], task: str, y: np.ndarray, out: np.ndarray, pred: np.ndarray | None,
           *, min_rows: int = 20, top: int = 20) -> dict[str, list[dict[str, Any]]]:
    """The headline metric per value of each column (values with at least ``min_rows`` rows, the
    ``top`` most frequent); a slice is flagged when it is much worse than the whole (5 points of
    macro-F1 or accuracy, or 25% more MAE)."""
    res: dict[str, list[dict[str, Any]]] = {}
    w_all = np.ones(len(y))
    if task == "regression":
        whole = float(np.mean(np.abs(out - y)))
    else:
        whole = macro_f1(y, out, w_all, pred)
    for col in columns:
        values = np.asarray(table.column(col).to_pylist(), dtype=object)
        uniq, counts = np.unique(values.astype(str), return_counts=True)
        rows = []
        for v, n in sorted(zip(uniq, counts), key=lambda t: -t[1])[:top]:
            if n < min_rows:
                continue
            sel = values.astype(str) == v
            if task == "regression":
                m = float(np.mean(np.abs(out[sel] - y[sel])))
                bad = m > 1.25 * whole
                rows.append({"value": v, "rows": int(n), "mae": m, "worse": bool(bad)})
            else:
                p = pred[sel] if pred is not None else None
                m = macro_f1(y[sel], out[sel], np.ones(int(n)), p)
                acc = accuracy(y[sel], out[sel], np.ones(int(n)), p)
                rows.append(
                    {"value": v, "rows": int(n), "macro_f1": m, "accuracy": acc, "worse": bool(m < whole - 0.05)}
                )
        res[col] = rows
    return res


def worst_errors(table: pa.Table, task: str, y: np.ndarray, out: np.ndarray, pred: np.ndarray | None,
                 classes: list[Any], k: int = 20) -> list[dict[str, Any]]:
    """The ``k`` test rows wrong with the highest confidence (largest error for regression), with
    their inputs (long text cut to 300 characters)."""
    if task == "regression":
        err = np.abs(out - y)
        order = np.argsort(-err)[:k]
        picked = [(int(i), {"truth": float(y[i]), "prediction": float(out[i]), "error": float(err[i])}) for i in order]
    else:
        assert pred is not None
        wrong = np.flatnonzero(pred != y)
        conf = out[wrong, pred[wrong]]
        order = wrong[np.argsort(-conf)][:k]
        picked = [(int(i), {"truth": classes[int(y[i])], "prediction": classes[int(pred[i])],
                            "confidence": float(out[i, pred[i]])}) for i in order]
    rows = table.take(pa.array([i for i, _ in picked], type=pa.int64())).to_pylist() if picked else []
    return [{**info, "inputs": {c: (v[:300] if isinstance(v, str) else v) for c, v in r.items()}}
            for (_, info), r in zip(picked, rows)]


def report_figures(table: pa.Table, task: str, classes: list[Any], y: np.ndarray, out: np.ndarray,
                   pred: np.ndarray | None, slice_columns: list[str], raw: np.ndarray | None = None) -> dict[str, Any]:
    """Every figure of the report, from the test split's outputs (``raw``: before calibration)."""
    fig: dict[str, Any] = {}
    if task == "regression":
        fig["residuals"] = residuals(y, out)
    else:
        assert pred is not None
        fig["confusion_matrix"] = {"classes": [str(c) for c in classes], "counts": confusion(y, pred, len(classes))}
        fig["reliability"] = {"after": reliability(y, out)}
        if raw is not None:
            fig["reliability"]["before"] = reliability(y, raw)
        if task == "binary":
            fig["curves"] = curves(y, out)
    if slice_columns:
        fig["slices"] = slices(table, slice_columns, task, y, out, pred)
    fig["worst_errors"] = worst_errors(table, task, y, out, pred, classes)
    return fig
