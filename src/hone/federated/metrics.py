"""Metrics of a federation from the silos' aggregates: a pooled confusion matrix (or sums of errors)
gives exactly the metrics of the pooled rows, which no one holds."""

from __future__ import annotations

from typing import Any

import numpy as np


def from_confusion(confusion: np.ndarray, loss_sum: float) -> dict[str, float]:
    """Accuracy, macro-F1 (over the classes present in truth or prediction, as scikit-learn's), balanced
    accuracy and log loss from a confusion matrix (rows: truth, columns: prediction).

    Example:
        >>> from_confusion(np.array([[3, 1], [0, 4]]), 2.0)["accuracy"]
        0.875
    """
    c = confusion.astype(np.float64)
    n = c.sum()
    if n == 0:
        return {}
    tp = np.diag(c)
    truth, pred = c.sum(axis=1), c.sum(axis=0)
    present = (truth + pred) > 0
    f1 = np.where(present, 2 * tp / np.maximum(truth + pred, 1e-12), 0.0)
    recall = tp[truth > 0] / truth[truth > 0]
    return {"accuracy": float(tp.sum() / n), "macro_f1": float(f1[present].mean()),
            "balanced_accuracy": float(recall.mean()), "log_loss": float(loss_sum / n), "rows": int(n)}


def from_sums(n: float, sse: float, sae: float, sum_y: float, sum_y2: float) -> dict[str, float]:
    """RMSE, MAE and R^2 from sums over rows (squared and absolute errors, the target and its square)."""
    if not n:
        return {}
    total = sum_y2 - sum_y * sum_y / n
    return {"rmse": float((sse / n) ** 0.5), "mae": float(sae / n),
            "r2": float(1 - sse / total) if total > 0 else float("nan"), "rows": int(n)}


def silo_metrics(task: str, classes: list[Any], m: dict[str, Any]) -> dict[str, float]:
    """One silo's (or the pooled) metrics from its evaluation reply's sums."""
    if task == "regression":
        return from_sums(m["num-examples"], m["sse"], m["sae"], m["sum-y"], m["sum-y2"])
    k = len(classes)
    return from_confusion(np.asarray(m["confusion"], dtype=np.int64).reshape(k, k), m["loss-sum"])


def pooled_metrics(task: str, classes: list[Any], replies: list[tuple[str, dict[str, Any]]]) -> dict[str, float]:
    """The metrics of every silo's rows together, from the summed aggregates of ``(silo, sums)``."""
    if not replies:
        return {}
    total: dict[str, Any] = {}
    for _, m in replies:
        for key, v in m.items():
            if isinstance(v, list):
                total[key] = [a + b for a, b in zip(total.get(key, [0] * len(v)), v)]
            elif isinstance(v, (int, float)):
                total[key] = total.get(key, 0) + v
    return silo_metrics(task, classes, total)
