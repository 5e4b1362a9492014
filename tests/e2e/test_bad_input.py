"""Bad input, as a new user produces it: every case exits 2 with one ``error:`` line that names the
file, column, field or line, prints no traceback, and leaves nothing behind (not even an empty folder).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import hone
from hone.cli import main


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, tab_table: pa.Table, tiny_backbone: Path) -> Path:
    d = tmp_path_factory.mktemp("inputs")
    pacsv.write_csv(tab_table, d / "good.csv")
    pq.write_table(tab_table, d / "good.parquet")
    (d / "empty.csv").write_text("")
    (d / "header_only.csv").write_text("x,label\n")
    (d / "broken.parquet").write_text("not parquet at all")
    (d / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    (d / "latin1.csv").write_bytes("name,label\ncafé au lait,a\nnaïve,b\nthé,a\n".encode("latin-1"))
    (d / "ragged.csv").write_text("a,b,label\n1,2,x\n3,4,y\n5,6,7,z\n8,9,x\n")
    (d / "one_class.csv").write_text("text,y\nhello there my friend,a\nhi again friend,a\n")
    (d / "reg.csv").write_text("x,y\n1,2.5\n2,lots\n3,4\n")  # n/a would be a missing value
    (d / "no_target.csv").write_text("x,label\n1,\n2,\n3,\n")
    (d / "words.csv").write_text(
        "note,label\n" + "".join(f"this is note number {i},{'ab'[i % 2]}\n" for i in range(40))
    )
    mixed = d / "mixed"
    mixed.mkdir()
    pacsv.write_csv(tab_table.slice(0, 10), mixed / "a.csv")
    pq.write_table(tab_table.slice(10, 10), mixed / "b.parquet")
    (d / "empty_dir").mkdir()
    (d / "unknown_field.yaml").write_text("train:\n  epochz: 3\n")
    (d / "wrong_type.yaml").write_text("train:\n  lr: fast\n")
    (d / "not_yaml.yaml").write_text("train: [unclosed\n")
    (d / "list.yaml").write_text("- a\n- b\n")
    (d / "no_config_bb").mkdir()
    (d / "not_model").mkdir()
    run = d / "model_run"
    hone.fit(tab_table, target="label", output=run, epochs=1, show_progress=False)
    (d / "truncated").mkdir()
    for f in (run / "model").iterdir():
        if f.is_file():
            shutil.copy(f, d / "truncated" / f.name)
    data = (run / "model" / "model.safetensors").read_bytes()
    (d / "truncated" / "model.safetensors").write_bytes(data[: len(data) // 2])
    shutil.copytree(run / "model", d / "bad_json")
    (d / "bad_json" / "hone.json").write_text("{not json")
    text_run = d / "text_run"
    words = pa.table(
        {"note": [f"this is note number {i} of many" for i in range(60)], "label": ["ab"[i % 2] for i in range(60)]}
    )
    hone.fit(words, target="label", output=text_run, epochs=1, show_progress=False, backbone=str(tiny_backbone),
             max_length=16)
    shutil.copytree(text_run / "model", d / "no_backbone")
    shutil.rmtree(d / "no_backbone" / "backbones")
    shutil.copytree(run / "model", d / "future")
    meta = json.loads((run / "model" / "hone.json").read_text())
    (d / "future" / "hone.json").write_text(json.dumps({**meta, "format_version": 99}))
    pacsv.write_csv(tab_table.drop_columns(["price"]), d / "no_price.csv")
    relabelled = tab_table.set_column(tab_table.column_names.index("label"), "label",
                                      pa.array(["maybe"] * tab_table.num_rows))
    pacsv.write_csv(relabelled, d / "new_label.csv")
    return d


def _fit(src: str, *extra: str, target: str = "label") -> list[str]:
    return ["fit", src, "--target", target, "--epochs", "1", "--no-progress", *extra]


# (name, argv with {d} for the inputs folder, text the error line must contain)
CASES = [
    # files
    ("missing file", _fit("{d}/gone.csv"), "gone.csv' not found"),
    ("empty file", _fit("{d}/empty.csv"), "empty.csv' is empty"),
    ("header only", _fit("{d}/header_only.csv"), "has no rows"),
    ("broken parquet", _fit("{d}/broken.parquet"), "broken.parquet'"),
    ("unsupported type", _fit("{d}/sheet.xlsx"), "unsupported file type '.xlsx'"),
    ("mixed directory", _fit("{d}/mixed"), "mixes file types"),
    ("empty directory", _fit("{d}/empty_dir"), "holds no .csv"),
    ("glob without match", _fit("{d}/*.jsonl"), "no files match"),
    ("latin-1 csv", _fit("{d}/latin1.csv"), "line 2 cannot be decoded; pass --encoding latin-1"),
    ("unknown encoding", _fit("{d}/latin1.csv", "--encoding", "klingon"), "unknown --encoding 'klingon'"),
    ("ragged csv", _fit("{d}/ragged.csv"), "line 4 of '{d}/ragged.csv' has 4 fields, expected 3"),
    # columns and target
    ("misspelt target", _fit("{d}/good.csv", target="lable"), "column 'lable' (--target) not found"),
    ("unknown --text column", _fit("{d}/good.csv", "--text", "nope"), "column 'nope' (--text) not found"),
    ("one class", _fit("{d}/one_class.csv", target="y"), "has one class ('a')"),
    (
        "non-numeric regression",
        _fit("{d}/reg.csv", "--task", "regression", target="y"),
        "must be numeric for regression",
    ),
    ("target all missing", _fit("{d}/no_target.csv"), "target 'label'"),
    ("--numeric on words", _fit("{d}/words.csv", "--numeric", "note"), "'note' has type VARCHAR"),
    ("missing group column", _fit("{d}/good.csv", "--group", "shop"), "column 'shop' (group column) not found"),
    ("missing key column", _fit("{d}/good.csv", "--key", "row"), "column 'row' (row key) not found"),
    ("bad split column", _fit("{d}/good.csv", "--split-column", "store"), "split column 'store'"),
    # config files, flags and fields
    (
        "unknown config field",
        _fit("{d}/good.csv", "--config", "{d}/unknown_field.yaml"),
        "unknown config field 'train.epochz'",
    ),
    ("wrong config type", _fit("{d}/good.csv", "--config", "{d}/wrong_type.yaml"), "config field 'train.lr'"),
    ("config not found", _fit("{d}/good.csv", "--config", "{d}/none.yaml"), "none.yaml' not found"),
    ("config not yaml", _fit("{d}/good.csv", "--config", "{d}/not_yaml.yaml"), "is not valid YAML"),
    ("config a list", _fit("{d}/good.csv", "--config", "{d}/list.yaml"), "must hold a mapping"),
    ("unknown --set field", _fit("{d}/good.csv", "--set", "train.dropuot=0.2"), "unknown config field 'train.dropuot'"),
    ("--set without =", _fit("{d}/good.csv", "--set", "train.lr"), "--set expects FIELD=VALUE"),
    ("zero epochs", _fit("{d}/good.csv", "--epochs", "0"), "config field 'train.epochs'"),
    ("lr not a number", _fit("{d}/good.csv", "--lr", "abc"), "config field 'train.lr'"),
    ("bad split fractions", _fit("{d}/good.csv", "--set", "data.split.fractions=[0.5,0.5,0.5]"), "split.fractions"),
    ("metric of another task", _fit("{d}/good.csv", "--set", "train.metric=rmse"), "train.metric 'rmse'"),
    ("missing backbone folder", _fit("{d}/words.csv", "--backbone", "{d}/no_such_model"), "does not exist"),
    ("backbone without config", _fit("{d}/words.csv", "--backbone", "{d}/no_config_bb"), "no config.json"),
    ("no target given", ["fit", "{d}/good.csv"], "no target column"),
    # sql: queries
    ("empty query", _fit("sql:"), "the sql: query is empty"),
    ("query syntax", _fit("sql:SELEC * FROM '{d}/good.csv'"), 'syntax error at or near "SELEC" (line 1, character 1'),
    ("query table", _fit("sql:SELECT * FROM no_table"), "Table with name no_table does not exist"),
    ("query column", _fit("sql:SELECT nope FROM '{d}/good.csv'"), '"nope" not found'),
    # model folders
    (
        "not a model folder",
        ["predict", "{d}/not_model", "{d}/good.csv", "--output", "out.csv"],
        "is not a hone model folder",
    ),
    ("missing model folder", ["predict", "{d}/gone_model", "{d}/good.csv", "--output", "out.csv"], "not found"),
    (
        "truncated weights",
        ["predict", "{d}/truncated", "{d}/good.csv", "--output", "out.csv"],
        "model.safetensors' is damaged",
    ),
    ("broken hone.json", ["evaluate", "{d}/bad_json", "{d}/good.csv"], "is not valid JSON"),
    ("newer format", ["evaluate", "{d}/future", "{d}/good.csv"], "saved by a newer hone"),
    ("backbone files missing", ["evaluate", "{d}/no_backbone", "{d}/words.csv"], "has no backbones/text/ folder"),
    # prediction inputs
    (
        "feature missing",
        ["predict", "{d}/model_run/model", "{d}/no_price.csv", "--output", "out.csv"],
        "column 'price' (a feature the model was trained on) not found",
    ),
    ("output type", ["predict", "{d}/model_run/model", "{d}/good.csv", "--output", "out.xlsx"], "must end in .parquet"),
    (
        "unknown --keep",
        ["predict", "{d}/model_run/model", "{d}/good.csv", "--output", "out.csv", "--keep", "nope"],
        "column 'nope' (--keep) not found",
    ),
    ("empty input to score", ["predict", "{d}/model_run/model", "{d}/empty.csv", "--output", "out.csv"], "is empty"),
    (
        "wrong --target",
        ["evaluate", "{d}/model_run/model", "{d}/good.csv", "--target", "store"],
        "predicts 'label', not 'store'",
    ),
    ("unknown label", ["evaluate", "{d}/model_run/model", "{d}/new_label.csv"], "label 'maybe'"),
]


@pytest.mark.parametrize("name,argv,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name: str, argv: list[str], expected: str, inputs: Path, tmp_path: Path, capsys,
                   monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a default runs/ folder or an output would appear here
    before = sorted(p.name for p in inputs.iterdir())
    code = main([a.replace("{d}", str(inputs)) for a in argv])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, (name, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
    assert "Traceback" not in err and "CREATE" not in err and "hone_" not in err, (name, err)
    assert expected.replace("{d}", str(inputs)) in err, (name, err)
    assert os.listdir(tmp_path) == [], (name, os.listdir(tmp_path))  # nothing left, not even runs/
    assert sorted(p.name for p in inputs.iterdir()) == before, name


def test_there_are_at_least_30_cases() -> None:
    assert len(CASES) >= 30
