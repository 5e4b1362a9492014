"""Likely label errors: out-of-fold probabilities from a cheap cross-validated model, then
confident learning (``cleanlab``) turned into a probability that each row's label is wrong.

1. Out-of-fold probabilities (5 folds; a sample of at most ``quality.label_error_rows`` labelled
   rows, chosen by a hash of the row and the split seed): TF-IDF (word 1-2-grams) and logistic
   regression when the table has text, with categorical and numeric columns appended;
   LightGBM on numeric and categorical columns otherwise.
2. The probabilities are calibrated by one temperature fitted to the given labels.
3. ``cleanlab`` estimates the joint distribution of given and true labels (the confident joint);
   from it, the noise matrix T[j, i] = P(given i | true j).
4. Each row's score is the posterior probability that its label is wrong,
   1 - T[y, y] q[y] / sum_j T[j, y] q[j], where q are the true-label probabilities: the model
   learnt the *given* labels, so its p is unmixed (p = T' q, solved and clipped); rows scoring at least
   ``quality.label_error_threshold`` (0.5: more likely wrong than right) are flagged, with the most
   likely true label as the suggestion. ``--clean`` drops them.

Unlike cleanlab's default filter, which flags about as many rows as the confident joint counts
(half of them correct but hard rows on noisy data), the posterior gives a ranking and a cut with a
meaning. Nothing is flagged when the model cannot tell noise from signal (see
:func:`wrong_label_posterior`).
"""

from __future__ import annotations

import warnings

import numpy as np

from hone.data.schema import Schema, feature_selects
from hone.data.sources import Table
from hone.data.sql import qi
from hone.evaluation.calibration import apply_temperature, fit_temperature
from hone.quality.base import Context, Finding, register
from hone.shallow.linear import fit_logistic
from hone.shallow.text import fit_tfidf
from hone.shallow.trees import fit_classifier

_FOLDS = 5


@register("label_errors")
def label_error_check(table: Table, schema: Schema, ctx: Context) -> list[Finding]:
    q = ctx.cfg.quality
    if schema.task == "regression" or not q.label_errors:
        return []
    rows, x_text, x_tab, y, classes = _sample(table, schema, ctx)
    if len(classes) < 2 or len(y) < 50:
        return []
    if x_text is None and x_tab is None:  # only image columns: the cheap out-of-fold models cannot read them
        ctx.extras["label_error_check"] = {"not_judged": "no text or tabular column to fit the out-of-fold model on"}
        return [Finding("label_errors", "info", "label errors not judged: the table has no text or tabular column "
                        "(image columns are not read by the audit)", 0, schema.target)]
    try:
        probs = out_of_fold(x_text, x_tab, y, len(classes), seed=ctx.cfg.data.split.seed)
    except ValueError as err:  # e.g. no token in any text: nothing to learn from
        ctx.extras["label_error_check"] = {"not_judged": f"no out-of-fold model could be fitted ({err})"}
        return [Finding("label_errors", "info", f"label errors not judged: no model could be fitted ({err})", 0,
                        schema.target)]
    score, suggested, noise, why = wrong_label_posterior(y, probs)
    flagged = np.flatnonzero(score >= q.label_error_threshold) if why is None else np.zeros(0, dtype=int)
    flagged = flagged[np.argsort(-score[flagged], kind="stable")]
    entries = [{"row": int(rows[i]), "score": round(float(score[i]), 4), "given": classes[y[i]],
                "suggested": classes[suggested[i]]} for i in flagged]
    ctx.extras["label_errors"] = entries  # at most quality.label_error_rows
    ctx.extras["label_error_check"] = {
        "rows_checked": int(len(y)), "rows_labelled": int(ctx.extras.get("labelled_rows", len(y))),
        "threshold": q.label_error_threshold, "flagged": int(len(flagged)),
        "expected_precision": round(float(score[flagged].mean()), 3) if len(flagged) else None,
        "estimated_noise_rate": round(float(score.mean()), 4),
        "noise_matrix": {"given|true": [[round(float(v), 4) for v in row] for row in noise.T]}, "classes": classes,
        "not_judged": why}
    if why is not None:
        return [Finding("label_errors", "info", f"label errors not judged: {why}", 0, schema.target)]
    if not len(flagged):
        return []
    share = f" of a sample of {len(y)}" if len(y) < ctx.extras.get("labelled_rows", len(y)) else ""
    return [Finding("label_errors", "warning",
                    f"{len(flagged)} rows{share} are more likely mislabelled than not (out-of-fold model + confident "
                    f"learning; mean score {score[flagged].mean():.2f}, the expected share of real errors)",
                    int(len(flagged)), schema.target, entries[:10],
                    remedy=f"review them (audit.json label_errors); --clean drops those scoring >= "
                           f"{q.label_error_threshold:g}")]


