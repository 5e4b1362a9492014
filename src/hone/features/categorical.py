"""Categorical columns: a vocabulary per column (frequent training values; index 0 is the unknown
bucket shared by missing, rare and unseen values), counted by DuckDB over the training split."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hone.config import ModelConfig
from hone.data.schema import Schema
from hone.data.sql import parquet, qi
from hone.features.base import FeaturePreprocessor, register


@dataclass
class CategoricalFeature:
    column: str
    vocab: list[str] = field(default_factory=list)  # index i + 1; 0 is unknown/missing

    @property
    def cardinality(self) -> int:
        return len(self.vocab) + 1


@register
@dataclass
class CategoricalPreprocessor(FeaturePreprocessor):
    """``batch -> int64 [B, n_columns]`` category indices."""

    modality: ClassVar[str] = "categorical"
    roles: ClassVar[tuple[str, ...]] = ("categorical",)
    features: list[CategoricalFeature] = field(default_factory=list)

    @classmethod
    def fit(cls, schema: Schema, columns: list[str], train_path: Path, *, con: duckdb.DuckDBPyConnection,
            cfg: ModelConfig) -> CategoricalPreprocessor:
        feats = []
        for name in columns:
            q = qi(name)
            rows = con.sql(f"SELECT CAST({q} AS VARCHAR) AS v, count(*) AS n FROM {parquet(train_path)} "
                           f"WHERE {q} IS NOT NULL GROUP BY 1 HAVING count(*) >= {int(cfg.min_category_count)} "
                           f"ORDER BY n DESC, v LIMIT {int(cfg.max_categories)}").fetchall()
            feats.append(CategoricalFeature(name, [r[0] for r in rows]))
        return cls(feats)

    def transform(self, batch: pa.Table) -> np.ndarray:
        cat = np.zeros((batch.num_rows, len(self.features)), dtype=np.int64)
        for j, c in enumerate(self.features):
            values = pc.cast(batch.column(c.column), pa.string())
            idx = pc.index_in(values, value_set=pa.array(c.vocab, type=pa.string()))
            cat[:, j] = pc.fill_null(pc.add(idx, 1), 0).to_numpy(zero_copy_only=False)
        return cat

    def encoder_spec(self) -> dict[str, Any]:
        return {"cardinalities": [c.cardinality for c in self.features]}

    def explain_row(self, attributions: dict[str, Any], batch: pa.Table, i: int) -> tuple[dict[str, float], dict[str, Any]]:
        """A column's attribution is its embedding's (the reference: the unknown bucket, index 0)."""
        return {f.column: float(attributions[str(j)][i]) for j, f in enumerate(self.features)}, {}

    def to_dict(self) -> dict[str, Any]:
        return {"features": [asdict(f) for f in self.features]}

    @classmethod
    def from_dict(cls, d: dict[str, Any], assets: Path | None) -> CategoricalPreprocessor:
        return cls([CategoricalFeature(**f) for f in d["features"]])
