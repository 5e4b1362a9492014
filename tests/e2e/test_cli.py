"""The hone CLI: fit -> predict -> evaluate, and one clear line for each kind of bad input."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from hone.cli import main


@pytest.fixture
def csv_path(tmp_path: Path, table: pa.Table) -> Path:
    p = tmp_path / "reviews.csv"
    pacsv.write_csv(table, p)
    return p


def _fit_args(src, tiny_backbone: Path, out: Path, *extra: str) -> list[str]:
    return ["-q", "fit", str(src), "--target", "label", "--backbone", str(tiny_backbone), "--epochs", "1",
            "--no-progress", "--output", str(out), "--set", "train.head_lr=0.005", *extra]


def test_fit_predict_evaluate(tmp_path: Path, csv_path: Path, tiny_backbone: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(_fit_args(csv_path, tiny_backbone, run, "--lr", "0.001", "--max-length", "32")) == 0
    out = capsys.readouterr().out
    assert "macro_f1" in out and "model:" in out
    assert main(["predict", str(run / "model"), str(csv_path), "--output", str(tmp_path / "s.parquet")]) == 0
    scored = pq.read_table(tmp_path / "s.parquet")
    assert scored.num_rows == 400 and {"review", "label", "prediction", "proba_neg", "proba_pos"} <= set(
        scored.column_names
    )
    assert main(["predict", str(run / "model"), str(csv_path), "--output", str(tmp_path / "s.csv"),
                 "--keep", "id"]) == 0
    with open(tmp_path / "s.csv") as f:
        header = next(csv.reader(f))
    assert header == ["id", "prediction", "proba_neg", "proba_pos"]
    assert main(["evaluate", str(run / "model"), str(csv_path), "--target", "label",
                 "--output", str(tmp_path / "m.json")]) == 0
    assert "accuracy" in capsys.readouterr().out and (tmp_path / "m.json").exists()


def _bad(args: list[str], capsys) -> str:
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    return err


def test_bad_inputs_give_one_line_and_leave_nothing(
    tmp_path: Path, csv_path: Path, tiny_backbone: Path, capsys
) -> None:
    run = tmp_path / "run"
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "broken.parquet").write_text("not parquet")
    (tmp_path / "one.csv").write_text("text,y\nhello there my friend,a\nhi again friend,a\n")
    (tmp_path / "reg.csv").write_text("x,y\n1,2.5\n2,lots\n3,4\n")
    (tmp_path / "bad.yaml").write_text("train:\n  epochz: 3\n")
    (tmp_path / "wrong.yaml").write_text("train:\n  lr: fast\n")
    cases = {
        "missing target": (
            _fit_args(csv_path, tiny_backbone, run)[:4] + ["sentimnt"] + _fit_args(csv_path, tiny_backbone, run)[5:],
            "column 'sentimnt' (--target) not found",
        ),
        "unknown column": (
            _fit_args(csv_path, tiny_backbone, run, "--text", "nope"),
            "column 'nope' (--text) not found",
        ),
        "empty file": (_fit_args(tmp_path / "empty.csv", tiny_backbone, run), "empty.csv' is empty"),
        "broken file": (_fit_args(tmp_path / "broken.parquet", tiny_backbone, run), "broken.parquet'"),
        "missing file": (_fit_args(tmp_path / "gone.csv", tiny_backbone, run), "gone.csv' not found"),
        "one class": (
            _fit_args(tmp_path / "one.csv", tiny_backbone, run)[:4]
            + ["y"]
            + _fit_args(tmp_path / "one.csv", tiny_backbone, run)[5:],
            "has one class ('a')",
        ),
        "non-numeric regression": (
            ["fit", str(tmp_path / "reg.csv"), "--target", "y", "--task", "regression", "--output", str(run)],
            "must be numeric for regression",
        ),
        "unknown config field": (
            _fit_args(csv_path, tiny_backbone, run, "--config", str(tmp_path / "bad.yaml")),
            "unknown config field 'train.epochz'",
        ),
        "wrong config type": (
            _fit_args(csv_path, tiny_backbone, run, "--config", str(tmp_path / "wrong.yaml")),
            "config field 'train.lr'",
        ),
        "bad --set": (
            _fit_args(csv_path, tiny_backbone, run, "--set", "train.dropuot=0.2"),
            "unknown config field 'train.dropuot'",
        ),
    }
    for name, (args, expected) in cases.items():
        err = _bad(args, capsys)
        assert expected in err, (name, err)
        assert not run.exists(), name
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], name
    not_model = tmp_path / "not_model"
    not_model.mkdir()
    err = _bad(["predict", str(not_model), str(csv_path), "--output", str(tmp_path / "o.csv")], capsys)
    assert "is not a hone model folder" in err and not (tmp_path / "o.csv").exists()


def test_existing_output_is_kept_without_overwrite(tmp_path: Path, csv_path: Path, tiny_backbone: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("precious")
    err = _bad(_fit_args(csv_path, tiny_backbone, run), capsys)
    assert "already exists" in err and (run / "keep.txt").read_text() == "precious"


def test_console_script_is_quiet_about_internals(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "hone", "fit", str(tmp_path / "none.csv"), "--target", "y"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: file '{tmp_path / 'none.csv'}' not found"
    assert not Path("runs/none").exists()


def test_import_is_light() -> None:
    code = "import hone, sys; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
