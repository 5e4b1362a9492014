"""hone tune: a small Optuna study to completion, one interrupted and resumed, pruning, the refit."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hone.cli import main
from hone.config import parse_duration
from hone.errors import ConfigError
from hone.search.space import build_space

# A wide learning-rate range: the poor end is obviously poor, so the median pruner has work.
SPACE = ["--set", "tune.space.lr={low: 1e-5, high: 0.05, log: true}", "--set", "tune.space.epochs={low: 3, high: 6}",
         "--set", "tune.space.batch_size={choices: [32, 64]}"]


@pytest.fixture
def tab(tmp_path: Path, tab_table: pa.Table) -> Path:
    p = tmp_path / "tab.parquet"
    pq.write_table(tab_table, p)
    return p


def _args(src: Path, out: Path, trials: int, *extra: str) -> list[str]:
    return ["-q", "tune", str(src), "--target", "label", "--trials", str(trials), "--output", str(out),
            "--no-label-errors", "--no-progress", "--set", "evaluate.bootstrap=50", *SPACE, *extra]


def _finished(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=30) as con:
            return con.execute("SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_a_small_search_runs_to_the_end_and_refits_the_best(tmp_path: Path, tab: Path, capsys) -> None:
    out = tmp_path / "study"
    assert main(_args(tab, out, 5)) == 0
    printed = capsys.readouterr().out
    assert "best: trial" in printed and "refit (train): test" in printed
    summary = json.loads((out / "tune.json").read_text())
    assert summary["finished"] == 5 and len(summary["trials"]) == 5
    values = [t["value"] for t in summary["trials"] if t["state"] == "complete"]
    first = summary["trials"][0]
    assert first.get("defaults") and first["params"]["dropout"] == 0.1 and first["params"]["weight_decay"] == 0.01
    # the refit chose its model on validation rows the search never saw
    counts = json.loads((out / "best" / "data.fingerprint.json").read_text())["rows_per_split"]
    assert set(counts) == {"train", "validation", "choice", "test"} and counts["choice"] > 0
    assert summary["best"]["value"] == max(values)
    assert set(summary["best"]["params"]) == {"lr", "epochs", "batch_size", "dropout", "weight_decay", "warmup_ratio"}
    assert summary["importances"] and abs(sum(summary["importances"].values()) - 1) < 1e-3
    # the refit uses the best parameters, and its run folder and report carry the search
    resolved = (out / "best" / "config.resolved.yaml").read_text()
    assert f"batch_size: {summary['best']['params']['batch_size']}" in resolved
    assert f"epochs: {summary['best']['params']['epochs']}" in resolved
    report = (out / "best" / "report.html").read_text()
    assert "Hyperparameter search" in report and "Optimisation history" in report
    assert (out / "best" / "model" / "hone.json").is_file() and (out / "trials.csv").read_text().count("\n") == 6
    # the same command again: the study is complete, nothing is retrained
    assert main(_args(tab, out, 5)) == 0
    assert json.loads((out / "tune.json").read_text())["finished"] == 5


def test_an_interrupted_search_resumes_with_the_same_command_and_prunes(tmp_path: Path, tab: Path) -> None:
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "hone", *_args(tab, out, 10)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while _finished(out / "study.db") < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # Ctrl-C in the middle of the search
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    interrupted = _finished(out / "study.db")
    assert 3 <= interrupted < 10 and not (out / "best").exists()
    assert main(_args(tab, out, 10)) == 0  # resumes: only the missing trials run
    summary = json.loads((out / "tune.json").read_text())
    assert summary["finished"] == 10
    assert summary["pruned"] >= 1 and all(t["intermediate"] for t in summary["trials"] if t["state"] == "pruned")
    assert (out / "best" / "metrics.json").is_file()
    # a study is resumed only with the data and settings it started with
    assert main(_args(tab, out, 10, "--set", "model.hidden_size=64")) == 2


def test_ctrl_c_waits_for_optuna_bookkeeping_but_not_for_training() -> None:
    from hone.search.study import Interrupts

    interrupts, done, before = Interrupts(), [], signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), interrupts.installed():
        os.kill(os.getpid(), signal.SIGINT)  # lands in a storage write: held until it is done
        done.append("bookkeeping finished")
    assert done == ["bookkeeping finished"] and signal.getsignal(signal.SIGINT) is before  # the handler put back
    with pytest.raises(KeyboardInterrupt), interrupts.installed(), interrupts.unshielded():
        os.kill(os.getpid(), signal.SIGINT)  # lands in the training: raised at once
        time.sleep(1)
        done.append("training went on")
    assert done == ["bookkeeping finished"]
    with pytest.raises(KeyboardInterrupt), interrupts.installed():
        os.kill(os.getpid(), signal.SIGINT)  # held between two trials: the next one never starts
        with interrupts.unshielded():
            done.append("next trial")
    assert done == ["bookkeeping finished"]


def test_two_processes_share_one_study(tmp_path: Path, tab: Path) -> None:
    out = tmp_path / "study"
    slow = ["--set", "tune.space.epochs=40", "--set", "train.patience=40"]  # trials of a few seconds each
    assert main(_args(tab, out, 6, "--jobs", "2", "--pruner", "none", *slow)) == 0
    summary = json.loads((out / "tune.json").read_text())
    assert 6 <= summary["finished"] <= 7  # the two processes stop once 6 have finished (one may be in flight)
    assert summary["pruned"] == 0
    assert len({t["process"] for t in summary["trials"]}) == 2  # both processes ran trials of the one study


def test_the_space_is_the_strategy_default_narrowed_or_replaced_by_the_config() -> None:
    lora = build_space("lora", True, {"lr": {"low": 1e-4, "high": 1e-3, "log": True}, "dropout": None, "epochs": 3})
    assert lora["lr"]["high"] == 1e-3 and "dropout" not in lora and lora["epochs"] == 3 and "lora_r" in lora
    assert "top_k" in build_space("top-k", True, {}, backbone_layers=2) and \
        build_space("top-k", True, {}, backbone_layers=2)["top_k"]["high"] == 2
    assert set(build_space("full", True, {"train.head_lr": {"choices": [1e-3]}}, replace=True)) == {"train.head_lr"}
    assert "lora_r" not in build_space("full", True, {}) and "head_lr" not in build_space("full", False, {})
    for bad in ({"lrr": {"low": 1, "high": 2}}, {"lr": {"low": 2, "high": 1}}, {"data.target": "x"},
                {"lr": {"choices": []}}, {"lr": {"low": 0, "high": 1, "log": True}}):
        with pytest.raises(ConfigError):
            build_space("full", True, bad)
    assert "epochs" not in build_space("full", True, {}, fixed={"epochs"})
    from hone.config import build_config
    from hone.search.space import explicit_settings

    assert explicit_settings(build_config({"train": {"epochs": 3}, "model": {"dropout": 0.2}})) == {"epochs", "dropout"}
    assert parse_duration("2h") == 7200 and parse_duration("1h30m") == 5400 and parse_duration("45s") == 45
    with pytest.raises(ConfigError):
        parse_duration("soon")


@pytest.mark.parametrize("args, says", [
    (["missing.csv", "--target", "label"], "missing.csv"),
    (["tab.parquet", "--target", "nope"], "nope"),
    (["tab.parquet", "--target", "label", "--timeout", "soon"], "duration"),
    (["tab.parquet", "--target", "label", "--set", "tune.space.lrr={low: 1, high: 2}"], "lrr"),
])
def test_bad_search_input_is_one_line_and_leaves_nothing(tmp_path: Path, tab_table: pa.Table, monkeypatch, capsys,
                                                         args: list[str], says: str) -> None:
    monkeypatch.chdir(tmp_path)
    pq.write_table(tab_table, tmp_path / "tab.parquet")
    assert main(["-q", "tune", *args, "--no-label-errors"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and says in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tab.parquet"]


def test_a_text_search_tunes_the_strategy_parameters_with_hyperband(tmp_path: Path, table: pa.Table,
                                                                    tiny_backbone: Path) -> None:
    data = tmp_path / "reviews.parquet"
    pq.write_table(table, data)
    out = tmp_path / "study"
    assert main(["-q", "tune", str(data), "--target", "label", "--trials", "3", "--output", str(out),
                 "--backbone", str(tiny_backbone), "--strategy", "top-k", "--pruner", "hyperband", "--no-label-errors",
                 "--no-progress", "--set", "evaluate.bootstrap=0", "--set", "tune.space.epochs={low: 1, high: 2}"]) == 0
    summary = json.loads((out / "tune.json").read_text())
    assert summary["pruner"] == "hyperband" and summary["finished"] == 3
    params = summary["best"]["params"]
    assert {"lr", "head_lr", "top_k"} <= set(params) and 1 <= params["top_k"] <= 2  # the tiny backbone has 2 layers
    resolved = (out / "best" / "config.resolved.yaml").read_text()
    assert f"top_k: {params['top_k']}" in resolved and "strategy: top-k" in resolved
