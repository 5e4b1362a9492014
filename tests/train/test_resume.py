"""Crash resume: a fit killed with SIGKILL mid-epoch continues from its checkpoint with
``hone fit --resume`` and ends with the metrics of an uninterrupted run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hone
from hone.cli import main

KILL_SCRIPT = """
import os, signal, sys
import hone
from hone.train.callbacks import Callback

class Kill(Callback):
    def on_step_end(self, state):
        if state.step == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)   # no cleanup, no atexit: a crash

hone.fit(sys.argv[1], target="label", output=sys.argv[2], callbacks=[Kill()], **__import__("json").loads(sys.argv[4]))
"""


def _settings(backbone: Path) -> dict:
    return {"backbone": str(backbone), "epochs": 3, "batch_size": 16, "show_progress": False, "lr": 1e-3,
            "train.head_lr": 5e-3, "label_errors": False, "checkpoint_every_steps": 5, "model.dropout": 0.3,
            "evaluate.bootstrap": 50}


def _comparable(run: Path) -> dict:
    m = json.loads((run / "metrics.json").read_text())
    history = json.loads((run / "history.json").read_text())
    return {"validation": m["validation"], "test": m["test"], "history": history,
            "best_step": m["training"]["best_step"], "steps": m["training"]["steps"]}


def test_a_fit_killed_mid_epoch_resumes_to_the_same_metrics(
    tmp_path: Path, table: pa.Table, tiny_backbone: Path
) -> None:
    data = tmp_path / "reviews.parquet"
    pq.write_table(table, data)
    settings = _settings(tiny_backbone)
    killed = tmp_path / "killed"
    # 320 training rows in batches of 16: 20 steps per epoch; step 27 is mid-epoch 2, 2 steps after a checkpoint
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(data), str(killed), "27", json.dumps(settings)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not (killed / "metrics.json").exists()
    saved = json.loads((killed / "checkpoints" / "latest" / "state.json").read_text())
    assert saved["train_state"]["step"] == 25 and saved["train_state"]["epoch"] == 1

    assert main(["-q", "fit", "--resume", str(killed)]) == 0
    straight = tmp_path / "straight"
    hone.fit(str(data), target="label", output=straight, **settings)

    resumed = json.loads((killed / "metrics.json").read_text())
    assert resumed["training"]["resumed_from"] == 25
    assert json.loads((straight / "metrics.json").read_text())["training"]["resumed_from"] is None
    a, b = _comparable(killed), _comparable(straight)
    assert a["steps"] == b["steps"] == 60 and a["best_step"] == b["best_step"]
    for ha, hb in zip(a["history"], b["history"], strict=True):
        assert ha.keys() == hb.keys()
        for k in ha:
            assert ha[k] == pytest.approx(hb[k], rel=1e-5, abs=1e-6), (k, ha, hb)
    assert a["test"] == b["test"] and a["validation"] == b["validation"]
    assert not (killed / "checkpoints").exists()  # removed once the run succeeded
    assert main(["-q", "fit", "--resume", str(killed)]) == 2  # finished: nothing to resume


def test_resume_refuses_changed_data_and_a_new_run_over_an_interrupted_one(tmp_path: Path, table: pa.Table,
                                                                           tiny_backbone: Path, capsys) -> None:
    data = tmp_path / "reviews.parquet"
    pq.write_table(table, data)
    killed = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(data), str(killed), "12",
                           json.dumps(_settings(tiny_backbone))], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    before = sorted(p.name for p in (killed / "checkpoints").iterdir())
    assert main(["-q", "fit", str(data), "--target", "label", "--output", str(killed)]) == 2
    assert "interrupted run" in capsys.readouterr().err
    pq.write_table(table.slice(0, 390), data)  # the data changed
    assert main(["-q", "fit", "--resume", str(killed)]) == 2
    err = capsys.readouterr().err
    assert "the data changed" in err and "Traceback" not in err
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == before  # the checkpoint is kept


def test_a_run_repeats_from_its_resolved_config(tmp_path: Path, table: pa.Table, tiny_backbone: Path) -> None:
    data = tmp_path / "reviews.parquet"
    pq.write_table(table, data)
    first = tmp_path / "first"
    assert main(["-q", "fit", str(data), "--target", "label", "--backbone", str(tiny_backbone), "--epochs", "2",
                 "--no-progress", "--no-label-errors", "--set", "evaluate.bootstrap=50", "--output", str(first)]) == 0
    env = json.loads((first / "environment.json").read_text())
    assert env["command"][:4] == ["hone", "-q", "fit", str(data)]
    assert {"torch", "duckdb", "hone"} <= set(env["packages"]) and env["cpu"] and env["python"]
    fp = json.loads((first / "data.fingerprint.json").read_text())
    assert fp["rows"] == 400 and len(fp["content_hash"]) == 16
    again = tmp_path / "again"
    assert main(["-q", "fit", "--config", str(first / "config.resolved.yaml"), "--output", str(again)]) == 0
    a, b = _comparable(first), _comparable(again)
    assert a == b
    assert json.loads((again / "data.fingerprint.json").read_text())["content_hash"] == fp["content_hash"]
