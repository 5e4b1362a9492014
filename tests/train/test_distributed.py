"""Data-parallel training with torchrun: the same loop on 2 processes (DDP over gloo on the CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

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


FIT_SCRIPT = """
import json, os, signal, sys
import hone
from hone.train.callbacks import Callback

class Kill(Callback):
    def on_step_end(self, state):
        if state.step == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)   # the main process crashes; torchrun stops the other

hone.fit(sys.argv[1], target="label", output=sys.argv[2], callbacks=[Kill()], **json.loads(sys.argv[4]))
"""


def test_a_torchrun_fit_killed_mid_epoch_resumes_on_every_process(tmp_path: Path, tab_table: pa.Table) -> None:
    data = tmp_path / "tab.parquet"
    pq.write_table(tab_table, data)
    script = tmp_path / "fit.py"
    script.write_text(FIT_SCRIPT)
    # no dropout: the other process's random state is not part of the checkpoint, only the main one's
    settings = {"label_errors": False, "epochs": 3, "batch_size": 16, "show_progress": False,
                "checkpoint_every_steps": 5, "model.dropout": 0.0, "evaluate.bootstrap": 0}
    torchrun = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*torchrun, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)

    killed = run(str(script), str(data), "killed", "27", json.dumps(settings))
    assert killed.returncode != 0 and not (tmp_path / "killed" / "metrics.json").exists()
    saved = json.loads((tmp_path / "killed" / "checkpoints" / "latest" / "state.json").read_text())
    assert saved["train_state"]["step"] == 25
    resumed = run("-m", "hone", "-q", "fit", "--resume", "killed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = run(str(script), str(data), "straight", "-1", json.dumps(settings))
    assert straight.returncode == 0, straight.stderr[-3000:]
    a = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    b = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert a["training"]["resumed_from"] == 25 and a["training"]["world_size"] == b["training"]["world_size"] == 2
    assert a["training"]["steps"] == b["training"]["steps"]
    ha = json.loads((tmp_path / "killed" / "history.json").read_text())
    hb = json.loads((tmp_path / "straight" / "history.json").read_text())
    assert len(ha) == len(hb)
    for ea, eb in zip(ha, hb, strict=True):
        for k in ea:
            if k not in ("rows_per_second", "seconds", "elapsed"):
                assert ea[k] == pytest.approx(eb[k], rel=1e-5, abs=1e-6), (k, ea, eb)
