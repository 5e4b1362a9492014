"""Gradient-boosted trees for ``hone auto``: LightGBM, XGBoost and CatBoost, each from a small portfolio
of configurations, fitted with early stopping on validation and a deadline, and saved in each
library's own format (never pickle).

Where the portfolio comes from: the first configurations of AutoGluon's zero-shot portfolio
(TabRepo: Salinas and Erickson, "TabRepo: a large scale repository of tabular model evaluations and
its AutoML applications", 2023), which ranks configurations by how often they sit in the best
ensembles across 200 tables. We keep each family's library defaults first (the configuration that
wins most often alone), then the one or two configurations that rank highest after it: LightGBM's
extra-trees and its "large" setting (learning rate 0.03, 128 leaves), XGBoost with deeper trees and
column sampling, CatBoost's default depth-6 trees. A third configuration per family (LightGBM's small
regularised trees, XGBoost's depth 4 with row and column sampling, CatBoost at depth 8) spans the
other end of the same ranges; the planner reaches it when the time allows (usually after the network
stopped early). The same portfolio's random forest and extra trees (300 trees each) come from
scikit-learn (:mod:`hone.shallow.forest`). The order within a family is the order the planner fits
them in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hone.shallow.forest import CONFIGS as FOREST_CONFIGS
from hone.shallow.forest import Forest

FAMILIES = ("lightgbm", "xgboost", "catboost", "forest")
MAX_ROUNDS = 2000
PATIENCE = 50

PORTFOLIO: dict[str, list[dict[str, Any]]] = {
    "lightgbm": [
        {"name": "lightgbm", "params": {}},
        {"name": "lightgbm-xt", "params": {"extra_trees": True}},
        {"name": "lightgbm-large", "params": {"learning_rate": 0.03, "num_leaves": 128, "feature_fraction": 0.9,
                                              "min_data_in_leaf": 3}},
        {"name": "lightgbm-small", "params": {"learning_rate": 0.05, "num_leaves": 16, "min_data_in_leaf": 20,
                                              "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
                                              "lambda_l2": 1.0}},
    ],
    "xgboost": [
        {"name": "xgboost", "params": {}},
        {"name": "xgboost-deep", "params": {"max_depth": 8, "learning_rate": 0.05, "colsample_bytree": 0.7,
                                            "min_child_weight": 2}},
        {"name": "xgboost-shallow", "params": {"max_depth": 4, "learning_rate": 0.05, "subsample": 0.8,
                                               "colsample_bytree": 0.8}},
    ],
    "catboost": [
        {"name": "catboost", "params": {}},
        {"name": "catboost-deep", "params": {"depth": 8, "learning_rate": 0.06, "l2_leaf_reg": 3}},
    ],
    "forest": FOREST_CONFIGS,  # scikit-learn's random forest and extra trees, 300 trees (hone.shallow.forest)
}


# the boosting defaults again, on the trees' features and the frozen text backbone's embeddings
# (hone.models.embedder): fitted when the table has text, right after the linear members
EMBEDDED: dict[str, dict[str, Any]] = {
    f: {"name": f"{f}-embeddings", "params": {}, "embedded": True} for f in ("lightgbm", "xgboost", "catboost")}


def available(family: str) -> bool:
    """True when ``family``'s library imports here (XGBoost and CatBoost come with ``hone[auto]``)."""
    import importlib.util

    module = {"lightgbm": "lightgbm", "xgboost": "xgboost", "catboost": "catboost", "forest": "sklearn"}[family]
    return importlib.util.find_spec(module) is not None


