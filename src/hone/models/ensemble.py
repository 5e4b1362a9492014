"""The shallow ensemble of ``hone auto``: gradient-boosted trees (LightGBM, XGBoost, CatBoost) and, with
text, TF-IDF + linear, each fitted on the training split with early stopping on validation, averaged
with the weights greedy ensemble selection gave them on validation.

It takes the place of the baseline in the model package (``model.baseline``, kind ``ensemble``), so the
decision (network, ensemble or a blend of both, calibrated, with its threshold), predict, evaluate,
serve and explain work unchanged. The trees read the baseline's features (the preprocessed numeric and
categorical columns, a 64-dimensional SVD of the text's TF-IDF and the text's surface statistics
(:func:`hone.shallow.text.statistics`), image thumbnails); the linear member
reads the TF-IDF itself. Saved without pickle: each library's own model format, arrays as safetensors.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from hone.features.pipeline import Preprocessor
from hone.models.baseline import _SVD_DIM, _TFIDF_FEATURES, MAX_ROWS, Baseline, _read, _tabular, _texts
from hone.shallow.linear import LinearFit, fit_tuned, linear_scores
from hone.shallow.portfolio import TreeModel, fit_tree
from hone.shallow.text import Tfidf, fit_tfidf, statistics

if TYPE_CHECKING:
    from hone.models.embedder import Embedder


@dataclass
class Parts:
    """The features of a batch: the trees' dense matrix and the linear members' sparse TF-IDF (words;
    character n-grams)."""

    dense: np.ndarray
    text: Any = None
    chars: Any = None
    embedded: np.ndarray | None = None  # dense, then the frozen backbone's projected embeddings (hone.models.embedder)


@dataclass
class Member:
    """One fitted candidate: a tree model, a bag of them (k-fold: the mean of the fold models), or a
    linear fit on the TF-IDF."""

    name: str
    family: str  # lightgbm | xgboost | catboost | forest | linear
    tree: TreeModel | None = None
    linear: LinearFit | None = None
    info: dict[str, Any] = field(default_factory=dict)
    bag: list[TreeModel] = field(default_factory=list)
    reads: str = "word"  # a linear member's TF-IDF ("word" or "char_wb" n-grams); trees: "dense" or "embeddings"

    @property
    def trees(self) -> list[TreeModel]:
        """The tree models whose mean this member outputs (one, or the bag's)."""
        return self.bag or ([self.tree] if self.tree is not None else [])

    def scores(self, x: Parts, task: str) -> np.ndarray:
        if self.trees:
            dense = x.embedded if self.reads == "embeddings" else x.dense
            assert dense is not None, f"{self.name} reads the backbone's embeddings: the ensemble has no embedder"
            out = np.asarray(self.trees[0].scores(dense), dtype=np.float64)
            for t in self.trees[1:]:
                out = out + t.scores(dense)
            return out / len(self.trees)
        assert self.linear is not None
        return linear_scores(x.chars if self.reads == "char_wb" else x.text, self.linear.coef, self.linear.intercept,
                             task)


class Ensemble(Baseline):
    """Members averaged with weights (``info["weights"]``); outputs like a :class:`Baseline`."""

    def __init__(self, pre: Preprocessor, members: list[Member], weights: list[float], *,
                 arrays: dict[str, np.ndarray] | None = None, vocabulary: dict[str, int] | None = None,
                 info: dict[str, Any] | None = None, char_vocabulary: dict[str, int] | None = None,
                 embedder: Embedder | None = None) -> None:
        super().__init__(pre, "ensemble", {**(info or {}), "members": [m.name for m in members],
                                           "weights": [float(w) for w in weights]}, dict(arrays or {}), vocabulary)
        self.members = members
        self.char_vocabulary = char_vocabulary
        self.embedder = embedder

    @property
    def weights(self) -> list[float]:
        return list(self.info["weights"])

    def _features(self, batch: pa.Table) -> Parts:
        dense = _tabular(self.pre, batch)
        text = chars = None
        texts = _texts(self.pre, batch) if self.vocabulary is not None or self.char_vocabulary is not None else []
        if self.vocabulary is not None:
            text = Tfidf(self.vocabulary, self.arrays["idf"]).transform(texts)
            if "svd" in self.arrays:
                dense = np.concatenate([dense, text @ self.arrays["svd"].T], axis=1)
            if self.info.get("text_statistics"):
                dense = np.concatenate([dense, statistics(texts)], axis=1)
        if self.char_vocabulary is not None:
            chars = Tfidf(self.char_vocabulary, self.arrays["char_idf"], "char_wb").transform(texts)
        embedded = np.concatenate([dense, self.embedder.transform(batch)], axis=1) if self.embedder else None
        return Parts(dense, text, chars, embedded)

    def _linear_reads(self) -> list[str]:
        """The TF-IDF inputs (``word``, ``char_wb``) that weighted linear members read, in that order."""
        reads = {m.reads for m, w in zip(self.members, self.weights) if w > 0 and m.linear is not None}
        vocabularies = (("word", self.vocabulary), ("char_wb", self.char_vocabulary))
        return [name for name, vocab in vocabularies if name in reads and vocab is not None]

    def features(self, batch: pa.Table) -> np.ndarray:
        """The ONNX graph's ``baseline`` input: the trees' dense features (then the backbone's projected
        embeddings, with an embedder), then the word TF-IDF and the character TF-IDF where a weighted
        linear member reads them (dense, as the linear baseline's); :meth:`layout` says which columns
        are which."""
        x = self._features(batch)
        sparse = {"word": x.text, "char_wb": x.chars}
        dense = [np.asarray(sparse[name].todense(), dtype=np.float32) for name in self._linear_reads()]
        trees = x.embedded if x.embedded is not None else x.dense
        return np.concatenate([np.asarray(trees, dtype=np.float32), *dense], axis=1)

    def layout(self, width: int) -> dict[str, tuple[int, int]]:
        """The column ranges of :meth:`features` (``width`` columns in all): ``dense``, ``embeddings``
        (dense and the embeddings, with an embedder), and ``word`` / ``char_wb`` where present."""
        sizes = {"word": len(self.vocabulary or {}), "char_wb": len(self.char_vocabulary or {})}
        reads = self._linear_reads()
        at = width - sum(sizes[name] for name in reads)
        out = {"dense": (0, at)}
        if self.embedder is not None:
            out = {"dense": (0, at - self.embedder.width), "embeddings": (0, at)}
        for name in reads:
            out[name] = (at, at + sizes[name])
            at += sizes[name]
        return out

    def _score(self, x: Any) -> np.ndarray:
        task = self.pre.schema.task
        out: np.ndarray | None = None
        for m, w in zip(self.members, self.weights):
            if w <= 0:
                continue
            s = w * np.asarray(m.scores(x, task), dtype=np.float64)
            out = s if out is None else out + s
        assert out is not None
        return out

    # -- persistence ----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        folder.mkdir(parents=True, exist_ok=True)
        arrays = dict(self.arrays)
        records = []
        for i, m in enumerate(self.members):
            rec: dict[str, Any] = {"name": m.name, "family": m.family, "reads": m.reads,
                                   "info": {k: v for k, v in m.info.items() if k not in ("oof", "oof_all")}}
            if m.trees:
                ext = {"lightgbm": "txt", "xgboost": "json", "catboost": "cbm", "forest": "safetensors"}[m.family]
                rec["files"] = [f"member{i}.{j}.{ext}" for j in range(len(m.trees))]
                for name, t in zip(rec["files"], m.trees):
                    (folder / name).write_bytes(t.to_bytes())
                rec["tree_info"] = [t.info for t in m.trees]
            else:
                assert m.linear is not None
                arrays[f"member{i}.coef"], arrays[f"member{i}.intercept"] = m.linear.coef, m.linear.intercept
                rec["linear"] = {"c": m.linear.c, "model": m.linear.model, "reads": m.reads}
            records.append(rec)
        if self.vocabulary is not None:
            (folder / "vocabulary.json").write_text(json.dumps(self.vocabulary), encoding="utf-8")
        if self.char_vocabulary is not None:
            (folder / "char_vocabulary.json").write_text(json.dumps(self.char_vocabulary), encoding="utf-8")
        if self.embedder is not None:
            self.embedder.save(folder / "embedder")
            arrays.update(self.embedder.arrays())
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()} or {"none": np.zeros(1)},
                  str(folder / "arrays.safetensors"))
        (folder / "baseline.json").write_text(json.dumps({"kind": "ensemble", "info": self.info, "members": records},
                                                         indent=2), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, pre: Preprocessor) -> Ensemble:
        from safetensors.numpy import load_file

        meta = json.loads((folder / "baseline.json").read_text(encoding="utf-8"))
        arrays = {k: v for k, v in load_file(str(folder / "arrays.safetensors")).items() if k != "none"}
        vocab_file = folder / "vocabulary.json"
        vocab = json.loads(vocab_file.read_text(encoding="utf-8")) if vocab_file.exists() else None
        chars_file = folder / "char_vocabulary.json"
        chars = json.loads(chars_file.read_text(encoding="utf-8")) if chars_file.exists() else None
        task = pre.schema.task
        members = []
        for i, rec in enumerate(meta["members"]):
            m = Member(rec["name"], rec["family"], info=rec.get("info", {}))
            if "files" in rec:
                trees = [TreeModel.from_bytes(rec["family"], rec["name"], task, (folder / name).read_bytes(), info)
                         for name, info in zip(rec["files"], rec["tree_info"])]
                if len(trees) == 1:
                    m.tree = trees[0]
                else:
                    m.bag = trees
            else:
                m.linear = LinearFit(arrays.pop(f"member{i}.coef"), arrays.pop(f"member{i}.intercept"),
                                     rec["linear"]["c"], rec["linear"]["model"])
                m.reads = rec["linear"].get("reads", "word")
            m.reads = rec.get("reads", m.reads)
            members.append(m)
        info = {k: v for k, v in meta["info"].items() if k not in ("members", "weights")}
        embedder = None
        if (folder / "embedder").is_dir():
            from hone.models.embedder import Embedder as Embedding

            if pre.text is None:
                raise ValueError("its ensemble reads text embeddings but the model has no text column")
            embedder = Embedding.load(folder / "embedder", pre.text, arrays)
        return cls(pre, members, meta["info"]["weights"], arrays=arrays, vocabulary=vocab, info=info,
                   char_vocabulary=chars, embedder=embedder)


