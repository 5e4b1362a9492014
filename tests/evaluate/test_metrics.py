from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score, mean_absolute_error, r2_score, roc_auc_score

from hone.evaluation.metrics import classification_metrics, format_metrics, regression_metrics


def test_classification_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p1 = np.clip(y * 0.6 + rng.random(200) * 0.5, 0, 1)
    proba = np.stack([1 - p1, p1], 1)
    m = classification_metrics(y, proba, ["no", "yes"])
    assert np.isclose(m["macro_f1"], f1_score(y, proba.argmax(1), average="macro"))
    assert np.isclose(m["roc_auc"], roc_auc_score(y, p1))
    assert 0 <= m["pr_auc"] <= 1 and m["positive_class"] == "yes"
    assert set(m["per_class"]) == {"no", "yes"}


def test_multiclass_has_no_auc_and_regression_matches() -> None:
    proba = np.eye(3)[[0, 1, 2, 1]]
    m = classification_metrics(np.array([0, 1, 2, 2]), proba, ["a", "b", "c"])
    assert m["accuracy"] == 0.75 and "roc_auc" not in m
    y, p = np.array([1.0, 2.0, 4.0, 8.0]), np.array([1.5, 2.0, 3.0, 9.0])
    r = regression_metrics(y, p)
    assert np.isclose(r["mae"], mean_absolute_error(y, p)) and np.isclose(r["r2"], r2_score(y, p))
    assert "rmse" in format_metrics({"test": r})


def test_macro_f1_ignores_classes_absent_from_truth_and_predictions() -> None:
    # Regression: a 3-class model scored on perfect predictions of 2-class rows got 0.667.
    y = np.array([0, 1, 0, 1, 1])
    m = classification_metrics(y, np.eye(3)[y], ["a", "b", "c"])
    assert m["macro_f1"] == 1.0 and m["per_class"]["c"]["support"] == 0
    assert m["per_class"]["a"]["support"] == 2 and m["per_class"]["b"]["support"] == 3
    # a class that is predicted but absent from the truth still counts (as a false positive)
    wrong = np.eye(3)[[0, 1, 0, 1, 2]]
    assert classification_metrics(y, wrong, ["a", "b", "c"])["macro_f1"] < 1.0
