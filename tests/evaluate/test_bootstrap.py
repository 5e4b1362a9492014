from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from hone.evaluation.bootstrap import accuracy, bootstrap, macro_f1, pr_auc, roc_auc


def test_weighted_metrics_match_sklearn_with_unit_and_integer_weights() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    score = np.round(np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1), 2)  # rounded: many ties
    proba = np.stack([1 - score, score], 1)
    w = rng.integers(0, 3, 300).astype(float)
    rep = np.repeat(np.arange(300), w.astype(int))  # integer weights = repeated rows
    for weights, idx in ((np.ones(300), np.arange(300)), (w, rep)):
        assert np.isclose(roc_auc(y, proba, weights), roc_auc_score(y[idx], score[idx]))
        assert np.isclose(pr_auc(y, proba, weights), average_precision_score(y[idx], score[idx]))
        assert np.isclose(macro_f1(y, proba, weights), f1_score(y[idx], proba[idx].argmax(1), average="macro"))
        assert np.isclose(accuracy(y, proba, weights), (proba[idx].argmax(1) == y[idx]).mean())


def test_intervals_cover_a_known_accuracy_at_about_the_nominal_rate() -> None:
    # A classifier that is right with probability 0.8 on each row: 95% intervals from 300 rows
    # should contain 0.8 in about 95% of 200 simulated test sets.
    rng = np.random.default_rng(1)
    covered = 0
    for trial in range(200):
        y = rng.integers(0, 2, 300)
        right = rng.random(300) < 0.8
        pred = np.where(right, y, 1 - y)
        ci = bootstrap("binary", y, [np.eye(2)[pred]], n=200, seed=trial)["models"][0]["accuracy"]
        covered += ci["ci_low"] <= 0.8 <= ci["ci_high"]
    assert 0.89 <= covered / 200 <= 0.99, covered


def test_paired_delta_interval_excludes_zero_only_for_a_real_difference() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 1000)
    good = np.eye(3)[np.where(rng.random(1000) < 0.9, y, (y + 1) % 3)]
    worse = np.eye(3)[np.where(rng.random(1000) < 0.6, y, (y + 1) % 3)]
    same = good.copy()
    res = bootstrap("multiclass", y, [good, worse, same], n=300)
    d_worse, d_same = res["delta"][0]["macro_f1"], res["delta"][1]["macro_f1"]
    assert d_worse["ci_low"] > 0.2 and d_same["ci_low"] == d_same["ci_high"] == 0.0