def load_baseline(folder: Path, pre: Preprocessor) -> Baseline:
    """The package's ``baseline/`` folder: a :class:`Baseline`, or an :class:`Ensemble` (``hone auto``)."""
    kind = json.loads((folder / "baseline.json").read_text(encoding="utf-8"))["kind"]
    return Ensemble.load(folder, pre) if kind == "ensemble" else Baseline.load(folder, pre)


class Library:
    """The training and validation features, computed once, and the candidates fitted on them."""

    def __init__(self, pre: Preprocessor, train_path: Path, valid_path: Path, *, seed: int = 0,
                 threads: int = 0) -> None:
        t0 = time.perf_counter()
        self.pre, self.seed, self.threads = pre, seed, threads
        train, valid = _read(train_path, MAX_ROWS, pre), _read(valid_path, None, pre)
        self.y, self.y_va = pre.targets(train), pre.targets(valid)
        self.task, self.n_classes = pre.schema.task, len(pre.schema.classes)
        self.vocabulary: dict[str, int] | None = None
        self.char_vocabulary: dict[str, int] | None = None  # fitted with the first character n-gram member
        self.arrays: dict[str, np.ndarray] = {}
        # the training texts, joined once (kept for the character n-grams' TF-IDF until the planner drops them)
        self.train_texts: list[str] | None = _texts(pre, train) if "text" in pre.modalities else None
        # the text columns' rows, kept until the backbone's embeddings are made (or the planner drops them)
        self.text_tables: tuple[pa.Table, pa.Table] | None = (
            (train.select(pre.text.columns), valid.select(pre.text.columns)) if pre.text is not None else None)
        self.embedder: Embedder | None = None
        self.x_emb: np.ndarray | None = None
        self.embedding_seconds = 0.0  # the validation rows' embeddings: part of the scoring cost
        tab = _tabular(pre, train)
        self.text = None
        if self.train_texts is not None:
            tfidf, self.text = fit_tfidf(self.train_texts, max_features=_TFIDF_FEATURES,
                                         min_df=2 if train.num_rows > 1000 else 1, single_characters=True)
            self.vocabulary, self.arrays["idf"] = tfidf.vocabulary, tfidf.idf
            from sklearn.decomposition import TruncatedSVD

            k = max(1, min(_SVD_DIM, self.text.shape[1] - 1, self.text.shape[0] - 1))
            self.arrays["svd"] = TruncatedSVD(k, random_state=seed).fit(self.text).components_.astype(np.float32)
            tab = np.concatenate([tab, self.text @ self.arrays["svd"].T, statistics(self.train_texts)], axis=1)
        self.x = tab
        # the validation features exactly as the saved ensemble makes them from a batch (timed: the
        # feature cost of scoring, for --infer-limit)
        t_va = time.perf_counter()
        self.valid_parts = self.ensemble([], [], {})._features(valid)
        self.valid_texts = _texts(pre, valid) if "text" in pre.modalities else []
        self.feature_seconds = time.perf_counter() - t_va
        self.char_feature_seconds = 0.0  # the character n-grams' share, once fitted
        self.x_va, self.text_va = self.valid_parts.dense, self.valid_parts.text
        n_num = pre.numbers.width if pre.numbers is not None else 0
        n_cat = len(pre.categories.features) if pre.categories is not None else 0
        self.categorical = list(range(n_num, n_num + n_cat))
        self.seconds = time.perf_counter() - t0

    @property
    def rows(self) -> int:
        return len(self.y)

    @property
    def y_va_target(self) -> np.ndarray:
        """The validation targets in the target's own scale (what :meth:`validation_scores` compare with)."""
        return self.y_va * self.pre.target_std + self.pre.target_mean if self.task == "regression" else self.y_va

    @property
    def y_all_target(self) -> np.ndarray:
        """The training then validation targets, in the target's scale: the rows a bag's ``oof_all`` covers."""
        y = np.concatenate([self.y, self.y_va])
        return y * self.pre.target_std + self.pre.target_mean if self.task == "regression" else y

    def embed(self, encoder: Any, *, left: float, pilot_rows: int = 256) -> str | None:
        """The frozen backbone's embeddings of the training and validation rows, projected
        (:class:`~hone.models.embedder.Embedder`), for the trees that read them (``x_emb``,
        ``valid_parts.embedded``). A pilot on the first validation rows prices the rest first; None when
        done, else why not (the estimate would not fit in ``left`` seconds)."""
        from hone.models.embedder import Embedder, timed_embed

        assert self.text_tables is not None and self.pre.text is not None
        train, valid = self.text_tables
        n = min(pilot_rows, valid.num_rows)
        _, seconds = timed_embed(encoder, self.pre.text, valid.slice(0, n))
        need = seconds / max(n, 1) * (train.num_rows + valid.num_rows)
        if need > left:
            rows = train.num_rows + valid.num_rows
            return f"estimated {need:.1f} s for the backbone's embeddings of {rows:,} rows, {left:.1f} s left"
        pooled_va, self.embedding_seconds = timed_embed(encoder, self.pre.text, valid)
        pooled_tr, _ = timed_embed(encoder, self.pre.text, train)
        self.embedder = Embedder.fit(encoder, self.pre.text, pooled_tr, seed=self.seed)
        self.x_emb = np.concatenate([self.x, self.embedder.project(pooled_tr)], axis=1)
        self.valid_parts.embedded = np.concatenate([self.x_va, self.embedder.project(pooled_va)], axis=1)
        self.text_tables = None
        return None

    def _matrices(self, config: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """The training and validation features a configuration reads: with the embeddings or without."""
        if config.get("embedded"):
            assert self.x_emb is not None and self.valid_parts.embedded is not None
            return self.x_emb, self.valid_parts.embedded
        return self.x, self.x_va

    def fit_tree(self, family: str, config: dict[str, Any], *, deadline: float | None = None,
                 rows: int | None = None, max_rounds: int | None = None) -> Member:
        """One tree configuration (on the first ``rows`` training rows when given: a pilot)."""
        x, x_va = self._matrices(config)
        y = self.y
        if rows is not None:
            x, y = x[:rows], y[:rows]
        kw = {"max_rounds": max_rounds} if max_rounds else {}
        t = fit_tree(family, config, x, y, x_va, self.y_va, self.task, self.n_classes,
                     categorical=self.categorical, seed=self.seed, threads=self.threads, deadline=deadline, **kw)
        return Member(config["name"], family, tree=t, reads="embeddings" if config.get("embedded") else "dense",
                      info={"fit_seconds": t.info["fit_seconds"], "best_iteration": t.info["best_iteration"],
                            "stopped_by_deadline": t.info["stopped_by_deadline"]})

    def fit_bagged(self, family: str, config: dict[str, Any], *, folds: int = 5,
                   deadline: float | None = None, repeat: int = 0) -> Member | None:
        """``config`` fitted ``folds`` times on the training and validation rows together, each fold model
        early-stopped on the fold it leaves out; the member outputs their mean. Its outputs on every
        training and validation row (``info["oof_all"]``, in that order; the validation rows' alone in
        ``info["oof"]``) are out of fold: each row's comes from the model that did not see it.
        ``repeat`` > 0 draws other folds (a repeated k-fold). None when the deadline came before every
        fold was fitted."""
        x_tr, x_va = self._matrices(config)
        x_all, y_all = np.concatenate([x_tr, x_va]), np.concatenate([self.y, self.y_va])
        fold = np.random.default_rng([self.seed, repeat]).permutation(len(y_all)) % folds if repeat else \
            np.random.default_rng(self.seed).permutation(len(y_all)) % folds
        n_tr, t0 = len(self.y), time.perf_counter()
        models, oof = [], None
        for f in range(folds):
            out = fold == f
            t = fit_tree(family, config, x_all[~out], y_all[~out], x_all[out], y_all[out], self.task, self.n_classes,
                         categorical=self.categorical, seed=self.seed + f + folds * repeat, threads=self.threads,
                         deadline=deadline)
            if t.info["stopped_by_deadline"] and f < folds - 1:
                return None
            models.append(t)
            pred = np.asarray(t.scores(x_all[out]), dtype=np.float64)
            if oof is None:
                oof = np.zeros((len(y_all), *pred.shape[1:]))
            oof[out] = pred
        assert oof is not None
        if self.task == "regression":
            oof = oof * self.pre.target_std + self.pre.target_mean
        return Member(f"{config['name']}-bag{folds}", family, bag=models,
                      reads="embeddings" if config.get("embedded") else "dense",
                      info={"fit_seconds": round(time.perf_counter() - t0, 3), "folds": folds,
                            "best_iteration": [t.info["best_iteration"] for t in models], "oof": oof[n_tr:],
                            "oof_all": oof})

    def fit_forest(self, config: dict[str, Any], *, deadline: float | None = None) -> Member | None:
        """A random forest or extra trees (``config``) on the training and validation rows together: its
        out-of-bag outputs stand for out-of-fold ones (``info["oof_all"]``, ``info["oof"]`` as a bag's).
        None when the deadline came before ``MIN_TREES`` trees."""
        from hone.shallow.forest import fit_forest

        x_all, y_all = np.concatenate([self.x, self.x_va]), np.concatenate([self.y, self.y_va])
        forest, oob, info = fit_forest(config["params"], x_all, y_all, self.task, self.n_classes, seed=self.seed,
                                       threads=self.threads, deadline=deadline)
        if forest is None:
            return None
        if self.task == "regression":
            oob = oob * self.pre.target_std + self.pre.target_mean
        tree = TreeModel("forest", config["name"], self.task, forest, info)
        return Member(config["name"], "forest", tree=tree, reads="dense",
                      info={**info, "out_of_fold": "out of bag", "oof": oob[len(self.y):], "oof_all": oob})

    def fit_linear(self, analyzer: str = "word") -> Member:
        """TF-IDF + logistic regression (ridge for numbers), its regularisation tuned on validation; on
        word n-grams, or on character n-grams (``analyzer="char_wb"``: their TF-IDF is fitted here, the
        first time)."""
        assert self.text is not None
        t0 = time.perf_counter()
        x, x_va = self.text, self.text_va
        if analyzer == "char_wb":
            if self.char_vocabulary is None:
                assert self.train_texts is not None
                tfidf, self.chars = fit_tfidf(self.train_texts, max_features=_TFIDF_FEATURES,
                                              min_df=2 if self.rows > 1000 else 1, analyzer="char_wb")
                self.char_vocabulary, self.arrays["char_idf"] = tfidf.vocabulary, tfidf.idf
                t_va = time.perf_counter()
                self.valid_parts.chars = tfidf.transform(self.valid_texts)
                self.char_feature_seconds = time.perf_counter() - t_va
            x, x_va = self.chars, self.valid_parts.chars
        fit = fit_tuned(x, self.y, x_va, self.y_va, self.task, seed=self.seed)
        name = "tfidf-chars-linear" if analyzer == "char_wb" else "tfidf-linear"
        return Member(name, "linear", linear=fit, reads=analyzer,
                      info={"fit_seconds": round(time.perf_counter() - t0, 3), "C": fit.c})

    def validation_scores(self, m: Member) -> np.ndarray:
        """The member's validation outputs in the target's scale (like :meth:`Baseline.outputs`); out of
        fold for a bag."""
        if "oof" in m.info:
            return np.asarray(m.info.pop("oof"))
        out = np.asarray(m.scores(self.valid_parts, self.task), dtype=np.float64)
        if self.task == "regression":
            return out * self.pre.target_std + self.pre.target_mean
        return out

    def all_scores(self, m: Member) -> np.ndarray | None:
        """A bag's out-of-fold outputs on every training and validation row (:attr:`y_all_target`'s
        rows), in the target's scale; None for a member fitted once (its training rows' are not)."""
        return np.asarray(m.info.pop("oof_all")) if "oof_all" in m.info else None

    def ensemble(self, members: list[Member], weights: list[float], info: dict[str, Any]) -> Ensemble:
        """The ensemble of ``members`` with ``weights``, reading the features this library fitted."""
        if self.vocabulary is not None:
            info = {**info, "text_statistics": True}
        chars = self.char_vocabulary if any(m.reads == "char_wb" for m in members) else None
        arrays = self.arrays if chars else {k: v for k, v in self.arrays.items() if k != "char_idf"}
        embedder = self.embedder if any(m.reads == "embeddings" for m in members) else None
        return Ensemble(self.pre, members, weights, arrays=arrays, vocabulary=self.vocabulary, info=info,
                        char_vocabulary=chars, embedder=embedder)
