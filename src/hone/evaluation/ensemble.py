"""Greedy ensemble selection (Caruana, Niculescu-Mizil, Crew and Ksikes, "Ensemble selection from
libraries of models", ICML 2004) on validation outputs: start from the best single model, then add,
with replacement, the model whose addition improves the averaged output most, for a fixed number of
rounds; the weights are how often each model was picked.

The selection loss is the log loss for classes (a smooth proxy that keeps probabilities honest; the
decision rule is tuned after, on the ensemble) or ROC-AUC when that is the run's metric, and the
squared error for numbers (the absolute error with ``mae``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Selection:
    """Weights per model (summing to 1), the validation loss of the ensemble and of each model alone."""

    weights: np.ndarray
    loss: float
    single: list[float]
    rounds: int


def selection_loss(task: str, metric: str, y: np.ndarray, out: np.ndarray) -> float:
    """Lower is better: log loss, minus ROC-AUC (binary, ``metric`` roc_auc), squared or absolute error."""
    if task == "regression":
        err = out - y
        return float(np.mean(np.abs(err))) if metric == "mae" else float(np.mean(err ** 2))
    if task == "binary" and metric == "roc_auc" and len(np.unique(y)) == 2:
        from hone.evaluation.bootstrap import roc_auc

        return -float(roc_auc(y, out, np.ones(len(y))))
    p = np.clip(out[np.arange(len(y)), y], 1e-12, 1.0)
    return float(-np.mean(np.log(p)))


def greedy_selection(task: str, metric: str, y: np.ndarray, outputs: list[np.ndarray], *,
                     rounds: int = 25) -> Selection:
    """Caruana's selection with replacement over ``outputs`` (each ``[N, K]`` probabilities or ``[N]``
    values on the same validation rows). Non-finite outputs are never picked."""
    if not outputs:
        raise ValueError("greedy_selection needs at least one model's outputs")
    single = [selection_loss(task, metric, y, o) if np.all(np.isfinite(o)) else np.inf for o in outputs]
    counts = np.zeros(len(outputs))
    total = np.zeros_like(outputs[0], dtype=np.float64)
    best = np.inf
    for r in range(rounds):
        losses = [np.inf if not np.isfinite(single[i]) else
                  selection_loss(task, metric, y, (total + o) / (r + 1)) for i, o in enumerate(outputs)]
        i = int(np.argmin(losses))
        if not np.isfinite(losses[i]):
            break
        if r > 0 and losses[i] >= best - 1e-12 and _stalled(counts, r):
            break
        counts[i] += 1
        total += outputs[i]
        best = min(best, losses[i])
    if counts.sum() == 0:
        raise ValueError("no model has finite validation outputs")
    weights = counts / counts.sum()
    loss = selection_loss(task, metric, y, sum(w * o for w, o in zip(weights, outputs) if w > 0))
    return Selection(weights, loss, single, int(counts.sum()))


def _stalled(counts: np.ndarray, r: int) -> bool:
    """Stop once adding no longer helps after a few rounds (Caruana keeps going; a few extra picks only
    reweight, so stopping early on a plateau changes little and keeps the weights readable)."""
    return r >= 5