def _sample(table: Table, schema: Schema, ctx: Context) -> tuple[np.ndarray, list[str] | None, np.ndarray | None,
                                                                 np.ndarray, list[str]]:
    tgt = qi(schema.target)
    text = [c.name for c in schema.columns if c.role == "text"]
    tab = [c for c in schema.columns if c.role in ("numeric", "boolean", "categorical")]
    cols = feature_selects(schema, table) + [f"CAST({tgt} AS VARCHAR) AS __y"]
    cap, seed = int(ctx.cfg.quality.label_error_rows), int(ctx.cfg.data.split.seed)
    # numbered among all rows (positions in the source as read), then the unlabelled ones left out
    numbered = (f"SELECT * FROM (SELECT *, row_number() OVER () - 1 AS __row FROM (SELECT {', '.join(cols)} "
                f"FROM {table.view})) WHERE __y IS NOT NULL")
    n = int(table.one(f"SELECT count(*) FROM {table.view} WHERE {tgt} IS NOT NULL")[0])
    ctx.extras["labelled_rows"] = n
    pick = f"ORDER BY hash(__row, {seed}) LIMIT {cap}" if n > cap else ""
    data = table.sql(f"SELECT * FROM ({numbered}) {pick}").to_arrow_table()
    data = data.take(np.argsort(np.asarray(data["__row"].to_numpy()), kind="stable"))
    rows = np.asarray(data["__row"].to_numpy())
    labels = [str(v) for v in data["__y"].to_pylist()]
    classes = sorted(set(labels))
    y = np.asarray([classes.index(v) for v in labels])
    x_text = None
    if text:
        parts = [[("" if v is None else str(v)) for v in data[c].to_pylist()] for c in text]
        x_text = [" \n ".join(p) for p in zip(*parts)]
    x_tab = None
    if tab:
        mats = []
        for c in tab:
            col = data[c.name]
            if c.role == "categorical":
                vals = [None if v is None else str(v) for v in col.to_pylist()]
                vocab = {v: i for i, v in enumerate(sorted({v for v in vals if v is not None}))}
                mats.append(np.asarray([np.nan if v is None else vocab[v] for v in vals], dtype=float))
            else:
                mats.append(np.asarray([np.nan if v is None else float(v) for v in col.to_pylist()], dtype=float))
        x_tab = np.column_stack(mats)
    return rows, x_text, x_tab, y, classes


def out_of_fold(x_text: list[str] | None, x_tab: np.ndarray | None, y: np.ndarray, k: int, *, seed: int = 0,
                categorical: list[int] | None = None) -> np.ndarray:
    """Out-of-fold class probabilities (``n x k``) from 5-fold cross-validation, stratified."""
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(y, minlength=k)
    folds = int(min(_FOLDS, max(2, counts[counts > 0].min())))
    probs = np.full((len(y), k), 1.0 / k)
    skf = StratifiedKFold(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes with fewer rows than folds
        for tr, te in skf.split(np.zeros(len(y)), y):
            probs[te] = _fit_predict(x_text, x_tab, y, tr, te, k, seed)
    return probs


def _fit_predict(x_text: list[str] | None, x_tab: np.ndarray | None, y: np.ndarray, tr: np.ndarray,
                 te: np.ndarray, k: int, seed: int) -> np.ndarray:
    present = np.unique(y[tr])
    out = np.zeros((len(te), k))
    if x_text is not None:
        from scipy import sparse

        tfidf, a = fit_tfidf([x_text[i] for i in tr], max_features=200_000, min_df=2 if len(tr) > 1000 else 1,
                             single_characters=True)
        b = tfidf.transform([x_text[i] for i in te])
        if x_tab is not None:
            ta, tb = _standardise(x_tab[tr], x_tab[te])
            a, b = sparse.hstack([a, ta]).tocsr(), sparse.hstack([b, tb]).tocsr()
        out[:, present] = fit_logistic(a, y[tr]).predict_proba(b)
    else:
        assert x_tab is not None  # no text: the table's other columns
        out[:, present] = fit_classifier(x_tab[tr], y[tr], seed=seed).predict_proba(x_tab[te])
    return out


def _standardise(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sd = np.nanmean(a, 0), np.nanstd(a, 0)
    sd = np.where(sd > 0, sd, 1.0)
    mu = np.where(np.isnan(mu), 0.0, mu)
    return np.nan_to_num((a - mu) / sd), np.nan_to_num((b - mu) / sd)


def wrong_label_posterior(y: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, str | None]:
    """Per row: the probability that its given label is wrong and the most likely true label; the
    estimated noise matrix T[j, i] = P(given i | true j); and why nothing can be judged (or None):
    the model must predict the labels better than their frequencies do, and T must be diagonally
    dominant (each true class mostly keeps its label), else noise and signal cannot be told apart."""
    from cleanlab.count import estimate_joint

    n, k = probs.shape
    p = apply_temperature(probs, fit_temperature(y, probs))  # calibrated to the given labels
    prior = np.bincount(y, minlength=k) / n
    gain = 1 - (-np.log(p[np.arange(n), y] + 1e-12).mean()) / max(
        -(prior[prior > 0] * np.log(prior[prior > 0])).sum(), 1e-12
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        joint = estimate_joint(y, p)  # joint[i, j] = P(given i, true j)
    true = joint.sum(0)
    noise = (joint / np.where(true > 0, true, 1.0)).T  # noise[j, i] = P(given i | true j)
    noise[true == 0] = np.eye(k)[true == 0]
    why = None
    if gain < 0.05:
        why = f"the out-of-fold model explains only {100 * max(gain, 0):.0f}% of the label entropy"
    elif (np.diag(noise)[true > 0] <= 0.5).any():
        why = "the estimated noise is not diagonally dominant: labels and features disagree too much to judge"
    p_true = _unmix(p, noise) if why is None else p
    post = p_true * noise[:, y].T  # P(true j | x, given y), unnormalised
    wrong = 1.0 - post[np.arange(n), y] / np.maximum(post.sum(1), 1e-12)
    other = post.copy()
    other[np.arange(n), y] = -1.0  # the suggestion is the most likely label other than the given one
    return np.clip(wrong, 0.0, 1.0), other.argmax(1), noise, why


def _unmix(p_given: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """True-label probabilities from given-label ones: solve p_given = noise' p_true (clipped)."""
    try:
        p = np.linalg.solve(noise.T, p_given.T).T
    except np.linalg.LinAlgError:
        p = p_given.copy()
    p = np.clip(p, 1e-9, None)
    return p / p.sum(1, keepdims=True)
