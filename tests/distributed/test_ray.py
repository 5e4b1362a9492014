"""hone fit --engine ray: Ray Train runs hone's own loop on 2 workers of a local Ray instance."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hone
from hone.cli import main

pytest.importorskip("ray.train")


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
    assert (
        predict_on_ray(tmp_path / "run" / "model", str(src), tmp_path / "scored", workers=2, rows_per_file=150) == 600
    )
    assert sum(pq.read_metadata(p).num_rows for p in (tmp_path / "cli").glob("*.parquet")) == 600
    parts = sorted((tmp_path / "scored").glob("*.parquet"))
    assert len(parts) >= 4  # partitioned output
    local = pq.read_table("local.parquet").to_pandas().set_index("id").sort_index()
    remote = pa.concat_tables([pq.read_table(p) for p in parts]).to_pandas().set_index("id").sort_index()
    assert list(remote.index) == list(local.index) and len(remote) == tab_table.num_rows
    assert (remote["prediction"] == local["prediction"]).all()
    for c in model.classes:
        assert (remote[f"proba_{c}"] - local[f"proba_{c}"]).abs().max() < 1e-6


def test_a_ray_fit_killed_mid_run_resumes_on_ray(tmp_path: Path, table: pa.Table, tiny_backbone: Path,
                                                monkeypatch, capsys) -> None:
    """A fit on two Ray Train workers, killed with the machine after step 10, continues on Ray from its
    checkpoint; the finished run is an ordinary run folder (the same package as a local fit)."""
    import contextlib
    import signal
    import subprocess
    import sys
    import time

    monkeypatch.chdir(tmp_path)
    pq.write_table(table, tmp_path / "reviews.parquet")
    cmd = [sys.executable, "-m", "hone", "-q", "fit", "reviews.parquet", "--target", "label", "--engine", "ray",
           "--workers", "2", "--output", "run", "--backbone", str(tiny_backbone), "--epochs", "3", "--batch-size", "16",
           "--no-progress", "--no-label-errors", "--checkpoint-every-steps", "5", "--patience", "100",
           "--set", "evaluate.bootstrap=0", "--set", "train.keep_checkpoints=true"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    state = tmp_path / "run" / "checkpoints" / "latest" / "state.json"
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        try:
            if json.loads(state.read_text())["train_state"]["step"] >= 10:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the machine goes down: the command, Ray and its workers
    _, err = proc.communicate(timeout=60)
    # Ray's workers run in sessions of their own: they go down with the machine too
    while time.time() < deadline and (left := [p for p in Path("/proc").glob("[0-9]*") if _cwd(p) == tmp_path]):
        for p in left:
            with contextlib.suppress(OSError):
                os.kill(int(p.name), signal.SIGKILL)
        time.sleep(0.2)
    assert not (tmp_path / "run" / "metrics.json").exists(), err[-2000:]
    at = json.loads(state.read_text())["train_state"]["step"]
    capsys.readouterr()
    assert main(["-q", "fit", "--resume", "run"]) == 0  # continues on Ray, every worker from that checkpoint
    assert "model: run/model" in capsys.readouterr().out  # the driver reports what the main worker wrote
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["training"]["resumed_from"] == at >= 10 and m["training"]["world_size"] == 2
    assert m["training"]["steps"] == 3 * 20  # 320 training rows in global batches of 16: 20 steps an epoch
    state = json.loads((tmp_path / "run" / "checkpoints" / "latest" / "state.json").read_text())
    assert state["train_state"]["step"] == 60 and state["train_state"]["epoch_finished"]  # kept, as asked
    resolved = (tmp_path / "run" / "config.resolved.yaml").read_text()
    assert "kind: ray" in resolved and "workers: 2" in resolved  # the record says how the run was made
    assert len(hone.load(tmp_path / "run" / "model").predict(table)) == table.num_rows
    # the same config in one process: the same package format
    assert main(["-q", "fit", "reviews.parquet", "--target", "label", "--backbone", str(tiny_backbone), "--epochs",
                 "1", "--no-progress", "--no-label-errors", "--set", "evaluate.bootstrap=0", "--output", "local"]) == 0
    assert sorted(p.name for p in (tmp_path / "local" / "model").iterdir()) == \
        sorted(p.name for p in (tmp_path / "run" / "model").iterdir())


def _cwd(proc: Path) -> Path | None:
    try:
        return Path(os.readlink(proc / "cwd")) if int(proc.name) != os.getpid() else None
    except OSError:
        return None


def _tune_args(out: str, trials: int, *extra: str) -> list[str]:
    return ["-q", "tune", "tab.parquet", "--target", "label", "--trials", str(trials), "--output", out,
            "--engine", "ray", "--workers", "2", "--no-label-errors", "--no-progress", "--set", "evaluate.bootstrap=50",
            "--set", "tune.space.epochs={low: 3, high: 6}", *extra]


def test_tune_on_ray_runs_trials_side_by_side_then_refits_and_resumes(tmp_path: Path, tab_table: pa.Table,
                                                                       monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    pq.write_table(tab_table, tmp_path / "tab.parquet")
    assert main(_tune_args("study", 5)) == 0
    assert "refit (train): test" in capsys.readouterr().out
    summary = json.loads((tmp_path / "study" / "tune.json").read_text())
    assert summary["engine"] == "ray" and summary["searcher"] == "optuna" and summary["finished"] == 5
    trials = summary["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2, 3, 4]
    # trial 0 is the default configuration (epochs brought into the searched range), as in a local search
    assert trials[0].get("defaults") and trials[0]["params"]["dropout"] == 0.1 and trials[0]["params"]["epochs"] == 6
    # the trials ran in Ray's worker processes, two of them at once, not in this one
    processes = {t["process"] for t in trials}
    assert len(processes) == 2 and not any(p.endswith(f":{os.getpid()}") for p in processes)
    complete = [t for t in trials if t["state"] == "complete"]
    assert summary["best"]["value"] == max(t["value"] for t in complete)
    assert all(t["intermediate"] for t in trials)
    assert (tmp_path / "study" / "trials.csv").read_text().count("\n") == 6
    model = hone.load(tmp_path / "study" / "best" / "model")
    assert len(model.predict(tab_table.slice(0, 7))) == 7
    resolved = (tmp_path / "study" / "best" / "config.resolved.yaml").read_text()
    assert f"batch_size: {summary['best']['params']['batch_size']}" in resolved and "kind: local" in resolved
    # the same command again: Ray Tune's experiment is restored, nothing is retrained
    before = (tmp_path / "study" / "best" / "metrics.json").stat().st_mtime
    assert main(_tune_args("study", 5)) == 0
    again = json.loads((tmp_path / "study" / "tune.json").read_text())
    assert again["finished"] == 5 and again["best"] == summary["best"]
    assert (tmp_path / "study" / "best" / "metrics.json").stat().st_mtime == before


def test_tune_on_ray_with_hyperopt_and_asha_prunes(tmp_path: Path, tab_table: pa.Table, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    pq.write_table(tab_table, tmp_path / "tab.parquet")
    # the low end of the range cannot move the weights: ASHA has work. One trial at a time, so the
    # searcher sees the same results in the same order on every run.
    assert main(_tune_args("study", 8, "--workers", "1", "--searcher", "hyperopt", "--pruner", "hyperband",
                           "--set", "tune.space.lr={low: 1.0e-7, high: 0.05, log: true}")) == 0
    summary = json.loads((tmp_path / "study" / "tune.json").read_text())
    assert summary["searcher"] == "hyperopt" and summary["pruner"] == "hyperband" and summary["finished"] == 8
    pruned = [t for t in summary["trials"] if t["state"] == "pruned"]
    assert pruned and all(t["stop_reason"].startswith("pruned after evaluation") for t in pruned)
    longest = max(len(t["intermediate"]) for t in summary["trials"])
    assert all(len(t["intermediate"]) < longest for t in pruned)  # stopped before they ran their course
    assert summary["best"]["params"]["lr"] > 1e-4


def test_a_trial_that_fails_on_ray_is_one_clear_line(tmp_path: Path, tab_table: pa.Table, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    pq.write_table(tab_table, tmp_path / "tab.parquet")
    # a value only a trial's own config validation rejects
    (tmp_path / "bad.yaml").write_text(
        "tune:\n  replace_space: true\n  space:\n    model.hidden_size: {choices: [-5]}\n"
    )
    assert main(_tune_args("study", 2, "--config", "bad.yaml")) == 2
    err = capsys.readouterr().err
    assert "error: config field 'model.hidden_size'" in err and "Traceback" not in err
    assert not (tmp_path / "study" / "best").exists()
