"""What the shallow models of `hone auto` gain from their inputs, on the validation rows of
bench/automl.py's splits (the same tables, the same hash split):

  text tables (fine_foods, tweets)
    - LightGBM (hone's portfolio default, early-stopped on validation) on the 64-dimensional SVD of
      the word TF-IDF alone, and with the texts' 28 surface statistics (hone.shallow.text.statistics);
    - TF-IDF + logistic regression (hone.shallow.linear.fit_tuned) on word 1-2-grams and on
      character 2-5-grams (hone's two linear members);
    - with --embeddings, LightGBM with the frozen MiniLM's mean-pooled embeddings added (all 384
      dimensions, or their 64-dimensional PCA): the "encoder embeddings as tree features" option,
      measured, with the seconds the encoder takes over the training and validation texts.
  tabular tables (hpc, credit)
    - LightGBM (the portfolio default) against scikit-learn's random forest and extra trees (300
      trees): the families AutoGluon has and hone auto does not yet; and the random forests the
      boosting libraries hone already saves without pickling can grow (LightGBM boosting=rf,
      XGBoost's XGBRFClassifier), 300 trees each.

Printed: validation macro-F1 and log loss of each, and fit seconds.

Run:  python bench/shallow_features.py [--tables fine_foods,tweets,hpc,credit] [--embeddings]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from _machine import machine_line
from automl import load, split

TEXT_TABLES = ("fine_foods", "tweets")


def _report(name: str, what: str, y: np.ndarray, proba: np.ndarray, seconds: float) -> None:
    from sklearn.metrics import f1_score, log_loss

    ll = log_loss(y, np.clip(proba, 1e-12, 1), labels=list(range(proba.shape[1])))
    print(f"  {name:<11} {what:<44} macro-F1 {f1_score(y, proba.argmax(1), average='macro'):.4f}  "
          f"log loss {ll:.4f}  {seconds:5.1f} s", flush=True)


def _lightgbm(x: np.ndarray, y: np.ndarray, x_va: np.ndarray, y_va: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    from hone.shallow.portfolio import PORTFOLIO, fit_tree

    t0 = time.perf_counter()
    task = "binary" if k == 2 else "multiclass"
    t = fit_tree("lightgbm", PORTFOLIO["lightgbm"][0], x, y, x_va, y_va, task, k, categorical=[])
    return t.scores(x_va), time.perf_counter() - t0


def _frozen_embeddings(texts: list[str]) -> np.ndarray:
    """The bundled MiniLM's mean-pooled embeddings (max length 128, batches sorted by length)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from hone.config import bundled_backbone

    path = bundled_backbone()
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    out = np.zeros((len(texts), model.config.hidden_size), np.float32)
    order = np.argsort([len(t) for t in texts], kind="stable")
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            idx = order[start:start + 64]
            enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=128, return_tensors="pt")
            mask = enc["attention_mask"][..., None].float()
            out[idx] = ((model(**enc).last_hidden_state * mask).sum(1) / mask.sum(1)).numpy()
    return out


