"""The cheap strong baseline, fitted on the same split as the network.

- Text only: TF-IDF (words, 1-2 grams) + logistic regression (ridge for regression), its
  regularisation tuned on the validation split.
- Numeric, categorical and image columns (and mixed tables): LightGBM with its default settings and
  early stopping on the validation split; text columns, if any, enter as a 64-dimensional SVD of
  their TF-IDF, image columns as 16 x 16 grey thumbnails (raw pixels).

The baseline reads the same preprocessed columns as the network (the fitted
:class:`~hone.features.pipeline.Preprocessor`), so it sees exactly what the network sees; the models
themselves are :mod:`hone.shallow`'s (shared with the audit's label-error model). It saves without
pickle: LightGBM's own text format, the TF-IDF vocabulary as JSON, every array as safetensors.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hone.data.batches import as_tables
from hone.features.pipeline import Preprocessor
from hone.shallow.linear import fit_tuned, linear_scores
from hone.shallow.text import Tfidf, fit_tfidf, joined
from hone.shallow.trees import booster_scores, fit_booster, load_booster

MAX_ROWS = 200_000  # the baseline trains on at most this many training rows (the file is in hash order)
_SVD_DIM = 64
THUMBNAIL = 16  # image columns enter the LightGBM baseline as 16 x 16 grey thumbnails (256 pixels each)
_THUMBS = "__hone_thumbnails"
_TFIDF_FEATURES = 100_000


def _texts(pre: Preprocessor, batch: pa.Table) -> list[str]:
    assert pre.text is not None
    return joined([pc.fill_null(pc.cast(batch.column(c), pa.string()), "").to_pylist() for c in pre.text.columns])


def _tabular(pre: Preprocessor, batch: pa.Table) -> np.ndarray:
    parts = []
    if "numeric" in pre.modalities:
        parts.append(pre.modalities["numeric"].transform(batch).astype(np.float64))
    if "categorical" in pre.modalities:
        parts.append(pre.modalities["categorical"].transform(batch).astype(np.float64))
    if "image" in pre.modalities:  # grey thumbnails: LightGBM on (downsampled) raw pixels
        if _THUMBS in batch.column_names:  # already made while the split was read (_read)
            col = batch.column(_THUMBS).combine_chunks()
            parts.append(np.asarray(col.values.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(len(col), -1))
        else:
            parts.append(pre.images.thumbnails(batch, THUMBNAIL).astype(np.float64))  # type: ignore[union-attr]
    return np.concatenate(parts, axis=1) if parts else np.zeros((batch.num_rows, 0))


def _read(path: Path, max_rows: int | None = None, pre: Preprocessor | None = None) -> pa.Table:
    """The split file (its first ``max_rows`` rows). With image columns, each batch's images are
    replaced by their thumbnails as it is read (``pre``), so encoded images never pile up in memory."""
    if pre is None or "image" not in pre.modalities:
        t = pq.read_table(path)
        return t.slice(0, max_rows) if max_rows else t
    images = pre.images
    assert images is not None
    parts, n = [], 0
    for b in pq.ParquetFile(path).iter_batches(batch_size=2048):
        t = pa.Table.from_batches([b])
        if max_rows:
            t = t.slice(0, max_rows - n)
        thumbs = images.thumbnails(t, THUMBNAIL)
        t = t.drop_columns(images.names).append_column(_THUMBS, pa.FixedSizeListArray.from_arrays(
            pa.array(thumbs.ravel(), type=pa.float32()), thumbs.shape[1]))
        parts.append(t)
        n += t.num_rows
        if max_rows and n >= max_rows:
            break
    return pa.concat_tables(parts)


@dataclass
class Baseline:
    """A fitted baseline: ``outputs(batch)`` gives probabilities ``[N, K]`` or values ``[N]``."""

    pre: Preprocessor
    kind: str  # "tfidf-linear" or "lightgbm"
    info: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    vocabulary: dict[str, int] | None = None
    booster: Any = None

    # -- features -------------------------------------------------------------------------------
    def _tfidf(self, texts: list[str]) -> Any:
        assert self.vocabulary is not None
        return Tfidf(self.vocabulary, self.arrays["idf"], self.info.get("analyzer", "word")).transform(texts)

    def _features(self, batch: pa.Table) -> Any:
        if self.kind == "tfidf-linear":
            return self._tfidf(_texts(self.pre, batch))
        x = _tabular(self.pre, batch)
        if self.vocabulary is not None:
            x = np.concatenate([x, self._tfidf(_texts(self.pre, batch)) @ self.arrays["svd"].T], axis=1)
        return x

    def features(self, batch: pa.Table) -> np.ndarray:
        """The feature matrix the baseline scores, dense float32 (the ONNX graph's ``baseline`` input)."""
        x = self._features(batch)
        return np.asarray(x.todense() if hasattr(x, "todense") else x, dtype=np.float32)

    # -- outputs --------------------------------------------------------------------------------
    def outputs(self, batch: pa.Table) -> np.ndarray:
        """Probabilities ``[N, K]``, or values ``[N]`` in the target's own scale."""
        return self.outputs_from(self._features(batch))

    def outputs_from(self, x: Any) -> np.ndarray:
        """:meth:`outputs` from the feature matrix (:meth:`_features`)."""
        out = self._score(x)
        if self.pre.schema.task == "regression":
            return np.asarray(out, dtype=np.float64) * self.pre.target_std + self.pre.target_mean
        return out

    def _score(self, x: Any) -> np.ndarray:
        task = self.pre.schema.task
        if self.kind == "lightgbm":
            return booster_scores(self.booster, x, task, self.info.get("best_iteration"))
        return linear_scores(x, self.arrays["coef"], self.arrays["intercept"], task)

    def iter_outputs(self, batches: Iterable[pa.Table]) -> Iterable[tuple[pa.Table, np.ndarray]]:
        for t in as_tables(batches):
            yield t, self.outputs(t)

    # -- persistence ----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        folder.mkdir(parents=True, exist_ok=True)
        if self.booster is not None:
            (folder / "lightgbm.txt").write_text(self.booster.model_to_string(), encoding="utf-8")
        if self.vocabulary is not None:
            (folder / "vocabulary.json").write_text(json.dumps(self.vocabulary), encoding="utf-8")
        save_file({k: np.ascontiguousarray(v) for k, v in self.arrays.items()} or {"none": np.zeros(1)},
                  str(folder / "arrays.safetensors"))
        (folder / "baseline.json").write_text(
            json.dumps({"kind": self.kind, "info": self.info}, indent=2), encoding="utf-8"
        )

    @classmethod
    def load(cls, folder: Path, pre: Preprocessor) -> Baseline:
        from safetensors.numpy import load_file

        meta = json.loads((folder / "baseline.json").read_text(encoding="utf-8"))
        arrays = {k: v for k, v in load_file(str(folder / "arrays.safetensors")).items() if k != "none"}
        vocab = (
            json.loads((folder / "vocabulary.json").read_text(encoding="utf-8"))
            if (folder / "vocabulary.json").exists()
            else None
        )
        booster = None
        if meta["kind"] == "lightgbm":
            booster = load_booster((folder / "lightgbm.txt").read_text(encoding="utf-8"))
        return cls(pre, meta["kind"], meta["info"], arrays, vocab, booster)


def fit_baseline(pre: Preprocessor, train_path: Path, valid_path: Path, *, seed: int = 0,
                 threads: int = 0) -> Baseline:
    """Fit the baseline for ``pre``'s table on the training file, tuned on the validation file."""
    train, valid = _read(train_path, MAX_ROWS, pre), _read(valid_path, None, pre)
    y_tr, y_va = pre.targets(train), pre.targets(valid)
    has_text = "text" in pre.modalities
    tabular = any(m in pre.modalities for m in ("numeric", "categorical", "image"))
    vocab, arrays = None, {}
    if has_text:
        tfidf, x_text = fit_tfidf(_texts(pre, train), max_features=_TFIDF_FEATURES,
                                  min_df=2 if train.num_rows > 1000 else 1)
        vocab, arrays["idf"] = tfidf.vocabulary, tfidf.idf
    if has_text and not tabular:
        return _fit_linear(pre, x_text, y_tr, valid, y_va, vocab or {}, arrays, seed)
    if has_text:
        from sklearn.decomposition import TruncatedSVD

        k = max(1, min(_SVD_DIM, x_text.shape[1] - 1, x_text.shape[0] - 1))
        arrays["svd"] = TruncatedSVD(k, random_state=seed).fit(x_text).components_.astype(np.float32)
    b = Baseline(pre, "lightgbm", {}, arrays, vocab)
    return _fit_lightgbm(b, train, y_tr, valid, y_va, seed, threads)


def _fit_linear(pre: Preprocessor, x: Any, y: np.ndarray, valid: pa.Table, y_va: np.ndarray,
                vocab: dict[str, int], arrays: dict[str, np.ndarray], seed: int) -> Baseline:
    x_va = Baseline(pre, "tfidf-linear", {}, arrays, vocab)._features(valid)
    fit = fit_tuned(x, y, x_va, y_va, pre.schema.task, seed=seed)
    return Baseline(pre, "tfidf-linear", {"C": fit.c, "model": fit.model},
                    {**arrays, "coef": fit.coef, "intercept": fit.intercept}, vocab)


def _fit_lightgbm(b: Baseline, train: pa.Table, y: np.ndarray, valid: pa.Table, y_va: np.ndarray, seed: int,
                  threads: int) -> Baseline:
    x, x_va = b._features(train), b._features(valid)
    n_num = b.pre.numbers.width if b.pre.numbers is not None else 0
    n_cat = len(b.pre.categories.features) if b.pre.categories is not None else 0
    b.booster, b.info = fit_booster(x, y, x_va, y_va, b.pre.schema.task, len(b.pre.schema.classes),
                                    categorical=list(range(n_num, n_num + n_cat)), seed=seed, threads=threads)
    return b
