"""hone fit --engine ray: Ray Train runs hone's own loop on 2 workers of a local Ray instance."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hone
from hone.cli import main

pytest.importorskip("ray.train")


def test_fit_on_two_ray_workers_trains_checkpoints_and_loads(tmp_path: Path, tab_table: pa.Table, monkeypatch,
                                                             capsys) -> None:
    monkeypatch.chdir(tmp_path)
    pq.write_table(tab_table, tmp_path / "tab.parquet")
    args = ["-q", "fit", "tab.parquet", "--target", "label", "--no-label-errors", "--epochs", "3", "--batch-size",
            "64", "--no-progress", "--set", "evaluate.bootstrap=0"]
    assert main([*args, "--engine", "ray", "--workers", "2", "--output", "ray", "--set",
                 "train.keep_checkpoints=true"]) == 0
    assert "model: ray/model" in capsys.readouterr().out  # the driver reports what the main worker wrote
    m = json.loads((tmp_path / "ray" / "metrics.json").read_text())
    assert m["training"]["world_size"] == 2 and m["training"]["steps"] == 24  # the same 8 global batches an epoch
    state = json.loads((tmp_path / "ray" / "checkpoints" / "latest" / "state.json").read_text())
    assert state["train_state"]["step"] == 24 and state["train_state"]["epoch_finished"]
    resolved = (tmp_path / "ray" / "config.resolved.yaml").read_text()
    assert "kind: local" in resolved  # each worker ran an ordinary fit; the record repeats on one machine
    model = hone.load(tmp_path / "ray" / "model")
    assert len(model.predict(tab_table)) == tab_table.num_rows
    # the same config in one process: the same package format, the same steps
    assert main([*args, "--output", "local"]) == 0
    assert sorted(p.name for p in (tmp_path / "local" / "model").iterdir()) == \
        sorted(p.name for p in (tmp_path / "ray" / "model").iterdir())


def test_a_bad_setting_on_ray_is_one_clear_line(tmp_path: Path, tab_table: pa.Table, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    pq.write_table(tab_table, tmp_path / "tab.parquet")
    assert main(["-q", "fit", "tab.parquet", "--target", "nope", "--engine", "ray", "--workers", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "nope" in err and "Traceback" not in err


def test_predict_on_ray_matches_local_predict_row_by_row(tmp_path: Path, tab_table: pa.Table, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):  # a directory of Parquet files, as a big job would have
        pq.write_table(tab_table.slice(i * 200, 200), src / f"part-{i}.parquet")
    model = hone.fit(tab_table, target="label", output=tmp_path / "run", label_errors=False, show_progress=False,
                     **{"evaluate.bootstrap": 0})
    assert main(["-q", "predict", str(tmp_path / "run" / "model"), str(src), "--output", "local.parquet"]) == 0
    from hone.distributed.ray_predict import predict_on_ray

    assert main(["-q", "predict", str(tmp_path / "run" / "model"), str(src), "--output", "cli", "--engine", "ray",
                 "--workers", "2"]) == 0
    assert predict_on_ray(tmp_path / "run" / "model", str(src), tmp_path / "scored", workers=2, rows_per_file=150) == 600
    assert sum(pq.read_metadata(p).num_rows for p in (tmp_path / "cli").glob("*.parquet")) == 600
    parts = sorted((tmp_path / "scored").glob("*.parquet"))
    assert len(parts) >= 4  # partitioned output
    local = pq.read_table("local.parquet").to_pandas().set_index("id").sort_index()
    remote = pa.concat_tables([pq.read_table(p) for p in parts]).to_pandas().set_index("id").sort_index()
    assert list(remote.index) == list(local.index) and len(remote) == tab_table.num_rows
    assert (remote["prediction"] == local["prediction"]).all()
    for c in model.classes:
        assert (remote[f"proba_{c}"] - local[f"proba_{c}"]).abs().max() < 1e-6
