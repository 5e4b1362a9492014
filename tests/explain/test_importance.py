"""Permutation importance: shuffling a column's slice of the encoded rows is exactly rescoring the
table with that column shuffled, for every kind of chosen model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hone
from hone.evaluation.choice import Decision
from hone.explain.importance import ShuffledScorer, permutation_importance
from hone.testing import make_table


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    out = tmp_path_factory.mktemp("perm") / "run"
    hone.fit(make_table(300, seed=8, classes=3), target="label", output=out, backbone=str(tiny_backbone), epochs=1,
             show_progress=False, max_length=16, ignore=["id"], audit=False, **{"evaluate.explain": False})
    return out / "model"


@pytest.mark.parametrize("choice", ["network", "baseline", "blend"])
def test_shuffled_slices_equal_rescoring_the_shuffled_table(mixed: Path, choice: str) -> None:
    model = hone.load(mixed)
    model.decision = Decision(model=choice, blend_weight=0.4, temperature=1.3)
    table = make_table(120, seed=9, classes=3)
    scorer = ShuffledScorer(model, table)
    full = np.concatenate([o for _, o in model.outputs([table])])
    assert np.allclose(scorer.outputs(), full, atol=1e-6)
    rng = np.random.default_rng(0)
    for col in model.pre.schema.names():
        perm = rng.permutation(table.num_rows)
        i = table.column_names.index(col)
        shuffled = table.set_column(i, col, table.column(i).take(pa.array(perm)))
        want = np.concatenate([o for _, o in model.outputs([shuffled])])
        got = scorer.outputs(col, perm)
        assert np.allclose(got, want, atol=1e-6), col
    # the TF-IDF/LightGBM baseline reads the text columns joined: those are rescored, the rest sliced
    assert scorer.rescored == ({"review", "title"} if choice != "network" else set())


def test_importance_has_ordered_intervals(mixed: Path) -> None:
    model = hone.load(mixed)
    perm = permutation_importance(model, make_table(200, seed=10, classes=3), repeats=3, resamples=100)
    assert perm["rows"] == 200 and {c["column"] for c in perm["columns"]} == set(model.pre.schema.names())
    for c in perm["columns"]:
        assert c["ci_low"] <= c["ci_high"]
    values = [c["importance"] for c in perm["columns"]]
    assert values == sorted(values, reverse=True)
