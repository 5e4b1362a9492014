"""hone predict: input order kept, --workers and --progress, no half-written output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

import hone
from hone.cli import main
from hone.testing import make_table


def test_workers_and_progress_keep_order_and_results(tmp_path: Path, capsys) -> None:
    hone.fit(make_table(400, seed=2, with_text=False), target="label", output=tmp_path / "run", epochs=1,
             show_progress=False)
    src = tmp_path / "in.parquet"
    data = make_table(5000, seed=3, with_text=False)
    pq.write_table(data, src, row_group_size=700)
    model = str(tmp_path / "run" / "model")
    assert main(["predict", model, str(src), "--output", str(tmp_path / "a.parquet"), "--workers", "1",
                 "--progress"]) == 0
    assert "row/s" in capsys.readouterr().err  # the bar: rows per second and an ETA
    assert main(["predict", model, str(src), "--output", str(tmp_path / "b.parquet"), "--no-progress"]) == 0
    a, b = pq.read_table(tmp_path / "a.parquet"), pq.read_table(tmp_path / "b.parquet")
    assert a["id"].to_pylist() == data["id"].to_pylist()  # input order
    assert np.allclose(np.asarray(a["proba_pos"]), np.asarray(b["proba_pos"]))
    assert main(["predict", model, str(src), "--output", str(tmp_path / "c.parquet"), "--workers", "0"]) == 2
    assert not (tmp_path / "c.parquet").exists() and not list(tmp_path.glob(".c.parquet*"))