@dataclass
class TreeModel:
    """A fitted booster of one family: ``scores(x)`` gives probabilities ``[N, K]`` or values ``[N]``."""

    family: str
    name: str
    task: str
    booster: Any
    info: dict[str, Any] = field(default_factory=dict)

    def scores(self, x: np.ndarray) -> np.ndarray:
        if self.family == "forest":
            out = self.booster.predict(x)
            return out[:, 0] if self.task == "regression" else out
        if self.family == "lightgbm":
            raw = np.asarray(self.booster.predict(x, num_iteration=self.info.get("best_iteration") or None))
        elif self.family == "xgboost":
            import xgboost as xgb

            best = self.info.get("best_iteration")
            raw = np.asarray(self.booster.predict(xgb.DMatrix(x), iteration_range=(0, best + 1) if best is not None
                                                  else (0, 0)))
        else:
            raw = self._catboost(x)
        if self.task == "binary":
            return np.stack([1 - raw, raw], 1)
        return raw

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """TreeSHAP values of the raw score (log-odds, class scores, or the value): ``[N, F + 1]``, or
        ``[N, K, F + 1]`` for classes, the last column the expected value."""
        best = self.info.get("best_iteration")
        if self.family == "forest":
            return _forest_contributions(self.booster.contributions(x), self.task)
        if self.family == "lightgbm":
            c = np.asarray(self.booster.predict(x, num_iteration=best or None, pred_contrib=True))
            classes = int(self.booster.num_model_per_iteration())
            return c.reshape(len(c), classes, -1) if self.task == "multiclass" else c
        if self.family == "xgboost":
            import xgboost as xgb

            return np.asarray(self.booster.predict(xgb.DMatrix(x), pred_contribs=True,
                                                   iteration_range=(0, best + 1) if best is not None else (0, 0)))
        from catboost import Pool

        cats = self.info.get("categorical_features") or []
        return np.asarray(self.booster.get_feature_importance(Pool(_catboost_frame(x, cats), cat_features=cats or None),
                                                              type="ShapValues"))

    def _catboost(self, x: np.ndarray) -> np.ndarray:
        from catboost import Pool

        cats = self.info.get("categorical_features") or []
        pool = Pool(_catboost_frame(x, cats), cat_features=cats or None)
        if self.task == "regression":
            return np.asarray(self.booster.predict(pool))
        p = np.asarray(self.booster.predict(pool, prediction_type="Probability"))
        return p[:, 1] if self.task == "binary" else p

    # -- persistence: each library's own format ------------------------------------------------
    def to_bytes(self) -> bytes:
        if self.family == "forest":
            return bytes(self.booster.to_bytes())
        if self.family == "lightgbm":
            return str(self.booster.model_to_string()).encode()
        if self.family == "xgboost":
            return bytes(self.booster.save_raw("json"))
        import os
        import tempfile

        fd, path = tempfile.mkstemp(suffix=".cbm")
        os.close(fd)
        try:
            self.booster.save_model(path, format="cbm")
            with open(path, "rb") as f:
                return f.read()
        finally:
            os.unlink(path)

    @classmethod
    def from_bytes(cls, family: str, name: str, task: str, data: bytes, info: dict[str, Any]) -> TreeModel:
        if family == "forest":
            booster: Any = Forest.from_bytes(data)
        elif family == "lightgbm":
            import lightgbm as lgb

            booster = lgb.Booster(model_str=data.decode())
        elif family == "xgboost":
            import xgboost as xgb

            booster = xgb.Booster()
            booster.load_model(bytearray(data))
        else:
            import os
            import tempfile

            from catboost import CatBoost

            fd, path = tempfile.mkstemp(suffix=".cbm")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                booster = CatBoost()
                booster.load_model(path, format="cbm")
            finally:
                os.unlink(path)
        return cls(family, name, task, booster, info)


def _forest_contributions(c: np.ndarray, task: str) -> np.ndarray:
    """A forest's Saabas contributions ``[N, K, F + 1]`` (to its class fractions or value) in the raw score
    the other families' contributions use: the value itself; the log-odds of the second class; each
    class's log-fraction (whose softmax is the fractions). Each row's contributions are scaled by one
    factor per class, so they still add up exactly (fractions clipped to [1e-6, 1 - 1e-6])."""
    if task == "regression":
        return c[:, 0, :]
    eps = 1e-6
    moved_by = c[:, :, :-1].sum(2)  # each class's fraction minus the root's, unclipped
    p, p0 = np.clip(c.sum(2), eps, 1 - eps), np.clip(c[:, :, -1], eps, 1 - eps)
    if task == "binary":
        raw, raw0 = np.log(p[:, 1] / (1 - p[:, 1])), np.log(p0[:, 1] / (1 - p0[:, 1]))
        d = moved_by[:, 1]
        moved = np.abs(d) > 1e-12
        scale = np.where(moved, (raw - raw0) / np.where(moved, d, 1.0), 1.0 / (p0[:, 1] * (1 - p0[:, 1])))
        return np.concatenate([c[:, 1, :-1] * scale[:, None], raw0[:, None]], axis=1)
    raw, raw0 = np.log(p), np.log(p0)
    moved = np.abs(moved_by) > 1e-12
    scale = np.where(moved, (raw - raw0) / np.where(moved, moved_by, 1.0), 1.0 / p0)
    return np.concatenate([c[:, :, :-1] * scale[:, :, None], raw0[:, :, None]], axis=2)


def _catboost_frame(x: np.ndarray, cats: list[int]) -> Any:
    """CatBoost wants categorical features as integers (or strings): the category codes, missing as -1."""
    if not cats:
        return x
    import pandas as pd

    df = pd.DataFrame(x)
    for c in cats:
        df[c] = np.nan_to_num(df[c].to_numpy(), nan=-1).astype(np.int64)
    return df


