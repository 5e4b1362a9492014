"""``hone explain``, ``Model.explain`` and ``POST /explain`` agree; the HTML views render in a real
browser; the run's explain.json ranks a pure-noise column last; bad input fails cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import hone
from hone.cli import main
from hone.testing import make_table
from tests.browser import render


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> Path:
    out = tmp_path_factory.mktemp("explain") / "run"
    hone.fit(make_table(400, seed=3), target="label", output=out, backbone=str(tiny_backbone), epochs=2,
             show_progress=False, max_length=16, ignore=["id"], **{"train.head_lr": 5e-3, "evaluate.explain": True})
    return out


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("explain_data") / "new.csv"
    pacsv.write_csv(make_table(60, seed=11), path)
    return path


def test_cli_python_and_service_agree(run: Path, csv_path: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from hone.serve import create_app

    out = tmp_path / "x.parquet"
    assert main(["explain", str(run / "model"), str(csv_path), "--output", str(out), "--rows", "12", "--steps", "16",
                 "--keep", "id"]) == 0
    cli = pq.read_table(out).to_pylist()
    model = hone.load(run / "model")
    api = model.explain(str(csv_path), rows=12, steps=16)
    records = [{k: (str(v) if k == "when" else v) for k, v in r.items() if k not in ("label", "id")}
               for r in make_table(60, seed=11).slice(0, 12).to_pylist()]
    with TestClient(create_app(model)) as client:
        resp = client.post("/explain", json={"records": records, "steps": 16})
        bad_class = client.post("/explain", json={"records": records[:1], "target_class": "maybe"})
        bad_steps = client.post("/explain", json={"records": records[:1], "steps": 1})
        too_many = client.post("/explain", json={"records": records * 6})
    assert resp.status_code == 200, resp.text
    assert bad_class.status_code == 422 and "'maybe' is not a class" in bad_class.json()["detail"]
    assert bad_steps.status_code == 422 and "steps" in bad_steps.text
    assert too_many.status_code == 422  # 72 records: over the 64 an explanation request may hold
    served = resp.json()["explanations"]
    assert len(cli) == len(api) == len(served) == 12
    assert [r["id"] for r in cli] == make_table(60, seed=11).column("id").to_pylist()[:12]
    for c, a, s in zip(cli, api, served):
        assert json.loads(c["explanation"])["columns"] == pytest.approx(a["columns"], abs=1e-9)
        assert s["columns"] == pytest.approx(a["columns"], abs=1e-6)
        assert s["prediction"] == a["prediction"] == c["prediction"]
        for col, v in a["columns"].items():
            assert c[f"attribution.{col}"] == pytest.approx(v, abs=1e-9)
        if "network" in a:
            assert [w["word"] for w in c["words.review"]] == [w[0] for w in a["network"]["words"]["review"]]
            assert [w[0] for w in s["network"]["words"]["review"]] == [w[0] for w in a["network"]["words"]["review"]]


def test_views_render_in_chromium(run: Path, csv_path: Path, tmp_path: Path) -> None:
    page = tmp_path / "rows.html"
    assert main(["explain", str(run / "model"), str(csv_path), "--output", str(page), "--where", "price > 10",
                 "--rows", "5"]) == 0
    dom, errors = render(page, tmp_path / "rows.png")
    assert errors == ""
    assert dom.count("class=\"xrow\"") == 5 and "<svg" in dom and "<span style=\"background:rgba" in dom
    dom, errors = render(run / "report.html", tmp_path / "report.png")
    assert errors == ""
    assert "What the model relies on" in dom and "Permutation importance" in dom and "class=\"xrow\"" in dom


def test_run_explains_itself(run: Path) -> None:
    x = json.loads((run / "explain.json").read_text())
    perm = x["permutation"]
    names = {c["column"] for c in perm["columns"]}
    assert names == set(hone.load(run / "model").pre.schema.names())
    for c in perm["columns"]:
        assert c["ci_low"] <= c["importance"] + 1e-9 and c["importance"] <= c["ci_high"] + 1e-9
    assert [c["importance"] for c in perm["columns"]] == sorted(
        (c["importance"] for c in perm["columns"]), reverse=True
    )
    att = x["attribution"]
    assert att["rows"] > 0 and att["rows_per_second"] > 0 and set(att["mean_abs"]) >= {"review", "price"}
    kinds = [e["kind"] for e in x["examples"]]
    assert kinds == sorted(kinds, key=lambda k: k != "error")  # errors first


def test_permutation_importance_ranks_noise_last(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 1500
    signal, weak, noise = rng.normal(0, 1, n), rng.normal(0, 1, n), rng.normal(0, 1, n)
    label = np.where(signal + 0.4 * weak + rng.normal(0, 0.3, n) > 0, "yes", "no")
    table = pa.table({"signal": signal, "weak": weak, "noise": noise, "label": label.tolist()})
    hone.fit(table, target="label", output=tmp_path / "run", epochs=3, show_progress=False, audit=False,
             **{"evaluate.explain": True})
    perm = json.loads((tmp_path / "run" / "explain.json").read_text())["permutation"]
    order = [c["column"] for c in perm["columns"]]
    assert order == ["signal", "weak", "noise"], perm
    first, last = perm["columns"][0], perm["columns"][-1]
    assert first["ci_low"] > 0.1
    assert last["ci_low"] <= 0.01 and abs(last["importance"]) < 0.02


@pytest.mark.parametrize(
    "args, message",
    [
        (["--output", "{tmp}/x.txt"], "must end in .parquet or .html"),
        (
            ["--output", "{tmp}/x.parquet", "--where", "no_such_column > 1"],
            "--where 'no_such_column > 1' is not a condition",
        ),
        (["--output", "{tmp}/x.parquet", "--rows", "0"], "--rows: 0 is out of range: it must be at least 1"),
        (["--output", "{tmp}/x.parquet", "--steps", "1"], "--steps must be auto or a whole number"),
        (["--output", "{tmp}/x.parquet", "--target-class", "maybe"], "'maybe' is not a class of this model"),
        (["--output", "{tmp}/x.parquet", "--keep", "nope"], "'nope'"),
    ],
)
def test_bad_input_is_one_clear_line(run: Path, csv_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                     args: list[str], message: str) -> None:
    (tmp_path / "x.parquet").write_text("kept")  # an earlier output stays as it was
    argv = ["explain", str(run / "model"), str(csv_path), *[a.format(tmp=tmp_path) for a in args]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "x.parquet").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.parquet"]


def test_every_fit_explains_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    from hone.config import resolve
    from hone.pipeline.runs import make_config

    def resolved(**overrides: object) -> bool:
        cfg = make_config("x.csv", target="y", overrides=overrides)
        return resolve(cfg, has_text=False, task="binary", precision="fp32", threads=1).evaluate.explain

    monkeypatch.delenv("HONE_EXPLAIN", raising=False)
    assert resolved() is True and resolved(**{"evaluate.explain": False}) is False
    monkeypatch.setenv("HONE_EXPLAIN", "off")
    assert resolved() is False and resolved(**{"evaluate.explain": True}) is True
