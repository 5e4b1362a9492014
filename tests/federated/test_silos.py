"""Dealing one table into silos for a simulation: at random, by a column, with Dirichlet label skew."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hone.errors import ConfigError
from hone.federated.silos import make_silos


@pytest.fixture
def source(tmp_path: Path, tab_table: pa.Table) -> Path:
    path = tmp_path / "data.parquet"
    pq.write_table(tab_table, path)
    return path


def _read(paths: list[Path]) -> list[pa.Table]:
    return [pq.read_table(p) for p in paths]


def test_iid_silos_partition_every_row_and_repeat(source: Path, tmp_path: Path, tab_table: pa.Table) -> None:
    a = make_silos(source, "label", 3, tmp_path / "a", seed=1)
    b = make_silos(source, "label", 3, tmp_path / "b", seed=1)
    parts = _read(a.paths)
    ids = sorted(i for t in parts for i in t["id"].to_pylist())
    assert ids == sorted(tab_table["id"].to_pylist())  # every row once
    assert all(abs(t.num_rows - tab_table.num_rows / 3) < 0.2 * tab_table.num_rows for t in parts)
    assert [t["id"].to_pylist() for t in parts] == [t["id"].to_pylist() for t in _read(b.paths)]
    assert parts[0].column_names == tab_table.column_names


def test_silos_by_column_hold_whole_values(source: Path, tmp_path: Path) -> None:
    s = make_silos(source, "label", None, tmp_path / "by", by="store")
    stores = [set(t["store"].to_pylist()) for t in _read(s.paths)]
    assert len(stores) == 4 and all(len(v) == 1 for v in stores) and len(set().union(*stores)) == 4
    two = make_silos(source, "label", 2, tmp_path / "two", by="store")  # 4 values dealt into 2 silos
    assert sorted(len(set(t["store"].to_pylist())) for t in _read(two.paths)) == [2, 2]
    with pytest.raises(ConfigError, match="only 4 distinct"):
        make_silos(source, "label", 5, tmp_path / "five", by="store")
    with pytest.raises(ConfigError, match="'shop' is not a column"):
        make_silos(source, "label", 2, tmp_path / "bad", by="shop")


def test_dirichlet_skew_concentrates_labels(source: Path, tmp_path: Path) -> None:
    def share(alpha: float, folder: str) -> float:
        parts = _read(make_silos(source, "label", 3, tmp_path / folder, skew=alpha, seed=0).paths)
        shares = [np.mean(np.asarray(t["label"].to_pylist()) == "pos") for t in parts]
        return float(np.std(shares))

    assert share(0.1, "skewed") > 3 * share(100.0, "even")  # small alpha: silos far apart in their label shares