def text_table(name: str, df: pd.DataFrame, target: str, s: pd.Series, embeddings: bool = False) -> None:
    from sklearn.decomposition import TruncatedSVD

    from hone.shallow.linear import fit_tuned, linear_scores
    from hone.shallow.text import fit_tfidf, statistics

    column = next(c for c in df.columns if c != target)  # each text table has one other column: the text
    classes = sorted(df[target].unique())
    y_all = np.array([classes.index(v) for v in df[target]])
    tr, va = (s == "train").to_numpy(), (s == "validation").to_numpy()
    texts = df[column].fillna("").astype(str).tolist()
    t_tr, t_va = [texts[i] for i in np.flatnonzero(tr)], [texts[i] for i in np.flatnonzero(va)]
    y, y_va, k = y_all[tr], y_all[va], len(classes)
    task = "binary" if k == 2 else "multiclass"
    tfidf, x = fit_tfidf(t_tr, max_features=100_000, min_df=2)
    x_va = tfidf.transform(t_va)
    svd = TruncatedSVD(64, random_state=0).fit(x)
    s_tr, s_va = x @ svd.components_.T, x_va @ svd.components_.T
    p, sec = _lightgbm(s_tr, y, s_va, y_va, k)
    _report(name, "LightGBM, TF-IDF SVD", y_va, p, sec)
    base_tr, base_va = np.hstack([s_tr, statistics(t_tr)]), np.hstack([s_va, statistics(t_va)])
    p, sec = _lightgbm(base_tr, y, base_va, y_va, k)
    _report(name, "LightGBM, TF-IDF SVD + surface statistics", y_va, p, sec)
    if embeddings:
        from sklearn.decomposition import PCA

        t0 = time.perf_counter()
        e_tr, e_va = _frozen_embeddings(t_tr), _frozen_embeddings(t_va)
        print(f"  {name:<11} frozen MiniLM embeddings of {len(t_tr) + len(t_va)} texts: "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        p, sec = _lightgbm(np.hstack([base_tr, e_tr]), y, np.hstack([base_va, e_va]), y_va, k)
        _report(name, "  the same + frozen embeddings (384)", y_va, p, sec)
        pca = PCA(64, random_state=0).fit(e_tr)
        p, sec = _lightgbm(np.hstack([base_tr, pca.transform(e_tr)]), y, np.hstack([base_va, pca.transform(e_va)]),
                           y_va, k)
        _report(name, "  the same + frozen embeddings (PCA 64)", y_va, p, sec)
    for analyzer, label in (("word", "linear, word 1-2-grams"), ("char_wb", "linear, character 2-5-grams")):
        t0 = time.perf_counter()
        tf, a = fit_tfidf(t_tr, max_features=100_000, min_df=2, analyzer=analyzer)
        a_va = tf.transform(t_va)
        fit = fit_tuned(a, y, a_va, y_va, task)
        _report(name, label, y_va, linear_scores(a_va, fit.coef, fit.intercept, task), time.perf_counter() - t0)


def tabular_table(name: str, df: pd.DataFrame, target: str, s: pd.Series) -> None:
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    x_all = df.drop(columns=[target]).copy()
    for c in x_all.columns:
        if not pd.api.types.is_numeric_dtype(x_all[c]) or pd.api.types.is_bool_dtype(x_all[c]):
            x_all[c] = x_all[c].astype("category").cat.codes
    x_all = x_all.to_numpy(dtype=np.float64)
    classes = sorted(df[target].unique())
    y_all = np.array([classes.index(v) for v in df[target]])
    tr, va = (s == "train").to_numpy(), (s == "validation").to_numpy()
    p, sec = _lightgbm(x_all[tr], y_all[tr], x_all[va], y_all[va], len(classes))
    _report(name, "LightGBM (portfolio default)", y_all[va], p, sec)
    filled = np.nan_to_num(x_all, nan=-999.0)
    for label, model in (("random forest (scikit-learn, 300 trees)", RandomForestClassifier),
                         ("extra trees (scikit-learn, 300 trees)", ExtraTreesClassifier)):
        t0 = time.perf_counter()
        m = model(n_estimators=300, n_jobs=-1, random_state=0).fit(filled[tr], y_all[tr])
        _report(name, label, y_all[va], m.predict_proba(filled[va]), time.perf_counter() - t0)
    _boosting_forests(name, x_all[tr], y_all[tr], x_all[va], y_all[va], len(classes))


def _boosting_forests(name: str, x: np.ndarray, y: np.ndarray, x_va: np.ndarray, y_va: np.ndarray, k: int) -> None:
    """Random forests grown by LightGBM (boosting=rf) and XGBoost (XGBRFClassifier): 300 trees, rows drawn
    at 63.2 %, 60 % of the features, deep trees."""
    import lightgbm as lgb
    import xgboost as xgb

    objective = {"objective": "multiclass", "num_class": k} if k > 2 else {"objective": "binary"}
    t0 = time.perf_counter()
    booster = lgb.train({**objective, "boosting": "rf", "bagging_fraction": 0.632, "bagging_freq": 1,
                         "feature_fraction": 0.6, "num_leaves": 1024, "min_data_in_leaf": 1,
                         "min_sum_hessian_in_leaf": 1e-9, "verbose": -1, "seed": 0}, lgb.Dataset(x, y), 300)
    p = booster.predict(x_va)
    _report(name, "random forest (LightGBM boosting=rf)", y_va, np.column_stack([1 - p, p]) if k == 2 else p,
            time.perf_counter() - t0)
    t0 = time.perf_counter()
    m = xgb.XGBRFClassifier(n_estimators=300, subsample=0.632, colsample_bynode=0.6, max_depth=20,
                            reg_lambda=1e-5, min_child_weight=1e-5, tree_method="hist", random_state=0).fit(x, y)
    _report(name, "random forest (XGBoost XGBRFClassifier)", y_va, m.predict_proba(x_va), time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", default="fine_foods,tweets,hpc,credit")
    ap.add_argument("--embeddings", action="store_true", help="also LightGBM with the frozen encoder's embeddings")
    a = ap.parse_args()
    print(machine_line())
    print("validation rows of bench/automl.py's split")
    for name in a.tables.split(","):
        df, target, task = load(name)
        if task == "regression":
            raise SystemExit(f"{name}: a regression table; this bench compares classifiers")
        df = df[df[target].notna()].reset_index(drop=True)
        df[target] = df[target].astype(str)
        s = split(df)
        if name in TEXT_TABLES:
            text_table(name, df, target, s, a.embeddings)
        else:
            tabular_table(name, df, target, s)


if __name__ == "__main__":
    main()
