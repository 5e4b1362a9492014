"""The fitted preprocessing of a model: Arrow batch -> model inputs per modality, labels <-> targets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from hone.config import ModelConfig
from hone.data.schema import Schema
from hone.data.sql import parquet, qi
from hone.errors import DataError
from hone.features import categorical, image, numeric, text  # noqa: F401  (each registers its modality)
from hone.features.base import FEATURES, FeaturePreprocessor, modality_of


def to_tensors(tree: Any, device: torch.device | str) -> Any:
    """numpy arrays, nested in dicts and tuples, as tensors on ``device``."""
    if isinstance(tree, np.ndarray):
        return torch.from_numpy(tree).to(device)
    if isinstance(tree, dict):
        return {k: to_tensors(v, device) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(to_tensors(v, device) for v in tree)
    return tree


@dataclass
class Preprocessor:
    """Everything fitted on the training split that a batch goes through before the network.

    ``modalities`` maps a modality name (``text``, ``numeric``, ``categorical``, ``image``) to its fitted
    preprocessor, in name order; the network has one encoder per entry.
    """

    schema: Schema
    modalities: dict[str, FeaturePreprocessor]
    target_mean: float = 0.0  # regression targets are standardised for training
    target_std: float = 1.0
    class_counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def fit(cls, schema: Schema, train_path: Path, *, con: duckdb.DuckDBPyConnection, cfg: ModelConfig,
            class_counts: dict[str, int] | None = None) -> Preprocessor:
        """Fit every modality present in ``schema`` on the training file, plus the target scaling."""
        # in name order, not registration (import) order: the network's layout, hence its
        # initialisation and metrics, must not depend on which module happened to be imported first
        mods = {name: FEATURES[name].fit(schema, cols, train_path, con=con, cfg=cfg)
                for name, cols in cls._by_modality(schema).items()}
        pre = cls(schema, mods, class_counts=dict(class_counts or {}))
        if schema.task == "regression":
            from hone.features.numeric import moments

            [(mean, std, _)] = moments(con, [f"CAST({qi(schema.target)} AS DOUBLE)"], parquet(train_path))
            pre.target_mean, pre.target_std = float(mean or 0.0), std or 1.0
        return pre

    @staticmethod
    def _by_modality(schema: Schema) -> dict[str, list[str]]:
        by_modality: dict[str, list[str]] = {}
        for c in schema.columns:
            by_modality.setdefault(modality_of(c.role), []).append(c.name)
        return {name: by_modality[name] for name in sorted(FEATURES) if name in by_modality}

    @classmethod
    def local_stats(cls, schema: Schema, train_path: Path, *, con: duckdb.DuckDBPyConnection,
                    cfg: ModelConfig) -> dict[str, Any]:
        """One data silo's share of a federated fit: each modality's counts and sums over the silo's
        training split, and the target's for a regression (never a row)."""
        out: dict[str, Any] = {
            "modalities": {
                name: FEATURES[name].local_stats(schema, cols, train_path, con=con, cfg=cfg)
                for name, cols in cls._by_modality(schema).items()
            }
        }
        if schema.task == "regression":
            e = f"CAST({qi(schema.target)} AS DOUBLE)"
            n, total, m2 = con.sql(f"SELECT count({e}), coalesce(sum({e}), 0), coalesce(var_pop({e}) * count({e}), 0) "
                                   f"FROM {parquet(train_path)}").fetchall()[0]
            out["target"] = {"n": int(n), "sum": float(total), "m2": float(m2)}
        return out

    @classmethod
    def from_stats(cls, schema: Schema, stats: list[dict[str, Any]], *, cfg: ModelConfig,
                   class_counts: dict[str, int] | None = None) -> Preprocessor:
        """The preprocessor a federated fit builds from every silo's :meth:`local_stats`."""
        mods = {name: FEATURES[name].from_stats(schema, cols, [s["modalities"].get(name, {}) for s in stats], cfg=cfg)
                for name, cols in cls._by_modality(schema).items()}
        pre = cls(schema, mods, class_counts=dict(class_counts or {}))
        if schema.task == "regression":
            from hone.features.numeric import pooled_moments

            n, mean, m2 = pooled_moments([(s["target"]["n"], s["target"]["sum"], s["target"]["m2"]) for s in stats])
            pre.target_mean, pre.target_std = (mean, (m2 / n) ** 0.5 or 1.0) if n else (0.0, 1.0)
        return pre

    @property
    def text(self) -> text.TextPreprocessor | None:
        """The text preprocessor, or None."""
        return self.modalities.get("text")  # type: ignore[return-value]

    @property
    def images(self) -> image.ImagePreprocessor | None:
        """The image preprocessor, or None."""
        return self.modalities.get("image")  # type: ignore[return-value]

    @property
    def numbers(self) -> numeric.NumericPreprocessor | None:
        """The numeric preprocessor, or None."""
        return self.modalities.get("numeric")  # type: ignore[return-value]

    @property
    def categories(self) -> categorical.CategoricalPreprocessor | None:
        """The categorical preprocessor, or None."""
        return self.modalities.get("categorical")  # type: ignore[return-value]

    def lengths(self, batch: pa.Table) -> np.ndarray | None:
        """Tokens per row (for length bucketing), or None without text."""
        return self.text.lengths(batch) if self.text is not None else None

    def inputs(self, batch: pa.Table, device: torch.device | str = "cpu", *, skip: tuple[str, ...] = (),
               augment: tuple[int, ...] | None = None) -> dict[str, Any]:
        """Model inputs for an Arrow batch: ``{modality: tensors}``, leaving out ``skip``; ``augment``
        (seed, epoch, batch) makes them a training batch's, randomly augmented where a modality does."""
        return {name: to_tensors(p.transform(batch) if augment is None else p.transform_train(batch, augment), device)
                for name, p in self.modalities.items() if name not in skip}

    def bind(self, root: str) -> None:
        """The folder of the table about to be read (relative image paths are read from it)."""
        for p in self.modalities.values():
            p.bind(root)

    def check(self, paths: dict[str, Path]) -> None:
        """Check each split file before training (every image opens): a clear error instead of a
        failure in the middle of an epoch."""
        for split, path in paths.items():
            for p in self.modalities.values():
                p.check(path, split)

    def targets(self, batch: pa.Table) -> np.ndarray:
        """Class indices (int64) or standardised values (float32) of the batch's target column."""
        col = batch.column(self.schema.target)
        if self.schema.task == "regression":
            y = np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
            return ((y - self.target_mean) / self.target_std).astype(np.float32)
        classes = pa.array(self.schema.classes)
        if col.type != classes.type:  # e.g. labels read as numbers in one file and as text in another
            try:
                col = pc.cast(col, classes.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise DataError(f"target {self.schema.target!r} holds {col.type} values; the model was trained on "
                                f"{classes.type} labels: {', '.join(map(repr, self.schema.classes))}") from err
        idx = pc.index_in(col, value_set=classes)
        if idx.null_count:
            unknown = pc.filter(col, pc.is_null(idx)).to_pylist()[0]
            raise DataError(f"target {self.schema.target!r} has label {unknown!r}, which the model was not trained "
                            f"on; its classes are: {', '.join(map(repr, self.schema.classes))}")
        return np.asarray(idx.to_numpy(zero_copy_only=False), dtype=np.int64)

    def encoder_specs(self) -> dict[str, dict[str, Any]]:
        return {name: p.encoder_spec() for name, p in self.modalities.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema.to_dict(), "modalities": {n: p.to_dict() for n, p in self.modalities.items()},
                "target_mean": self.target_mean, "target_std": self.target_std, "class_counts": self.class_counts}

    @classmethod
    def from_dict(cls, d: dict[str, Any], assets: dict[str, Path]) -> Preprocessor:
        """Rebuild; ``assets`` maps a modality to its assets folder (tokenizer files)."""
        mods = {n: FEATURES[n].from_dict(md, assets.get(n)) for n, md in d["modalities"].items()}
        return cls(Schema.from_dict(d["schema"]), mods, d["target_mean"], d["target_std"], d.get("class_counts", {}))