def fit_tree(family: str, config: dict[str, Any], x: np.ndarray, y: np.ndarray, x_va: np.ndarray, y_va: np.ndarray,
             task: str, n_classes: int, *, categorical: list[int], seed: int = 0, threads: int = 0,
             deadline: float | None = None, max_rounds: int = MAX_ROUNDS) -> TreeModel:
    """One portfolio configuration of ``family``, fitted on ``x`` with early stopping on ``x_va``; it stops
    adding trees at ``deadline`` (``time.monotonic()``), keeping the best iteration so far."""
    fit = {"lightgbm": _fit_lightgbm, "xgboost": _fit_xgboost, "catboost": _fit_catboost}[family]
    t0 = time.perf_counter()
    booster, best, stopped = fit(config["params"], x, y, x_va, y_va, task, n_classes, categorical, seed, threads,
                                 deadline, max_rounds)
    info = {"best_iteration": best, "categorical_features": categorical, "params": config["params"],
            "fit_seconds": round(time.perf_counter() - t0, 3), "stopped_by_deadline": stopped}
    return TreeModel(family, config["name"], task, booster, info)


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _fit_lightgbm(params: dict[str, Any], x: np.ndarray, y: np.ndarray, x_va: np.ndarray, y_va: np.ndarray,
                  task: str, n_classes: int, categorical: list[int], seed: int, threads: int,
                  deadline: float | None, max_rounds: int) -> tuple[Any, int, bool]:
    import lightgbm as lgb

    p: dict[str, Any] = {"verbosity": -1, "seed": seed, "deterministic": True, "num_threads": threads or 0, **params}
    objectives: dict[str, dict[str, Any]] = {
        "binary": {"objective": "binary"}, "regression": {"objective": "regression"},
        "multiclass": {"objective": "multiclass", "num_class": n_classes}}
    p.update(objectives[task])
    stopped = [False]

    def stop_at_deadline(env: Any) -> None:
        if _past(deadline):
            stopped[0] = True
            raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

    dtrain = lgb.Dataset(x, label=y, categorical_feature=categorical or "auto", free_raw_data=True)
    dvalid = lgb.Dataset(x_va, label=y_va, reference=dtrain, categorical_feature=categorical or "auto")
    booster = lgb.train(p, dtrain, num_boost_round=max_rounds, valid_sets=[dvalid],
                        callbacks=[lgb.early_stopping(PATIENCE, verbose=False), stop_at_deadline])
    return booster, int(booster.best_iteration or booster.current_iteration()), stopped[0]


def _fit_xgboost(params: dict[str, Any], x: np.ndarray, y: np.ndarray, x_va: np.ndarray, y_va: np.ndarray,
                 task: str, n_classes: int, categorical: list[int], seed: int, threads: int,
                 deadline: float | None, max_rounds: int) -> tuple[Any, int, bool]:
    import xgboost as xgb

    p: dict[str, Any] = {"tree_method": "hist", "seed": seed, "nthread": threads or 0, "verbosity": 0,
                         "learning_rate": 0.1, **params}
    objectives: dict[str, dict[str, Any]] = {
        "binary": {"objective": "binary:logistic", "eval_metric": "logloss"},
        "multiclass": {"objective": "multi:softprob", "num_class": n_classes, "eval_metric": "mlogloss"},
        "regression": {"objective": "reg:squarederror", "eval_metric": "rmse"}}
    p.update(objectives[task])
    stopped = [False]

    class Deadline(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            if _past(deadline):
                stopped[0] = True
                return True
            return False

    dtrain, dvalid = xgb.DMatrix(x, label=y), xgb.DMatrix(x_va, label=y_va)
    booster = xgb.train(p, dtrain, num_boost_round=max_rounds, evals=[(dvalid, "validation")],
                        early_stopping_rounds=PATIENCE, verbose_eval=False, callbacks=[Deadline()])
    best = getattr(booster, "best_iteration", None)
    return booster, int(best if best is not None else booster.num_boosted_rounds() - 1), stopped[0]


def _fit_catboost(params: dict[str, Any], x: np.ndarray, y: np.ndarray, x_va: np.ndarray, y_va: np.ndarray,
                  task: str, n_classes: int, categorical: list[int], seed: int, threads: int,
                  deadline: float | None, max_rounds: int) -> tuple[Any, int, bool]:
    from catboost import CatBoost, Pool

    loss = {"binary": "Logloss", "multiclass": "MultiClass", "regression": "RMSE"}[task]
    p: dict[str, Any] = {"loss_function": loss, "iterations": max_rounds, "random_seed": seed,
                         "thread_count": threads or -1, "verbose": False, "allow_writing_files": False,
                         "od_type": "Iter", "od_wait": PATIENCE, "use_best_model": True, **params}
    stopped = [False]

    class Deadline:
        def after_iteration(self, info: Any) -> bool:  # False stops the training
            if _past(deadline):
                stopped[0] = True
                return False
            return True

    model = CatBoost(p)
    model.fit(Pool(_catboost_frame(x, categorical), y, cat_features=categorical or None),
              eval_set=Pool(_catboost_frame(x_va, categorical), y_va, cat_features=categorical or None),
              callbacks=[Deadline()])
    return model, int(model.get_best_iteration() or 0), stopped[0]
