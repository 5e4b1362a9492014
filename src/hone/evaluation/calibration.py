"""Temperature scaling fitted on validation, and the expected calibration error (ECE).

The temperature divides the log-probabilities (logits up to a constant) before the softmax; it is
fitted by minimising the validation negative log-likelihood, a one-dimensional convex problem in
log T solved by bounded search.
"""

from __future__ import annotations

import numpy as np


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(proba) / T)``: the same ranking, probabilities sharpened (T < 1) or softened."""
    if temperature == 1.0:
        return proba
    z = np.log(np.clip(proba, 1e-12, 1.0)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(y: np.ndarray, proba: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0))))


def fit_temperature(y: np.ndarray, proba: np.ndarray) -> float:
    """The temperature in [0.05, 20] that minimises the NLL of ``y`` under ``proba``."""
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(lambda lt: nll(y, apply_temperature(proba, float(np.exp(lt)))),
                          bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-4})
    t = float(np.exp(res.x))
    return t if nll(y, apply_temperature(proba, t)) < nll(y, proba) else 1.0


def ece(y: np.ndarray, proba: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top-class confidence, ``bins`` equal-width bins."""
    conf = proba.max(axis=1)
    right = proba.argmax(axis=1) == y
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            total += sel.mean() * abs(right[sel].mean() - conf[sel].mean())
    return float(total)


def reliability(y: np.ndarray, proba: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Per bin of confidence: mean confidence, accuracy and row count (the reliability diagram)."""
    conf = proba.max(axis=1)
    right = proba.argmax(axis=1) == y
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    return [{"bin": b, "confidence": float(conf[idx == b].mean()), "accuracy": float(right[idx == b].mean()),
             "rows": int((idx == b).sum())} for b in range(bins) if (idx == b).any()]
