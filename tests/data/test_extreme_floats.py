"""Full-precision floats of every magnitude (1e-300 to 1e300, negative, many digits) and non-finite
values go through the audit, the split, the statistics and scoring without an error, and come out
finite: a number that enters SQL keeps its type (DOUBLE), and NaN and infinity are missing values.
"""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import hone
from hone.config import build_config
from hone.data.sql import qn
from hone.pipeline.data_stages import fit_preprocessor, prepare

# a float of any magnitude: mantissa in [1, 10) with up to 17 significant digits, exponent -300..299
magnitudes = st.builds(lambda m, e, s: s * m * 10.0 ** e, st.floats(1, 10, exclude_max=True),
                       st.integers(-300, 299), st.sampled_from([-1.0, 1.0]))
ROWS = 48


_CON = duckdb.connect()


@given(x=magnitudes)
@settings(max_examples=300, deadline=None)
def test_a_number_written_into_sql_keeps_its_value_and_type(x: float) -> None:
    con = _CON  # one in-memory database for every example: connecting costs more than the query
    got, kind = con.sql(f"SELECT {qn(x)}, typeof({qn(x)} * {qn(x)})").fetchall()[0]
    assert got == x and kind == "DOUBLE"
    assert con.sql(f"SELECT {qn(x)} * {qn(14826.0)} - {qn(12069.499999999998)}").fetchall()[0][0] is not None


def _table(values: list[float], seed: int, regression: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = np.asarray(values, dtype=np.float64)
    y = (np.asarray(values) * 1.0000001 if regression else
         np.where(rng.random(len(values)) < 0.5, "yes", "no"))
    return pa.table({"x": x, "x_scaled": x * 12069.499999999998, "tiny": x * 1e-8 if abs(x).max() < 1e300 else x,
                     "group": rng.choice(["a", "b", "c"], len(values)).tolist(),
                     "noise": rng.normal(0, 1, len(values)),  # rows stay distinct when hypothesis repeats a value
                     "y": y if regression else y.tolist()})


@pytest.mark.parametrize("regression", [False, True], ids=["binary", "regression"])
@given(values=st.lists(magnitudes, min_size=ROWS, max_size=ROWS), seed=st.integers(0, 2**16))
@settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.generate],  # a shrink takes minutes
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_audit_split_and_statistics_take_floats_of_every_magnitude(values: list[float], seed: int, regression: bool,
                                                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    work = tmp_path_factory.mktemp("work")
    cfg = build_config({"data": {"target": "y", "task": "regression" if regression else "auto"}})
    prep = prepare(cfg, _table(values, seed, regression), work)  # the audit (outliers included) and the split
    assert sum(prep.split.counts.values()) == ROWS
    assert prep.quality is not None and prep.quality.findings is not None
    pre = fit_preprocessor(prep, prep.resolve(cfg))
    numeric = pre.modalities["numeric"]
    stats = numeric.to_dict()
    flat = [v for v in _numbers(stats)]
    assert flat and all(math.isfinite(v) for v in flat), stats


def _numbers(obj: object):  # every float in a nested dict/list
    if isinstance(obj, float):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _numbers(v)


@pytest.fixture(scope="module")
def numeric_model(tmp_path_factory: pytest.TempPathFactory) -> hone.Model:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, 400)
    t = pa.table(
        {"x": x, "z": rng.normal(5, 2, 400), "y": np.where(x + rng.normal(0, 0.5, 400) > 0, "up", "down").tolist()}
    )
    return hone.fit(t, target="y", epochs=2, output=tmp_path_factory.mktemp("m") / "run", show_progress=False)


@given(values=st.lists(magnitudes | st.sampled_from([math.nan, math.inf, -math.inf]), min_size=1, max_size=30))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_scoring_any_float_gives_probabilities(values: list[float], numeric_model: hone.Model) -> None:
    t = pa.table({"x": values, "z": list(reversed(values))})
    proba = numeric_model.predict_proba(t)
    assert proba.shape == (len(values), 2) and np.isfinite(proba).all()
    assert np.allclose(proba.sum(1), 1, atol=1e-5)


def test_non_finite_cells_are_missing_and_counted(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 300)
    y = np.where(x > 0, 1.0, 0.0)
    x[[3, 5]], x[7] = math.nan, math.inf
    y[[10, 11, 12]] = math.nan  # a NaN in a float target is a missing target, never a class
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": x, "w": rng.normal(0, 1, 300), "y": y}), tmp_path / "t.parquet")
    model = hone.fit(str(tmp_path / "t.parquet"), target="y", epochs=2, output=tmp_path / "run", show_progress=False)
    assert sorted(map(str, model.classes)) == ["0.0", "1.0"]
    meta = (tmp_path / "run" / "metrics.json").read_text()
    import json

    training = json.loads(meta)["training"]
    assert training["nonfinite_cells"] == {"x": 3, "y": 3}
    assert training["skipped_rows"]["missing_target"] == 3
    quality = json.loads((tmp_path / "run" / "quality.json").read_text())
    found = {(f["check"], f["column"]): f["count"] for f in quality["findings"]}
    assert found[("non_finite", "x")] == 3 and found[("non_finite", "y")] == 3
    scored = model.predict_proba(pa.table({"x": [math.inf, math.nan, 0.5], "w": [0.0, -math.inf, 1e308]}))
    assert np.isfinite(scored).all()
    assert model.coerced == {"x": 2, "w": 1}
