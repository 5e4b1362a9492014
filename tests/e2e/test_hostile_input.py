"""Real-world quirks and hostile input, one parametrised test per family (issue 33):

1. non-finite and missing values: handled (missing, counted, never a class, never chosen on a NaN metric);
2. inputs the pipeline cannot take: refused by name before anything is written, or handled;
3. paths and outputs: checked before any work, never the command's own input;
4. configs and flags: duplicate keys, YAML positions, every numeric flag range-checked where parsed.

A refusal exits 2 with one ``error:`` line naming what is wrong, no traceback, and leaves the working
folder empty and every input unchanged. (The service's family is tests/serve/test_hostile.py.)
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import socket
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import hone
from hone.cli import main

UNWRITABLE = Path("/sys/hone-out")  # sysfs: not writable, even by root


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def _numbers(n: int = 240, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    return {"x": x, "w": rng.normal(5, 2, n), "y": np.where(x + rng.normal(0, 0.3, n) > 0, "up", "down")}


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory, tab_table: pa.Table, tiny_backbone: Path) -> Path:
    """Input files and a saved model, made once; every test checks they are unchanged."""
    d = tmp_path_factory.mktemp("hostile")
    pacsv.write_csv(tab_table, d / "good.csv")
    pq.write_table(tab_table, d / "good.parquet")
    run = d / "run"
    hone.fit(tab_table, target="label", output=run, epochs=1, show_progress=False)
    cols = _numbers()
    # 1. non-finite and missing values
    x = cols["x"].copy()
    x[[1, 2]], x[3], x[4] = math.nan, math.inf, -math.inf
    pq.write_table(pa.table({**cols, "x": x}), d / "nonfinite.parquet")
    lines = ["x,w,y"] + [f"{'NaN' if i % 17 == 0 else f'{v:.6f}'},{w},{y}"
                         for i, (v, w, y) in enumerate(zip(cols["x"], cols["w"], cols["y"]))]
    (d / "nan_cells.csv").write_text("\n".join(lines) + "\n")
    tokens = ["NA", "null", "#N/A", "N/A", "None", ""]
    lines = ["x,w,y"] + [f"{tokens[i % 6] if i % 11 == 0 else f'{v:.6f}'},{w},{tokens[i % 6] if i % 29 == 3 else y}"
                         for i, (v, w, y) in enumerate(zip(cols["x"], cols["w"], cols["y"]))]
    (d / "na_cells.csv").write_text("\n".join(lines) + "\n")
    words = ["inf", "-inf", "Infinity", "-Infinity", "1e400", "nan"]
    lines = ["x,w,y"] + [f"{words[i % 6] if i % 13 == 0 else f'{v:.6f}'},{w},{y}"
                         for i, (v, w, y) in enumerate(zip(cols["x"], cols["w"], cols["y"]))]
    (d / "inf_cells.csv").write_text("\n".join(lines) + "\n")
    yf = np.where(cols["y"] == "up", 1.0, 0.0)
    yf[[5, 6, 7, 8]] = math.nan
    pq.write_table(pa.table({"x": cols["x"], "w": cols["w"], "y": yf}), d / "nan_target.parquet")
    pq.write_table(
        pa.table({"x": cols["x"], "w": cols["w"], "y": np.full(len(yf), math.nan)}), d / "all_nan_target.parquet"
    )
    yr = cols["x"] * 3 + cols["w"]
    yr[[9, 10]] = [math.inf, math.nan]
    pq.write_table(pa.table({"x": cols["x"], "w": cols["w"], "y": yr}), d / "inf_regression.parquet")
    pq.write_table(
        pa.table({"x": np.full(240, math.nan), "w": cols["w"], "y": cols["y"]}), d / "all_nan_feature.parquet"
    )
    # 2. inputs the pipeline cannot take
    n = 120
    pq.write_table(pa.table({"x": cols["x"][:n], "rec": [{"a": float(i), "b": ["p", "q"][i % 2]} for i in range(n)],
                             "m": pa.array([[("k", i)] for i in range(n)], type=pa.map_(pa.string(), pa.int64())),
                             "tags": [["t", str(i % 3)] for i in range(n)], "y": cols["y"][:n].tolist()}),
                   d / "nested.parquet")
    (d / "nested.jsonl").write_text("".join(json.dumps({"x": float(v), "meta": {"shop": ["a", "b"][i % 2], "n": i},
                                                        "y": str(y)}) + "\n"
                                            for i, (v, y) in enumerate(zip(cols["x"], cols["y"]))))
    (d / "ids.csv").write_text("x,y\n" + "".join(f"{i * 1.5},id{i}\n" for i in range(60)))
    notes = [f"note {i} {y}" for i, y in enumerate(cols["y"])]
    notes[7] = "word " * 40_000  # a 200 KB cell
    pacsv.write_csv(pa.table({"note": notes, "x": cols["x"], "y": cols["y"].tolist()}), d / "big_cell.csv")
    rows = list(zip(cols["x"], cols["w"], cols["y"]))
    (d / "semicolon.csv").write_text("x;w;y\n" + "".join(f"{v:.5f};{w:.5f};{y}\n" for v, w, y in rows))
    (d / "decimal_comma.csv").write_text("x;w;y\n" + "".join(f"{v:.5f};{w:.5f};{y}\n".replace(".", ",")
                                                            for v, w, y in rows))
    (d / "mixed.jsonl").write_text("".join(json.dumps({"x": str(v) if i % 4 == 0 else v, "w": w, "y": y}) + "\n"
                                           for i, (v, w, y) in enumerate(rows)))
    import pandas as pd

    frame = pd.DataFrame(
        {
            "x": cols["x"],
            "when": pd.date_range("2024-01-01", periods=240, freq="h", tz="Europe/Paris"),
            "cat": pd.Categorical(np.where(cols["x"] > 0, "hi", "lo")),
            "n": np.arange(240, dtype="uint64"),
            "f32": cols["w"].astype("float32"),
            "y": cols["y"],
        }
    )
    frame.loc[3, "f32"] = np.inf
    frame.to_parquet(d / "types.parquet")
    with gzip.open(d / "good.csv.gz", "wb") as f:
        f.write((d / "good.csv").read_bytes())
    (d / "broken.csv.gz").write_bytes(gzip.compress((d / "good.csv").read_bytes())[:300])
    pacsv.write_csv(tab_table, d / "twin.csv")
    # 4. configs
    (d / "dup.yaml").write_text("train:\n  lr: 0.01\nmodel:\n  top_k: 2\ntrain:\n  epochs: 2\n")
    (d / "dup_nested.yaml").write_text("train:\n  lr: 0.01\n  epochs: 1\n  lr: 0.02\n")
    (d / "unclosed.yaml").write_text("train:\n  epochs: 1\n  lr: [0.01\n")
    (d / "tabbed.yaml").write_text("train:\n\tepochs: 1\n")
    (d / "colon.yaml").write_text("train:\n  epochs: 1\n   lr: 2\n")
    (d / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    (d / "yaml_dir.yaml").mkdir()
    (d / "out_dir").mkdir()
    (d / "a_file").write_text("not a folder\n")
    return d


def _refused(argv: list[str], expected: str, d: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    before = _snapshot(d)
    code = main([a.replace("{d}", str(d)).replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err.strip()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and "hone_" not in err, err
    assert expected.replace("{d}", str(d)) in err, err
    assert os.listdir(tmp_path) == [], os.listdir(tmp_path)  # nothing written: not even runs/
    assert _snapshot(d) == before  # no input changed


def _fit(src: str, *extra: str, target: str = "y") -> list[str]:
    return ["fit", f"{{d}}/{src}", "--target", target, "--epochs", "1", "--no-progress", *extra]


def _predict(src: str = "good.csv", out: str = "{tmp}/scored.csv", *extra: str) -> list[str]:
    return ["predict", "{d}/run/model", f"{{d}}/{src}", "--output", out, *extra]


# ---- 1. non-finite and missing values: handled, counted, never a class ----------------------------------------

HANDLED = [  # (name, file, extra flags, check(metrics.json, model))
    (
        "parquet NaN and inf features",
        "nonfinite.parquet",
        [],
        lambda m, model: m["training"]["nonfinite_cells"] == {"x": 4},
    ),
    ("csv NaN cells", "nan_cells.csv", [], lambda m, model: "x" in model.pre.schema.names("numeric")),
    (
        "csv NA, null and #N/A cells",
        "na_cells.csv",
        [],
        lambda m, model: model.pre.schema.names("numeric") == ["x", "w"] and sorted(model.classes) == ["down", "up"],
    ),
    (
        "csv inf and 1e400 cells",
        "inf_cells.csv",
        [],
        lambda m, model: m["training"]["nonfinite_cells"].get("x", 0) >= 15,
    ),
    (
        "NaN in a float class target",
        "nan_target.parquet",
        [],
        lambda m, model: (
            sorted(map(str, model.classes)) == ["0.0", "1.0"] and m["training"]["skipped_rows"]["missing_target"] == 4
        ),
    ),
    (
        "inf and NaN in a regression target",
        "inf_regression.parquet",
        [],
        lambda m, model: model.task == "regression" and m["training"]["skipped_rows"]["missing_target"] == 2,
    ),
    ("a feature of NaN only", "all_nan_feature.parquet", [], lambda m, model: "x" in model.pre.schema.dropped),
]


@pytest.mark.parametrize("name,src,extra,check", HANDLED, ids=[c[0] for c in HANDLED])
def test_non_finite_values_are_missing(name: str, src: str, extra: list[str], check, d: Path, tmp_path: Path) -> None:
    before = _snapshot(d)
    out = tmp_path / "run"
    assert (
        main(["fit", str(d / src), "--target", "y", "--epochs", "1", "--no-progress", "--output", str(out), *extra])
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    model = hone.load(out / "model")
    assert check(metrics, model), metrics["training"]
    chosen = metrics["model"]["validation"][metrics["model"]["chosen"]]
    assert math.isfinite(chosen)  # a non-finite validation metric is never best
    assert main(["predict", str(out / "model"), str(d / src), "--output", str(tmp_path / "p.parquet")]) == 0
    scored = pq.read_table(tmp_path / "p.parquet")
    numbers = [c for c in scored.column_names if c.startswith("proba_")] or ["prediction"]
    assert all(np.isfinite(scored[c].to_numpy(zero_copy_only=False)).all() for c in numbers)
    assert "nan" not in {str(v).lower() for v in scored["prediction"].to_pylist()}
    assert _snapshot(d) == before


def test_an_all_nan_target_is_refused(d: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _refused(_fit("all_nan_target.parquet"), "target 'y'", d, tmp_path, capsys)


# ---- 2. inputs the pipeline cannot take -------------------------------------------------------------------------

REFUSED_INPUTS = [
    ("map column as categorical", _fit("nested.parquet", "--categorical", "m"), "column 'm' has type MAP"),
    ("list column as text", _fit("nested.parquet", "--text", "tags"), "column 'tags' has type VARCHAR[]"),
    ("list column as numeric", _fit("nested.parquet", "--numeric", "tags"), "'tags' has type VARCHAR[]"),
    ("as many classes as rows", _fit("ids.csv"), "too many classes for its rows"),
    ("broken gzip", _fit("broken.csv.gz", target="label"), "broken.csv.gz"),
    ("max-length below the floor", _fit("good.csv", "--max-length", "2", target="label"), "model.max_length"),
    ("max-length above any backbone", _fit("good.csv", "--max-length", "100000", target="label"), "model.max_length"),
    ("batch size 0", _fit("good.csv", "--batch-size", "0", target="label"), "train.batch_size"),
    ("negative learning rate", _fit("good.csv", "--lr", "-0.1", target="label"), "train.lr"),
    ("negative patience", _fit("good.csv", "--patience", "-2", target="label"), "train.patience"),
    ("max rows 0", _fit("good.csv", "--max-rows", "0", target="label"), "train.max_rows"),
    ("--set value not YAML", _fit("good.csv", "--set", "train.lr=[0.1", target="label"), "is not valid YAML"),
    ("--set unknown section", _fit("good.csv", "--set", "trian.lr=0.1", target="label"), "trian"),
    (
        "memory limit without a unit",
        _fit("good.csv", "--set", "data.memory_limit=lots", target="label"),
        "is not a size",
    ),
    ("memory limit too small", _fit("good.csv", "--set", "data.memory_limit=1KB", target="label"), "at least 64MB"),
    ("negative seed", _fit("good.csv", "--seed", "-5", target="label"), "train.seed"),
    ("group by a column of two values", _fit("good.csv", "--group", "member", target="label"), "form only 2 group(s)"),
]


@pytest.mark.parametrize("name,argv,expected", REFUSED_INPUTS, ids=[c[0] for c in REFUSED_INPUTS])
def test_inputs_the_pipeline_cannot_take_are_refused(name: str, argv: list[str], expected: str, d: Path,
                                                     tmp_path: Path, capsys: pytest.CaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _refused(argv, expected, d, tmp_path, capsys)


HANDLED_INPUTS = [  # (name, argv, check(run folder))
    (
        "struct column flattened",
        _fit("nested.parquet", target="y"),
        lambda run: {"rec.a", "rec.b"} <= set(hone.load(run / "model").pre.schema.names()),
    ),
    (
        "JSON objects flattened",
        _fit("nested.jsonl", target="y"),
        lambda run: {"meta.shop", "meta.n"} <= set(hone.load(run / "model").pre.schema.names()),
    ),
    (
        "a 200 KB cell",
        _fit("big_cell.csv", "--max-length", "16", target="y"),
        lambda run: json.loads((run / "metrics.json").read_text())["training"]["rows"]["train"] > 100,
    ),
    (
        "gzip-compressed CSV",
        _fit("good.csv.gz", "--max-length", "16", target="label"),
        lambda run: hone.load(run / "model").target == "label",
    ),
    (
        "max-length above the backbone's positions is clamped",
        _fit("good.csv", "--max-length", "4096", target="label"),
        lambda run: True,
    ),
    (
        "a semicolon-separated .csv",
        _fit("semicolon.csv"),
        lambda run: hone.load(run / "model").pre.schema.names("numeric") == ["x", "w"],
    ),
    (
        "decimal commas",
        _fit("decimal_comma.csv"),
        lambda run: hone.load(run / "model").pre.schema.names("numeric") == ["x", "w"],
    ),
    (
        "a JSON field of numbers and strings",
        _fit("mixed.jsonl"),
        lambda run: "x" in hone.load(run / "model").pre.schema.names(),
    ),
    (
        "time zones, categories, unsigned and float32 columns",
        _fit("types.parquet"),
        lambda run: {"when", "cat", "f32"} <= set(hone.load(run / "model").pre.schema.names()),
    ),
]


@pytest.mark.parametrize("name,argv,check", HANDLED_INPUTS, ids=[c[0] for c in HANDLED_INPUTS])
def test_inputs_that_look_odd_but_are_data_are_handled(name: str, argv: list[str], check, d: Path, tmp_path: Path,
                                                        tiny_backbone: Path) -> None:
    before = _snapshot(d)
    out = tmp_path / "run"
    args = [a.replace("{d}", str(d)) for a in argv] + ["--output", str(out), "--backbone", str(tiny_backbone)]
    assert main(args) == 0
    assert check(out)
    assert _snapshot(d) == before


def test_max_length_is_clamped_to_the_backbone_with_a_warning(d: Path, tmp_path: Path, tiny_backbone: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    words = pa.table(
        {"note": [f"this is note number {i} of many" for i in range(80)], "y": ["ab"[i % 2] for i in range(80)]}
    )
    hone.fit(words, target="y", output=tmp_path / "run", epochs=1, show_progress=False, backbone=str(tiny_backbone),
             max_length=4096)
    saved = json.loads((tmp_path / "run" / "model" / "hone.json").read_text())
    assert saved["config"]["model"]["max_length"] == 128  # the tiny backbone's max_position_embeddings
    assert "more than the backbone reads (128 positions)" in caplog.text


# ---- 3. paths and outputs ------------------------------------------------------------------------------------------

PATHS = [
    ("fit --output is a file", _fit("good.csv", "--output", "{d}/a_file", target="label"), "is a file"),
    (
        "fit --output under a file",
        _fit("good.csv", "--output", "{d}/a_file/run", target="label"),
        "is a file, not a folder",
    ),
    ("fit --output is the input", _fit("good.csv", "--output", "{d}/good.csv", target="label"), "is a file"),
    ("fit --output unwritable", _fit("good.csv", "--output", f"{UNWRITABLE}/run", target="label"), "is not writable"),
    ("predict --output is a folder", _predict(out="{d}/out_dir"), "is a folder; name a file in it"),
    ("predict --output is its input", _predict("twin.csv", "{d}/twin.csv"), "is the input"),
    (
        "predict --output is its input by another path",
        _predict("twin.csv", "{d}/../" + "{dname}/twin.csv"),
        "is the input",
    ),
    ("predict --output in the model folder", _predict(out="{d}/run/model/scores.csv"), "is the input"),
    ("predict --output under a file", _predict(out="{d}/a_file/scored.csv"), "is a file, not a folder"),
    ("predict --output unwritable", _predict(out=f"{UNWRITABLE}/scored.csv"), "is not writable"),
    (
        "explain --output is a folder",
        ["explain", "{d}/run/model", "{d}/good.csv", "--output", "{d}/out_dir"],
        "is a folder",
    ),
    (
        "explain --output is its input",
        ["explain", "{d}/run/model", "{d}/twin.csv", "--output", "{d}/twin.csv"],
        "is the input",
    ),
    (
        "evaluate --output is a folder",
        ["evaluate", "{d}/run/model", "{d}/good.csv", "--output", "{d}/out_dir"],
        "is a folder",
    ),
    (
        "evaluate --output is its input",
        ["evaluate", "{d}/run/model", "{d}/twin.csv", "--output", "{d}/twin.csv"],
        "is the input",
    ),
    ("audit --output is a file", ["audit", "{d}/good.csv", "--target", "label", "--output", "{d}/a_file"], "is a file"),
    (
        "audit --output unwritable",
        ["audit", "{d}/good.csv", "--target", "label", "--output", f"{UNWRITABLE}/a"],
        "is not writable",
    ),
    ("compare --output is a folder", ["compare", "{d}/run", "--output", "{d}/out_dir"], "is a folder"),
    ("tune --output is a file", ["tune", "{d}/good.csv", "--target", "label", "--output", "{d}/a_file"], "is a file"),
]


@pytest.mark.parametrize("name,argv,expected", PATHS, ids=[c[0] for c in PATHS])
def test_outputs_are_checked_before_any_work(name: str, argv: list[str], expected: str, d: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    if str(UNWRITABLE) in " ".join(argv) and os.access("/sys", os.W_OK) and os.geteuid() != 0:
        pytest.skip("/sys is writable here")
    monkeypatch.chdir(tmp_path)
    _refused([a.replace("{dname}", d.name) for a in argv], expected, d, tmp_path, capsys)


# ---- 4. configs and flags --------------------------------------------------------------------------------------

FLAGS = [
    (
        "duplicate section",
        _fit("good.csv", "--config", "{d}/dup.yaml", target="label"),
        "line 5, column 1: key 'train' is given twice (first on line 1)",
    ),
    ("duplicate field", _fit("good.csv", "--config", "{d}/dup_nested.yaml", target="label"), "key 'lr' is given twice"),
    (
        "unclosed bracket",
        _fit("good.csv", "--config", "{d}/unclosed.yaml", target="label"),
        "unclosed.yaml' is not valid YAML: line 4",
    ),
    ("tab indentation", _fit("good.csv", "--config", "{d}/tabbed.yaml", target="label"), "line 2, column 1"),
    ("stray indentation", _fit("good.csv", "--config", "{d}/colon.yaml", target="label"), "line 3, column 6"),
    ("config not UTF-8", _fit("good.csv", "--config", "{d}/latin1.yaml", target="label"), "is not UTF-8 text"),
    ("config is a folder", _fit("good.csv", "--config", "{d}/yaml_dir.yaml", target="label"), "is a folder"),
    ("serve --port 70000", ["serve", "{d}/run/model", "--port", "70000"], "--port: 70000 is out of range"),
    ("serve --port 0", ["serve", "{d}/run/model", "--port", "0"], "--port: 0 is out of range"),
    ("serve --port -1", ["serve", "{d}/run/model", "--port", "-1"], "out of range"),
    ("serve --port abc", ["serve", "{d}/run/model", "--port", "abc"], "'abc' is not an integer"),
    ("serve --max-body-mb -1", ["serve", "{d}/run/model", "--max-body-mb", "-1"], "--max-body-mb: -1 is out of range"),
    ("serve --max-body-mb 0", ["serve", "{d}/run/model", "--max-body-mb", "0"], "out of range"),
    ("serve --max-body-mb nan", ["serve", "{d}/run/model", "--max-body-mb", "nan"], "not a finite number"),
    ("serve --max-body-mb inf", ["serve", "{d}/run/model", "--max-body-mb", "inf"], "not a finite number"),
    ("serve on a port in use", ["serve", "{d}/run/model", "--port", "{busy}"], "is already in use"),
    ("predict --workers 0", _predict("good.csv", "{tmp}/s.csv", "--workers", "0"), "--workers: 0 is out of range"),
    ("predict --workers -3", _predict("good.csv", "{tmp}/s.csv", "--workers", "-3"), "out of range"),
    (
        "explain --rows 0",
        ["explain", "{d}/run/model", "{d}/good.csv", "--output", "{tmp}/e.html", "--rows", "0"],
        "--rows: 0 is out of range",
    ),
    # the search's flags come from the one flag table: checked by their config field, like fit's
    ("tune --trials 0", ["tune", "{d}/good.csv", "--target", "label", "--trials", "0"],
     "config field 'tune.trials': input should be greater than or equal to 1"),
    ("tune --jobs 0", ["tune", "{d}/good.csv", "--target", "label", "--jobs", "0"],
     "config field 'tune.jobs': input should be greater than or equal to 1"),
    ("tune --timeout soon", ["tune", "{d}/good.csv", "--target", "label", "--timeout", "soon"],
     "'tune.timeout': 'soon' is not a duration"),
    ("auto --time-limit soon", ["auto", "{d}/good.csv", "--target", "label", "--time-limit", "soon"],
     "'auto.time_limit': 'soon' is not a duration"),
    ("auto --families bogus", ["auto", "{d}/good.csv", "--target", "label", "--families", "lightgbm,bogus"],
     "config field 'auto.families"),
    (
        "federate --silos 0",
        ["federate", "{d}/good.csv", "--target", "label", "--silos", "0"],
        "--silos: 0 is out of range",
    ),
    (
        "federate --skew -1",
        ["federate", "{d}/good.csv", "--target", "label", "--skew", "-1"],
        "--skew: -1 is out of range",
    ),
    ("unknown choice", _fit("good.csv", "--precision", "fp8", target="label"), "argument --precision"),
    ("unknown flag", _fit("good.csv", "--epocs", "2", target="label"), "unrecognized arguments: --epocs"),
    ("missing flag value", ["predict", "{d}/run/model", "{d}/good.csv", "--output"], "expected one argument"),
]


@pytest.mark.parametrize("name,argv,expected", FLAGS, ids=[c[0] for c in FLAGS])
def test_configs_and_flags_are_checked_where_parsed(
    name: str,
    argv: list[str],
    expected: str,
    d: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    with socket.socket() as busy:  # a port some other program holds
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        _refused([a.replace("{busy}", str(busy.getsockname()[1])) for a in argv], expected, d, tmp_path, capsys)


def test_there_are_at_least_60_new_cases() -> None:
    assert len(HANDLED) + 1 + len(REFUSED_INPUTS) + len(HANDLED_INPUTS) + 1 + len(PATHS) + len(FLAGS) >= 60


def test_evaluate_skips_rows_whose_target_is_not_finite(d: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["fit", str(d / "inf_regression.parquet"), "--target", "y", "--epochs", "1", "--no-progress",
                 "--output", str(out)]) == 0
    metrics = hone.load(out / "model").evaluate(str(d / "inf_regression.parquet"))
    assert metrics["n"] == 238 and all(math.isfinite(v) for v in metrics.values() if isinstance(v, float))


def test_federate_offers_the_fine_tuning_strategies_the_config_accepts(capsys: pytest.CaptureFixture) -> None:
    from typing import get_args

    from hone.cli import _parser
    from hone.config import StrategyName

    for name in get_args(StrategyName):  # each choice argparse offers is one the config validates (top-k, not topk)
        a = _parser().parse_args(["federate-server", "--strategy", name, "--aggregation", "fedprox"])
        assert a.strategy == name and a.aggregation == "fedprox"
