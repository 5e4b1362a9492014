"""Data-parallel training with torchrun: the same loop on 2 processes (DDP over gloo on the CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import hone


def test_torchrun_trains_one_model_on_two_processes(tmp_path: Path, tab_table: pa.Table) -> None:
    data = tmp_path / "tab.parquet"
    pq.write_table(tab_table, data)
    settings = ["--target", "label", "--no-label-errors", "--epochs", "3", "--batch-size", "64", "--no-progress",
                "--set", "evaluate.bootstrap=0"]
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "hone", "-q", "fit", str(data),
                           *settings, "--output", str(tmp_path / "ddp")], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("metric  ") == 1  # only the main process reports (and writes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "tab.parquet"]
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    local = hone.fit(str(data), target="label", output=tmp_path / "local", label_errors=False, epochs=3,
                     batch_size=64, show_progress=False, **{"evaluate.bootstrap": 0}).meta
    # the same global batches and steps as one process; gradients averaged over the two halves
    assert ddp["training"]["world_size"] == 2 and local["training"]["world_size"] == 1
    assert ddp["training"]["steps"] == local["training"]["steps"] == 24
    history = json.loads((tmp_path / "ddp" / "history.json").read_text())
    assert history[-1]["train_loss"] < history[0]["train_loss"] or history[-1]["macro_f1"] > history[0]["macro_f1"]
    assert abs(ddp["network"]["macro_f1"] - local["metrics"]["network"]["macro_f1"]) < 0.1
    model = hone.load(tmp_path / "ddp" / "model")
    assert len(model.predict(tab_table)) == tab_table.num_rows
