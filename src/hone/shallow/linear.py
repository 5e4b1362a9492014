"""Linear models on (sparse) features: logistic regression for classes, ridge for numbers, and the
scores of fitted coefficients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hone.evaluation.bootstrap import macro_f1

C_GRID = (0.25, 1.0, 4.0, 16.0)


@dataclass
class LinearFit:
    """Fitted coefficients ``[K or 1, D]`` and intercepts, and the regularisation chosen."""

    coef: np.ndarray
    intercept: np.ndarray
    c: float
    model: str


def fit_tuned(x: Any, y: np.ndarray, x_va: Any, y_va: np.ndarray, task: str, *, seed: int = 0) -> LinearFit:
    """Logistic regression (balanced classes) or ridge, its inverse regularisation ``C`` chosen from
    :data:`C_GRID` on validation (macro-F1; RMSE for numbers). Each ``C`` starts from the previous
    solution (warm start): the same optima in fewer iterations."""
    from sklearn.linear_model import LogisticRegression, Ridge

    best: LinearFit | None = None
    best_score = -np.inf
    logistic = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed, warm_start=True)
    for c in C_GRID:
        if task == "regression":
            model: Any = Ridge(alpha=1.0 / c).fit(x, y)
            score = -float(np.sqrt(np.mean((model.predict(x_va) - y_va) ** 2)))
        else:
            model = logistic.set_params(C=c).fit(x, y)
            score = macro_f1(y_va, model.predict_proba(x_va), np.ones(len(y_va)))
        if best is None or score > best_score:
            best_score = score
            best = LinearFit(np.atleast_2d(model.coef_).astype(np.float32),
                             np.atleast_1d(model.intercept_).astype(np.float32), c, type(model).__name__)
    assert best is not None
    return best


def fit_logistic(x: Any, y: np.ndarray, *, c: float = 4.0, max_iter: int = 300, tol: float = 1e-3) -> Any:
    """A plain logistic regression (the audit's out-of-fold model): ``predict_proba`` on new rows."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=max_iter, tol=tol).fit(x, y)


def linear_scores(x: Any, coef: np.ndarray, intercept: np.ndarray, task: str) -> np.ndarray:
    """Probabilities ``[N, K]`` (softmax, or the logistic of one score for two classes), or values ``[N]``."""
    z = np.asarray(x @ coef.T).reshape(x.shape[0], -1) + intercept
    if task == "regression":
        return np.asarray(z[:, 0])
    if task == "binary":
        p = 1 / (1 + np.exp(-z[:, 0]))
        return np.stack([1 - p, p], 1)
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(1, keepdims=True))
