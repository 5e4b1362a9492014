"""Decision rules chosen on the validation split: a binary threshold for an objective, and for
multiclass models trained with class weights, whether to correct the class priors.

Objectives (``--threshold-objective``): ``macro_f1`` (the mean F1 of both classes), ``f1`` (of the
positive class), ``accuracy``,
``precision_at_recall:R`` (the best precision among thresholds with recall >= R),
``recall_at_precision:P``, ``cost:fn=A,fp=B`` (the lowest total cost), or ``none`` (0.5).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hone.config import THRESHOLD_OBJECTIVE
from hone.errors import ConfigError


def check_objective(objective: str) -> str:
    """The objective if it is well formed; a :class:`ConfigError` naming the choices otherwise."""
    if not THRESHOLD_OBJECTIVE.match(objective) or objective == "auto":
        raise ConfigError(f"evaluate.threshold_objective {objective!r} is not one of: auto, none, f1, accuracy, "
                          "precision_at_recall:R, recall_at_precision:P, cost:fn=A,fp=B")
    return objective


def choose_threshold(
    y: np.ndarray, p: np.ndarray, objective: str, *, min_accuracy: float | None = None
) -> dict[str, Any]:
    """The threshold on the positive-class probability ``p`` that is best for ``objective`` on
    ``(y, p)`` (validation rows). A row is positive when ``p >= threshold``. With ``min_accuracy``,
    only thresholds whose accuracy reaches it are considered (when any does).

    Example:
        >>> choose_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.3, 0.35, 0.9]), "f1")["threshold"]
        0.35
        >>> choose_threshold(np.array([0, 0, 0, 0, 1]), np.array([.1, .9, .8, .7, .2]), "macro_f1")["threshold"] > 1
        True
    """
    check_objective(objective)
    if objective == "none" or len(np.unique(y)) < 2:
        return {"threshold": 0.5, "objective": objective, "validation_value": None}
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], (y[order] == 1).astype(np.float64)
    last = np.r_[ps[1:] != ps[:-1], True]  # the last row of each run of equal scores
    # candidates: each distinct score (everything at or above it is positive), and "flag nothing"
    tp = np.r_[0.0, np.cumsum(ys)[last]]
    fp = np.r_[0.0, np.cumsum(1 - ys)[last]]
    cand = np.r_[np.nextafter(1.0, 2.0), ps[last]]
    P, N = ys.sum(), len(ys) - ys.sum()
    fn, tn = P - tp, N - fp
    precision = tp / np.maximum(tp + fp, 1e-12)
    recall = tp / max(P, 1e-12)
    kind, _, arg = objective.partition(":")
    if kind == "f1":
        value = 2 * tp / np.maximum(2 * tp + fp + fn, 1e-12)
    elif kind == "macro_f1":
        value = (tp / np.maximum(2 * tp + fp + fn, 1e-12) + tn / np.maximum(2 * tn + fp + fn, 1e-12))
    elif kind == "accuracy":
        value = (tp + tn) / len(ys)
    elif kind == "precision_at_recall":
        value = np.where(recall >= float(arg) - 1e-12, precision, -np.inf)
    elif kind == "recall_at_precision":
        value = np.where(precision >= float(arg) - 1e-12, recall, -np.inf)
    else:
        costs = dict(part.split("=") for part in arg.split(","))
        value = -(float(costs["fn"]) * fn + float(costs["fp"]) * fp)
    if min_accuracy is not None:
        meets = (tp + tn) / len(ys) >= min_accuracy - 1e-12
        if meets.any():
            value = np.where(meets, value, -np.inf)
    if not np.isfinite(value).any():
        return {"threshold": 0.5, "objective": objective, "validation_value": None,
                "note": "no threshold reaches the target on validation; 0.5 kept"}
    best = int(np.argmax(value))  # the highest threshold among equals: fewest positives
    return {"threshold": float(cand[best]), "objective": objective, "validation_value": float(value[best])}


def apply_threshold(proba: np.ndarray, threshold: float) -> np.ndarray:
    """Class indices of a binary model: 1 where the positive probability reaches the threshold."""
    return (proba[:, 1] >= threshold).astype(np.int64)


def prior_correction(y: np.ndarray, proba: np.ndarray, class_weights: np.ndarray) -> dict[str, Any]:
    """For a multiclass model trained with class weights: argmax of the probabilities as they are,
    or of the probabilities divided by the class weights (undoing the weighting's shift of the
    priors)? Chosen on validation by macro-F1, among the rules whose accuracy is at least the
    majority rate when any is.
    """
    from hone.evaluation.bootstrap import accuracy, macro_f1

    w = np.ones(len(y))
    majority = float(np.bincount(y, minlength=proba.shape[1]).max() / len(y))
    rules = {"argmax": np.ones(proba.shape[1]), "prior_corrected": 1.0 / np.asarray(class_weights, dtype=np.float64)}
    scored = {}
    for name, factors in rules.items():
        adj = proba * factors
        scored[name] = (accuracy(y, adj, w), macro_f1(y, adj, w))
    ok = [n for n, (acc, _) in scored.items() if acc >= majority] or list(scored)
    best = max(ok, key=lambda n: (scored[n][1], n == "argmax"))
    return {"rule": best, "factors": rules[best].tolist(), "majority_rate": majority,
            "validation": {n: {"accuracy": a, "macro_f1": f} for n, (a, f) in scored.items()}}
