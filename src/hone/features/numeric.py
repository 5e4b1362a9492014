"""Numeric, boolean and datetime columns: standardised values with a missing-value flag each,
statistics from DuckDB aggregates over the training split (out of core), applied to Arrow."""

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
from hone.data.sql import parquet, qi, qn
from hone.features.base import FeaturePreprocessor, register

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


@register
@dataclass
class NumericPreprocessor(FeaturePreprocessor):
    """``batch -> float32 [B, 2 * n_features]``: a standardised value and a missing flag per feature."""

    modality: ClassVar[str] = "numeric"
    roles: ClassVar[tuple[str, ...]] = ("numeric", "boolean", "datetime")
    features: list[NumericFeature] = field(default_factory=list)

    @property
    def width(self) -> int:
        return 2 * len(self.features)

    @classmethod
    def fit(cls, schema: Schema, columns: list[str], train_path: Path, *, con: duckdb.DuckDBPyConnection,
            cfg: ModelConfig) -> NumericPreprocessor:
        feats = cls._features(schema, columns)
        for f, (mean, std, miss) in zip(feats, moments(con, [_sql_expr(f) for f in feats], parquet(train_path))):
            f.mean = mean if mean is not None else 0.0
            f.std = (
                std if std > 0 and std > 1e-12 * abs(f.mean) else 1.0
            )  # relative: values near 1e-300 keep their spread
            f.missing_rate = miss
        return cls(feats)

    @classmethod
    def local_stats(cls, schema: Schema, columns: list[str], train_path: Path, *, con: duckdb.DuckDBPyConnection,
                    cfg: ModelConfig) -> dict[str, Any]:
        """Per feature: the rows, the non-missing values ``n``, their ``sum`` and their sum of squared
        deviations from the silo's own mean ``m2`` (pooled exactly by Chan's formula)."""
        feats = cls._features(schema, columns)
        exprs = [f"count({e}), coalesce(sum({e}), 0), coalesce(var_pop({e}) * count({e}), 0)"
                 for e in map(_sql_expr, feats)]
        row = con.sql(f"SELECT count(*), {', '.join(exprs)} FROM {parquet(train_path)}").fetchall()[0]
        return {"rows": int(row[0]), "features": [
            {"column": f.column, "part": f.part, "n": int(row[1 + 3 * i]), "sum": float(row[2 + 3 * i]),
             "m2": float(row[3 + 3 * i])} for i, f in enumerate(feats)]}

    @classmethod
    def from_stats(cls, schema: Schema, columns: list[str], stats: list[dict[str, Any]], *,
                   cfg: ModelConfig) -> NumericPreprocessor:
        feats = cls._features(schema, columns)
        rows = sum(int(s["rows"]) for s in stats)
        for i, f in enumerate(feats):
            parts = [s["features"][i] for s in stats]
            n, mean, m2 = pooled_moments([(int(p["n"]), float(p["sum"]), float(p["m2"])) for p in parts])
            f.mean = mean if n else 0.0
            std = (m2 / n) ** 0.5 if n else 0.0
            f.std = std if std > 1e-12 else 1.0
            f.missing_rate = 1.0 - n / rows if rows else 0.0
        return cls(feats)

    @staticmethod
    def _features(schema: Schema, columns: list[str]) -> list[NumericFeature]:
        feats: list[NumericFeature] = []
        for col in schema.columns:
            if col.name not in columns:
                continue
            if col.role == "datetime":
                parts = [p for p in _DT_PARTS if p != "hour" or "TIMESTAMP" in col.dtype.upper()]
                feats += [NumericFeature(col.name, p) for p in parts]
            else:
                feats.append(NumericFeature(col.name, "value"))
        return feats

    def transform(self, batch: pa.Table) -> np.ndarray:
        num = np.zeros((batch.num_rows, self.width), dtype=np.float32)
        for i, f in enumerate(self.features):
            arr = _arrow_values(batch.column(f.column), f.part)
            missing = ~np.isfinite(arr)  # NaN and +-infinity are missing values
            with np.errstate(over="ignore"):  # a missing value standardises to 0 exactly
                z = (np.where(missing, f.mean, arr) - f.mean) / f.std
            # a value thousands of standard deviations out is clipped there: the network sees a large
            # but finite input (float32 would overflow to infinity, then NaN)
            num[:, 2 * i] = np.clip(z, -_Z_CLIP, _Z_CLIP)
            num[:, 2 * i + 1] = missing
        return num

    def encoder_spec(self) -> dict[str, Any]:
        return {"width": self.width}

    def explain_row(
        self, attributions: dict[str, Any], batch: pa.Table, i: int
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """A column's attribution is its value's plus its missing flag's (plus its other datetime parts')."""
        a = attributions["values"][i]
        cols: dict[str, float] = {}
        for j, f in enumerate(self.features):
            cols[f.column] = cols.get(f.column, 0.0) + float(a[2 * j] + a[2 * j + 1])
        return cols, {}

    def to_dict(self) -> dict[str, Any]:
        return {"features": [asdict(f) for f in self.features]}

    @classmethod
    def from_dict(cls, d: dict[str, Any], assets: Path | None) -> NumericPreprocessor:
        return cls([NumericFeature(**f) for f in d["features"]])


_Z_CLIP = 1e4  # standardised values are clipped to +-this (never reached by ordinary data)


def moments(con: duckdb.DuckDBPyConnection, exprs: list[str], source: str) -> list[tuple[float | None, float, float]]:
    """``(mean, standard deviation, missing rate)`` of each DOUBLE expression over ``source``.

    The values are divided by their largest magnitude first, so neither the sum nor the squares
    overflow, for floats up to 1.8e308 (``stddev_pop`` of values near 1e200 is infinite otherwise).
    """
    if not exprs:
        return []
    scales = con.sql(f"SELECT {', '.join(f'max(abs({e}))' for e in exprs)} FROM {source}").fetchall()[0]
    scales = [float(s) if s is not None and 0 < float(s) < float("inf") else 1.0 for s in scales]
    parts = [f"avg({e} / {qn(s)}), stddev_pop({e} / {qn(s)}), avg(CASE WHEN {e} IS NULL THEN 1.0 ELSE 0.0 END)"
             for e, s in zip(exprs, scales)]
    row = con.sql(f"SELECT {', '.join(parts)} FROM {source}").fetchall()[0]
    out = []
    for i, s in enumerate(scales):
        mean, std, miss = row[3 * i: 3 * i + 3]
        out.append((None if mean is None else float(mean) * s, float(std or 0.0) * s, float(miss or 0.0)))
    return out


def pooled_moments(parts: list[tuple[int, float, float]]) -> tuple[int, float, float]:
    """``(n, mean, m2)`` of the union of groups given as ``(n, sum, m2)``, where ``m2`` is the sum of
    squared deviations from the group's own mean (Chan et al.): exact, with no catastrophic cancellation.

    Example:
        >>> pooled_moments([(2, 3.0, 0.5), (2, 7.0, 0.5)])   # {1, 2} and {3, 4}
        (4, 2.5, 5.0)
    """
    n, mean, m2 = 0, 0.0, 0.0
    for k, total, k_m2 in parts:
        if not k:
            continue
        k_mean = total / k
        delta = k_mean - mean
        m2 += k_m2 + delta * delta * n * k / (n + k)
        n += k
        mean += delta * k / n
    return n, mean, m2


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
