"""The model choice, made on the validation split: the fine-tuned network, the baseline, or a blend
of the two, then calibrated (temperature) and given its decision rule (a binary threshold, or a
prior correction for class-weighted multiclass models). Everything here is numpy on validation
outputs; the :class:`Decision` is saved with the model and applied unchanged to test and prediction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hone.evaluation.bootstrap import macro_f1
from hone.evaluation.calibration import apply_temperature, ece, fit_temperature
from hone.evaluation.thresholds import apply_threshold, choose_threshold, prior_correction

CHOICES = ("auto", "network", "baseline", "blend")


@dataclass
class Decision:
    """What a saved model predicts with (``hone.json`` → ``decision``)."""

    model: str = "network"  # network | baseline | blend
    blend_weight: float = 1.0  # weight of the network's output in the blend
    temperature: float = 1.0
    threshold: dict[str, Any] | None = None  # binary: {"threshold", "objective", ...}
    class_factors: list[float] | None = None  # multiclass: argmax of proba * factors
    validation: dict[str, Any] = field(default_factory=dict)  # the figures behind the choice
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Decision:
        return cls(**d) if d else cls()

    @property
    def uses_network(self) -> bool:
        return self.model in ("network", "blend")

    @property
    def uses_baseline(self) -> bool:
        return self.model in ("baseline", "blend")

    def combine(self, net: np.ndarray | None, base: np.ndarray | None) -> np.ndarray:
        """The chosen model's calibrated probabilities ``[N, K]`` (or values ``[N]``)."""
        if self.model == "network":
            out = net
        elif self.model == "baseline":
            out = base
        else:
            assert net is not None and base is not None
            out = self.blend_weight * net + (1 - self.blend_weight) * base
        assert out is not None
        return apply_temperature(out, self.temperature) if out.ndim == 2 else out

    def predict(self, proba: np.ndarray) -> np.ndarray:
        """Class indices from calibrated probabilities, with the decision rule."""
        if self.threshold is not None:
            return apply_threshold(proba, self.threshold["threshold"])
        if self.class_factors is not None:
            return (proba * np.asarray(self.class_factors)).argmax(1)
        return proba.argmax(1)


def _blend_weight(task: str, y: np.ndarray, net: np.ndarray, base: np.ndarray) -> float:
    """The weight in [0, 1] (steps of 0.05) minimising validation log loss (MSE for regression)."""
    best_w, best = 1.0, np.inf
    for w in np.linspace(0, 1, 21):
        mix = w * net + (1 - w) * base
        loss = (np.mean((mix - y) ** 2) if task == "regression"
                else -np.mean(np.log(np.clip(mix[np.arange(len(y)), y], 1e-12, 1))))
        if loss < best - 1e-12:
            best_w, best = float(w), loss
    return best_w


def validation_score(task: str, metric: str, y: np.ndarray, d: Decision, out: np.ndarray) -> float:
    """The selection metric on validation, higher is better."""
    if task == "regression":
        err = out - y
        return {"rmse": -float(np.sqrt(np.mean(err ** 2))), "mae": -float(np.mean(np.abs(err))),
                "r2": 1 - float(np.sum(err ** 2) / max(np.sum((y - y.mean()) ** 2), 1e-12))}[metric]
    pred = d.predict(out)
    if metric == "accuracy":
        return float(np.mean(pred == y))
    if metric == "roc_auc":
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(y, out[:, 1])) if len(np.unique(y)) == 2 else float("nan")
    return macro_f1(y, out, np.ones(len(y)), pred)


