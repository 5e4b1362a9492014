from __future__ import annotations

import numpy as np
import pytest

from hone.errors import ConfigError
from hone.evaluation.calibration import apply_temperature, ece, fit_temperature
from hone.evaluation.thresholds import apply_threshold, check_objective, choose_threshold, prior_correction


def _imbalanced(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.05).astype(int)
    p = np.clip(0.15 * y + rng.beta(1, 8, n), 0, 1)
    return y, p


def test_f1_threshold_beats_one_half_on_a_rare_class() -> None:
    y, p = _imbalanced()
    t = choose_threshold(y, p, "f1")
    pred = apply_threshold(np.stack([1 - p, p], 1), t["threshold"])
    f1 = lambda pr: 2 * ((pr == 1) & (y == 1)).sum() / ((pr == 1).sum() + (y == 1).sum())  # noqa: E731
    assert f1(pred) > f1((p >= 0.5).astype(int)) and abs(f1(pred) - t["validation_value"]) < 1e-9


def test_recall_and_cost_objectives() -> None:
    y, p = _imbalanced()
    t = choose_threshold(y, p, "precision_at_recall:0.9")
    assert ((p >= t["threshold"]) & (y == 1)).sum() / (y == 1).sum() >= 0.9
    cheap_fn = choose_threshold(y, p, "cost:fn=1,fp=1")["threshold"]
    dear_fn = choose_threshold(y, p, "cost:fn=20,fp=1")["threshold"]
    assert dear_fn < cheap_fn  # missing a positive costs more: flag more rows
    with pytest.raises(ConfigError, match="threshold_objective 'f2'"):
        check_objective("f2")


def test_temperature_scaling_lowers_the_ece_of_an_over_confident_model() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 3000)
    logits = rng.normal(size=(3000, 3)) + 1.5 * np.eye(3)[y]
    proba = np.exp(4 * logits) / np.exp(4 * logits).sum(1, keepdims=True)  # 4x over-confident
    t = fit_temperature(y[:1500], proba[:1500])
    assert 2.5 < t < 6
    before, after = ece(y[1500:], proba[1500:]), ece(y[1500:], apply_temperature(proba[1500:], t))
    assert after < before / 2
    assert np.array_equal(apply_temperature(proba, t).argmax(1), proba.argmax(1))


def test_prior_correction_keeps_accuracy_above_the_majority_rate() -> None:
    rng = np.random.default_rng(4)
    y = rng.choice(3, 3000, p=[0.8, 0.15, 0.05])
    # probabilities of a class-weighted model: shifted towards the rare classes
    base = np.eye(3)[y] * 0.5 + rng.random((3000, 3))
    shifted = base * np.array([0.3, 1.5, 3.0])
    proba = shifted / shifted.sum(1, keepdims=True)
    weights = np.array([0.4, 2.2, 6.7])
    res = prior_correction(y, proba, weights)
    chosen = res["validation"][res["rule"]]
    assert chosen["accuracy"] >= res["majority_rate"]
