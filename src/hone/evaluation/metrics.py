"""Pure metric functions on numpy arrays: classification and regression."""

from __future__ import annotations

from typing import Any

import numpy as np

HIGHER_IS_BETTER = {"accuracy": True, "macro_f1": True, "roc_auc": True, "pr_auc": True,
                    "rmse": False, "mae": False, "r2": True}


def classification_metrics(y: np.ndarray, proba: np.ndarray, classes: list[Any],
                           pred: np.ndarray | None = None) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class precision/recall/F1; ROC-AUC and PR-AUC when binary.

    ``y`` holds class indices ``[N]``; ``proba`` is ``[N, K]`` ordered like ``classes``; ``pred`` the
    predicted classes when they are not the argmax (a tuned threshold). For binary tasks the
    positive class is ``classes[1]``.

    Example:
        >>> m = classification_metrics(np.array([0, 1, 1]), np.array([[.9, .1], [.2, .8], [.6, .4]]), ["no", "yes"])
        >>> round(m["accuracy"], 3), m["roc_auc"]
        (0.667, 1.0)
    """
    from sklearn.metrics import average_precision_score, f1_score, precision_recall_fscore_support, roc_auc_score

    labels = list(range(len(classes)))
    pred = proba.argmax(axis=1) if pred is None else pred
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    # Macro-F1 averages over the classes present in the truth or the predictions (scikit-learn's
    # default): a class absent from both is not a failure, and counting it as F1 = 0 would score
    # perfect predictions on a 2-class sample of a 3-class task 0.667.
    present = np.union1d(y, pred).astype(int).tolist()
    out: dict[str, Any] = {
        "n": int(len(y)),
        "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        "macro_f1": float(f1_score(y, pred, labels=present, average="macro", zero_division=0))
        if len(y)
        else float("nan"),
    }
    if len(classes) == 2:
        both = len(np.unique(y)) == 2
        out["roc_auc"] = float(roc_auc_score(y, proba[:, 1])) if both else float("nan")
        out["pr_auc"] = float(average_precision_score(y, proba[:, 1])) if both else float("nan")
        out["positive_class"] = classes[1]
    out["per_class"] = {
        str(c): {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, c in enumerate(classes)
    }
    return out


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """RMSE, MAE and R².

    Example:
        >>> regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))["mae"]
        0.3333333333333333
    """
    err = pred - y
    var = float(((y - y.mean()) ** 2).sum()) if len(y) else 0.0
    return {
        "n": int(len(y)),
        "rmse": float(np.sqrt((err**2).mean())) if len(y) else float("nan"),
        "mae": float(np.abs(err).mean()) if len(y) else float("nan"),
        "r2": float(1.0 - (err**2).sum() / var) if var > 0 else float("nan"),
    }


_COLUMNS = {"validation": "validation", "test": "test", "network": "test:network", "baseline": "test:baseline",
            "evaluation": "evaluation"}


def format_metrics(metrics: dict[str, Any]) -> str:
    """A plain-text table: one row per metric, one column per split (and, on test, the network and
    the baseline on their own), then per-class rows, the intervals, the model choice and the verdict."""
    splits = [s for s in _COLUMNS if isinstance(metrics.get(s), dict) and "n" in metrics[s]]
    keys = [k for k in HIGHER_IS_BETTER if any(k in metrics[s] for s in splits)]
    lines = [f"{'metric':<22}" + "".join(f"{_COLUMNS[s]:>15}" for s in splits)]
    lines.append(f"{'rows':<22}" + "".join(f"{metrics[s].get('n', 0):>15}" for s in splits))
    for k in keys:
        lines.append(f"{k:<22}" + "".join(f"{metrics[s].get(k, float('nan')):>15.4f}" for s in splits))
    main = "test" if "test" in splits else splits[-1] if splits else None
    if main and "per_class" in metrics[main]:
        lines.append(f"per class ({main}):      precision  recall      f1  support")
        for c, m in metrics[main]["per_class"].items():
            lines.append(
                f"  {c[:20]:<20} {m['precision']:>10.3f} {m['recall']:>7.3f} {m['f1']:>7.3f} {m['support']:>8}"
            )
    if metrics.get("intervals"):
        lines.append("test intervals: " + ", ".join(f"{k} {v['value']:.4f} [{v['ci_low']:.4f}, {v['ci_high']:.4f}]"
                                                   for k, v in metrics["intervals"].items()))
    if metrics.get("model"):
        lines.append(f"model: {metrics['model']['chosen']} ({metrics['model']['why']})")
    if metrics.get("threshold"):
        t = metrics["threshold"]
        lines.append(f"decision threshold: {t['threshold']:.4f} (objective {t['objective']}, chosen on validation)")
    if metrics.get("verdict"):
        lines.append(metrics["verdict"])
    return "\n".join(lines)
