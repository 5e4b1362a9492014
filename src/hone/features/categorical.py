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

    @classmethod
    def local_stats(cls, schema: Schema, columns: list[str], train_path: Path, *, con: duckdb.DuckDBPyConnection,
                    cfg: ModelConfig) -> dict[str, Any]:
        """Per column, the values that at least ``model.min_category_count`` of the silo's training rows
        hold, with their counts (at most 4 x ``model.max_categories``): a rarer value never leaves the silo."""
        out = {}
        for name in columns:
            q = qi(name)
            rows = con.sql(f"SELECT CAST({q} AS VARCHAR) AS v, count(*) AS n FROM {parquet(train_path)} "
                           f"WHERE {q} IS NOT NULL GROUP BY 1 HAVING count(*) >= {int(cfg.min_category_count)} "
                           f"ORDER BY n DESC, v LIMIT {4 * int(cfg.max_categories)}").fetchall()
            out[name] = {"values": [r[0] for r in rows], "counts": [int(r[1]) for r in rows]}
        return out

    @classmethod
    def from_stats(cls, schema: Schema, columns: list[str], stats: list[dict[str, Any]], *,
                   cfg: ModelConfig) -> CategoricalPreprocessor:
        """The vocabulary from the silos' summed counts: the most frequent values, ties by value."""
        feats = []
        for name in columns:
            total: dict[str, int] = {}
            for s in stats:
                for v, n in zip(s.get(name, {}).get("values", []), s.get(name, {}).get("counts", [])):
                    total[v] = total.get(v, 0) + int(n)
            ranked = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[: int(cfg.max_categories)]
            feats.append(CategoricalFeature(name, [v for v, _ in ranked]))
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

    def explain_row(
        self, attributions: dict[str, Any], batch: pa.Table, i: int
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """A column's attribution is its embedding's (the reference: the unknown bucket, index 0)."""
        return {f.column: float(attributions[str(j)][i]) for j, f in enumerate(self.features)}, {}

    def to_dict(self) -> dict[str, Any]:
        return {"features": [asdict(f) for f in self.features]}

    @classmethod
    def from_dict(cls, d: dict[str, Any], assets: Path | None) -> CategoricalPreprocessor:
        return cls([CategoricalFeature(**f) for f in d["features"]])
