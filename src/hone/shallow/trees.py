"""Gradient-boosted trees (LightGBM): the baseline's booster with early stopping on validation, and the
audit's smaller classifier."""

from __future__ import annotations

from typing import Any

import numpy as np


def fit_booster(x: np.ndarray, y: np.ndarray, x_va: np.ndarray, y_va: np.ndarray, task: str, n_classes: int, *,
                categorical: list[int], seed: int = 0, threads: int = 0) -> tuple[Any, dict[str, Any]]:
    """LightGBM with its default settings, up to 1,000 rounds with early stopping (50) on validation;
    returns the booster and what to record (best iteration, categorical features, parameters)."""
    import lightgbm as lgb

    params: dict[str, Any] = {"verbosity": -1, "seed": seed, "deterministic": True, "num_threads": threads or 0}
    if task == "binary":
        params["objective"] = "binary"
    elif task == "multiclass":
        params.update(objective="multiclass", num_class=n_classes)
    else:
        params["objective"] = "regression"
    dtrain = lgb.Dataset(x, label=y, categorical_feature=categorical or "auto", free_raw_data=True)
    dvalid = lgb.Dataset(x_va, label=y_va, reference=dtrain, categorical_feature=categorical or "auto")
    booster = lgb.train(params, dtrain, num_boost_round=1000, valid_sets=[dvalid],
                        callbacks=[lgb.early_stopping(50, verbose=False)])
    info = {"best_iteration": int(booster.best_iteration or booster.current_iteration()),
            "categorical_features": categorical, "params": {k: v for k, v in params.items() if k != "num_threads"}}
    return booster, info


def booster_scores(booster: Any, x: Any, task: str, best_iteration: int | None) -> np.ndarray:
    """Probabilities ``[N, K]``, or values ``[N]``, of a fitted booster."""
    raw = booster.predict(x, num_iteration=best_iteration or None)
    if task == "binary":
        return np.stack([1 - raw, raw], 1)
    return np.asarray(raw)


def load_booster(text: str) -> Any:
    """A booster from LightGBM's own text format."""
    import lightgbm as lgb

    return lgb.Booster(model_str=text)


def fit_classifier(x: np.ndarray, y: np.ndarray, *, seed: int = 0, threads: int = 2) -> Any:
    """A small bagged LightGBM classifier (200 trees, no early stopping): ``predict_proba`` on new rows."""
    import lightgbm as lgb

    model = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=31, min_child_samples=10,
                               subsample=0.8, subsample_freq=1, colsample_bytree=0.8, random_state=seed,
                               verbose=-1, n_jobs=threads)
    return model.fit(x, y)
