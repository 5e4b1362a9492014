"""Tracking against a real MLflow tracking server started on a free loopback port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hone.cli import main

pytest.importorskip("mlflow")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    exe = Path(sys.executable).with_name("mlflow")
    log = open(root / "server.log", "w")
    proc = subprocess.Popen([str(exe), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                             "--backend-store-uri", f"sqlite:///{root / 'db.sqlite'}",
                             "--artifacts-destination", str(root / "artifacts")], stdout=log, stderr=subprocess.STDOUT,
                            cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if urllib.request.urlopen(url + "/health", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.25)
            assert proc.poll() is None, (root / "server.log").read_text()[-2000:]
        else:
            pytest.fail("the MLflow server did not start in 60 s: " + (root / "server.log").read_text()[-2000:])
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _client(url: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=url)


def _runs(url: str, experiment: str) -> list:
    c = _client(url)
    return c.search_runs([c.get_experiment_by_name(experiment).experiment_id], max_results=100)


def _track(url: str, experiment: str) -> list[str]:
    return [
        "--set",
        "tracking.enabled=true",
        "--set",
        f"tracking.uri={url}",
        "--set",
        f"tracking.experiment={experiment}",
    ]


def test_a_fit_logs_params_metrics_and_artifacts_to_the_server(tmp_path: Path, server: str, table: pa.Table,
                                                              tiny_backbone: Path) -> None:
    data = tmp_path / "reviews.parquet"
    pq.write_table(table, data)
    run = tmp_path / "run"
    assert main(["-q", "fit", str(data), "--target", "label", "--backbone", str(tiny_backbone), "--epochs", "3",
                 "--no-progress", "--no-label-errors", "--lr", "0.001", "--set", "evaluate.bootstrap=50",
                 "--output", str(run), *_track(server, "fit-test")]) == 0
    (r,) = _runs(server, "fit-test")
    c = _client(server)
    assert r.info.status == "FINISHED" and r.info.run_name == "run"
    assert r.data.params["train.lr"] == "0.001" and r.data.params["train.epochs"] == "3"
    assert r.data.params["model.backbone"] == str(tiny_backbone) and r.data.tags["hone.task"] == "binary"
    assert r.data.tags["hone.audit"].startswith("audit of")
    local = json.loads((run / "metrics.json").read_text())
    assert r.data.metrics["test.macro_f1"] == pytest.approx(local["test"]["macro_f1"])
    history = json.loads((run / "history.json").read_text())
    curve = c.get_metric_history(r.info.run_id, "val_macro_f1")
    assert [(m.step, m.value) for m in sorted(curve, key=lambda m: m.step)] == \
        [(h["step"], pytest.approx(h["macro_f1"])) for h in history]
    assert c.get_metric_history(r.info.run_id, "train_loss")
    names = {a.path for a in c.list_artifacts(r.info.run_id)}
    assert {"config.resolved.yaml", "metrics.json", "quality.json", "report.html", "environment.json", "model"} <= names
    got = c.download_artifacts(r.info.run_id, "model/hone.json", str(tmp_path / "dl"))
    assert Path(got).read_text() == (run / "model" / "hone.json").read_text()


def test_a_search_nests_its_trials_and_refit_under_one_run(tmp_path: Path, server: str, tab_table: pa.Table) -> None:
    data = tmp_path / "tab.parquet"
    pq.write_table(tab_table, data)
    assert main(["-q", "tune", str(data), "--target", "label", "--trials", "3", "--output", str(tmp_path / "s"),
                 "--no-label-errors", "--set", "evaluate.bootstrap=50", "--set", "tune.space.epochs=3",
                 *_track(server, "tune-test")]) == 0
    runs = _runs(server, "tune-test")
    (parent,) = [r for r in runs if r.data.tags.get("hone.kind") == "tune"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["hone.kind"] for r in children) == ["fit", "trial", "trial", "trial"]
    assert parent.info.status == "FINISHED" and "best_validation" in parent.data.metrics
    summary = json.loads((tmp_path / "s" / "tune.json").read_text())
    assert parent.data.metrics["best_validation"] == pytest.approx(summary["best"]["value"])
    trials = [r for r in children if r.data.tags["hone.kind"] == "trial"]
    assert all("lr" in r.data.params for r in trials)


def test_an_unreachable_server_is_one_clear_error_before_training(tmp_path: Path, tab_table: pa.Table, capsys,
                                                                  monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    data = tmp_path / "tab.parquet"
    pq.write_table(tab_table, data)
    monkeypatch.chdir(tmp_path)
    url = f"http://127.0.0.1:{_free_port()}"
    assert main(["-q", "fit", str(data), "--target", "label", "--no-label-errors", *_track(url, "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: MLflow tracking at http://127.0.0.1") and "Traceback" not in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_the_default_store_is_sqlite_in_mlruns_and_no_track_turns_it_off(tmp_path: Path, tab_table: pa.Table,
                                                                         monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("HONE_TRACKING", "on")
    monkeypatch.chdir(tmp_path)
    pq.write_table(tab_table, tmp_path / "tab.parquet")
    args = ["-q", "fit", "tab.parquet", "--target", "label", "--no-label-errors", "--epochs", "2",
            "--set", "evaluate.bootstrap=0"]
    assert main([*args, "--no-track", "--output", "a"]) == 0
    assert not (tmp_path / "mlruns").exists()
    assert main([*args, "--output", "b"]) == 0  # tracking.enabled auto: MLflow is installed, so on
    (r,) = _runs(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}", "hone")
    assert r.info.run_name == "b" and r.info.artifact_uri.startswith((tmp_path / "mlruns" / "artifacts").as_uri())
    assert (tmp_path / "mlruns" / "artifacts" / r.info.run_id / "artifacts" / "model" / "hone.json").is_file()
