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


def feature_columns(b: Baseline, embedded: bool = False) -> list[str]:
    """The input column behind each LightGBM feature, in the feature matrix's order (``embedded``: then
    the text backbone's projected embeddings, which an ensemble's embedding members read)."""
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
        if b.info.get("text_statistics"):  # an ensemble's trees also read the text's surface statistics
            from hone.shallow.text import STATISTICS

            names += [text_key(pre.text.columns)] * len(STATISTICS)
    embedder = getattr(b, "embedder", None)
    if embedded and embedder is not None and pre.text is not None:
        names += [c for c in pre.text.columns for _ in range(embedder.components.shape[1])]
    return names


def attribute_baseline(b: Baseline, batch: pa.Table, target: np.ndarray) -> BaselineAttribution:
    """Exact contributions of each input column to the baseline's raw score for class ``target``."""
    task = b.pre.schema.task
    x = b._features(batch)
    n = batch.num_rows
    sign = np.where(np.asarray(target) == 0, -1.0, 1.0) if task == "binary" else np.ones(n)
    scale = b.pre.target_std if task == "regression" else 1.0
    shift = b.pre.target_mean if task == "regression" else 0.0
    if b.kind == "ensemble":
        return _attribute_ensemble(b, batch, target)
    if b.kind == "lightgbm":
        contrib = np.asarray(
            b.booster.predict(x, num_iteration=b.info.get("best_iteration") or None, pred_contrib=True)
        )
        if task == "multiclass":  # blocks of (features + bias) per class
            contrib = contrib.reshape(n, len(b.pre.schema.classes), -1)
        return _tree_attribution(b, contrib, target)
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


def _tree_attribution(b: Baseline, contrib: np.ndarray, target: np.ndarray, embedded: bool = False
                      ) -> BaselineAttribution:
    """Per-column contributions from TreeSHAP values ``[N, F + 1]`` (``[N, K, F + 1]`` for classes) of a
    model on ``b``'s dense features, for class ``target``."""
    task, n = b.pre.schema.task, len(contrib)
    target = np.asarray(target)
    sign = np.where(target == 0, -1.0, 1.0) if task == "binary" else np.ones(n)
    scale = b.pre.target_std if task == "regression" else 1.0
    shift = b.pre.target_mean if task == "regression" else 0.0
    all_scores = all_expected = None
    if task == "multiclass":
        all_scores, all_expected = contrib.sum(2), contrib[:, :, -1]
        contrib = contrib[np.arange(n), target]
    contrib = contrib * sign[:, None] * scale
    values, expected = contrib[:, :-1], contrib[:, -1] + shift
    names = feature_columns(b, embedded)
    cols = []
    for row in values:
        d: dict[str, float] = {}
        for name, v in zip(names, row, strict=True):
            d[name] = d.get(name, 0.0) + float(v)
        cols.append(d)
    score = values.sum(1) + expected
    return BaselineAttribution(score, expected, cols, [],
                               *_probabilities(task, score, expected, all_scores, all_expected, target))


def _attribute_ensemble(e: Baseline, batch: pa.Table, target: np.ndarray) -> BaselineAttribution:
    """An ensemble averages its members' probabilities (values, for regression). Each member's exact
    contributions are rescaled to its own change of probability from its expected value, weighted, and
    expressed in the log-odds of the ensemble's probability: they add up to its score minus its
    expected value, exactly (values add up as they are)."""
    from hone.models.ensemble import Ensemble

    assert isinstance(e, Ensemble)
    task, x = e.pre.schema.task, e._features(batch)
    parts = []
    for m, w in zip(e.members, e.weights):
        if w <= 0:
            continue
        if m.trees:  # a bag averages its fold models: each is a part of weight w / folds
            embedded = m.reads == "embeddings"
            dense = x.embedded if embedded else x.dense
            assert dense is not None
            parts += [(w / len(m.trees), _tree_attribution(e, t.contributions(dense), target, embedded))
                      for t in m.trees]
            continue
        assert m.linear is not None
        chars = m.reads == "char_wb"
        linear = Baseline(e.pre, "tfidf-linear", {"analyzer": m.reads},
                          {"idf": e.arrays["char_idf" if chars else "idf"], "coef": m.linear.coef,
                           "intercept": m.linear.intercept}, e.char_vocabulary if chars else e.vocabulary)
        parts.append((w, attribute_baseline(linear, batch, target)))
    n = batch.num_rows

    def mixed(values: list[np.ndarray | None]) -> np.ndarray:
        return np.sum([w * np.asarray(v, dtype=np.float64) for (w, _), v in zip(parts, values)], axis=0)

    prob: np.ndarray | None = None
    prob_ref: np.ndarray | None = None
    if task == "regression":
        factors = [np.full(n, w) for w, _ in parts]
        score, expected = mixed([a.score for _, a in parts]), mixed([a.expected for _, a in parts])
    else:
        prob, prob_ref = mixed([a.probability for _, a in parts]), mixed([a.probability_ref for _, a in parts])
        lo = np.log(np.clip(prob, 1e-12, 1 - 1e-12) / np.clip(1 - prob, 1e-12, 1))
        lo_ref = np.log(np.clip(prob_ref, 1e-12, 1 - 1e-12) / np.clip(1 - prob_ref, 1e-12, 1))
        to_log_odds = _ratios(lo - lo_ref, prob - prob_ref)
        factors = [w * _ratios(np.asarray(a.probability) - np.asarray(a.probability_ref), a.score - a.expected)
                   * to_log_odds for w, a in parts]
        score, expected = lo, lo_ref
    cols: list[dict[str, float]] = [{} for _ in range(n)]
    terms: list[list[tuple[str, float]]] = [[] for _ in range(n)]
    for f, (_, a) in zip(factors, parts):
        for i in range(n):
            for k, v in a.columns[i].items():
                cols[i][k] = cols[i].get(k, 0.0) + float(f[i] * v)
            if a.terms:
                terms[i] = [(t, float(f[i] * v)) for t, v in a.terms[i]]
    return BaselineAttribution(np.asarray(score, dtype=np.float64), np.asarray(expected, dtype=np.float64), cols,
                               terms if any(terms) else [], prob, prob_ref)


def _ratios(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` where ``den`` is not about zero, else 0 (a row whose part did not move)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    ok = np.abs(den) > 1e-9
    return np.where(ok, num / np.where(ok, den, 1.0), 0.0)
