"""hone federate on Flower's simulation engine (Ray): a 3-silo FedProx federation to completion in
which one client drops out of round 2, what its clients send, and the same federation killed after
round 2 and resumed from its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("flwr")

import hone  # noqa: E402
from hone.cli import main  # noqa: E402
from hone.federated.simulate import federate  # noqa: E402

ROUNDS = 3


DROP = {1: 2}  # silo 1 fails in round 2


def dropout(drop: dict[int, int]) -> Any:
    """A Flower client mod (the test's fault, outside hone): silo ``k`` fails its training in round ``drop[k]``."""
    def mod(msg: Any, context: Any, call_next: Any) -> Any:
        silo = int(context.node_config["partition-id"])
        if msg.metadata.message_type.startswith("train") and drop.get(silo) == int(
            msg.content["config"]["server-round"]
        ):
            raise RuntimeError(f"silo {silo} dropped out in round {drop[silo]}")
        return call_next(msg, context)

    return mod


def _settings(backbone: Path) -> dict[str, Any]:
    return {"backbone": str(backbone), "batch_size": 32, "show_progress": False, "lr": 1e-3,
            "train.head_lr": 5e-3, "quality.audit": False, "tracking.enabled": False, "federated.rounds": ROUNDS,
            "federated.aggregation": "fedprox", "federated.proximal_mu": 0.1}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, table: pa.Table) -> Path:
    path = tmp_path_factory.mktemp("federated") / "reviews.parquet"
    pq.write_table(table, path)
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, data: Path, tiny_backbone: Path) -> tuple[Any, Path]:
    root = tmp_path_factory.mktemp("federated-run")
    model = federate(str(data), target="label", silos=3, output=root / "run", log_messages=root / "messages",
                     client_mods=[dropout(DROP)], **_settings(tiny_backbone))
    return model, root / "messages"


def test_three_silos_train_to_a_model_package_like_fit(run: tuple[Any, Path], data: Path, tmp_path: Path) -> None:
    model, _ = run
    run_dir = model.run_dir
    for name in ("model", "metrics.json", "history.json", "config.resolved.yaml", "schema.json", "report.html",
                 "federated.json"):
        assert (run_dir / name).exists(), name
    assert not (run_dir / "checkpoints").exists()  # a finished run keeps no round checkpoints
    fed = json.loads((run_dir / "federated.json").read_text())
    assert [h["round"] for h in json.loads((run_dir / "history.json").read_text())] == [1, 2, 3]
    assert fed["clients"] == 3 and len(fed["test_per_silo"]) == 3
    assert fed["rows"]["train"] == sum(s["rows"]["train"] for s in fed["silos"])
    # the pooled metrics from the silos' confusion matrices are the metrics of the pooled test rows
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert fed["test"]["rows"] == metrics["test"]["n"]
    assert fed["test"]["accuracy"] == pytest.approx(metrics["test"]["accuracy"], abs=1e-9)
    assert metrics["test"]["macro_f1"] > 0.7  # the signal words are learnt across silos
    # the package works with predict and evaluate, unchanged
    loaded = hone.load(run_dir / "model")
    out = tmp_path / "scored.csv"
    assert hone.api.predict(run_dir / "model", str(data), out) == pq.read_metadata(data).num_rows
    assert loaded.evaluate(str(data))["macro_f1"] > 0.7
    assert "Federation" in (run_dir / "report.html").read_text()


