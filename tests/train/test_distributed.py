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

# no dropout: in a resumed run, the other process's random state is not part of the checkpoint
SETTINGS = {"label_errors": False, "epochs": 3, "batch_size": 16, "show_progress": False,
            "checkpoint_every_steps": 5, "model.dropout": 0.0, "evaluate.bootstrap": 0}
FLAGS = ["--no-label-errors", "--epochs", "3", "--batch-size", "16", "--no-progress", "--checkpoint-every-steps",
         "5", "--dropout", "0", "--set", "evaluate.bootstrap=0"]
TORCHRUN = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node=2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def ddp(tmp_path_factory: pytest.TempPathFactory, tab_table: pa.Table) -> tuple[subprocess.CompletedProcess, Path]:
    """One data-parallel fit from the command line on 2 processes (the reference of the resume test too)."""
    root = tmp_path_factory.mktemp("ddp")
    pq.write_table(tab_table, root / "tab.parquet")
    proc = subprocess.run([*TORCHRUN, "-m", "hone", "-q", "fit", str(root / "tab.parquet"), "--target", "label", *FLAGS,
                           "--output", str(root / "ddp")], capture_output=True, text=True, env=ENV, cwd=root,
                          timeout=600)
    return proc, root


def test_torchrun_trains_one_model_on_two_processes(ddp: tuple[subprocess.CompletedProcess, Path],
                                                    tmp_path: Path, tab_table: pa.Table) -> None:
    proc, root = ddp
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("metric  ") == 1  # only the main process reports (and writes)
    assert sorted(p.name for p in root.iterdir()) == ["ddp", "tab.parquet"]
    ddp_metrics = json.loads((root / "ddp" / "metrics.json").read_text())
    local = hone.fit(str(root / "tab.parquet"), target="label", output=tmp_path / "local", **SETTINGS).meta
    # the same global batches and steps as one process; gradients averaged over the two halves
    assert ddp_metrics["training"]["world_size"] == 2 and local["training"]["world_size"] == 1
    assert ddp_metrics["training"]["steps"] == local["training"]["steps"] == 90  # 480 rows, batches of 16
    history = json.loads((root / "ddp" / "history.json").read_text())
    assert history[-1]["train_loss"] < history[0]["train_loss"] or history[-1]["macro_f1"] > history[0]["macro_f1"]
    assert abs(ddp_metrics["network"]["macro_f1"] - local["metrics"]["network"]["macro_f1"]) < 0.1
    model = hone.load(root / "ddp" / "model")
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


def test_a_torchrun_fit_killed_mid_epoch_resumes_on_every_process(ddp: tuple[subprocess.CompletedProcess, Path],
                                                                   tmp_path: Path) -> None:
    """The same fit killed at step 27 (its main process crashes) and resumed on 2 processes ends as the
    uninterrupted one did, evaluation by evaluation."""
    _, root = ddp
    data = root / "tab.parquet"
    script = tmp_path / "fit.py"
    script.write_text(FIT_SCRIPT)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*TORCHRUN, *args], capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=600)

    killed = run(str(script), str(data), "killed", "27", json.dumps(SETTINGS))
    assert killed.returncode != 0 and not (tmp_path / "killed" / "metrics.json").exists()
    saved = json.loads((tmp_path / "killed" / "checkpoints" / "latest" / "state.json").read_text())
    assert saved["train_state"]["step"] == 25
    resumed = run("-m", "hone", "-q", "fit", "--resume", "killed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    b = json.loads((root / "ddp" / "metrics.json").read_text())
    assert a["training"]["resumed_from"] == 25 and a["training"]["world_size"] == b["training"]["world_size"] == 2
    assert a["training"]["steps"] == b["training"]["steps"]
    ha = json.loads((tmp_path / "killed" / "history.json").read_text())
    hb = json.loads((root / "ddp" / "history.json").read_text())
    assert len(ha) == len(hb)
    for ea, eb in zip(ha, hb, strict=True):
        for k in ea:
            if k not in ("rows_per_second", "seconds", "elapsed"):
                assert ea[k] == pytest.approx(eb[k], rel=1e-5, abs=1e-6), (k, ea, eb)
