"""Numeric standardisation with missing-value indicators and categorical vocabularies with an unknown
bucket, fitted with DuckDB aggregates over the training split (out of core) and applied to Arrow."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hone.data.schema import Schema
from hone.data.split import qi

# Datetime columns become these numeric parts; the SQL (for statistics) and Arrow (for batches)
# versions must agree: weekday is Monday = 0 in both.
_DT_PARTS = {
    "year": ("year({})", pc.year),
    "month": ("month({})", pc.month),
    "day": ("day({})", pc.day),
    "weekday": ("isodow({}) - 1", pc.day_of_week),
    "hour": ("hour({})", pc.hour),
}


@dataclass
class NumericFeature:
    column: str
    part: str  # "value" or a datetime part
    mean: float = 0.0
    std: float = 1.0
    missing_rate: float = 0.0


@dataclass
class CategoricalFeature:
    column: str
    vocab: list[str] = field(default_factory=list)  # index i + 1; 0 is unknown/missing

    @property
    def cardinality(self) -> int:
        return len(self.vocab) + 1


@dataclass
class TabularPreprocessor:
    """Turns the tabular columns of an Arrow batch into a float matrix and an int matrix."""

    numeric: list[NumericFeature] = field(default_factory=list)
    categorical: list[CategoricalFeature] = field(default_factory=list)

    @property
    def n_numeric(self) -> int:
        """Width of the numeric matrix: a standardised value and a missing flag per feature."""
        return 2 * len(self.numeric)

    @classmethod
    def fit(cls, schema: Schema, train_path: Path, *, max_categories: int, min_count: int) -> TabularPreprocessor:
        """Compute every statistic from the training Parquet file only."""
        con = duckdb.connect()
        src = f"read_parquet('{str(train_path).replace(chr(39), chr(39) * 2)}')"
        numeric: list[NumericFeature] = []
        for col in schema.columns:
            if col.role in ("numeric", "boolean"):
                numeric.append(NumericFeature(col.name, "value"))
            elif col.role == "datetime":
                parts = [p for p in _DT_PARTS if p != "hour" or "TIMESTAMP" in col.dtype.upper()]
                numeric += [NumericFeature(col.name, p) for p in parts]
        if numeric:
            exprs = []
            for f in numeric:
                e = _sql_expr(f)
                exprs.append(f"avg({e}), stddev_pop({e}), avg(CASE WHEN {e} IS NULL THEN 1.0 ELSE 0.0 END)")
            row = con.sql(f"SELECT {', '.join(exprs)} FROM {src}").fetchall()[0]
            for i, f in enumerate(numeric):
                mean, std, miss = row[3 * i: 3 * i + 3]
                f.mean = float(mean) if mean is not None else 0.0
                f.std = float(std) if std and std > 1e-12 else 1.0
                f.missing_rate = float(miss or 0.0)
        cats = []
        for name in schema.names("categorical"):
            q = qi(name)
            rows = con.sql(f"SELECT CAST({q} AS VARCHAR) AS v, count(*) AS n FROM {src} WHERE {q} IS NOT NULL "
                           f"GROUP BY 1 HAVING count(*) >= {int(min_count)} ORDER BY n DESC, v LIMIT {int(max_categories)}").fetchall()
            cats.append(CategoricalFeature(name, [r[0] for r in rows]))
        con.close()
        return cls(numeric, cats)

    def transform(self, batch: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(numeric [B, 2 * n_features] float32, categorical [B, n_cat] int64)``."""
        n = batch.num_rows
        num = np.zeros((n, self.n_numeric), dtype=np.float32)
        for i, f in enumerate(self.numeric):
            arr = _arrow_values(batch.column(f.column), f.part)
            missing = np.isnan(arr)
            num[:, 2 * i] = np.where(missing, 0.0, (arr - f.mean) / f.std)
            num[:, 2 * i + 1] = missing
        cat = np.zeros((n, len(self.categorical)), dtype=np.int64)
        for j, c in enumerate(self.categorical):
            values = pc.cast(batch.column(c.column), pa.string())
            idx = pc.index_in(values, value_set=pa.array(c.vocab, type=pa.string()))
            cat[:, j] = pc.fill_null(pc.add(idx, 1), 0).to_numpy(zero_copy_only=False)
        return num, cat

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TabularPreprocessor:
        return cls([NumericFeature(**f) for f in d["numeric"]], [CategoricalFeature(**c) for c in d["categorical"]])


def _sql_expr(f: NumericFeature) -> str:
    q = qi(f.column)
    if f.part == "value":
        return f"CAST({q} AS DOUBLE)"
    return f"CAST({_DT_PARTS[f.part][0].format(q)} AS DOUBLE)"


def _arrow_values(col: pa.ChunkedArray | pa.Array, part: str) -> np.ndarray:
    if part != "value":
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            col = pc.cast(col, pa.timestamp("us"))
        col = _DT_PARTS[part][1](col)
    out = pc.cast(col, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    return np.asarray(out, dtype=np.float64)