def decide(task: str, y: np.ndarray, net: np.ndarray | None, base: np.ndarray | None, *, requested: str = "auto",
           metric: str = "macro_f1", threshold_objective: str = "auto", calibrate: bool = True,
           class_weights: np.ndarray | None = None) -> tuple[Decision, dict[str, Decision]]:
    """Choose, on validation outputs, what the model predicts with.

    Args:
        task: binary, multiclass or regression.
        y: validation targets (class indices, or values in the target's scale).
        net, base: the network's and the baseline's validation outputs (``base`` may be None).
        requested: ``auto`` (the best on validation), ``network``, ``baseline`` or ``blend``.
        metric: the validation metric that decides (``train.metric``).
        threshold_objective: ``auto`` (when the classes are imbalanced: macro-F1, or accuracy when that
            is the run's metric; else none) or an objective of :mod:`hone.evaluation.thresholds`. The
            default ``macro_f1`` keeps accuracy at the majority rate when any threshold can.
        calibrate: fit a temperature on validation.
        class_weights: the weights the network was trained with (multiclass prior correction).

    Returns:
        The chosen decision, and every candidate's (each calibrated with its own decision rule),
        so that the network and the baseline can be compared on test on equal terms.
    """
    names = [n for n in ("network", "baseline", "blend") if (n != "baseline" or base is not None)
             and (n != "blend" or (base is not None and net is not None)) and (n != "network" or net is not None)]
    if requested != "auto" and requested not in names:
        from hone.errors import ConfigError

        raise ConfigError(f"evaluate.model {requested!r} is not available here (available: {', '.join(names)})")
    w = _blend_weight(task, y, net, base) if "blend" in names and net is not None and base is not None else 1.0
    counts = np.bincount(y) if task != "regression" else None
    guard = None
    if threshold_objective in ("auto", "macro_f1") and counts is not None:
        # The default objective keeps accuracy at the majority rate or above: a threshold that
        # wins F1 by flagging every doubtful row would mislead whoever reads the accuracy.
        guard = float(counts.max() / counts.sum())
    if threshold_objective == "auto":
        imbalanced = counts is not None and counts.max() >= 1.5 * max(counts.min(), 1)
        threshold_objective = ("macro_f1" if metric not in ("accuracy",) else "accuracy") if imbalanced else "none"
    candidates: dict[str, tuple[Decision, float]] = {}
    for name in names:
        d = Decision(model=name, blend_weight=w if name == "blend" else 1.0)
        raw = d.combine(net, base)
        if task != "regression":
            if calibrate:
                d.temperature = fit_temperature(y, raw)
            cal = apply_temperature(raw, d.temperature)
            d.validation["ece_before"], d.validation["ece_after"] = ece(y, raw), ece(y, cal)
            if task == "binary" and threshold_objective != "none":
                d.threshold = choose_threshold(y, cal[:, 1], threshold_objective, min_accuracy=guard)
            elif task == "multiclass" and class_weights is not None and name != "baseline":
                pc = prior_correction(y, cal, class_weights)
                d.class_factors = pc["factors"] if pc["rule"] != "argmax" else None
                d.validation["prior_correction"] = pc
            out = cal
        else:
            out = raw
        candidates[name] = (d, validation_score(task, metric, y, d, out))
    order = {"network": 0, "blend": 1, "baseline": 2}  # on a tie: the fine-tuned network first
    # a non-finite validation metric (a diverged network, NaN outputs) is never best
    eligible = {n: s if np.isfinite(s) else -np.inf for n, (_, s) in candidates.items()}
    if requested == "auto" and not any(np.isfinite(s) for s in eligible.values()):
        from hone.errors import TrainingError

        raise TrainingError(f"no candidate model has a finite validation {metric} "
                            f"({', '.join(f'{n} {s}' for n, (_, s) in candidates.items())}); "
                            "check the data for extreme values, or lower --lr")
    best = requested if requested != "auto" else max(candidates, key=lambda n: (eligible[n], -order[n]))
    chosen = candidates[best][0]
    figures = {n: round(s, 6) for n, (_, s) in candidates.items()}
    chosen.validation = {**chosen.validation, "metric": metric, "candidates": figures,
                         "blend_weight": w if "blend" in names else None}
    chosen.why = (f"{requested} requested" if requested != "auto" else
                  f"best validation {metric} of {', '.join(f'{n} {v:.4f}' for n, v in figures.items())}")
    return chosen, {n: d for n, (d, _) in candidates.items()}