def test_clients_send_only_weights_counts_and_sums(run: tuple[Any, Path], table: pa.Table) -> None:
    """Every message a client sent, as it left the client (Flower mod): weights whose names and shapes
    are the model's trainable parameters, numbers, and names (columns, roles, types, labels, shared
    categories); never a row."""
    model, folder = run
    entries = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    kinds = [e["type"] for e in entries]
    assert kinds.count("query") == 2 * 3  # schemas, then statistics
    assert kinds.count("train") == 3 * ROUNDS - 1  # silo 1 dropped out of round 2
    assert kinds.count("evaluate") == 3 * ROUNDS  # each round's validation (the last with the test split)
    state = {k: tuple(v.shape) for k, v in model.net.state_dict().items()}
    strings: set[str] = set()
    for e in entries:
        for rec in e["arrays"].values():
            assert rec and all(name in state and tuple(a["shape"]) == state[name] for name, a in rec.items())
        for rec in e["metrics"].values():
            for v in rec.values():
                assert isinstance(v, (int, float)) or all(isinstance(x, (int, float)) for x in v)
        for rec in e["configs"].values():
            for v in rec.values():
                strings.update(v if isinstance(v, list) else [v])
    schema = model.pre.schema
    allowed = {c.name for c in schema.columns} | {c.role for c in schema.columns} | {c.dtype for c in schema.columns}
    allowed |= {schema.target, schema.task, *(json.dumps(c) for c in schema.classes)} | {
        "silo-0",
        "silo-1",
        "silo-2",
        "value",
        "year",
        "month",
        "day",
        "weekday",
        "hour",
        "id",
        "constant",
    }
    allowed |= {"north", "south", "east", "west"}  # the store categories: each held by many rows of every silo
    assert strings <= allowed, strings - allowed
    raw = "\n".join(p.read_text() for p in folder.glob("*.json"))
    assert not any(text in raw for text in table["review"].to_pylist() + table["title"].to_pylist())
    npz = sorted(folder.glob("*.npz"))
    assert len(npz) == 3 * ROUNDS - 1  # the weights' values, beside the JSON, are the trainable parameters only
    with np.load(npz[0]) as weights:
        assert set(weights.files) == {k for k, v in model.net.named_parameters()}


def test_a_client_that_drops_out_does_not_stop_the_round(run: tuple[Any, Path]) -> None:
    """FedProx over 3 silos where silo 1 fails in round 2: the round averages the other two, and every
    client trained with FedProx's mu."""
    model, folder = run
    history = json.loads((model.run_dir / "history.json").read_text())
    assert [(h["replied"], h["clients"], h["aggregated"]) for h in history] == [(3, 3, True), (2, 3, True),
                                                                             (3, 3, True)]
    assert json.loads((model.run_dir / "federated.json").read_text())["aggregation"] == "fedprox"
    trained = [json.loads(p.read_text()) for p in folder.glob("*-train-*.json")]
    assert {t["metrics"]["metrics"]["proximal-mu"] for t in trained} == {0.1}
    assert len(list(folder.glob("silo-1-train-*.json"))) == ROUNDS - 1


def test_a_killed_server_resumes_after_its_last_round(run: tuple[Any, Path], data: Path, tiny_backbone: Path,
                                                      tmp_path: Path) -> None:
    """The same federation run in another process, killed (SIGKILL) once round 2 is checkpointed, then resumed
    from the command line: it trains round 3 only and ends with the uninterrupted run's weights."""
    out = tmp_path / "run"
    script = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import hone.api; "
              f"from test_simulation import DROP, _settings, dropout; from pathlib import Path; "
              f"hone.api.federate({str(data)!r}, target='label', silos=3, output={str(out)!r}, "
              f"client_mods=[dropout(DROP)], **_settings(Path({str(tiny_backbone)!r})))")
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not (out / "checkpoints" / "round-0002" / "state.json").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
        assert time.monotonic() < deadline, "round 2 was not checkpointed in time"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists()
    assert main(["federate", "--resume", str(out)]) == 0  # round 3 has no dropout: the command line resumes
    history = json.loads((out / "history.json").read_text())
    assert [h["round"] for h in history] == [1, 2, 3]
    assert json.loads((out / "federated.json").read_text())["resumed_after_round"] == 2
    done = hone.load(out / "model").net.state_dict()
    reference = run[0].net.state_dict()
    assert set(done) == set(reference)
    worst = max(float((done[k].float() - reference[k].float()).abs().max()) for k in done)
    assert worst < 1e-5  # the resumed run ends where the uninterrupted one did


def test_bad_federate_input_is_one_line(data: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["federate", str(data), "--target", "label", "--by", "shop", "--output", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --by column 'shop' is not a column") and "Traceback" not in err
    assert not (tmp_path / "r").exists()
