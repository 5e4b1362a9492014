"""The baseline's own exact contributions: LightGBM's SHAP values (``pred_contrib``, TreeSHAP) and,
for TF-IDF + linear, each term's ``coefficient x tf-idf``. Both explain the baseline's raw score
(log-odds of the class for binary, the class's softmax score for multiclass, the value for
regression) and add up to it exactly with the ``expected`` value (the bias)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from hone.models.baseline import _SVD_DIM, THUMBNAIL, Baseline

TOP_TERMS = 10


@dataclass
class BaselineAttribution:
    score: np.ndarray  # [B] the raw score explained
    expected: np.ndarray  # [B] the bias: the score with no feature known
    columns: list[dict[str, float]]  # per row, contribution per input column
    terms: list[list[tuple[str, float]]] = field(default_factory=list)  # TF-IDF: the largest terms per row
    probability: np.ndarray | None = None  # [B] classification: the class's probability, and at the
    probability_ref: np.ndarray | None = None  # expected values (what the blend's rescaling needs)


def _softmax_at(z: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``softmax(z)[row, k[row]]`` for ``z`` of shape ``[B, K]``."""
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(1, keepdims=True))[np.arange(len(z)), k]


def _probabilities(task: str, score: np.ndarray, expected: np.ndarray, all_scores: np.ndarray | None,
                   all_expected: np.ndarray | None, target: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    if task == "binary":  # the score is the explained class's log-odds
        return 1 / (1 + np.exp(-score)), 1 / (1 + np.exp(-expected))
    if task == "multiclass" and all_scores is not None and all_expected is not None:
        return _softmax_at(all_scores, target), _softmax_at(all_expected, target)
    return None, None


def text_key(columns: list[str]) -> str:
    """The name text contributions are shown under: the text column, or ``a + b`` for several
    (the baseline reads them joined)."""
    return " + ".join(columns)


def feature_columns(b: Baseline) -> list[str]:
    """The input column behind each LightGBM feature, in the feature matrix's order."""
    pre, names = b.pre, []
    if "numeric" in pre.modalities:
        names += [f.column for f in pre.numbers.features for _ in (0, 1)]  # type: ignore[union-attr]  # value, missing flag
    if "categorical" in pre.modalities:
        names += [f.column for f in pre.categories.features]  # type: ignore[union-attr]
    if "image" in pre.modalities:
        names += [c for c in pre.images.names for _ in range(THUMBNAIL * THUMBNAIL)]  # type: ignore[union-attr]
    if b.vocabulary is not None and pre.text is not None:
        k = b.arrays["svd"].shape[0] if "svd" in b.arrays else _SVD_DIM
        names += [text_key(pre.text.columns)] * k
    return names


def attribute_baseline(b: Baseline, batch: pa.Table, target: np.ndarray) -> BaselineAttribution:
    """Exact contributions of each input column to the baseline's raw score for class ``target``."""
    task = b.pre.schema.task
    x = b._features(batch)
    n = batch.num_rows
    sign = np.where(np.asarray(target) == 0, -1.0, 1.0) if task == "binary" else np.ones(n)
    scale = b.pre.target_std if task == "regression" else 1.0
    shift = b.pre.target_mean if task == "regression" else 0.0
    if b.kind == "lightgbm":
        contrib = np.asarray(
            b.booster.predict(x, num_iteration=b.info.get("best_iteration") or None, pred_contrib=True)
        )
        width = contrib.shape[1] // (len(b.pre.schema.classes) if task == "multiclass" else 1)
        all_scores = all_expected = None
        if task == "multiclass":  # blocks of (features + bias) per class
            blocks = contrib.reshape(n, -1, width)
            all_scores, all_expected = blocks.sum(2), blocks[:, :, -1]
            contrib = blocks[np.arange(n), np.asarray(target)]
        contrib = contrib * sign[:, None] * scale
        values, expected = contrib[:, :-1], contrib[:, -1] + shift
        names = feature_columns(b)
        cols = []
        for row in values:
            d: dict[str, float] = {}
            for name, v in zip(names, row):
                d[name] = d.get(name, 0.0) + float(v)
            cols.append(d)
        score = values.sum(1) + expected
        return BaselineAttribution(score, expected, cols, [],
                                   *_probabilities(task, score, expected, all_scores, all_expected, np.asarray(target)))
    # TF-IDF + linear: the score is x @ coef[k] + intercept[k]
    coef, intercept = b.arrays["coef"], b.arrays["intercept"]
    rows = np.zeros(n, dtype=np.int64) if coef.shape[0] == 1 else np.asarray(target)
    assert b.vocabulary is not None and b.pre.text is not None  # a TF-IDF + linear baseline reads text
    inverse = {i: t for t, i in b.vocabulary.items()}
    x = x.tocsr()
    key = text_key(b.pre.text.columns)
    cols, terms, score, expected = [], [], np.zeros(n), np.zeros(n)
    for i in range(n):
        lo, hi = x.indptr[i], x.indptr[i + 1]
        idx, val = x.indices[lo:hi], x.data[lo:hi]
        c = val * coef[rows[i], idx] * sign[i] * scale
        expected[i] = float(intercept[rows[i]]) * sign[i] * scale + shift
        score[i] = float(c.sum()) + expected[i]
        cols.append({key: float(c.sum())})
        top = np.argsort(-np.abs(c), kind="stable")[:TOP_TERMS]
        terms.append([(inverse[int(idx[j])], float(c[j])) for j in top])
    all_scores = all_expected = None
    if task == "multiclass":
        all_scores = np.asarray(x @ coef.T).reshape(n, -1) + intercept
        all_expected = np.broadcast_to(intercept, all_scores.shape)
    return BaselineAttribution(score, expected, cols, terms,
                               *_probabilities(task, score, expected, all_scores, all_expected, np.asarray(target)))
